"""``ols`` ``model=pooled`` and its partial-R² sensitivity: parameters, invariance, errors, the math."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy.optimize import brentq

import causalkit as ck
from causalkit.composition import compose
from causalkit.config import validate, validate_params
from causalkit.errors import ConfigError, DataError
from causalkit_plugins.estimators.selection import partial_r2 as pr
from causalkit_plugins.estimators.selection.ols import OLS, OLSParams

YAML_DEFAULT = {
    "benchmark_covariates": None,
    "kd": [1],
    "ky": None,
    "q": 1.0,
    "alpha": 0.05,
    "reduce": True,
}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(18)
    n = 500
    x = rng.normal(size=(n, 3))
    d = (rng.random(n) < 1 / (1 + np.exp(-0.8 * x[:, 0] + 0.4 * x[:, 1]))).astype(int)
    y = 1.0 + 0.5 * d + x @ np.array([1.0, -0.5, 0.3]) + rng.normal(size=n)
    w = rng.exponential(size=n)
    g = np.repeat(np.arange(50), 10)
    return pd.DataFrame(
        {"y": y, "d": d, "x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "w": w, "g": g}
    )


def _fit(frame, **params):
    return ck.fit(frame, "ols", outcome="y", treatment="d", covariates=["x1", "x2", "x3"], **params)


def test_defaults_keep_the_config_hash():
    """The new keys at their defaults leave the dump, hence every earlier cell's hash."""
    world = ["estimator=ols", "dgp=selection_on_observables"]
    new = validate(compose(world))
    before = validate(compose([*world, "~estimator.model", "~estimator.sensitivity"]))
    assert new.cell_hash == before.cell_hash == "7e4a3fb19d1feb79"
    assert new.estimator.params.model_dump(mode="json") == {"estimand": "ATE"}
    on = validate(
        compose(
            [
                *world,
                "estimator.model=pooled",
                "estimator.sensitivity.benchmark_covariates=[x1]",
            ]
        )
    )
    pooled = validate(compose([*world, "estimator.model=pooled"]))
    assert on.estimator.params.sensitivity.benchmark_covariates == ("x1",)
    assert on.cell_hash != pooled.cell_hash != new.cell_hash
    assert on.seed_hash == pooled.seed_hash  # sensitivity is seed-neutral


@pytest.mark.parametrize(
    "value,on",
    [
        (None, False),
        (YAML_DEFAULT, False),
        ({**YAML_DEFAULT, "benchmark_covariates": []}, True),
        ({**YAML_DEFAULT, "q": 0.5}, True),
        ({}, True),
        ({"benchmark_covariates": "x1", "kd": 2}, True),
    ],
)
def test_off_only_as_the_yaml_default(value, on):
    params = OLSParams(model="pooled", sensitivity=value)
    assert (params.sensitivity is not None) is on


def test_scalars_become_tuples():
    sens = OLSParams(
        model="pooled", sensitivity={"benchmark_covariates": "x1", "kd": 2, "ky": 3}
    ).sensitivity
    assert sens.benchmark_covariates == ("x1",) and sens.multiples() == ((2.0, 3.0),)


@pytest.mark.parametrize(
    "values,message",
    [
        (
            {"sensitivity": {"benchmark_covariates": ["x1"]}},
            "estimator.sensitivity: expected estimator.model=pooled",
        ),
        ({"model": "pooled", "estimand": "ATT"}, "estimator.estimand: expected ATE with"),
        ({"model": "together"}, "estimator.model: expected"),
        (
            {"model": "pooled", "sensitivity": {"kd": [1, 2], "ky": [1]}},
            "estimator.sensitivity.ky: expected one multiple per kd (2) or null",
        ),
        (
            {"model": "pooled", "sensitivity": {"kd": [-1]}},
            "estimator.sensitivity.kd: expected one or more non-negative multiples",
        ),
        ({"model": "pooled", "sensitivity": {"alpha": 1.0}}, "estimator.sensitivity.alpha"),
    ],
)
def test_bad_values_are_one_line_config_errors(values, message):
    with pytest.raises(ConfigError) as err:
        validate_params("estimator", OLSParams, values)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_unknown_benchmark_and_impossible_kd(frame):
    with pytest.raises(DataError, match="benchmark_covariates: expected covariates among x1"):
        _fit(frame, model="pooled", sensitivity={"benchmark_covariates": ["age"]})
    with pytest.raises(ConfigError, match="estimator.sensitivity.kd: expected multiples below"):
        _fit(frame, model="pooled", sensitivity={"benchmark_covariates": ["x1"], "kd": 1e6})


def test_sensitivity_leaves_the_fit_unchanged_and_needs_no_benchmark(frame):
    plain = _fit(frame, model="pooled")
    sens = _fit(frame, model="pooled", sensitivity={})
    a, b = plain.to_dict(), sens.to_dict()
    assert a["estimate"] == b["estimate"] and a["se"] == b["se"]
    assert "sensitivity.rv" in b and "sensitivity.rv" not in a
    assert "sensitivity.bounds" not in sens.tables and "sensitivity.contour" in sens.tables
    assert OLS.figures(plain.tables) == {}
    assert list(OLS.figures(sens.tables)) == ["sensitivity_contour.png"]


def test_group_and_weighted_benchmarks_equal_regression_r2(frame):
    """A group's partial R² is the drop in R² when it leaves (weighted: WLS), per regression."""

    def r2_drop(y, full, short, w):
        rss = [sm.WLS(y, sm.add_constant(x), weights=w).fit().ssr for x in (full, short)]
        return 1 - rss[0] / rss[1]

    res = _fit(
        frame,
        model="pooled",
        weight="w",
        sensitivity={"benchmark_covariates": ["x1+x2"], "kd": [0.5]},
    )
    w = frame["w"]
    r2y = r2_drop(frame["y"], frame[["d", "x1", "x2", "x3"]], frame[["d", "x3"]], w)
    r2d = r2_drop(frame["d"], frame[["x1", "x2", "x3"]], frame[["x3"]], w)
    r2dz, r2yz = pr.benchmark_bounds(r2d, r2y, [0.5], [0.5])
    row = res.tables["sensitivity.bounds"].loc["0.5x x1+x2"]
    assert row["r2dz_x"] == pytest.approx(r2dz[0], rel=1e-10)
    assert row["r2yz_dx"] == pytest.approx(r2yz[0], rel=1e-10)
    wls = sm.WLS(frame["y"], sm.add_constant(frame[["d", "x1", "x2", "x3"]]), weights=w).fit()
    assert res.to_dict()["sensitivity.se_classical"] == pytest.approx(wls.bse["d"], rel=1e-10)
    assert res.to_dict()["sensitivity.partial_r2"] == pytest.approx(
        r2_drop(frame["y"], frame[["d", "x1", "x2", "x3"]], frame[["x1", "x2", "x3"]], w),
        rel=1e-10,
    )


def test_kd_ky_labels_and_clustered_warning(frame):
    res = _fit(
        frame,
        model="pooled",
        cluster="g",
        sensitivity={"benchmark_covariates": ["x2"], "kd": [1, 2], "ky": [1, 3]},
    )
    assert list(res.tables["sensitivity.bounds"].index) == ["1x x2", "2/3x x2"]
    assert any("classical OLS SE" in w and "clustered" in w for w in res.warnings)


def test_robustness_values_solve_their_definitions():
    """RV_q zeroes the adjusted estimate, RV_{q,alpha} puts its t at the critical value."""
    est, se, dof = 0.8, 0.2, 300
    t = est / se
    rv = pr.robustness_value(t, dof)
    assert pr.adjusted_estimate(est, se, dof, rv, rv) == pytest.approx(0.0, abs=1e-12)
    half = pr.robustness_value(t, dof, q=0.5)
    assert pr.adjusted_estimate(est, se, dof, half, half) == pytest.approx(est / 2, rel=1e-10)
    rva = pr.robustness_value(t, dof, alpha=0.05)
    assert pr.adjusted_t(est, se, dof, rva, rva) == pytest.approx(
        pr.critical_t(0.05, dof - 1), rel=1e-10
    )
    # partial R2 of the treatment with the outcome: a confounder explaining all the outcome's
    # residual variance and that much of the treatment's removes the estimate exactly
    r2 = pr.partial_r2(t, dof)
    assert pr.bias(se, dof, r2, 1.0) == pytest.approx(est, rel=1e-12)


@pytest.mark.parametrize("t,dof", [(60.0, 100), (30.0, 100), (4.18, 783)])
def test_rva_is_the_smallest_strength_that_makes_the_estimate_insignificant(t, dof):
    """RV_{q,alpha} = min v: some confounder with r2dz_x, r2yz_dx <= v brings |t| to t*.

    The adjusted t falls with r2dz_x, so r2dz_x = v; over r2yz_dx it is not monotone (the
    SE shrinks as r2yz_dx -> 1), so its minimum over a grid of 200,001 points in [0, v] is
    taken and v found by Brent's method. With f_q > 1/f* (t = 60 and 30 at dof = 100) the
    minimum lies inside the interval and RV is sensemakr's (f_q^2 - f*^2)/(1 + f_q^2);
    otherwise (t = 4.18) on the diagonal. Tolerance 1e-9 relative: the grid's error in the
    minimum is second order, ~1e-11 in v.
    """
    est, se = 0.1 * t, 0.1
    crit = pr.critical_t(0.05, dof - 1)

    def lowest_t(v: float) -> float:
        return float(pr.adjusted_t(est, se, dof, v, np.linspace(0, v, 200_001)).min())

    v = brentq(lambda v: lowest_t(v) - crit, 1e-9, 1 - 1e-9, xtol=1e-13)
    rva = pr.robustness_value(t, dof, alpha=0.05)
    assert rva == pytest.approx(v, rel=1e-9)
    fq, fc = t / np.sqrt(dof), crit / np.sqrt(dof - 1)
    if fq > 1 / fc:
        assert rva == pytest.approx((fq**2 - fc**2) / (1 + fq**2), rel=1e-12)
    assert pr.robustness_value(0.5, dof, alpha=0.05) == 0.0  # not significant to begin with


def test_pooled_bootstrap_refits_the_coefficient(frame):
    """The pairs bootstrap refits the pooled regression: its SE estimates the HC1 SE's target.

    n = 500, homoskedastic errors and 5 regressors: HC1 and the bootstrap SE estimate the same
    variance; 400 resamples give the bootstrap SE a Monte Carlo error of about
    1/sqrt(2 * 400) = 3.5%, so 15% is over four of those.
    """
    analytic = _fit(frame, model="pooled").to_dict()["se"]
    boot = _fit(frame, model="pooled", inference={"name": "bootstrap", "n_boot": 400}, seed=1)
    assert boot.to_dict()["se"] == pytest.approx(analytic, rel=0.15)
    assert boot.to_dict()["estimate"] == _fit(frame, model="pooled").to_dict()["estimate"]
