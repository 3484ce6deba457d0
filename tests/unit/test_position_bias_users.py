"""User-level dependence in the ``position_bias`` world: shifts shared by a user's impressions.

The stored figures were taken from the DGP before the user parameters existed (HEAD
db4f60f): at their defaults the draws, the truths and the cell hashes must stay those.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from scipy.integrate import quad
from scipy.special import expit

import causalkit as ck
from causalkit.cli import compose
from causalkit.config import validate
from causalkit.registry import default_registry
from causalkit_plugins.dgps.position_bias import PositionBiasParams, user_averaged_click

SMALL = {"n_rows": 3000, "n_users": 200, "n_items": 400, "n_subcategories": 40}
FRAME_HASH = "41ac3ba585e957d4"  # the frame of SMALL at seed 11 before user effects existed
ATE = 0.01054533277119199


def _frame_hash(frame: pd.DataFrame) -> str:
    values = pd.util.hash_pandas_object(frame, index=True).to_numpy()
    return hashlib.sha256(values.tobytes()).hexdigest()[:16]


@pytest.mark.parametrize(
    "extra", [{}, {"user_effect_sd": 0.0, "user_top_k_sd": 0.0, "cluster_by_user": False}]
)
def test_default_draws_and_truths_are_those_before_user_effects(extra):
    sim = ck.simulate("position_bias", seed=11, **SMALL, **extra)
    assert _frame_hash(sim.dataset.frame) == FRAME_HASH
    assert sim.truth.values["ATE"] == ATE  # bit-identical
    assert sim.dataset.roles.cluster is None


def test_cell_hash_unchanged_by_the_user_parameters_at_their_defaults():
    registry = default_registry()
    base = ["tracking=none", "dgp=position_bias", "estimator=aipw"]
    cfg = validate(compose(base), registry)
    assert cfg.cell_hash == "26b25a60feca5b5b"  # before user effects existed
    zeros = ["dgp.user_effect_sd=0", "dgp.user_top_k_sd=0", "dgp.cluster_by_user=false"]
    assert validate(compose([*base, *zeros]), registry).cell_hash == cfg.cell_hash
    on = validate(compose([*base, "dgp.user_top_k_sd=1.0"]), registry)
    assert on.cell_hash != cfg.cell_hash


def test_user_shifts_change_only_the_clicks_and_the_truths():
    plain = ck.simulate("position_bias", seed=11, **SMALL)
    users = ck.simulate(
        "position_bias",
        seed=11,
        **SMALL,
        user_effect_sd=0.8,
        user_top_k_sd=1.2,
        cluster_by_user=True,
    )
    a, b = plain.dataset.frame, users.dataset.frame
    pd.testing.assert_frame_equal(a.drop(columns="clicked"), b.drop(columns="clicked"))
    assert (a["clicked"] != b["clicked"]).any()
    assert users.dataset.roles.cluster == "user_id"
    assert users.truth.values["ATE"] != plain.truth.values["ATE"]


@pytest.mark.parametrize("eta", [-4.6, -1.0, 0.0, 2.5])
@pytest.mark.parametrize("sd", [0.3, 1.0, 2.0, 3.0])
def test_user_averaged_click_is_the_normal_integral(eta, sd):
    # 120 Gauss-Hermite nodes against adaptive quadrature; tolerance 1e-9 on probabilities:
    # the logistic's poles at +-i*pi slow the rule for wide normals (3e-9 measured at sd 3.5,
    # above the parameters' bound of 3; 1e-15 at sd <= 2)
    def density(u: float) -> float:
        return float(expit(eta + u) * np.exp(-0.5 * (u / sd) ** 2))

    want, _ = quad(density, -12 * sd, 12 * sd, epsabs=1e-14, epsrel=1e-13, limit=200)
    want /= sd * np.sqrt(2 * np.pi)
    assert user_averaged_click(np.array([eta]), sd)[0] == pytest.approx(want, abs=1e-9)


def test_truth_averages_over_both_user_shifts():
    # the truths recomputed from the frame's columns and the parameters, integrating over the
    # two independent shifts with a 30 x 30 product Gauss-Hermite rule (the DGP integrates
    # their sum, one normal, with 40 nodes): equal to rounding (1e-12)
    kw = {**SMALL, "user_effect_sd": 0.8, "user_top_k_sd": 1.2}
    sim = ck.simulate("position_bias", seed=5, **kw)
    f, p = sim.dataset.frame, PositionBiasParams(**kw)
    cat = f["category"].cat.codes.to_numpy()
    log_s = f["log_candidate_set_size"].to_numpy()
    logit0 = (
        p.click_intercept
        + np.asarray(p.category_baseline)[cat]
        + p.click_exposure * f["log_item_exposures"].to_numpy()
        + p.click_history * f["log_history_len"].to_numpy()
        + p.click_size * log_s
    )
    tau = (
        p.effect_intercept
        + p.effect_size * (log_s - np.log(p.size_median))
        + np.asarray(p.category_effects)[cat]
    )
    z, w = np.polynomial.hermite_e.hermegauss(30)
    w = w / w.sum()
    effect = np.zeros(len(f))
    for zu, wu in zip(z, w, strict=True):
        p0 = expit(logit0 + p.user_effect_sd * zu)
        for zv, wv in zip(z, w, strict=True):
            effect += (
                wu * wv * (expit(logit0 + tau + p.user_effect_sd * zu + p.user_top_k_sd * zv) - p0)
            )
    d = f["is_top_3"].to_numpy() == 1
    assert sim.truth.values["ATE"] == pytest.approx(effect.mean(), abs=1e-12)
    assert sim.truth.values["ATT"] == pytest.approx(effect[d].mean(), abs=1e-12)
    news = f["category"] == "news"
    assert sim.truth.values["segment.category.news"] == pytest.approx(
        effect[news.to_numpy()].mean(), abs=1e-12
    )
