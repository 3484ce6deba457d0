"""Unit tests of ``microsynth_panel`` (panel and propensity modes), its solvers, its parameters,
its linearisation terms and the ``linearisation`` inference plugin."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from scipy import stats

from causalkit.cli import compose
from causalkit.config import validate
from causalkit.contracts import Capability, Dataset
from causalkit.errors import ConfigError, DataError
from causalkit.registry import Registry
from causalkit.testing import run_cli
from causalkit_plugins.dgps.area_panel import AreaPanel, AreaPanelParams
from causalkit_plugins.estimators.microsynth.panel_calibration import (
    calibrate_linear,
    independent_columns,
)
from causalkit_plugins.estimators.microsynth.panel_estimator import (
    MicroSynthPanel,
    MicroSynthPanelParams,
)
from causalkit_plugins.estimators.microsynth.panel_qp import solve_panel_qp
from causalkit_plugins.inference.basic import Analytic, AnalyticParams, influence_cov
from causalkit_plugins.inference.linearisation import LinearisationParams, PanelLinearisation
from causalkit_plugins.inference.multiplier import MultiplierBootstrap, MultiplierParams
from causalkit_plugins.inference.permutation import (
    Permutation,
    PermutationParams,
    permutation_p_values,
)

PANEL = MicroSynthPanelParams()


@pytest.fixture(scope="module")
def sim():
    return AreaPanel(AreaPanelParams(n_units=200, n_treated=6, selection=0.3)).simulate(
        np.random.default_rng(3), None
    )


@pytest.fixture(scope="module")
def fit(sim):
    return MicroSynthPanel(PANEL).fit(sim.dataset, np.random.default_rng(0))


def _frame(sim):
    return sim.dataset.frame.copy()


def _fit(frame, roles, **kw):
    return MicroSynthPanel(PANEL.model_copy(update=kw)).fit(
        Dataset(frame, roles), np.random.default_rng(0)
    )


def test_panel_fit_balances_totals_exactly(fit):
    totals = fit.tables["balance_totals"]
    rel = np.abs(totals["Targets"] - totals["Weighted.Control"]) / (1 + totals["Targets"].abs())
    assert rel.max() < 1e-4  # R's calibration stopping rule
    assert fit.diagnostics["weights_method"] == "calibration"
    w = fit.tables["weights"]
    assert (w["weight"] >= 0).all() and w.loc[~w.treated, "weight"].sum() == pytest.approx(
        6, rel=1e-4
    )
    gaps = fit.tables["gaps"]
    assert np.allclose(gaps.loc[~gaps.post, "gap"], 0, atol=1e-3 * gaps["treated"].abs().max())
    assert fit.estimate == pytest.approx(gaps.loc[gaps.post, "gap"].mean())


def test_estimates_vector_names_and_values(fit):
    gaps = fit.tables["gaps"]
    post = gaps.loc[gaps.post]
    assert fit.names == ("ATT", "y.log_ratio", *(f"ATT@{t}" for t in post["period"]))
    assert fit.estimates[2:] == pytest.approx(post["gap"].to_numpy())
    trt, con = fit.diagnostics["y.trt"], fit.diagnostics["y.con"]
    # R's log(ybar_T / ybar_C) = log(Trt/Con) up to the weights' sum (calibration: 1e-4 relative)
    assert fit.estimates[1] == pytest.approx(np.log(trt / con), abs=1e-4)
    assert fit.capabilities == {
        Capability.INFLUENCE,
        Capability.PLACEBO,
        Capability.LINEARISATION,
    }
    assert fit.capabilities == MicroSynthPanel.capabilities(PANEL)
    assert fit.linearisation.terms.shape == (200 * 4, fit.k)


def _dense_sandwich(y_post, treated, w):
    """R's svyglm linearisation written out with a dense design matrix (rows = unit-periods)."""
    n, T = y_post.shape
    X = np.column_stack([np.repeat(treated.astype(float), T), np.tile(np.eye(T), (n, 1))])
    wr, yr = np.repeat(w, T), y_post.ravel()
    B = X.T @ (wr[:, None] * X)
    coef = np.linalg.solve(B, X.T @ (wr * yr))
    u = X * (wr * (yr - X @ coef))[:, None]
    Binv = np.linalg.inv(B)
    N = n * T
    return coef, N / (N - 1) * Binv @ (u.T @ u) @ Binv


def test_linearisation_terms_reproduce_the_dense_sandwich(sim, fit):
    w = fit.tables["weights"]["weight"].to_numpy()
    treated = fit.tables["weights"]["treated"].to_numpy()
    frame = sim.dataset.frame
    y = frame.pivot(index="unit", columns="time", values="y").loc[fit.tables["weights"]["unit"]]
    y_post = y.to_numpy()[:, 8:]
    coef, V = _dense_sandwich(y_post, treated, w)
    out = PanelLinearisation().infer(fit, np.random.default_rng(0))
    assert out.se[0] == pytest.approx(6 * np.sqrt(V[0, 0]), rel=1e-10)
    yc = coef[1:].mean()
    g = np.concatenate([[1 / (coef[0] + yc)], np.full(4, (1 / (coef[0] + yc) - 1 / yc) / 4)])
    assert out.se[1] == pytest.approx(np.sqrt(g @ V @ g), rel=1e-10)
    assert fit.estimates[1] == pytest.approx(np.log((coef[0] + yc) / yc), rel=1e-12)
    for t in range(4):  # the one-period regression y ~ D + 1 at each post period
        c1, V1 = _dense_sandwich(y_post[:, [t]], treated, w)
        assert out.se[2 + t] == pytest.approx(6 * np.sqrt(V1[0, 0]), rel=1e-10)


def _unit_level(sim, fit):
    """Post means, single post periods and balance columns per unit, in the fit's unit order."""
    frame = sim.dataset.frame
    units = fit.tables["weights"]["unit"]
    y = frame.pivot(index="unit", columns="time", values="y").loc[units].to_numpy()
    X = frame.groupby("unit")[["x1", "x2", "x3"]].first().loc[units].to_numpy()
    M = np.column_stack([np.ones(len(units)), X, y[:, 7::-1]])  # R's order: end_pre back
    return y[:, 8:].mean(axis=1), y[:, 8:], M


def test_influence_is_the_calibration_linearisation_on_unit_residuals(sim, fit):
    """Analytic SEs = sqrt(sum_C w(1+w) e^2/(1-h)) with statsmodels' OLS residuals and leverages."""
    import statsmodels.api as sm

    ybar, y_post, M = _unit_level(sim, fit)
    weights = fit.tables["weights"]
    treated = weights["treated"].to_numpy()
    w = weights["weight"].to_numpy()[~treated]

    def hc2_terms(y):
        ols = sm.OLS(y[~treated], M[~treated]).fit()
        lev = ols.get_influence().hat_matrix_diag
        return np.sqrt(w * (1 + w) / (1 - lev)) * ols.resid

    out = Analytic().infer(fit, np.random.default_rng(0))
    t0 = hc2_terms(ybar)
    assert out.se[0] == pytest.approx(np.sqrt(np.sum(t0**2)), rel=1e-8)
    # log ratio: delta method, the effect's terms over the synthetic post mean
    assert out.se[1] == pytest.approx(out.se[0] / (w @ ybar[~treated]), rel=1e-10)
    for t in range(4):  # per-period effects: the same on one post period
        tt = hc2_terms(y_post[:, t])
        assert out.se[2 + t] == pytest.approx(np.sqrt(np.sum(tt**2)), rel=1e-8)
        cov = influence_cov(fit.influence)
        assert cov[0, 2 + t] == pytest.approx(t0 @ tt, rel=1e-8)
    assert fit.influence.shape == (200, fit.k) and np.all(fit.influence[treated] == 0)
    # The GREG form: with balance, estimate = sum_T (Ybar - m'b) - sum_C w (Ybar - m'b) for
    # the least-squares b; calibration stops at relative misfit 1e-4, hence the tolerance.
    b = np.linalg.lstsq(M[~treated], ybar[~treated], rcond=None)[0]
    greg = np.sum(ybar[treated] - M[treated] @ b) - w @ (ybar[~treated] - M[~treated] @ b)
    assert fit.estimate == pytest.approx(greg, abs=1e-3)


def test_multiplier_reads_the_same_influence(fit):
    analytic = Analytic().infer(fit, np.random.default_rng(0))
    boot = MultiplierBootstrap(MultiplierParams(n_boot=4000)).infer(fit, np.random.default_rng(1))
    assert boot.se == pytest.approx(analytic.se, rel=0.05)  # SD of 4,000 draws: ~1.1% noise
    lin = PanelLinearisation().infer(fit, np.random.default_rng(0))
    assert lin.se[0] > 2 * analytic.se[0]  # R's linearisation keeps the unit levels


def test_linearisation_plugin_tests_levels_and_joint_bands(fit):
    two = PanelLinearisation().infer(fit, np.random.default_rng(0))
    z = fit.estimates / two.se
    assert two.p_value == pytest.approx(2 * stats.norm.sf(np.abs(z)))
    lower = PanelLinearisation(LinearisationParams(test="lower", level=0.9)).infer(
        fit, np.random.default_rng(0)
    )
    assert lower.p_value == pytest.approx(stats.norm.cdf(z)) and lower.level == 0.9
    assert lower.ci_upper - lower.ci_lower == pytest.approx(2 * 1.6448536269514722 * two.se)
    joint = PanelLinearisation(LinearisationParams(joint=True)).infer(fit, np.random.default_rng(0))
    assert joint.joint and np.all(joint.ci_upper - joint.ci_lower > two.ci_upper - two.ci_lower)
    assert np.all(joint.p_value >= joint.p_value_raw) and joint.p_value_raw == pytest.approx(
        two.p_value
    )


def test_qp_and_calibration_agree_when_exact_fit_is_feasible(sim, fit):
    qp = MicroSynthPanel(PANEL.model_copy(update={"weighting": "qp"})).fit(
        sim.dataset, np.random.default_rng(0)
    )
    assert qp.diagnostics["weights_method"] == "qp"
    assert qp.estimate == pytest.approx(fit.estimate, rel=1e-2, abs=1e-2)


def test_calibration_is_minimum_norm_nonnegative_balance():
    rng = np.random.default_rng(1)
    Mc = np.column_stack([np.ones(500), rng.poisson(5, (500, 3))]).astype(float)
    target = np.array([20.0, *(Mc[:, 1:].mean(0) * 20 * np.array([1.5, 1.0, 0.9]))])
    cal = calibrate_linear(Mc, target, 20 / 500, epsilon=1e-13, maxit=200)
    qp = solve_panel_qp(Mc, target, None, None, ridge=1e-6, tol=1e-10)
    assert cal.converged and qp.converged
    assert np.allclose(Mc.T @ cal.w, target, rtol=1e-10)
    assert np.allclose(cal.w, qp.w, atol=1e-8)  # both: min ||w|| s.t. M'w = h, w >= 0
    assert (cal.w >= 0).all() and (cal.w == 0).any()


def test_independent_columns_drops_dependent_ones():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(50, 3))
    M = np.column_stack([A, A[:, 0] + 2 * A[:, 1], np.zeros(50), rng.normal(size=50)])
    assert independent_columns(M).tolist() == [0, 1, 2, 5]


def test_propensity_mode_on_a_cross_section(sim):
    frame = _frame(sim)
    cross = frame[frame.time == frame.time.max()].drop(columns="time")
    roles = sim.dataset.roles.model_copy(update={"time": None})
    fit = MicroSynthPanel(MicroSynthPanelParams(propensity_mode=True)).fit(
        Dataset(cross, roles), np.random.default_rng(0)
    )
    w = fit.tables["weights"]
    X = cross.groupby("unit")[["x1", "x2", "x3"]].first().to_numpy()
    t = w.treated.to_numpy()
    assert np.allclose(w.weight[~t].to_numpy() @ X[~t], X[t].sum(0), rtol=1e-4)
    assert fit.diagnostics["n_constraints_exact"] == 4
    assert fit.names == ("ATT", "y.log_ratio")
    assert fit.linearisation.terms.shape == (200, 2)


def test_permutation_plugin_gives_p_values_for_every_estimate(fit):
    draw = fit.placebo(np.random.default_rng(5))
    assert draw.shape == (fit.k,) and np.all(np.isfinite(draw))
    out = Permutation(PermutationParams(n_perm=19, test="lower")).infer(
        fit, np.random.default_rng(1)
    )
    assert out.diagnostics["n_perm"] + out.diagnostics["n_failed"] == 19
    assert out.p_value.shape == (fit.k,)
    assert np.all((out.p_value >= 1 / 20) & (out.p_value <= 1)) and np.all(
        out.ci_lower <= out.ci_upper
    )


def test_permutation_p_value_conventions():
    pv = permutation_p_values(np.array([0.0]), np.array([[-1.0], [1.0], [2.0]]))
    assert pv["lower"][0] == pytest.approx(2 / 4) and pv["upper"][0] == pytest.approx(3 / 4)
    bare = permutation_p_values(np.array([5.0]), np.array([[-1.0], [1.0], [2.0]]), add_one=False)
    assert bare["upper"][0] == 0.0 and bare["twosided"][0] == 0.0


def test_input_checks(sim):
    roles = sim.dataset.roles
    f = _frame(sim)
    stag = f.copy()
    first_treated = stag.loc[stag.treated == 1, "unit"].iloc[0]
    stag.loc[(stag.unit == first_treated) & (stag.time == 9), "treated"] = 0
    with pytest.raises(DataError, match="staggered"):
        _fit(stag, roles)
    tv = f.copy()
    tv.loc[tv.index[:3], "x1"] += 1
    with pytest.raises(DataError, match="time-invariant"):
        _fit(tv, roles)
    with pytest.raises(DataError, match="balanced panel"):
        _fit(f.iloc[1:], roles)
    with pytest.raises(DataError, match="treated"):
        _fit(f.assign(treated=0), roles)
    with pytest.raises(DataError, match="constant"):
        _fit(f.assign(x2=1.0), roles)
    with pytest.raises(DataError, match="end_pre"):
        _fit(f, roles, end_pre=10)
    with pytest.raises(DataError, match="columns of the table"):
        _fit(f, roles, match_outcomes=("nope",))
    with pytest.raises(DataError, match="roles.time"):
        _fit(f.drop(columns="time"), roles.model_copy(update={"time": None}))


def test_infeasible_covariate_balance_is_an_error(sim):
    f = _frame(sim)
    f.loc[f.treated.groupby(f.unit).transform("max") == 1, "x1"] = (
        10_000.0  # outside the controls' cone
    )
    with pytest.raises(DataError, match="non-negative control weights"):
        _fit(f, sim.dataset.roles)


def test_window_restricts_pre_and_post_periods(sim):
    fit = _fit(_frame(sim), sim.dataset.roles, start_pre=3, end_pre=8, end_post=10)
    gaps = fit.tables["gaps"]
    assert gaps["period"].tolist() == list(range(3, 11))
    assert fit.diagnostics["n_periods_pre"] == 6 and fit.diagnostics["n_periods_post"] == 2
    assert fit.names[-2:] == ("ATT@9", "ATT@10")


def test_several_outcomes(sim):
    f = _frame(sim).assign(y2=lambda d: 2 * d.y + 1)
    fit = _fit(f, sim.dataset.roles, match_outcomes=("y", "y2"))
    assert fit.names[:4] == ("ATT", "y2", "y.log_ratio", "y2.log_ratio")
    assert fit.estimates[1] == pytest.approx(2 * fit.estimate, abs=1e-2 * abs(fit.estimate))
    for key in ("trt", "con", "pct_change"):
        assert np.isfinite(fit.diagnostics[f"y2.{key}"])
    assert isinstance(fit.tables["results"], pd.DataFrame) and len(fit.tables["results"]) == 2


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"estimand": "cace"}, "ATT"),
        ({"estimand": "ITT"}, "ATT"),
        ({"propensity_mode": True, "match_outcomes": ("y",)}, "propensity_mode"),
        ({"weighting": "qp", "cal_maxit": 3}, "weighting=calibration"),
        ({"end_pre": 12, "end_post": 12}, "end_pre < end_post"),
        ({"start_pre": 5, "end_pre": 3}, "start_pre <= end_pre"),
    ],
)
def test_params_reject_what_cannot_work(kw, needle):
    with pytest.raises(ValidationError, match=needle):
        MicroSynthPanelParams(**kw)


def test_lower_case_estimand_accepted():
    assert MicroSynthPanelParams(estimand="att").estimand == "ATT"


def test_pairings_follow_the_declared_capabilities():
    registry = Registry().load_entry_points()
    assert registry.pairings("microsynth_panel") == (
        "analytic",
        "linearisation",
        "multiplier",
        "none",
        "permutation",
    )
    assert registry.default_inference("microsynth_panel") == "analytic"


PANEL_RUN = ["estimator=microsynth_panel", "dgp=area_panel", "tracking=none"]


def test_cace_fails_at_validation():
    with pytest.raises(ConfigError, match=r"estimator\.estimand: expected ATT") as err:
        validate(compose([*PANEL_RUN, "estimator.estimand=cace"]))
    assert "\n" not in str(err.value)
    with pytest.raises(
        ConfigError,
        match="inference: expected one of analytic, linearisation, multiplier, none, permutation",
    ):
        validate(compose([*PANEL_RUN, "inference=bootstrap"]))
    cfg = validate(compose(PANEL_RUN))
    assert cfg.inference.name == "analytic"


@pytest.mark.cli
def test_cace_exits_2_with_one_line(tmp_path):
    p = run_cli(tmp_path, *PANEL_RUN, "estimator.estimand=cace", timeout=600)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2, p.stderr
    assert len(lines) == 1 and "estimator.estimand: expected ATT" in lines[0], p.stderr


def test_undefined_log_ratio_is_nan_with_a_warning(sim):
    f = _frame(sim)
    treated_unit = f.treated.groupby(f.unit).transform("max") == 1
    f["z"] = np.where(treated_unit & (f.time > 8), 0.0, 1.0 + f.time)
    fit = _fit(f, sim.dataset.roles, result_outcomes=("y", "z"))
    j = fit.names.index("z.log_ratio")
    assert np.isnan(fit.estimates[j]) and any("z" in w and "log ratio" in w for w in fit.warnings)
    others = np.delete(np.arange(fit.k), j)
    for plugin in (
        PanelLinearisation(LinearisationParams(joint=True)),
        Analytic(AnalyticParams(joint=True)),
    ):
        out = plugin.infer(fit, np.random.default_rng(0))
        assert np.isnan(out.se[j]) and np.isnan(out.p_value[j])
        assert np.all(np.isfinite(out.se[others]) & np.isfinite(out.ci_lower[others]))
