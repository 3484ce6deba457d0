"""AIPW omitted-variable-bias sensitivity: parameters, invariance of existing results, the math."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import causalkit as ck
from causalkit.composition import compose
from causalkit.config import validate, validate_params
from causalkit.contracts import Dataset, Estimand, Roles
from causalkit.errors import ConfigError, DataError
from causalkit_plugins.estimators.aipw.estimator import AIPW, AIPWParams
from causalkit_plugins.estimators.aipw.sensitivity import (
    benchmark,
    bounds,
    elements,
    riesz_elements,
    robustness_values,
)

SCENARIO = {"cf_y": 0.04, "cf_d": 0.03}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    n = 600
    x = rng.normal(size=(n, 3))
    d = (rng.random(n) < 1 / (1 + np.exp(-0.8 * x[:, 0] + 0.4 * x[:, 1]))).astype(int)
    y = 1.0 + 0.5 * d + x @ np.array([1.0, -0.5, 0.3]) + rng.normal(size=n)
    return pd.DataFrame({"y": y, "d": d, "x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2]})


def _fit(frame, sensitivity=None, estimand="ATE"):
    params = AIPWParams(estimand=estimand, outcome_model="linear", sensitivity=sensitivity)
    roles = Roles(outcome="y", treatment="d", covariates=("x1", "x2", "x3"))
    return AIPW(params).fit(Dataset(frame, roles), np.random.default_rng(3))


def test_off_by_default_and_out_of_the_config_hash():
    # measured before the field existed (HEAD 15b9605)
    cfg = validate(compose(["estimator=aipw", "dgp=selection_on_observables"]))
    assert cfg.estimator.params.sensitivity is None
    assert "sensitivity" not in cfg.estimator.params.model_dump()
    assert cfg.cell_hash == "9f9fed2c4b23762e"
    on = validate(
        compose(
            [
                "estimator=aipw",
                "dgp=selection_on_observables",
                "estimator.sensitivity.cf_y=0.04",
                "estimator.sensitivity.cf_d=0.03",
            ]
        )
    )
    assert on.estimator.params.sensitivity.rho == 1.0 and on.cell_hash != cfg.cell_hash


@pytest.mark.parametrize(
    "values,message",
    [
        ({"cf_y": 0.03, "cf_d": 1.0}, "estimator.sensitivity.cf_d: expected less than 1, got 1.0"),
        (
            {"cf_y": -0.1, "cf_d": 0.03},
            "estimator.sensitivity.cf_y: expected greater than or equal",
        ),
        ({"cf_d": 1.0}, "estimator.sensitivity.cf_d: expected less than 1, got 1.0"),  # cf_y 0.03
        ({**SCENARIO, "rho": 1.5}, "estimator.sensitivity.rho: expected less than or equal to 1"),
        ({**SCENARIO, "level": 1.0}, "estimator.sensitivity.level: expected less than 1"),
    ],
)
def test_bad_values_are_one_line_config_errors(values, message):
    with pytest.raises(ConfigError) as err:
        validate_params("estimator", AIPWParams, {"sensitivity": values})
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_unknown_or_exhausting_benchmark_is_a_data_error(frame):
    with pytest.raises(DataError, match="benchmark_covariates: expected covariates among"):
        _fit(frame, {**SCENARIO, "benchmark_covariates": ["x9"]})
    with pytest.raises(DataError, match="at least one covariate left"):
        _fit(frame, {**SCENARIO, "benchmark_covariates": ["x1+x2+x3"]})


def test_sensitivity_leaves_the_fit_and_its_refit_unchanged(frame):
    off = _fit(frame)
    on = _fit(frame, {**SCENARIO, "benchmark_covariates": ["x1"]})
    assert np.array_equal(off.estimates, on.estimates)
    assert np.array_equal(off.influence, on.influence)
    idx = np.random.default_rng(1).integers(0, off.n, off.n)
    assert np.array_equal(off.resampler.refit(idx), on.resampler.refit(idx))
    assert not any(k.startswith("sensitivity.") for k in off.diagnostics)
    assert "sensitivity.bounds" not in off.tables


def test_results_from_python(frame):
    res = ck.fit(
        frame,
        "aipw",
        outcome="y",
        treatment="d",
        covariates=["x1", "x2", "x3"],
        sensitivity={**SCENARIO, "benchmark_covariates": ["x1", "x2+x3"]},
    )
    row = res.to_dict()
    assert row["sensitivity.theta_lower"] < row["estimate"] < row["sensitivity.theta_upper"]
    assert row["sensitivity.ci_lower"] < row["sensitivity.theta_lower"]
    assert 0 < row["sensitivity.rva"] < row["sensitivity.rv"] < 1
    assert row["sensitivity.sigma2_source"] == "outcome_model"
    table = res.tables["sensitivity.bounds"]
    assert list(table.index) == ["x1", "x2+x3"]
    assert list(table.columns[:4]) == ["cf_y", "cf_d", "rho", "delta_theta"]
    # x1 drives both treatment and outcome: a strong benchmark
    assert table.loc["x1", "cf_y"] > 0.1 and table.loc["x1", "cf_d"] > 0.05
    assert "sensitivity benchmarks" in str(res.summary())
    grid = res.tables["sensitivity.contour"]
    assert len(grid) == 41 * 41 and grid["cf_d"].max() == pytest.approx(1.25 * table["cf_d"].max())
    corner = grid.iloc[-1]
    assert corner["theta_lower"] < row["sensitivity.theta_lower"]  # stronger than the scenario
    figures = AIPW.figures(res.tables)
    assert set(figures) == {"sensitivity_contour.png"}
    assert len(figures["sensitivity_contour.png"].axes) == 4  # two panels, two colour bars


def test_bounds_and_robustness_values_solve_their_definitions(frame):
    fit = _fit(frame, SCENARIO)
    cf = AIPW(AIPWParams(outcome_model="linear")).crossfit(
        Dataset(frame, Roles(outcome="y", treatment="d", covariates=("x1", "x2", "x3"))),
        np.random.default_rng(3),
    )
    el = elements(cf.y, cf.d, cf.nuisances.g0, cf.nuisances.g1, cf.m, Estimand.ATE)
    theta, infl = cf.estimate, cf.influence
    assert fit.diagnostics["sensitivity.theta_lower"] == pytest.approx(
        theta - np.sqrt(0.04 * 0.03 / 0.97) * np.sqrt(el.sigma2 * el.nu2), rel=1e-12
    )
    grid = fit.tables["sensitivity.contour"].iloc[123]
    point = bounds(theta, infl, el, grid["cf_y"], grid["cf_d"], 1.0, 0.95)
    assert point.ci_upper == pytest.approx(grid["ci_upper"], rel=1e-12)
    rv, rva = robustness_values(theta, infl, el, 1.0, 0.95, 0.0)
    assert bounds(theta, infl, el, rv, rv, 1.0, 0.95).theta_lower == pytest.approx(0, abs=1e-8)
    assert bounds(theta, infl, el, rva, rva, 1.0, 0.95).ci_lower == pytest.approx(0, abs=1e-8)
    # rho scales the strength; rho = 0 moves nothing
    b0 = bounds(theta, infl, el, 0.1, 0.1, 0.0, 0.95)
    assert b0.theta_lower == b0.theta_upper == theta
    assert robustness_values(theta, infl, el, 0.0, 0.95, 0.0) == (1.0, 1.0)
    # a null above the estimate uses the upper bounds
    rv_up, _ = robustness_values(theta, infl, el, 1.0, 0.95, theta + 1.0)
    assert bounds(theta, infl, el, rv_up, rv_up, 1.0, 0.95).theta_upper == pytest.approx(
        theta + 1.0, abs=1e-8
    )


def test_elements_closed_form_and_nu2_fallback():
    y = np.array([1.0, 2.0, 0.0, 3.0])
    d = np.array([1.0, 0.0, 1.0, 0.0])
    half = np.full(4, 0.5)
    el = elements(y, d, np.zeros(4), np.ones(4), half, Estimand.ATE)
    # m = 1/2: alpha = +-2, 2(1/m + 1/(1-m)) = 8, so nu2 = 8 - 4
    assert el.nu2 == 4.0 and np.array_equal(el.riesz, [2.0, -2.0, 2.0, -2.0])
    assert el.sigma2 == np.mean([0.0, 4.0, 1.0, 9.0]) and not el.nu2_fallback
    # all treated at m = 0.1: 2/m + 2/(1-m) - 1/m^2 < 0, so nu2 falls back to mean(alpha^2)
    low = elements(y, np.ones(4), np.zeros(4), np.ones(4), np.full(4, 0.1), Estimand.ATE)
    assert low.nu2_fallback and low.nu2 == pytest.approx(100.0)


def test_atc_elements_are_the_att_elements_with_the_arms_swapped():
    """ATC (used by ipw): the ATT of the swapped treatment; its representer changes sign."""
    rng = np.random.default_rng(2)
    resid, m = rng.normal(size=50), rng.uniform(0.2, 0.8, size=50)
    d = (rng.random(50) < m).astype(float)
    atc = riesz_elements(resid, d, m, Estimand.ATC)
    att = riesz_elements(resid, 1.0 - d, 1.0 - m, Estimand.ATT)
    assert np.allclose(atc.riesz, -att.riesz, rtol=1e-14, atol=0)
    assert atc.nu2 == pytest.approx(att.nu2, rel=1e-14) and atc.sigma2 == att.sigma2


def test_benchmark_of_an_identical_short_model_is_zero():
    el = elements(
        np.arange(6.0),
        np.array([1.0, 0, 1, 0, 1, 0]),
        np.zeros(6),
        np.ones(6),
        np.full(6, 0.4),
        Estimand.ATT,
    )
    assert benchmark(3.0, 1.0, el, 1.0, el) == {
        "cf_y": 0.0,
        "cf_d": 0.0,
        "rho": 0.0,
        "delta_theta": 0.0,
    }


def test_switching_sensitivity_on_keeps_the_seeds_and_the_estimate():
    """The analysis is reported beside the fit: same folds, same estimate (seed_hash)."""
    from causalkit.cli import compose
    from causalkit.config import validate
    from causalkit.montecarlo import run_replication
    from causalkit.registry import default_registry
    from causalkit.session import Session

    world = ["tracking=none", "estimator=aipw", "dgp=selection_on_observables", "dgp.n=400"]
    off = validate(compose(world))
    on = validate(
        compose([*world, "estimator.sensitivity.cf_y=0.03", "estimator.sensitivity.cf_d=0.03"])
    )
    assert on.cell_hash != off.cell_hash
    assert on.seed_hash == off.seed_hash == off.cell_hash
    session = Session(default_registry())
    a = run_replication(off, 0, None, session)
    b = run_replication(on, 0, None, session)
    assert a.estimate == b.estimate and a.se == b.se
    assert "sensitivity.theta_lower" in b.to_dict() and "sensitivity.theta_lower" not in a.to_dict()
