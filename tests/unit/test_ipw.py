"""Unit tests of ``ipw``: stacked-EE influence vs a numerical sandwich, weights, trimming, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy.special import expit, ndtr
from scipy.stats import norm

from causalkit.contracts import Capability, Dataset, Estimand, Roles
from causalkit.errors import ConfigError, DataError
from causalkit.testing import check_estimator
from causalkit_plugins.dgps.selection_on_observables import (
    SelectionOnObservables,
    SelectionOnObservablesParams,
)
from causalkit_plugins.estimators.selection.ipw import IPW, IPWParams
from causalkit_plugins.inference.basic import Analytic
from causalkit_plugins.inference.bootstrap import Bootstrap, BootstrapParams


@pytest.fixture(scope="module")
def sim():
    return SelectionOnObservables(SelectionOnObservablesParams(n=600)).simulate(
        np.random.default_rng(3), None
    )


def _stacked_se(
    frame: pd.DataFrame, estimand: str, model: str, normalized: bool, clip: float
) -> tuple[float, float]:
    """Estimate and sandwich SE of the stacked system (propensity score, two arm means) by
    solving the equations with statsmodels' fit and differentiating them numerically."""
    Z = np.column_stack([np.ones(len(frame)), frame[["x1", "x2"]].to_numpy()])
    d = frame["treat"].to_numpy().astype(float)
    y = frame["y"].to_numpy()
    glm = (sm.Logit if model == "logit" else sm.Probit)(d, Z).fit(disp=0, tol=1e-12, maxiter=200)
    F = expit if model == "logit" else ndtr

    def arms(e):
        e = np.clip(e, clip, 1 - clip) if clip > 0 else e
        a = {"ate": 1 / e, "att": np.ones_like(e), "atc": (1 - e) / e}[estimand]
        b = {"ate": 1 / (1 - e), "att": e / (1 - e), "atc": np.ones_like(e)}[estimand]
        r = {"ate": np.ones_like(e), "att": d, "atc": 1 - d}[estimand]
        return d * a, (1 - d) * b, r

    def ee(theta):
        g, mu1, mu0 = theta[:-2], theta[-2], theta[-1]
        eta = Z @ g
        e = F(eta)
        if model == "logit":
            s = Z * (d - e)[:, None]
        else:
            s = Z * ((d - e) * norm.pdf(eta) / (e * (1 - e)))[:, None]
        w1, w0, r = arms(e)
        if normalized:
            m1, m0 = w1 * (y - mu1), w0 * (y - mu0)
        else:
            m1, m0 = w1 * y - mu1 * r, w0 * y - mu0 * r
        return np.column_stack([s, m1, m0])

    w1, w0, r = arms(F(Z @ glm.params))
    if normalized:
        mu1, mu0 = w1 @ y / w1.sum(), w0 @ y / w0.sum()
    else:
        mu1, mu0 = w1 @ y / r.sum(), w0 @ y / r.sum()
    theta = np.concatenate([glm.params, [mu1, mu0]])
    n, k = len(y), theta.size
    A = np.empty((k, k))
    for j in range(k):
        h = 1e-6 * max(1.0, abs(theta[j]))
        up, dn = theta.copy(), theta.copy()
        up[j] += h
        dn[j] -= h
        A[:, j] = (ee(up).mean(0) - ee(dn).mean(0)) / (2 * h)
    G = ee(theta)
    B = G.T @ G / n
    Ainv = np.linalg.inv(A)
    V = Ainv @ B @ Ainv.T / n
    c = np.zeros(k)
    c[-2], c[-1] = 1.0, -1.0
    return mu1 - mu0, float(np.sqrt(c @ V @ c))


@pytest.mark.parametrize("estimand", ["ate", "att", "atc"])
@pytest.mark.parametrize("model", ["logit", "probit"])
@pytest.mark.parametrize("weights", ["normalized", "unnormalized"])
def test_influence_equals_numerical_stacked_sandwich(sim, estimand, model, weights):
    params = IPWParams(estimand=estimand, propensity_model=model, weights=weights)
    fit = IPW(params).fit(sim.dataset, np.random.default_rng(0))
    se = Analytic().infer(fit, np.random.default_rng(0)).se
    est_ref, se_ref = _stacked_se(sim.dataset.frame, estimand, model, weights == "normalized", 0.0)
    assert fit.estimate == pytest.approx(est_ref, rel=1e-8)
    assert se == pytest.approx(se_ref, rel=1e-5)
    assert abs(fit.influence.mean()) < 1e-8 * np.abs(fit.influence).mean()


def test_clipped_scores_have_zero_derivative(sim):
    fit = IPW(IPWParams(clip=0.2)).fit(sim.dataset, np.random.default_rng(0))
    se = Analytic().infer(fit, np.random.default_rng(0)).se
    est_ref, se_ref = _stacked_se(sim.dataset.frame, "ate", "logit", True, 0.2)
    assert fit.diagnostics["n_clipped"] > 0
    assert fit.estimate == pytest.approx(est_ref, rel=1e-8)
    assert se == pytest.approx(se_ref, rel=1e-5)


def test_trimming_drops_units_outside_the_band(sim):
    fit = IPW(IPWParams(trim=0.2)).fit(sim.dataset, np.random.default_rng(0))
    score = fit.tables["overlap"]["score"].to_numpy()
    outside = (score < 0.2) | (score > 0.8)
    assert fit.diagnostics["n_trimmed"] == int(outside.sum()) > 0
    frame = sim.dataset.frame
    keep = ~outside
    d = frame["treat"].to_numpy() == 1
    y = frame["y"].to_numpy()
    w1 = 1 / score
    w0 = 1 / (1 - score)
    manual = np.average(y[keep & d], weights=w1[keep & d]) - np.average(
        y[keep & ~d], weights=w0[keep & ~d]
    )
    assert fit.estimate == pytest.approx(manual, rel=1e-12)
    assert any("trimmed" in w for w in fit.warnings)


def test_overlap_and_balance_outputs(sim):
    fit = IPW(IPWParams(estimand="att")).fit(sim.dataset, np.random.default_rng(0))
    assert list(fit.tables["overlap"].columns) == ["score", "treated"]
    bal = fit.tables["balance"]
    assert list(bal.index) == ["x1", "x2"]
    # a correct logit propensity model balances the covariates much better after weighting
    assert fit.diagnostics["max_abs_smd_after"] < 0.5 * fit.diagnostics["max_abs_smd_before"]
    for key in (
        "ps_min_treated",
        "ps_max_control",
        "share_ps_near_0",
        "ess_treated",
        "ess_control",
        "e_value",
        "outcome_sd",
    ):
        assert key in fit.diagnostics
    assert "level" not in IPWParams.model_fields  # the confidence level belongs to inference
    assert fit.diagnostics["ess_treated"] == pytest.approx(
        fit.diagnostics["n_treated"]
    )  # ATT: unit weights


def test_conformance_and_bootstrap(sim):
    fit = check_estimator(IPW, sim.dataset)
    assert fit.estimand is Estimand.ATE and fit.influence.shape == (fit.n, 1)
    assert IPW.capabilities(IPWParams()) == {Capability.INFLUENCE, Capability.RESAMPLE}
    assert fit.capabilities == IPW.capabilities(IPWParams())
    assert fit.resampler.refit(np.arange(fit.n)) == pytest.approx([fit.estimate], rel=1e-12)
    boot = Bootstrap(BootstrapParams(n_boot=200)).infer(fit, np.random.default_rng(1))
    analytic = Analytic().infer(fit, np.random.default_rng(1))
    assert boot.se == pytest.approx(analytic.se, rel=0.25)


def test_selected_role_restricts_the_sample(sim):
    frame = sim.dataset.frame.assign(sel=(np.arange(600) % 3 > 0).astype(int))
    roles = sim.dataset.roles.model_copy(update={"selected": "sel"})
    fit = IPW().fit(Dataset(frame, roles), np.random.default_rng(0))
    ref = IPW().fit(Dataset(frame[frame.sel == 1], sim.dataset.roles), np.random.default_rng(0))
    assert fit.estimate == ref.estimate and fit.n == 400
    assert fit.diagnostics["n_unselected_dropped"] == 200


def test_bad_input_is_one_line_error(sim):
    with pytest.raises(ConfigError, match="clip/trim"):
        IPWParams(clip=0.01, trim=0.05)
    with pytest.raises(ValueError, match="one of ATE, ATT, ATC"):
        IPWParams(estimand="cace")
    assert IPWParams(estimand="att").estimand is Estimand.ATT
    frame = sim.dataset.frame.assign(treat=sim.dataset.frame["treat"] * 2)
    with pytest.raises(DataError, match="roles.treatment"):
        IPW().fit(Dataset(frame, sim.dataset.roles), np.random.default_rng(0))
    with pytest.raises(DataError, match="roles.covariates"):
        IPW().fit(
            Dataset(sim.dataset.frame, Roles(outcome="y", treatment="treat")),
            np.random.default_rng(0),
        )


def test_separation_is_reported():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(200)
    frame = pd.DataFrame({"x": x, "t": (x > 0).astype(int), "y": x + rng.standard_normal(200)})
    fit = IPW().fit(Dataset(frame, Roles(outcome="y", treatment="t", covariates=("x",))), rng)
    assert fit.diagnostics["propensity_separation"] is True
    assert any("separation" in w for w in fit.warnings)
