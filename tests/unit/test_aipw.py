"""Unit tests of the aipw estimator: learners whitelist, folds, scores, segments, errors, plots,
and its fit contract (named vector of estimates, influence matrix, refit with given folds)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from causalkit.contracts import Capability, Dataset, Estimand, Roles
from causalkit.errors import ConfigError, DataError
from causalkit.registry import default_registry
from causalkit_plugins.dgps.position_bias import SEGMENT_COLUMNS, PositionBias, PositionBiasParams
from causalkit_plugins.estimators.aipw.estimator import AIPW, AIPWParams
from causalkit_plugins.estimators.aipw.folds import stratified_folds
from causalkit_plugins.estimators.aipw.learners import make_learner
from causalkit_plugins.estimators.aipw.plots import figures
from causalkit_plugins.estimators.aipw.scores import aipw_scores, ratio_effect
from causalkit_plugins.estimators.aipw.segments import SegmentRules, segment_effects
from causalkit_plugins.inference.basic import Analytic, AnalyticParams
from causalkit_plugins.inference.bootstrap import Bootstrap, BootstrapParams
from causalkit_plugins.inference.multiplier import (
    MultiplierBootstrap,
    MultiplierParams,
    multiplier_weights,
)


def _frame(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.standard_normal(n), rng.standard_normal(n)
    grp = rng.choice(["a", "b", "c"], n)
    e = 1 / (1 + np.exp(-(0.5 * x1 - 0.3 * x2)))
    d = rng.binomial(1, e)
    y = 1.0 + x1 + 0.5 * x2 + d * (1.0 + (grp == "a")) + rng.standard_normal(n)
    return pd.DataFrame({"x1": x1, "x2": x2, "grp": grp, "d": d, "y": y})


ROLES = Roles(outcome="y", treatment="d", covariates=("x1", "x2", "grp"))
SEG = ROLES.model_copy(update={"segments": ("grp",)})


def test_unknown_learner_param_is_one_line_config_error():
    with pytest.raises(
        ConfigError, match=r"estimator\.propensity_params\.bogus: expected a parameter of logit"
    ):
        make_learner("logit", "classifier", {"bogus": 1}, "estimator.propensity_params", 0)
    # The parameter model rejects it at validation, before any data is read.
    with pytest.raises(ConfigError, match=r"estimator\.propensity_params\.bogus"):
        AIPWParams(propensity_params={"bogus": 1})
    with pytest.raises(
        ConfigError, match=r"estimator\.outcome_params\.C: expected a parameter of gbm"
    ):
        AIPWParams(outcome_model="gbm", outcome_params={"C": 1.0})
    AIPWParams(outcome_params={"C": 0.5})  # auto may pick logit, which takes C


def test_names_one_vocabulary():
    assert AIPWParams(estimand="att").estimand is Estimand.ATT
    assert AIPWParams().propensity_model == "logit"
    with pytest.raises(ValueError, match="ATE or ATT"):
        AIPWParams(estimand="atc")
    for gone in ("segments", "fold_column", "segment_level", "level"):
        assert gone not in AIPWParams.model_fields


def test_probit_is_not_an_outcome_regressor():
    frame = _frame()
    with pytest.raises(ConfigError, match="estimator.outcome_model"):
        AIPW(AIPWParams(outcome_model="logit")).fit(Dataset(frame, ROLES), np.random.default_rng(0))


def test_folds_are_stratified_and_seeded():
    d = np.random.default_rng(1).random(1001) < 0.3
    f1 = stratified_folds(d, 5, np.random.default_rng(7))
    f2 = stratified_folds(d, 5, np.random.default_rng(7))
    np.testing.assert_array_equal(f1, f2)
    for arm in (False, True):
        counts = np.bincount(f1[d == arm], minlength=5)
        assert counts.max() - counts.min() <= 1


def test_refit_keeps_each_rows_drawn_fold():
    frame = _frame(900)
    est = AIPW(AIPWParams(outcome_model="linear", folds=3))
    fit = est.fit(Dataset(frame, SEG), np.random.default_rng(4))
    # All rows in their order: the original folds, hence the fit itself.
    np.testing.assert_allclose(fit.resampler.refit(np.arange(fit.n)), fit.estimates, rtol=1e-10)
    # A resample: each row (every copy of it) in the fold it had in the fit.
    folds = est.crossfit(Dataset(frame, SEG), np.random.default_rng(4)).nuisances.folds
    idx = np.random.default_rng(5).integers(0, fit.n, fit.n)
    sub = Dataset(frame.iloc[idx].reset_index(drop=True), SEG)
    want = est.crossfit(sub, np.random.default_rng(0), folds[idx]).estimate
    assert fit.resampler.refit(idx)[0] == pytest.approx(want, rel=1e-10)


@pytest.mark.parametrize(
    "learners",
    [
        {"propensity_model": "random_forest"},
        {"propensity_model": "gbm"},
        {"outcome_model": "lasso"},
        {"outcome_model": "random_forest", "outcome_params": {"min_samples_leaf": 1}},
    ],
)
def test_one_fold_with_a_flexible_learner_fails_validation(learners):
    with pytest.raises(ConfigError, match=r"estimator\.folds: expected folds >= 2 with") as info:
        AIPWParams(folds=1, **learners)
    assert "\n" not in str(info.value) and "allow_invalid_se=true" in str(info.value)
    AIPWParams(folds=2, **learners)
    assert AIPWParams(folds=1, allow_invalid_se=True, **learners).flexible_learners()


def test_one_fold_with_fixed_dimension_glms_is_valid():
    for learners in ({}, {"outcome_model": "ridge"}, {"propensity_model": "probit"}):
        assert AIPWParams(folds=1, **learners).flexible_learners() == ()


def test_allowed_invalid_se_is_marked_in_the_fit():
    params = AIPWParams(
        folds=1, allow_invalid_se=True, outcome_model="gbm", outcome_params={"max_iter": 10}
    )
    fit = AIPW(params).fit(Dataset(_frame(600), ROLES), np.random.default_rng(0))
    assert fit.diagnostics["se_invalid"] is True
    assert any("SE, intervals and p-values are invalid" in w for w in fit.warnings)
    ok = AIPW(AIPWParams(folds=2)).fit(Dataset(_frame(600), ROLES), np.random.default_rng(0))
    assert ok.diagnostics["se_invalid"] is False and not ok.warnings


def test_a_single_given_fold_with_a_flexible_learner_is_refused():
    frame = _frame(600).assign(f=0)
    roles = ROLES.model_copy(update={"fold": "f"})
    params = AIPWParams(outcome_model="gbm", outcome_params={"max_iter": 10})
    with pytest.raises(DataError, match=r"roles.fold: expected at least two folds with gbm"):
        AIPW(params).fit(Dataset(frame, roles), np.random.default_rng(0))
    allowed = params.model_copy(update={"allow_invalid_se": True})
    fit = AIPW(allowed).fit(Dataset(frame, roles), np.random.default_rng(0))
    assert fit.diagnostics["se_invalid"] is True


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


def test_segment_filters_report_reasons():
    rng = np.random.default_rng(3)
    n = 2000
    frame = pd.DataFrame({"g": rng.choice(["big1", "big2", "tiny"], n, p=[0.5, 0.49, 0.01])})
    d = rng.binomial(1, 0.5, n).astype(float)
    num = rng.standard_normal(n)
    seg = segment_effects(
        frame, ("g",), {}, {}, num, np.ones(n), num, d, SegmentRules(min_rows=100)
    )
    table = seg.tables["segments.g"].set_index("segment")
    assert table.loc["tiny", "status"] == "rows < 100" and table.loc["tiny", "estimate"] == ""
    assert np.isnan(table.loc["tiny", "dr_lift"])
    assert seg.names == ("segment[g=big1]", "segment[g=big2]")
    psi = seg.influence(num, np.ones(n))
    for j, level in enumerate(("big1", "big2")):
        rows = (frame["g"] == level).to_numpy()
        assert seg.estimates[j] == pytest.approx(num[rows].mean(), rel=1e-12)
        # n^{-1} sqrt(sum psi^2) is the HC0 SE of the segment mean.
        hc0 = num[rows].std() / np.sqrt(rows.sum())
        assert np.sqrt(np.sum(psi[:, j] ** 2)) / n == pytest.approx(hc0, rel=1e-12)
        assert np.all(psi[~rows, j] == 0)


def test_estimator_recovers_effect_and_is_reproducible():
    frame = _frame(4000)
    est = AIPW(AIPWParams(outcome_model="linear"))
    f1 = est.fit(Dataset(frame, SEG), np.random.default_rng(5))
    f2 = est.fit(Dataset(frame, SEG), np.random.default_rng(5))
    np.testing.assert_array_equal(f1.estimates, f2.estimates)
    assert f1.names == ("ATE", "segment[grp=a]", "segment[grp=b]", "segment[grp=c]")
    assert f1.influence.shape == (f1.n, 4) and f1.diagnostics["n_segments"] == 3
    out = Analytic(AnalyticParams(joint=True)).infer(f1, np.random.default_rng(0))
    truth = np.array([1.0 + (frame["grp"] == "a").mean(), 2.0, 1.0, 1.0])
    assert np.all(np.abs(f1.estimates - truth) < 4 * out.se)
    assert np.all((out.ci_lower <= truth) & (truth <= out.ci_upper))
    np.testing.assert_allclose(out.p_value, multipletests(out.p_value_raw, method="holm")[1])
    seg = f1.tables["segments.grp"].set_index("segment")
    np.testing.assert_array_equal(seg["dr_lift"].to_numpy(), f1.estimates[1:])
    assert {"standard_error", "ci_lower", "p_holm"}.isdisjoint(seg.columns)  # inference's job
    assert {"nuisance_metrics", "distribution", "overlap"} <= set(f1.tables)
    assert set(figures(f1.tables)) == {"forest_grp.png", "naive_vs_dr.png"}


def test_capabilities_and_pairings_do_not_depend_on_roles():
    caps = {Capability.INFLUENCE, Capability.RESAMPLE}
    assert AIPW.capabilities(AIPWParams()) == caps
    assert (
        AIPW.capabilities(AIPWParams(folds=1, se_method="stacked", propensity_model="probit"))
        == caps
    )
    assert {"analytic", "bootstrap", "multiplier", "none"} <= set(
        default_registry().pairings("aipw")
    )
    fit = AIPW(AIPWParams(folds=2)).fit(Dataset(_frame(600), ROLES), np.random.default_rng(0))
    assert fit.capabilities == caps


def test_bootstrap_with_given_folds_refits_with_the_rows_own_folds():
    frame = _frame(1200).assign(fold=lambda f: np.arange(len(f)) % 3)
    roles = SEG.model_copy(update={"fold": "fold", "covariates": ("x1", "x2")})
    est = AIPW(AIPWParams(outcome_model="linear", folds=7))  # folds ignored: the role gives 3
    fit = est.fit(Dataset(frame, roles), np.random.default_rng(0))
    assert fit.diagnostics["folds"] == 3
    # The refit on all rows in their order is the fit itself (same folds, same learners).
    np.testing.assert_allclose(fit.resampler.refit(np.arange(fit.n)), fit.estimates, rtol=1e-10)
    out = Bootstrap(BootstrapParams(n_boot=20, joint=True)).infer(fit, np.random.default_rng(1))
    assert out.diagnostics["n_failed"] == 0 and out.joint
    assert np.all(np.isfinite(out.se)) and np.all(out.se > 0) and out.se.shape == (4,)
    analytic = Analytic().infer(fit, np.random.default_rng(0)).se
    assert np.all(np.abs(out.se / analytic - 1) < 0.6)  # 20 draws: a sanity bracket only


def test_refit_without_given_folds_and_with_trimming():
    frame = _frame(1500)
    fit = AIPW(AIPWParams(folds=2, trim=0.3, outcome_model="linear")).fit(
        Dataset(frame, SEG), np.random.default_rng(0)
    )
    assert fit.n == len(frame) - fit.diagnostics["n_trimmed"] and fit.diagnostics["n_trimmed"] > 0
    draw = fit.resampler.refit(np.random.default_rng(1).integers(0, fit.n, fit.n))
    assert draw.shape == (4,) and np.all(np.isfinite(draw))


def test_stacked_segment_of_every_row_has_the_effects_influence():
    frame = _frame(1500).assign(everyone="all")
    roles = ROLES.model_copy(update={"segments": ("everyone",)})
    params = AIPWParams(
        folds=1, propensity_model="probit", outcome_model="linear", clip=0.0, se_method="stacked"
    )
    fit = AIPW(params).fit(Dataset(frame, roles), np.random.default_rng(0))
    assert fit.names == ("ATE", "segment[everyone=all]")
    np.testing.assert_allclose(fit.estimates[1], fit.estimates[0], rtol=1e-12)
    np.testing.assert_allclose(fit.influence[:, 1], fit.influence[:, 0], rtol=1e-9, atol=1e-12)


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
    assert np.isfinite(fit.estimate) and fit.influence.shape == (fit.n, 1)


def test_bad_inputs_are_one_line_errors():
    frame = _frame(300)
    with pytest.raises(DataError, match="roles.treatment"):
        AIPW().fit(Dataset(frame.assign(d=frame["d"] * 2), ROLES), np.random.default_rng(0))
    with pytest.raises(ConfigError, match="estimator.se_method: expected folds=1"):
        AIPWParams(se_method="stacked", folds=3)
    with pytest.raises(ConfigError, match="estimator.propensity_model"):
        AIPWParams(se_method="stacked", folds=1)
    stacked = AIPWParams(se_method="stacked", folds=1, propensity_model="probit")
    with pytest.raises(ConfigError, match="roles.fold: expected no fold role"):
        AIPW(stacked).fit(
            Dataset(frame.assign(f=0), ROLES.model_copy(update={"fold": "f"})),
            np.random.default_rng(0),
        )
    with pytest.raises(DataError, match="roles: expected a column of the table.*'nope'"):
        AIPW().fit(
            Dataset(frame, ROLES.model_copy(update={"fold": "nope"})), np.random.default_rng(0)
        )
    with pytest.raises(ConfigError, match="estimator.segment_bins.x1"):
        AIPW(AIPWParams(segment_bins={"x1": 4})).fit(Dataset(frame, SEG), np.random.default_rng(0))


def test_multiplier_weights_and_se():
    rng = np.random.default_rng(9)
    for kind in ("gaussian", "rademacher", "mammen"):
        w = multiplier_weights(rng, kind, (200, 1000))
        assert abs(w.mean()) < 0.01 and abs(w.var() - 1) < 0.02
    fit = AIPW(AIPWParams(outcome_model="linear")).fit(Dataset(_frame(), ROLES), rng)
    out = MultiplierBootstrap(MultiplierParams(n_boot=4000)).infer(fit, np.random.default_rng(1))
    se = Analytic().infer(fit, rng).se[0]
    assert abs(out.se[0] / se - 1) < 0.05  # SD of 4000 draws: relative MC error ~1.1%
    assert out.ci_lower[0] < fit.estimate < out.ci_upper[0]


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
