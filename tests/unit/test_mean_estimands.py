"""The potential-outcome means MEAN1 = E[Y(1)] and MEAN0 = E[Y(0)] of ols, ipw and aipw, against hand formulas.

Each estimator is checked on one Kang & Schafer (2007) sample (z seen by both models, so
nothing is misspecified and the hand formulas are the paper's): the estimate against the
formula computed here with numpy/statsmodels, the influence values against the sandwich of
the stacked estimating equations differentiated numerically (ols, ipw) or against the score
(aipw, whose influence SE ignores the nuisances by design), and the identity
MEAN1 - MEAN0 = ATE for both the estimate and the influence values.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import statsmodels.api as sm
from scipy.special import expit

from causalkit.contracts import Dataset, Estimand, Fit
from causalkit.errors import ConfigError
from causalkit.testing import check_dgp, check_estimator
from causalkit_plugins.dgps.kang_schafer import (
    MEAN,
    X_COLUMNS,
    Z_COLUMNS,
    KangSchafer,
    KangSchaferParams,
)
from causalkit_plugins.estimators.aipw.estimator import AIPW
from causalkit_plugins.estimators.aipw.params import AIPWParams
from causalkit_plugins.estimators.selection.estimands import resampling_strata
from causalkit_plugins.estimators.selection.ipw import IPW, IPWParams
from causalkit_plugins.estimators.selection.ols import OLS, OLSParams
from causalkit_plugins.estimators.selection.psm import PSMParams

AIPW_KS = {
    "folds": 1,
    "propensity_model": "logit_unpenalized",
    "outcome_model": "linear",
    "clip": 0.0,
}


@pytest.fixture(scope="module")
def data() -> Dataset:
    return KangSchafer(KangSchaferParams(n=400)).simulate(np.random.default_rng(11)).dataset


def _arrays(data: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    f = data.frame
    Z = np.column_stack([np.ones(len(f)), f[list(Z_COLUMNS)].to_numpy()])
    return f["y"].to_numpy(), f["t"].to_numpy().astype(float), Z


def _sandwich_influence(
    equations: Callable[[np.ndarray], np.ndarray], theta: np.ndarray, last: int = -1
) -> np.ndarray:
    """Influence values of parameter ``last`` of the stacked system ``sum_i g_i(theta) = 0``.

    ``equations(theta)`` returns the n x k matrix of the summands; the Jacobian is taken by
    central differences (step 1e-6 relative), so agreement is to about 1e-6.
    """
    g = equations(theta)
    n, k = g.shape
    A = np.empty((k, k))
    for j in range(k):
        h = 1e-6 * max(1.0, abs(theta[j]))
        up, down = theta.copy(), theta.copy()
        up[j] += h
        down[j] -= h
        A[:, j] = (equations(up).mean(axis=0) - equations(down).mean(axis=0)) / (2 * h)
    return -(g @ np.linalg.inv(A).T)[:, last]


def _fit(estimator: OLS | IPW | AIPW, data: Dataset) -> Fit:
    return estimator.fit(data, np.random.default_rng(0))


@pytest.mark.parametrize("estimand", ["MEAN1", "MEAN0"])
def test_ols_mean_is_the_arm_fit_averaged_over_everyone(data: Dataset, estimand: str) -> None:
    y, d, Z = _arrays(data)
    arm = d == (1.0 if estimand == "MEAN1" else 0.0)
    beta = np.linalg.lstsq(Z[arm], y[arm], rcond=None)[0]
    hand = float((Z @ beta).mean())
    fit = _fit(OLS(OLSParams(estimand=estimand.lower())), data)
    assert fit.estimand is Estimand(estimand)
    assert fit.estimates[0] == pytest.approx(hand, rel=1e-12)

    def equations(theta: np.ndarray) -> np.ndarray:
        b, mu = theta[:-1], theta[-1]
        return np.column_stack([Z * (arm * (y - Z @ b))[:, None], Z @ b - mu])

    psi = _sandwich_influence(equations, np.append(beta, hand))
    np.testing.assert_allclose(fit.influence[:, 0], psi, rtol=0, atol=1e-5 * np.abs(psi).max())


@pytest.mark.parametrize("normalized", [False, True])
def test_ipw_mean1_is_horvitz_thompson_or_hajek(data: Dataset, normalized: bool) -> None:
    y, d, Z = _arrays(data)
    gamma = sm.Logit(d, Z).fit(disp=0, tol=1e-12, maxiter=200).params
    e = expit(Z @ gamma)
    hand = float((d * y / e).sum() / ((d / e).sum() if normalized else len(y)))
    weights = "normalized" if normalized else "unnormalized"
    fit = _fit(IPW(IPWParams(estimand="mean1", weights=weights)), data)
    assert fit.estimates[0] == pytest.approx(hand, rel=1e-9)
    assert "e_value" not in fit.diagnostics  # an E-value is for an effect

    def equations(theta: np.ndarray) -> np.ndarray:
        g, mu = theta[:-1], theta[-1]
        p = expit(Z @ g)
        mean = d / p * (y - mu) if normalized else d * y / p - mu
        return np.column_stack([Z * (d - p)[:, None], mean])

    psi = _sandwich_influence(equations, np.append(gamma, hand))
    np.testing.assert_allclose(fit.influence[:, 0], psi, rtol=0, atol=1e-5 * np.abs(psi).max())


def test_aipw_mean1_is_kang_schafer_bc_ols(data: Dataset) -> None:
    y, d, Z = _arrays(data)
    e = expit(Z @ sm.Logit(d, Z).fit(disp=0, tol=1e-12, maxiter=200).params)
    g1 = Z @ np.linalg.lstsq(Z[d == 1], y[d == 1], rcond=None)[0]
    score = g1 + d * (y - g1) / e
    fit = _fit(AIPW(AIPWParams(estimand="mean1", **AIPW_KS)), data)
    # sklearn's unpenalised lbfgs logit against statsmodels' Newton: scores agree to ~1e-7
    assert fit.estimates[0] == pytest.approx(score.mean(), rel=1e-8)
    np.testing.assert_allclose(fit.influence[:, 0], score - score.mean(), rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "make",
    [
        lambda e: OLS(OLSParams(estimand=e)),
        lambda e: IPW(IPWParams(estimand=e, weights="unnormalized")),
        lambda e: IPW(IPWParams(estimand=e)),
        lambda e: AIPW(AIPWParams(estimand=e, **AIPW_KS)),
    ],
    ids=["ols", "ipw_ht", "ipw_hajek", "aipw"],
)
def test_the_two_means_make_the_ate(data: Dataset, make: Callable[[str], OLS | IPW | AIPW]) -> None:
    one, zero, ate = (_fit(make(e), data) for e in ("MEAN1", "MEAN0", "ATE"))
    assert one.estimates[0] - zero.estimates[0] == pytest.approx(ate.estimates[0], abs=1e-9)
    np.testing.assert_allclose(
        one.influence[:, 0] - zero.influence[:, 0], ate.influence[:, 0], atol=1e-8
    )


def test_means_resample_the_whole_sample() -> None:
    d = np.array([True, False, True])
    assert resampling_strata(Estimand.MEAN1, d) is None
    assert resampling_strata(Estimand.MEAN0, d) is None
    assert resampling_strata(Estimand.ATT, d) is not None


def test_lower_case_and_refusals() -> None:
    assert OLSParams(estimand="mean0").estimand is Estimand.MEAN0
    with pytest.raises(ConfigError, match=r"estimator\.estimand: expected ATE with estimator"):
        OLSParams(estimand="mean1", model="pooled")
    with pytest.raises(
        ConfigError, match=r"estimator\.sensitivity: expected null with a potential"
    ):
        IPWParams(estimand="mean1", sensitivity={"cf_y": 0.1, "cf_d": 0.1})
    with pytest.raises(
        ConfigError, match=r"estimator\.sensitivity: expected null with a potential"
    ):
        AIPWParams(estimand="mean1", sensitivity={"cf_y": 0.1, "cf_d": 0.1})
    with pytest.raises(ConfigError, match=r"estimator\.se_method: expected influence"):
        AIPWParams(estimand="mean0", se_method="stacked", **AIPW_KS)
    with pytest.raises(ValueError, match="ATE, ATT, ATC"):  # matching estimates effects only
        PSMParams(estimand="mean1")


def test_kang_schafer_world() -> None:
    """Truths, roles per scenario, and one set of draws for the four scenarios of a seed."""
    sims = {
        (ps, out): KangSchafer(
            KangSchaferParams(n=50, ps_misspecified=ps, outcome_misspecified=out)
        ).simulate(np.random.default_rng(5))
        for ps in (False, True)
        for out in (False, True)
    }
    base = sims[False, False].dataset.frame
    for (ps, out), s in sims.items():
        assert s.dataset.frame.equals(base)
        assert s.dataset.roles.covariates == (X_COLUMNS if out else Z_COLUMNS)
        assert s.dataset.roles.propensity_covariates == (X_COLUMNS if ps else Z_COLUMNS)
        assert s.truth.for_estimand(Estimand.MEAN1) == ("MEAN1", MEAN)
        assert s.truth.for_estimand(Estimand.ATE) == ("ATE", 0.0)
    z1, z2, z3, z4 = (base[c].to_numpy() for c in Z_COLUMNS)
    np.testing.assert_allclose(base["x1"], np.exp(z1 / 2))
    np.testing.assert_allclose(base["x2"], z2 / (1 + np.exp(z1)) + 10)
    np.testing.assert_allclose(base["x3"], (z1 * z3 / 25 + 0.6) ** 3)
    np.testing.assert_allclose(base["x4"], (z2 + z4 + 20) ** 2)
    assert np.abs(base["y"] - (210 + 27.4 * z1 + 13.7 * (z2 + z3 + z4))).max() < 5  # N(0,1) noise


def test_conformance(data: Dataset) -> None:
    """The world and each estimator with a mean estimand pass causalkit's plugin checks."""
    check_dgp(KangSchafer)
    for cls, params in (
        (OLS, OLSParams(estimand="mean1")),
        (IPW, IPWParams(estimand="mean0", weights="unnormalized")),
        (AIPW, AIPWParams(estimand="mean1", **AIPW_KS)),
    ):
        assert check_estimator(cls, data, params=params).estimand is params.estimand
