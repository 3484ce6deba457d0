"""Unit tests of the Rosenbaum bounds and E-values."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from causalkit_plugins.estimators.selection.sensitivity import (
    e_value_difference,
    e_value_interval,
    e_value_rr,
    e_value_rr_ci,
    rosenbaum_bounds,
)


def test_gamma_one_is_the_wilcoxon_signed_rank_test():
    rng = np.random.default_rng(0)
    D = np.round(rng.normal(0.3, 1.0, 80), 1)  # ties and zeros
    table = rosenbaum_bounds(D, [1.0])
    ref = stats.wilcoxon(
        D, zero_method="wilcox", correction=False, alternative="greater", method="approx"
    )
    assert table["p_lower"][0] == pytest.approx(ref.pvalue, rel=1e-10)
    assert table["p_upper"][0] == pytest.approx(ref.pvalue, rel=1e-10)
    assert table["n_pairs"][0] == int(np.sum(D != 0))


def test_upper_bound_against_exact_enumeration():
    """For 14 pairs the bound distribution of T+ (signs independent, P(+) = G/(1+G)) is
    enumerated exactly; the normal approximation must be close (within 0.02)."""
    D = np.array([0.4, -0.2, 1.1, 0.8, -0.5, 0.9, 1.3, 0.3, -0.1, 0.7, 1.6, 0.2, 1.0, -0.6])
    r = stats.rankdata(np.abs(D))
    t_obs = r[D > 0].sum()
    for g in (1.0, 1.5, 2.0):
        p = g / (1 + g)
        exact = 0.0
        for signs in itertools.product((0, 1), repeat=len(D)):
            s = np.array(signs)
            if r @ s >= t_obs:
                exact += p ** s.sum() * (1 - p) ** (len(D) - s.sum())
        approx = rosenbaum_bounds(D, [g])["p_upper"][0]
        assert approx == pytest.approx(exact, abs=0.02)


def test_bounds_widen_with_gamma_and_follow_the_effect_sign():
    rng = np.random.default_rng(1)
    D = rng.normal(0.5, 1.0, 200)
    t = rosenbaum_bounds(D, [1, 1.5, 2, 3])
    assert np.all(np.diff(t["p_upper"]) > 0) and np.all(np.diff(t["p_lower"]) < 0)
    flipped = rosenbaum_bounds(-D, [1, 1.5, 2, 3])
    assert np.allclose(flipped["p_upper"], t["p_upper"])


def test_e_values_from_vanderweele_ding_2017():
    # Their worked example: RR 3.9 (95% CI 1.8 to 8.7) gives E-values 7.26 and 3.0.
    assert e_value_rr(3.9) == pytest.approx(7.26, abs=0.005)
    assert e_value_rr_ci(1.8, 8.7) == pytest.approx(3.0, abs=0.005)
    assert e_value_rr(1 / 3.9) == pytest.approx(e_value_rr(3.9))
    assert e_value_rr_ci(0.8, 1.3) == 1.0


def test_e_value_of_a_mean_difference():
    # d = 0.5 SD -> RR = exp(0.91 * 0.5); CI limit exp(0.91 * (0.5 - 1.96 * 0.1))
    e = e_value_difference(5.0, 10.0)
    rr = math.exp(0.455)
    assert e == pytest.approx(rr + math.sqrt(rr * (rr - 1)), rel=1e-12)
    z = stats.norm.ppf(0.975)
    e_ci = e_value_interval(5.0 - z * 1.0, 5.0 + z * 1.0, 10.0)
    lo = math.exp(0.91 * (0.5 - z * 0.1))
    assert e_ci == pytest.approx(lo + math.sqrt(lo * (lo - 1)), rel=1e-12)
    assert e_value_interval(0.1 - z, 0.1 + z, 10.0) == 1.0  # the interval covers zero
    # a negative effect: the limit closest to zero is the upper one
    hi = math.exp(0.91 * (-0.5 + z * 0.1))
    assert e_value_interval(-5.0 - z, -5.0 + z, 10.0) == pytest.approx(
        1 / hi + math.sqrt(1 / hi * (1 / hi - 1)), rel=1e-12
    )
    assert math.isnan(e_value_difference(1.0, 0.0)) and math.isnan(e_value_interval(0, 1, 0.0))
