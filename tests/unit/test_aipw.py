"""Unit tests of the aipw estimator: learners whitelist, folds, scores, segments, errors, plots."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from causalkit_plugins.dgps.position_bias import SEGMENT_COLUMNS, PositionBias, PositionBiasParams
from causalkit_plugins.estimators.aipw.estimator import AIPW, AIPWParams
from causalkit_plugins.estimators.aipw.folds import stratified_folds
from causalkit_plugins.estimators.aipw.learners import make_learner
from causalkit_plugins.estimators.aipw.plots import figures
from causalkit_plugins.estimators.aipw.scores import aipw_scores, ratio_effect
from causalkit_plugins.estimators.aipw.segments import SegmentRules, holm, segment_table
from causalkit_plugins.inference.basic import Analytic
from causalkit_plugins.inference.multiplier import (
    MultiplierBootstrap,
    MultiplierParams,
    multiplier_weights,
)
from statsmodels.stats.multitest import multipletests

from causalkit.contracts import Dataset, Estimand, Roles
from causalkit.errors import ConfigError, DataError


def _frame(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.standard_normal(n), rng.standard_normal(n)
    grp = rng.choice(["a", "b", "c"], n)
    e = 1 / (1 + np.exp(-(0.5 * x1 - 0.3 * x2)))
    d = rng.binomial(1, e)
    y = 1.0 + x1 + 0.5 * x2 + d * (1.0 + (grp == "a")) + rng.standard_normal(n)
    return pd.DataFrame({"x1": x1, "x2": x2, "grp": grp, "d": d, "y": y})


ROLES = Roles(outcome="y", treatment="d", covariates=("x1", "x2", "grp"))


def test_unknown_learner_param_is_one_line_config_error():
    with pytest.raises(
        ConfigError, match=r"estimator\.propensity_params\.bogus: expected a parameter of logistic"
    ):
        make_learner("logistic", "classifier", {"bogus": 1}, "estimator.propensity_params", 0)


def test_probit_is_not_an_outcome_regressor():
    frame = _frame()
    with pytest.raises(ConfigError, match="estimator.outcome_model"):
        AIPW(AIPWParams(outcome_model="logistic")).fit(
            Dataset(frame, ROLES), np.random.default_rng(0)
        )


def test_folds_are_stratified_and_seeded():
    d = np.random.default_rng(1).random(1001) < 0.3
    f1 = stratified_folds(d, 5, np.random.default_rng(7))
    f2 = stratified_folds(d, 5, np.random.default_rng(7))
    np.testing.assert_array_equal(f1, f2)
    for arm in (False, True):
        counts = np.bincount(f1[d == arm], minlength=5)
        assert counts.max() - counts.min() <= 1


def test_scores_with_true_nuisances_are_the_textbook_formula():
    rng = np.random.default_rng(2)
    n = 500
    y, d = rng.standard_normal(n), rng.binomial(1, 0.4, n).astype(float)
    g0, g1, m = rng.standard_normal(n), rng.standard_normal(n), rng.uniform(0.2, 0.8, n)
    s = aipw_scores(y, d, g0, g1, m, Estimand.ATE)
    phi = g1 - g0 + d * (y - g1) / m - (1 - d) * (y - g0) / (1 - m)
    theta, infl = ratio_effect(s.num, s.den)
    np.testing.assert_allclose(theta, phi.mean(), rtol=1e-12)
    np.testing.assert_allclose(infl, phi - phi.mean(), atol=1e-12)
    att = aipw_scores(y, d, g0, g1, m, Estimand.ATT)
    a = d * (y - g0) - m * (1 - d) * (y - g0) / (1 - m)
    np.testing.assert_allclose(ratio_effect(att.num, att.den)[0], a.sum() / d.sum(), rtol=1e-12)


def test_holm_matches_statsmodels():
    p = np.array([0.01, 0.04, 0.03, 0.2, 0.001])
    np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1], rtol=1e-12)


def test_segment_filters_report_reasons_and_joint_crit_is_sidak():
    rng = np.random.default_rng(3)
    n = 2000
    groups = pd.Series(pd.Categorical(rng.choice(["big1", "big2", "tiny"], n, p=[0.5, 0.49, 0.01])))
    d = rng.binomial(1, 0.5, n).astype(float)
    num = rng.standard_normal(n)
    rules = SegmentRules(min_rows=100, n_draws=200_000)
    table = segment_table("g", groups, num, np.ones(n), num, d, rules, rng).set_index("segment")
    assert table.loc["tiny", "status"] == "rows < 100"
    assert np.isnan(table.loc["tiny", "dr_lift"])
    sidak = 2.2360  # Phi^{-1}((1 + 0.95**(1/2)) / 2)
    assert abs(table.loc["big1", "joint_crit"] - sidak) < 0.02


def test_estimator_recovers_effect_and_is_reproducible():
    frame = _frame(4000)
    est = AIPW(AIPWParams(outcome_model="linear", segments=("grp",)))
    f1 = est.fit(Dataset(frame, ROLES), np.random.default_rng(5))
    f2 = est.fit(Dataset(frame, ROLES), np.random.default_rng(5))
    assert f1.estimate == f2.estimate
    truth = 1.0 + (frame["grp"] == "a").mean()
    se = Analytic().infer(f1, np.random.default_rng(0)).se
    assert abs(f1.estimate - truth) < 4 * se
    seg = f1.tables["segments.grp"].set_index("segment")
    assert abs(seg.loc["a", "dr_lift"] - 2.0) < 4 * seg.loc["a", "standard_error"]
    assert {"nuisance_metrics", "distribution", "overlap"} <= set(f1.tables)
    assert set(figures(f1.tables)) == {"forest_grp.png", "naive_vs_dr.png"}


@pytest.mark.parametrize(
    "extra",
    [
        {"outcome_design": "pooled"},
        {
            "propensity_model": "gbm",
            "outcome_model": "gbm",
            "propensity_params": {"max_iter": 20},
            "outcome_params": {"max_iter": 20},
        },
        {"trim": 0.1, "estimand": "att", "normalize": True},
    ],
)
def test_estimator_variants_run(extra):
    fit = AIPW(AIPWParams(folds=3, **extra)).fit(
        Dataset(_frame(1500), ROLES), np.random.default_rng(0)
    )
    assert np.isfinite(fit.estimate) and fit.influence.shape == (fit.n,)


def test_bad_inputs_are_one_line_errors():
    frame = _frame(300)
    with pytest.raises(DataError, match="roles.treatment"):
        AIPW().fit(Dataset(frame.assign(d=frame["d"] * 2), ROLES), np.random.default_rng(0))
    with pytest.raises(ConfigError, match="estimator.se_method"):
        AIPW(AIPWParams(se_method="stacked", folds=3)).fit(
            Dataset(frame, ROLES), np.random.default_rng(0)
        )
    with pytest.raises(ConfigError, match="estimator.segments"):
        AIPW(AIPWParams(segments=("x1",))).fit(
            Dataset(frame, ROLES.model_copy(update={"segments": ("grp",)})),
            np.random.default_rng(0),
        )


def test_multiplier_weights_and_se():
    rng = np.random.default_rng(9)
    for kind in ("gaussian", "rademacher", "mammen"):
        w = multiplier_weights(rng, kind, (200, 1000))
        assert abs(w.mean()) < 0.01 and abs(w.var() - 1) < 0.02
    fit = AIPW(AIPWParams(outcome_model="linear")).fit(Dataset(_frame(), ROLES), rng)
    out = MultiplierBootstrap(MultiplierParams(n_boot=4000)).infer(fit, np.random.default_rng(1))
    se = Analytic().infer(fit, rng).se
    assert abs(out.se / se - 1) < 0.05  # SD of 4000 draws: relative MC error ~1.1%
    assert out.ci_lower < fit.estimate < out.ci_upper


def test_position_bias_shape_and_truth_keys():
    p = PositionBiasParams(n_rows=5000, n_users=500, n_items=800, n_subcategories=40)
    sim = PositionBias(p).simulate(np.random.default_rng(0), None)
    frame = sim.dataset.frame
    assert len(frame) == 5000
    assert set(SEGMENT_COLUMNS) <= set(frame.columns)
    sizes = frame.groupby("impression_id")["position"].agg(["max", "size"])
    assert (sizes["max"] == sizes["size"]).all()  # positions are a permutation within impressions
    assert (frame["is_top_3"] == (frame["position"] <= 3)).all()
    for col in SEGMENT_COLUMNS:
        for level in frame[col].cat.categories:
            if (frame[col] == level).any():
                assert f"segment.{col}.{level}" in sim.truth.values
    assert sim.truth.values["ATE"] > 0
