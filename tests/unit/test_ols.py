"""Unit tests of the ``ols`` regression-adjustment estimator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from causalkit.contracts import Capability, Dataset, Estimand, Roles
from causalkit.errors import DataError, EstimationError
from causalkit_plugins.estimators.selection.ols import OLS, OLSParams, regression_adjustment
from causalkit_plugins.inference.basic import Analytic


def _frame(n: int = 500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.standard_normal((2, n))
    d = (rng.random(n) < 1 / (1 + np.exp(-0.7 * x1))).astype(int)
    y = 1.0 + x1 - 0.5 * x2 + d * (2.0 + 1.5 * x1) + rng.standard_normal(n)
    return pd.DataFrame({"y": y, "d": d, "x1": x1, "x2": x2})


ROLES = Roles(outcome="y", treatment="d", covariates=("x1", "x2"))


def test_without_covariates_it_is_the_difference_in_means_with_hc0_variance():
    f = _frame()
    y, d = f["y"].to_numpy(), f["d"].to_numpy().astype(bool)
    res = regression_adjustment(y, d, np.empty((len(f), 0)), Estimand.ATE)
    assert res.estimate == pytest.approx(y[d].mean() - y[~d].mean(), rel=1e-12)
    var = y[d].var() / d.sum() + y[~d].var() / (~d).sum()  # ddof=0: the sandwich's HC0
    assert np.sum(res.influence**2) / len(f) ** 2 == pytest.approx(var, rel=1e-10)


@pytest.mark.parametrize("estimand", ["ate", "att"])
def test_estimates_match_a_direct_computation(estimand):
    f = _frame()
    Z = np.column_stack([np.ones(len(f)), f[["x1", "x2"]].to_numpy()])
    d = f["d"].to_numpy().astype(bool)
    y = f["y"].to_numpy()
    b1 = np.linalg.lstsq(Z[d], y[d], rcond=None)[0]
    b0 = np.linalg.lstsq(Z[~d], y[~d], rcond=None)[0]
    rows = slice(None) if estimand == "ate" else d
    expected = float(np.mean(Z[rows] @ (b1 - b0)))
    fit = OLS(OLSParams(estimand=estimand)).fit(Dataset(f, ROLES), np.random.default_rng(0))
    assert fit.estimand is (Estimand.ATE if estimand == "ate" else Estimand.ATT)
    assert fit.estimate == pytest.approx(expected, rel=1e-12)
    assert fit.influence.shape == (fit.n, 1) and abs(np.mean(fit.influence)) < 1e-10
    assert fit.resampler.refit(np.arange(fit.n)) == pytest.approx([fit.estimate], rel=1e-12)
    if estimand == "ate":  # observational ATE: the whole sample is resampled
        assert fit.resampler.strata is None
    else:
        assert np.array_equal(fit.resampler.strata, d.astype(np.int64))


def test_influence_variance_matches_the_stacked_sandwich():
    """n^-2 sum psi^2 equals the (tau, tau) entry of G^-1 S G^-T / n of the stacked system."""
    f = _frame(300, seed=1)
    n = len(f)
    Z = np.column_stack([np.ones(n), f[["x1", "x2"]].to_numpy()])
    d = f["d"].to_numpy().astype(float)
    y = f["y"].to_numpy()
    res = regression_adjustment(y, d.astype(bool), Z[:, 1:], Estimand.ATE)
    k = Z.shape[1]
    e1, e0 = y - Z @ res.coef_treated, y - Z @ res.coef_control
    g = np.column_stack([(d * e1)[:, None] * Z, ((1 - d) * e0)[:, None] * Z,
                         Z @ (res.coef_treated - res.coef_control) - res.estimate])  # fmt: skip
    G = np.zeros((2 * k + 1, 2 * k + 1))
    G[:k, :k] = -(Z * d[:, None]).T @ Z / n
    G[k : 2 * k, k : 2 * k] = -(Z * (1 - d)[:, None]).T @ Z / n
    G[2 * k, :k] = Z.mean(axis=0)
    G[2 * k, k : 2 * k] = -Z.mean(axis=0)
    G[2 * k, 2 * k] = -1.0
    Ginv = np.linalg.inv(G)
    V = Ginv @ (g.T @ g / n) @ Ginv.T / n
    assert np.sum(res.influence**2) / n**2 == pytest.approx(V[-1, -1], rel=1e-10)


def test_selected_role_restricts_to_selected_units_with_a_warning():
    f = _frame().assign(s=lambda t: (t["x2"] > -1).astype(int))
    f.loc[f["s"] == 0, "y"] = np.nan
    roles = ROLES.model_copy(update={"selected": "s"})
    fit = OLS().fit(Dataset(f, roles), np.random.default_rng(0))
    kept = f[f["s"] == 1]
    direct = OLS().fit(Dataset(kept, ROLES), np.random.default_rng(0))
    assert fit.estimate == direct.estimate and fit.n == len(kept)
    assert fit.diagnostics["n_unselected_dropped"] == int((f["s"] == 0).sum())
    assert any("unselected units dropped" in w for w in fit.warnings)
    assert Analytic().infer(fit, np.random.default_rng(0)).se > 0


def test_errors():
    f = _frame(40)
    with pytest.raises(EstimationError, match="rank deficient"):
        OLS().fit(Dataset(f.assign(x3=f["x1"]), ROLES.model_copy(update={"covariates": ("x1", "x3")})),
                  np.random.default_rng(0))  # fmt: skip
    with pytest.raises(DataError, match="roles.treatment"):
        OLS().fit(Dataset(f.assign(d=f["d"] + 1), ROLES), np.random.default_rng(0))
    with pytest.raises(DataError, match="roles.outcome"):
        OLS().fit(Dataset(f.assign(y=np.nan), ROLES), np.random.default_rng(0))
    with pytest.raises(ValueError, match="one of ATE, ATT"):
        OLSParams(estimand="atc")


def test_estimand_spelling_and_capabilities():
    assert OLSParams(estimand="att").estimand is Estimand.ATT
    assert OLSParams(estimand="ATT") == OLSParams(estimand=Estimand.ATT)
    assert OLS.capabilities(OLSParams()) == {Capability.INFLUENCE, Capability.RESAMPLE}
    fit = OLS().fit(Dataset(_frame(), ROLES), np.random.default_rng(0))
    assert fit.capabilities == OLS.capabilities(OLSParams())
