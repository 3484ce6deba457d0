"""Unit tests of the probit, the Heckman two-step and ML pieces, the plugin and its DGP."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from causalkit.contracts import Capability, Dataset, Estimand
from causalkit.errors import ConfigError, DataError
from causalkit_plugins.dgps.heckman_selection import (
    HeckmanSelection,
    HeckmanSelectionParams,
    SelectionCoefficients,
    TreatmentCoefficients,
    treated_mean_of_x1,
)
from causalkit_plugins.estimators.selection.heckman import Heckman, HeckmanParams
from causalkit_plugins.estimators.selection.heckman_data import selection_data
from causalkit_plugins.estimators.selection.heckman_ml import heckman_loglik
from causalkit_plugins.estimators.selection.probit import fit_probit
from causalkit_plugins.inference.basic import Analytic
from causalkit_plugins.inference.bootstrap import Bootstrap, BootstrapParams

VALID = HeckmanSelectionParams(
    n=2000, treatment=TreatmentCoefficients(u=0.0), selection=SelectionCoefficients(link="probit")
)


def _sim(params: HeckmanSelectionParams = VALID, seed: int = 1):
    return HeckmanSelection(params).simulate(np.random.default_rng(seed))


def test_probit_matches_statsmodels():
    rng = np.random.default_rng(0)
    X = sm.add_constant(rng.standard_normal((3000, 3)))
    d = (X @ [0.2, 0.8, -0.5, 0.3] + rng.standard_normal(3000) > 0).astype(float)
    ours = fit_probit(X, d)
    ref = sm.Probit(d, X).fit(disp=False, tol=1e-12)
    assert ours.converged and not ours.separation
    np.testing.assert_allclose(ours.coef, ref.params, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.vcov, ref.cov_params(), rtol=1e-8)
    assert ours.loglik == pytest.approx(ref.llf, rel=1e-12)
    np.testing.assert_allclose(ours.scores.sum(axis=0), 0.0, atol=1e-8)


def test_probit_flags_separation():
    x = np.linspace(-1, 1, 200)
    d = (x > 0).astype(float)
    fit = fit_probit(np.column_stack([np.ones(200), x]), d, max_iter=50)
    assert fit.separation


def test_ml_gradient_and_hessian_match_finite_differences():
    sd = selection_data(_sim(seed=3).dataset, add_intercept=True)
    rng = np.random.default_rng(4)
    theta = np.concatenate(
        [rng.normal(0, 0.3, sd.W.shape[1]), rng.normal(0, 0.3, sd.X.shape[1]), [0.2, 0.4]]
    )
    _, g, H = heckman_loglik(theta, sd.y, sd.X, sd.W, sd.d)
    eps = 1e-5
    g_fd = np.empty_like(g)
    H_fd = np.empty_like(H)
    for j in range(theta.size):
        e = np.zeros_like(theta)
        e[j] = eps
        g_fd[j] = (
            heckman_loglik(theta + e, sd.y, sd.X, sd.W, sd.d, 0)[0]
            - heckman_loglik(theta - e, sd.y, sd.X, sd.W, sd.d, 0)[0]
        ) / (2 * eps)
        H_fd[:, j] = (heckman_loglik(theta + e, sd.y, sd.X, sd.W, sd.d, 1)[1]
                      - heckman_loglik(theta - e, sd.y, sd.X, sd.W, sd.d, 1)[1]) / (2 * eps)  # fmt: skip
    np.testing.assert_allclose(g, g_fd, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(H, H_fd, rtol=1e-6, atol=1e-3)


@pytest.mark.parametrize("method", ["twostep", "ml"])
def test_recovers_truth_on_a_large_valid_sample(method):
    sim = _sim(VALID.model_copy(update={"n": 100_000}), seed=5)
    fit = Heckman(HeckmanParams(method=method)).fit(sim.dataset, np.random.default_rng(0))
    d = fit.diagnostics
    assert fit.estimand is Estimand.ATE
    assert fit.names == ("ATE", "lambda")
    assert list(fit.estimates) == [d["coef.treat"], d["coef.lambda"]]
    assert list(fit.model_se) == [d["se.treat"], d["se.lambda"]]
    assert abs(fit.estimate - sim.truth.values["ATE"]) < 4 * fit.model_se[0]
    for name, true in [("x1", 2.0), ("x2", 1.2), ("intercept", 10.0)]:
        assert abs(d[f"coef.{name}"] - true) < 4 * d[f"se.{name}"], name
    sel = VALID.selection  # probit coefficients are scaled by sd(u_sel*u + v)
    scale = np.sqrt(sel.u**2 + 1)
    assert abs(d["coef.sel.z"] - sel.z / scale) < 4 * d["se.sel.z"]
    sigma = np.sqrt(VALID.outcome.u**2 + VALID.outcome.noise_sd**2)
    rho = VALID.outcome.u * sel.u / (sigma * scale)
    assert d["sigma"] == pytest.approx(sigma, abs=0.02)
    assert d["rho"] == pytest.approx(rho, abs=0.05)
    # selection on unobservables is detected: inference on the second estimate, lambda
    assert Analytic().infer(fit, np.random.default_rng(0)).p_value[1] < 1e-6
    assert d["converged"] and fit.warnings == ()


def test_ml_improves_on_the_twostep_likelihood_and_refits():
    sim = _sim(seed=6)
    fit = Heckman(HeckmanParams(method="ml")).fit(sim.dataset, np.random.default_rng(0))
    sd = selection_data(sim.dataset, add_intercept=True)
    two = Heckman().fit(sim.dataset, np.random.default_rng(0)).diagnostics
    start = np.concatenate([[two[f"coef.sel.{c}"] for c in sd.selection_names],
                            [two[f"coef.{c}"] for c in sd.outcome_names],
                            [np.log(two["sigma"]), np.arctanh(two["rho"])]])  # fmt: skip
    assert fit.diagnostics["loglik"] > heckman_loglik(start, sd.y, sd.X, sd.W, sd.d, 0)[0]
    assert fit.diagnostics["ml_newton_decrement"] < 1e-12
    assert fit.resampler.refit(np.arange(fit.n)) == pytest.approx(fit.estimates, abs=1e-9)


def test_subset_equals_rebuilding_from_resampled_rows():
    sim = _sim(seed=7)
    sd = selection_data(sim.dataset, add_intercept=True)
    idx = np.random.default_rng(0).integers(0, sd.n, sd.n)
    frame = sim.dataset.frame.iloc[idx].reset_index(drop=True)
    rebuilt = selection_data(Dataset(frame, sim.dataset.roles), add_intercept=True)
    sub = sd.subset(idx)
    for a in ("y", "X", "W", "d"):
        np.testing.assert_array_equal(getattr(sub, a), getattr(rebuilt, a))


def test_bootstrap_runs_through_refit():
    sim = _sim(VALID.model_copy(update={"n": 800}), seed=8)
    fit = Heckman().fit(sim.dataset, np.random.default_rng(0))
    assert fit.capabilities == Heckman.capabilities(HeckmanParams())
    assert Heckman.capabilities(HeckmanParams()) == {
        Capability.MODEL_SE,
        Capability.INFLUENCE,
        Capability.RESAMPLE,
    }
    assert fit.influence.shape == (fit.n, 2) and fit.resampler.strata is None
    out = Bootstrap(BootstrapParams(n_boot=60, stratified=False)).infer(
        fit, np.random.default_rng(1)
    )
    assert out.se.shape == (2,)  # the treatment effect and lambda
    assert np.all((0.4 * fit.model_se < out.se) & (out.se < 2.5 * fit.model_se))


def test_without_treatment_the_estimate_is_lambda():
    sim = _sim(seed=9)
    roles = sim.dataset.roles.model_copy(
        update={"treatment": None, "covariates": ("treat", "x1", "x2")}
    )
    fit = Heckman().fit(Dataset(sim.dataset.frame, roles), np.random.default_rng(0))
    assert fit.estimand is Estimand.DIFF and fit.k == 1 and fit.names == ("DIFF",)
    assert fit.estimate == fit.diagnostics["coef.lambda"]
    assert fit.model_se[0] == fit.diagnostics["se.lambda"]


def test_treatment_joins_the_outcome_equation_and_warns_if_not_in_selection():
    sim = _sim(seed=10)
    roles = sim.dataset.roles.model_copy(update={"selection_covariates": ("x1", "x2", "z")})
    fit = Heckman().fit(Dataset(sim.dataset.frame, roles), np.random.default_rng(0))
    assert "coef.treat" in fit.diagnostics
    assert any("not a selection covariate" in w for w in fit.warnings)


def test_warns_without_exclusion_restriction():
    sim = _sim(seed=11)
    roles = sim.dataset.roles.model_copy(update={"selection_covariates": ("x1", "x2", "treat")})
    fit = Heckman().fit(Dataset(sim.dataset.frame, roles), np.random.default_rng(0))
    assert fit.diagnostics["exclusion_restriction"] is False
    assert any("no exclusion restriction" in w for w in fit.warnings)


def test_bad_input_is_a_one_line_error():
    sim = _sim(seed=12)
    frame, roles = sim.dataset.frame, sim.dataset.roles
    est = Heckman()
    broken = frame.assign(spend=frame["spend"].where(frame["x1"] < 1.0))  # NaN among buyers too
    with pytest.raises(DataError, match="roles.outcome"):
        est.fit(Dataset(broken, roles), np.random.default_rng(0))
    with pytest.raises(DataError, match="roles.selected"):
        est.fit(Dataset(frame.assign(buy=frame["buy"] * 2), roles), np.random.default_rng(0))
    with pytest.raises(DataError, match="roles.selected"):
        est.fit(
            Dataset(frame.assign(buy=1, spend=frame["spend"].fillna(0.0)), roles),
            np.random.default_rng(0),
        )
    with pytest.raises(ConfigError, match="reserved"):
        est.fit(
            Dataset(
                frame.rename(columns={"x2": "lambda"}),
                roles.model_copy(
                    update={"covariates": ("x1", "lambda"), "selection_covariates": ("x1", "z")}
                ),
            ),
            np.random.default_rng(0),
        )
    with pytest.raises(DataError, match="roles.selection_covariates"):
        est.fit(
            Dataset(frame, roles.model_copy(update={"selection_covariates": ()})),
            np.random.default_rng(0),
        )
    with pytest.raises(ValueError):
        HeckmanParams(method="fiml")


def test_dgp_shape_truth_and_reproducibility():
    a, b = _sim(seed=13), _sim(seed=13)
    pd.testing.assert_frame_equal(a.dataset.frame, b.dataset.frame)
    f = a.dataset.frame
    assert (f["spend"].isna() == (f["buy"] == 0)).all()
    assert a.truth.values == {"ATE": 1.5, "ATT": 1.5}
    full = _sim(VALID.model_copy(update={"outcome_observed": "all"}), seed=13)
    assert not full.dataset.frame["spend"].isna().any() and full.dataset.roles.selected is None


def test_att_truth_quadrature_against_a_large_draw():
    c = TreatmentCoefficients(intercept=-0.5, x1=0.7, x2=0.3, u=0.6)
    rng = np.random.default_rng(14)
    x1, x2, u = rng.standard_normal((3, 2_000_000))
    t = rng.random(x1.size) < 1 / (1 + np.exp(-(c.intercept + c.x1 * x1 + c.x2 * x2 + c.u * u)))
    mc = x1[t].mean()
    mcse = x1[t].std() / np.sqrt(t.sum())
    assert abs(treated_mean_of_x1(c) - mc) < 4 * mcse


def test_conformance():
    from causalkit.testing import check_dgp, check_estimator, check_inference
    from causalkit_plugins.estimators.selection.ols import OLS

    check_dgp(HeckmanSelection)
    data = _sim(VALID.model_copy(update={"n": 600}), seed=15).dataset
    for cls in (Heckman, OLS):
        fit = check_estimator(cls, data)
        check_inference(Analytic, fit)
