"""Unit tests of the Rosenbaum bounds and E-values."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from causalkit.evalue import e_value_difference, e_value_interval, e_value_rr, e_value_rr_ci
from causalkit_plugins.estimators.selection.sensitivity import (
    _max_moments,
    covariance_adjusted,
    matched_sets,
    rosenbaum_bounds,
    rosenbaum_m_bounds,
)


def test_gamma_one_is_the_wilcoxon_signed_rank_test():
    rng = np.random.default_rng(0)
    D = np.round(rng.normal(0.3, 1.0, 80), 1)  # ties and zeros
    table = rosenbaum_bounds(D, [1.0], "greater")
    ref = stats.wilcoxon(
        D, zero_method="wilcox", correction=False, alternative="greater", method="approx"
    )
    assert table["p_lower"][0] == pytest.approx(ref.pvalue, rel=1e-10)
    assert table["p_upper"][0] == pytest.approx(ref.pvalue, rel=1e-10)
    assert table["n_sets"][0] == int(np.sum(D != 0))
    assert table["test"][0] == "wilcoxon_signed_rank"


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
        approx = rosenbaum_bounds(D, [g], "greater")["p_upper"][0]
        assert approx == pytest.approx(exact, abs=0.02)


def test_bounds_widen_with_gamma_and_the_direction_is_fixed_in_advance():
    rng = np.random.default_rng(1)
    D = rng.normal(0.5, 1.0, 200)
    t = rosenbaum_bounds(D, [1, 1.5, 2, 3], "greater")
    assert np.all(np.diff(t["p_upper"]) > 0) and np.all(np.diff(t["p_lower"]) < 0)
    # the side is a parameter, never read from the data: against "greater" a negative
    # effect is no evidence, and "less" on -D is "greater" on D
    assert rosenbaum_bounds(-D, [1.0], "greater")["p_upper"][0] > 0.999
    flipped = rosenbaum_bounds(-D, [1, 1.5, 2, 3], "less")
    assert np.allclose(flipped["p_upper"], t["p_upper"])
    two = rosenbaum_bounds(D, [1, 1.5, 2, 3], "two-sided")
    assert np.allclose(two["p_upper"], np.minimum(1, 2 * t["p_upper"]))
    with pytest.raises(ValueError, match="gamma"):
        rosenbaum_bounds(D, [0.5], "greater")


def test_set_moments_against_enumeration():
    """Mean and variance of T_s for u = 1 on the top-a scores, by enumerating assignments."""
    rng = np.random.default_rng(3)
    q = rng.normal(size=6)
    n, m, g = q.size, 2, 2.5
    order = np.argsort(-q)
    best = None
    for a in range(n + 1):
        u = np.zeros(n)
        u[order[:a]] = 1.0
        zs = [np.isin(np.arange(n), c) for c in itertools.combinations(range(n), m)]
        w = np.array([g ** u[z].sum() for z in zs])
        w /= w.sum()
        t = np.array([q[z].sum() for z in zs])
        mean, var = float(w @ t), float(w @ t**2 - (w @ t) ** 2)
        if best is None or mean > best[0] + 1e-12:
            best = (mean, var)
    e, v = _max_moments(q[None, :], m, g)
    assert e[0] == pytest.approx(best[0], rel=1e-10)
    assert v[0] == pytest.approx(best[1], rel=1e-10)


def test_m_test_for_pairs_is_the_huber_sign_score_bound():
    """Pairs: T = sum psi(D_i / lambda); under Gamma the bound puts P(+) = G/(1+G) on |psi|."""
    rng = np.random.default_rng(4)
    D = rng.normal(0.2, 1.0, 150)
    y = np.concatenate([D, np.zeros(D.size)])
    treated = np.arange(y.size) < D.size
    labels = np.concatenate([np.arange(D.size), np.arange(D.size)])
    lam = np.median(np.abs(D))
    psi = np.clip(D / lam, -3, 3)
    table = rosenbaum_m_bounds(y, treated, labels, [1.0, 2.0], "greater")
    for row, g in zip(table.itertuples(), (1.0, 2.0), strict=True):
        p = g / (1 + g)
        e = np.sum(np.abs(psi)) * (2 * p - 1)
        v = np.sum(4 * p * (1 - p) * psi**2)
        assert row.statistic == pytest.approx(psi.sum(), rel=1e-12)
        assert row.p_upper == pytest.approx(stats.norm.sf((psi.sum() - e) / np.sqrt(v)), rel=1e-9)
    assert table["test"][0] == "m_test" and table["n_sets"][0] == D.size
    less = rosenbaum_m_bounds(-y, treated, labels, [1.0, 2.0], "less")
    assert np.allclose(less["p_upper"], table["p_upper"])


def test_covariance_adjustment_is_the_least_squares_residual():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(50, 2))
    y = 1 + X @ np.array([2.0, -1.0]) + rng.normal(size=50)
    r = covariance_adjusted(y, np.column_stack([X, X]))  # duplicated columns are harmless
    Z = np.column_stack([np.ones(50), X])
    assert np.allclose(Z.T @ r, 0, atol=1e-9)
    assert np.allclose(r, y - Z @ np.linalg.lstsq(Z, y, rcond=None)[0])


def test_matched_sets_are_connected_components():
    # treated 0, 1 share control 5; treated 2 -> control 6; unit 3, 4 unmatched
    labels = matched_sets(np.array([0, 1, 2]), np.array([5, 5, 6]), 7)
    assert labels[0] == labels[1] == labels[5] != labels[2] == labels[6]
    assert labels[3] == labels[4] == -1


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
