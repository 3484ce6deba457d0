"""``ipw`` omitted-variable-bias sensitivity: the bounds from their formulas, aipw's machinery, hashes.

The bounds (Chernozhukov, Cinelli, Newey, Sharma & Syrgkanis 2022) are recomputed here from
the formulas with an independent propensity fit (statsmodels' Logit) and brute-force
leave-one-out regressions; only the effect's influence values are the fit's (they are checked
against a numerical sandwich in ``test_ipw.py``). Tolerances: 1e-9 relative where two
computations of the same arithmetic meet (statsmodels' and our Newton-Raphson logit agree to
~1e-12 in the score, the brute-force and PRESS residuals to ~1e-13); 1e-12 where the same
numbers go through the same functions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy.optimize import brentq
from scipy.stats import norm

import causalkit as ck
from causalkit.composition import compose
from causalkit.config import validate, validate_params
from causalkit.contracts import Dataset, Estimand, Roles
from causalkit.errors import ConfigError, DataError, EstimationError
from causalkit_plugins.estimators.aipw.sensitivity import bounds, elements
from causalkit_plugins.estimators.selection.ipw import IPW, IPWParams
from causalkit_plugins.estimators.selection.ipw_sensitivity import loo_residuals

SCENARIO = {"cf_y": 0.04, "cf_d": 0.03}
COVS = ("x1", "x2", "x3")
REL = 1e-9


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    n = 400
    x = rng.normal(size=(n, 3))
    d = (rng.random(n) < 1 / (1 + np.exp(-0.8 * x[:, 0] + 0.4 * x[:, 1]))).astype(int)
    y = 1.0 + 0.5 * d + x @ np.array([1.0, -0.5, 0.3]) + 0.3 * x[:, 0] ** 2 + rng.normal(size=n)
    g = np.repeat(np.arange(40), 10)
    return pd.DataFrame({"y": y, "d": d, "x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "g": g})


def _fit(frame, sensitivity=None, covariates=COVS, **params):
    roles = Roles(outcome="y", treatment="d", covariates=covariates)
    p = IPWParams(sensitivity=sensitivity, **params)
    return IPW(p).fit(Dataset(frame, roles), np.random.default_rng(0))


def _by_hand(frame, covariates, estimand):
    """Score, LOO residuals, Riesz representer and nu2 terms written out from the formulas."""
    y, d = frame["y"].to_numpy(), frame["d"].to_numpy().astype(float)
    Z = sm.add_constant(frame[list(covariates)].to_numpy())
    m = sm.Logit(d, Z).fit(disp=0, tol=1e-12, maxiter=100).predict(Z)
    loo = np.empty_like(y)
    for i in range(y.size):  # refit without unit i in its arm
        arm = (d == d[i]) & (np.arange(y.size) != i)
        beta = np.linalg.lstsq(Z[arm], y[arm], rcond=None)[0]
        loo[i] = y[i] - Z[i] @ beta
    p = d.mean()
    if estimand == "ATE":
        alpha = d / m - (1 - d) / (1 - m)
        two = 2 * (1 / m + 1 / (1 - m))
    elif estimand == "ATT":
        alpha = d / p - m * (1 - d) / (p * (1 - m))
        two = 2 * d / (p**2 * (1 - m))  # 2 (d/p)(m/p)(1/m + 1/(1-m))
    else:
        alpha = (1 - m) * d / (m * (1 - p)) - (1 - d) / (1 - p)
        two = 2 * (1 - d) / ((1 - p) ** 2 * m)
    return m, loo, alpha, two - alpha**2


def test_off_by_default_and_out_of_the_config_hash():
    # measured at HEAD db4f60f, before the field existed
    for overrides, expected in [
        ((), "a126695fdff0618a"),
        (("estimator.estimand=ATT", "estimator.clip=0.01"), "060c539fa7d08a64"),
    ]:
        cfg = validate(compose(["estimator=ipw", "dgp=selection_on_observables", *overrides]))
        assert cfg.estimator.params.sensitivity is None
        assert "sensitivity" not in cfg.estimator.params.model_dump()
        assert cfg.cell_hash == cfg.seed_hash == expected
    on = validate(
        compose(
            [
                "estimator=ipw",
                "dgp=selection_on_observables",
                "estimator.sensitivity.cf_y=0.04",
                "estimator.sensitivity.cf_d=0.03",
            ]
        )
    )
    assert on.estimator.params.sensitivity.rho == 1.0
    assert on.cell_hash != on.seed_hash == "a126695fdff0618a"


def test_trim_is_refused_in_one_line(frame):
    """Weights are accepted (``test_weighted_sensitivity.py``); trimming is not."""
    with pytest.raises(ConfigError) as err:
        validate_params("estimator", IPWParams, {"trim": 0.05, "sensitivity": SCENARIO})
    assert str(err.value).startswith("estimator.trim: expected trim=0 with sensitivity")
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match="benchmark_covariates: expected covariates among"):
        _fit(frame, {**SCENARIO, "benchmark_covariates": ["x9"]})
    with pytest.raises(DataError, match="at least one covariate left in the propensity model"):
        _fit(frame, {**SCENARIO, "benchmark_covariates": ["x1+x2+x3"]})


@pytest.mark.parametrize("estimand", ["ATE", "ATT", "ATC"])
def test_bounds_equal_the_formulas(frame, estimand):
    scenario = {"cf_y": 0.05, "cf_d": 0.04, "rho": 0.8, "level": 0.9}
    fit = _fit(frame, scenario, estimand=estimand)
    off = _fit(frame, estimand=estimand)
    assert np.array_equal(fit.estimates, off.estimates)
    assert np.array_equal(fit.influence, off.influence)
    theta, psi = fit.estimate, fit.influence[:, 0]
    _, loo, alpha, nu2_terms = _by_hand(frame, COVS, estimand)
    sigma2, nu2 = np.mean(loo**2), np.mean(nu2_terms)
    diag = fit.diagnostics
    assert diag["sensitivity.sigma2"] == pytest.approx(sigma2, rel=REL)
    assert diag["sensitivity.nu2"] == pytest.approx(nu2, rel=REL)
    assert diag["sensitivity.sigma2_source"] == "linear_loo"
    S = np.sqrt(sigma2 * nu2)
    cs = 0.8 * np.sqrt(0.05 * 0.04 / 0.96)
    assert diag["sensitivity.theta_lower"] == pytest.approx(theta - cs * S, rel=REL)
    assert diag["sensitivity.theta_upper"] == pytest.approx(theta + cs * S, rel=REL)
    psi_s = (sigma2 * (nu2_terms - nu2) + nu2 * (loo**2 - sigma2)) / (2 * S)
    n, z = psi.size, norm.ppf(0.9)
    se_lo = np.sqrt(np.mean((psi - cs * psi_s) ** 2) / n)
    se_hi = np.sqrt(np.mean((psi + cs * psi_s) ** 2) / n)
    assert diag["sensitivity.ci_lower"] == pytest.approx(theta - cs * S - z * se_lo, rel=REL)
    assert diag["sensitivity.ci_upper"] == pytest.approx(theta + cs * S + z * se_hi, rel=REL)
    # RV: the v = cf_y = cf_d at which the lower bound reaches 0; RVa: its CI bound
    side = np.sign(theta)

    def gap(v, ci):
        c = 0.8 * np.sqrt(v * v / (1 - v))
        s = np.sqrt(np.mean((psi - side * c * psi_s) ** 2) / n)
        return abs(theta) - c * S - (z * s if ci else 0.0)

    assert diag["sensitivity.rv"] == pytest.approx(brentq(gap, 0, 0.999, (False,)), abs=1e-9)
    assert diag["sensitivity.rva"] == pytest.approx(brentq(gap, 0, 0.999, (True,)), abs=1e-9)
    assert 0 < diag["sensitivity.rva"] < diag["sensitivity.rv"] < 1


def test_same_sigma2_and_riesz_give_aipws_bounds(frame):
    """The ipw bounds are aipw's functions fed IPW's residuals and score (no second implementation)."""
    fit = _fit(frame, SCENARIO, estimand="ATT", clip=0.02)
    y, d = frame["y"].to_numpy(), frame["d"].to_numpy().astype(float)
    m, _, _, _ = _by_hand(frame, COVS, "ATT")
    X = frame[list(COVS)].to_numpy()
    g = y - loo_residuals(y, d.astype(bool), X)  # outcome "predictions" whose residuals are LOO
    el = elements(y, d, g, g, np.clip(m, 0.02, 0.98), Estimand.ATT)
    b = bounds(fit.estimate, fit.influence[:, 0], el, 0.04, 0.03, 1.0, 0.95)
    for key in ("theta_lower", "theta_upper", "ci_lower", "ci_upper"):
        assert fit.diagnostics[f"sensitivity.{key}"] == pytest.approx(getattr(b, key), rel=REL)


def test_loo_residuals_and_leverage_one():
    rng = np.random.default_rng(1)
    y, X, d = rng.normal(size=12), rng.normal(size=(12, 2)), np.arange(12) % 2 == 0
    r = loo_residuals(y, d, X)
    Z = np.column_stack([np.ones(12), X])
    i = 3
    arm = (d == d[i]) & (np.arange(12) != i)
    assert r[i] == pytest.approx(y[i] - Z[i] @ np.linalg.lstsq(Z[arm], y[arm])[0], rel=1e-12)
    with pytest.raises(EstimationError, match="leverage 1"):
        loo_residuals(y, np.arange(12) < 3, X)  # three treated, three coefficients


def test_benchmarks_refit_without_the_covariate(frame):
    fit = _fit(frame, {**SCENARIO, "benchmark_covariates": ["x1", "x2+x3"]})
    table = fit.tables["sensitivity.bounds"]
    assert list(table.index) == ["x1", "x2+x3"]
    short = _fit(frame, covariates=("x2", "x3"))
    assert table.loc["x1", "delta_theta"] == pytest.approx(short.estimate - fit.estimate, rel=1e-12)
    y = frame["y"].to_numpy()
    _, loo_long, _, nu_long = _by_hand(frame, COVS, "ATE")
    _, loo_short, _, nu_short = _by_hand(frame, ("x2", "x3"), "ATE")
    r2_long, r2_short = 1 - np.mean(loo_long**2) / y.var(), 1 - np.mean(loo_short**2) / y.var()
    assert table.loc["x1", "cf_y"] == pytest.approx((r2_long - r2_short) / (1 - r2_long), rel=REL)
    r2_alpha = nu_short.mean() / nu_long.mean()
    assert table.loc["x1", "cf_d"] == pytest.approx((1 - r2_alpha) / r2_alpha, rel=REL)
    # x1 drives treatment and outcome: a strong benchmark, whose bounds are wider
    assert table.loc["x1", "theta_lower"] < fit.diagnostics["sensitivity.theta_lower"]


def test_clustered_ci_bounds(frame):
    """At cf_y = 0 the bounds are the estimate, and the CI bound its one-sided clustered Wald limit."""
    res = ck.fit(
        frame,
        "ipw",
        outcome="y",
        treatment="d",
        covariates=list(COVS),
        cluster="g",
        sensitivity={"cf_y": 0.0, "cf_d": 0.03, "level": 0.975},
    )
    row = res.to_dict()
    assert row["sensitivity.theta_lower"] == row["estimate"]
    # analytic inference's 95% CI is the clustered (CR, G/(G-1)) Wald interval
    assert row["sensitivity.ci_lower"] == pytest.approx(row["ci_lower"], rel=1e-9)
    assert row["sensitivity.ci_upper"] == pytest.approx(row["ci_upper"], rel=1e-9)
    plain = _fit(frame, {"cf_y": 0.0, "cf_d": 0.03, "level": 0.975})
    assert plain.diagnostics["sensitivity.ci_lower"] != pytest.approx(row["ci_lower"], rel=1e-3)


def test_results_tables_and_figure_from_python(frame):
    res = ck.fit(
        frame,
        "ipw",
        outcome="y",
        treatment="d",
        covariates=list(COVS),
        sensitivity={**SCENARIO, "benchmark_covariates": ["x1"]},
    )
    row = res.to_dict()
    assert row["sensitivity.ci_lower"] < row["sensitivity.theta_lower"] < row["estimate"]
    assert "sensitivity benchmarks" in str(res.summary())
    assert len(res.tables["sensitivity.contour"]) == 41 * 41
    figures = IPW.figures(res.tables)
    assert set(figures) == {"sensitivity_contour.png"}
    assert len(figures["sensitivity_contour.png"].axes) == 4  # two panels, two colour bars
    assert IPW.figures({}) == {}


def test_switching_sensitivity_on_keeps_the_seeds_and_the_estimate():
    from causalkit.montecarlo import run_replication
    from causalkit.registry import default_registry
    from causalkit.session import Session

    world = ["tracking=none", "estimator=ipw", "dgp=selection_on_observables", "dgp.n=400"]
    off = validate(compose(world))
    on = validate(
        compose([*world, "estimator.sensitivity.cf_y=0.03", "estimator.sensitivity.cf_d=0.03"])
    )
    session = Session(default_registry())
    a = run_replication(off, 0, None, session)
    b = run_replication(on, 0, None, session)
    assert a.estimate == b.estimate and a.se == b.se
    assert "sensitivity.rv" in b.to_dict() and "sensitivity.rv" not in a.to_dict()
