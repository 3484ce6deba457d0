"""Unit tests of MicroSynth panel and propensity modes, their solvers and input checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from causalkit_plugins.dgps.area_panel import AreaPanel, AreaPanelParams
from causalkit_plugins.estimators.microsynth.estimator import MicroSynth
from causalkit_plugins.estimators.microsynth.panel_calibration import (
    calibrate_linear,
    independent_columns,
)
from causalkit_plugins.estimators.microsynth.panel_qp import solve_panel_qp
from causalkit_plugins.estimators.microsynth.params import MicroSynthParams
from causalkit_plugins.inference.basic import Analytic
from causalkit_plugins.inference.permutation import (
    Permutation,
    PermutationParams,
    permutation_p_values,
)

from causalkit.contracts import Dataset
from causalkit.errors import DataError

PANEL = MicroSynthParams(weight_method="panel")


@pytest.fixture(scope="module")
def sim():
    return AreaPanel(AreaPanelParams(n_units=200, n_treated=6, selection=0.3)).simulate(
        np.random.default_rng(3), None
    )


def _frame(sim):
    return sim.dataset.frame.copy()


def test_panel_fit_balances_totals_exactly(sim):
    fit = MicroSynth(PANEL).fit(sim.dataset, np.random.default_rng(0))
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
    out = Analytic().infer(fit, np.random.default_rng(0))
    assert out.se == pytest.approx(fit.model_se) and out.ci_lower < fit.estimate < out.ci_upper


def test_qp_and_calibration_agree_when_exact_fit_is_feasible(sim):
    cal = MicroSynth(PANEL).fit(sim.dataset, np.random.default_rng(0))
    qp = MicroSynth(PANEL.model_copy(update={"panel_weights": "qp"})).fit(
        sim.dataset, np.random.default_rng(0)
    )
    assert qp.diagnostics["weights_method"] == "qp"
    assert qp.estimate == pytest.approx(cal.estimate, rel=1e-2, abs=1e-2)


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
    fit = MicroSynth(MicroSynthParams(propensity_mode=True)).fit(
        Dataset(cross, roles), np.random.default_rng(0)
    )
    w = fit.tables["weights"]
    X = cross.groupby("unit")[["x1", "x2", "x3"]].first().to_numpy()
    t = w.treated.to_numpy()
    assert np.allclose(w.weight[~t].to_numpy() @ X[~t], X[t].sum(0), rtol=1e-4)
    assert fit.diagnostics["n_constraints_exact"] == 4


def test_permutation_inference_and_per_period_p_values(sim):
    p = PANEL.model_copy(update={"n_permutations": 19, "test": "lower"})
    fit = MicroSynth(p).fit(sim.dataset, np.random.default_rng(0))
    gaps = fit.tables["gaps"]
    assert {"p_value", "lower", "upper"} <= set(gaps.columns)
    assert ((gaps["p_value"] >= 1 / 20) & (gaps["p_value"] <= 1)).all()
    assert fit.diagnostics["y.perm_p_value"] >= 1 / 20
    out = Permutation(PermutationParams(n_perm=19, test="lower")).infer(
        fit, np.random.default_rng(1)
    )
    assert out.diagnostics["n_perm"] + out.diagnostics["n_failed"] == 19
    assert out.p_value == out.diagnostics["p_lower"] and out.ci_lower <= out.ci_upper


def test_permutation_p_value_conventions():
    pv = permutation_p_values(np.array([0.0]), np.array([[-1.0], [1.0], [2.0]]))
    assert pv["lower"][0] == pytest.approx(2 / 4) and pv["upper"][0] == pytest.approx(3 / 4)
    bare = permutation_p_values(np.array([5.0]), np.array([[-1.0], [1.0], [2.0]]), add_one=False)
    assert bare["upper"][0] == 0.0 and bare["twosided"][0] == 0.0


def _fit(frame, roles, **kw):
    return MicroSynth(PANEL.model_copy(update=kw)).fit(
        Dataset(frame, roles), np.random.default_rng(0)
    )


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


def test_several_outcomes_report_diagnostics(sim):
    f = _frame(sim).assign(y2=lambda d: 2 * d.y + 1)
    fit = _fit(f, sim.dataset.roles, match_outcomes=("y", "y2"))
    for key in ("trt", "con", "pct_change", "p_value", "ci_lower", "ci_upper"):
        assert np.isfinite(fit.diagnostics[f"y2.{key}"])
    assert isinstance(fit.tables["results"], pd.DataFrame) and len(fit.tables["results"]) == 2
