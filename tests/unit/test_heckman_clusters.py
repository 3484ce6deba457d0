"""``heckman`` with the ``cluster`` and ``weight`` roles, the weighted probit, and the clustered DGP.

The sandwich itself is checked against an independent computation in
``tests/reference/test_heckman_cluster_sandwich.py``; here: what the roles change and what
they must leave bit for bit as it was.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from causalkit.contracts import Dataset, Roles
from causalkit.errors import ConfigError, DataError
from causalkit.inputs import checked_fit
from causalkit.registry import default_registry
from causalkit_plugins.dgps.heckman_selection import (
    HeckmanClusterParams,
    HeckmanSelection,
    HeckmanSelectionParams,
    SelectionCoefficients,
    TreatmentCoefficients,
)
from causalkit_plugins.estimators.selection.heckman import Heckman, HeckmanParams
from causalkit_plugins.estimators.selection.probit import fit_probit
from causalkit_plugins.inference.basic import Analytic
from causalkit_plugins.inference.bootstrap import Bootstrap, BootstrapParams
from causalkit_plugins.inference.multiplier import MultiplierBootstrap, MultiplierParams

VALID = dict(treatment=TreatmentCoefficients(u=0.0), selection=SelectionCoefficients(link="probit"))
METHODS = ("twostep", "ml")


def _frame(n: int = 800, seed: int = 3) -> pd.DataFrame:
    frame = (
        HeckmanSelection(HeckmanSelectionParams(n=n, **VALID))
        .simulate(np.random.default_rng(seed))
        .dataset.frame
    )
    rng = np.random.default_rng(seed + 1)
    return frame.assign(
        unit=np.arange(n),
        cl=np.arange(n) // 8,
        w=rng.uniform(0.2, 3.0, n),
        w_int=rng.integers(1, 4, n),
    )


def _fit(frame: pd.DataFrame, method: str = "twostep", **roles: str):
    base = Roles(
        outcome="spend",
        treatment="treat",
        covariates=("x1", "x2"),
        selected="buy",
        selection_covariates=("x1", "x2", "treat", "z"),
    )
    data = Dataset(frame, base.model_copy(update=roles))
    return checked_fit(Heckman(HeckmanParams(method=method)), data, np.random.default_rng(0))


def test_declares_both_roles():
    assert Heckman.handles_roles == frozenset({"cluster", "weight"})


@pytest.mark.parametrize("method", METHODS)
def test_without_roles_the_model_se_is_kept(method):
    """Analytic inference keeps the model SE bit for bit; the influence values are the robust
    sandwich's (those of the fit with unit weights, whose analytic SE is that sandwich), so the
    multiplier bootstrap pairs and its SE is that sandwich's up to Monte Carlo error (2,000
    draws: relative MC error about 1/sqrt(2 * 2000) = 1.6%, so 6% is 4 MC SEs)."""
    frame = _frame()
    fit = _fit(frame, method)
    assert fit.clusters is None and fit.weights is None
    assert "vcov_type" not in fit.diagnostics and "n_clusters" not in fit.diagnostics
    assert Analytic().infer(fit, np.random.default_rng(0)).se == pytest.approx(
        fit.model_se, rel=0, abs=0
    )
    ones = _fit(frame.assign(w=1.0), method, weight="w")
    assert fit.influence is not None and ones.influence is not None
    np.testing.assert_allclose(fit.influence, ones.influence, rtol=1e-9, atol=1e-9)
    assert "multiplier" in default_registry().pairings("heckman")
    robust = Analytic().infer(ones, np.random.default_rng(0)).se
    boot = MultiplierBootstrap(MultiplierParams(n_boot=2000)).infer(fit, np.random.default_rng(1))
    np.testing.assert_allclose(boot.se, robust, rtol=0.06)


@pytest.mark.parametrize("method", METHODS)
def test_singleton_clusters_are_the_robust_sandwich_times_the_factor(method):
    """One cluster per unit: CR1 with G = N is N/(N-K) (two-step, K = 5: intercept, treat, x1, x2
    and lambda) or N/(N-1) (ML)."""
    frame = _frame()
    n = len(frame)
    robust = _fit(frame, method, weight="w")
    single = _fit(frame, method, weight="w", cluster="unit")
    assert robust.diagnostics["vcov_type"] == "robust"
    assert single.diagnostics["vcov_type"] == "cluster"
    assert single.estimates == pytest.approx(robust.estimates, rel=0, abs=0)
    factor = n / (n - 5) if method == "twostep" else n / (n - 1)
    se_r, se_s = (Analytic().infer(f, np.random.default_rng(0)).se for f in (robust, single))
    np.testing.assert_allclose(se_s, np.sqrt(factor) * se_r, rtol=1e-12)
    for name in ("intercept", "x1", "lambda", "sel.z"):  # the coefficient table too
        assert single.diagnostics[f"se.{name}"] == pytest.approx(
            np.sqrt(factor) * robust.diagnostics[f"se.{name}"], rel=1e-12
        )


@pytest.mark.parametrize("method", METHODS)
def test_integer_weights_equal_repeated_rows(method):
    """Frequency weights: the weighted fit is the fit on rows repeated w times (estimates to 1e-7)."""
    frame = _frame()
    weighted = _fit(frame, method, weight="w_int")
    repeated = _fit(frame.loc[frame.index.repeat(frame["w_int"])].reset_index(drop=True), method)
    np.testing.assert_allclose(weighted.estimates, repeated.estimates, rtol=1e-7)
    np.testing.assert_allclose(weighted.diagnostics["rho"], repeated.diagnostics["rho"], rtol=1e-7)


@pytest.mark.parametrize("method", METHODS)
def test_zero_weights_drop_units_and_unit_weights_change_nothing(method):
    frame = _frame()
    ones = _fit(frame.assign(w=1.0), method, weight="w")
    plain = _fit(frame, method)
    np.testing.assert_allclose(ones.estimates, plain.estimates, rtol=1e-9)
    keep = frame["unit"] % 5 != 0
    zeroed = _fit(frame.assign(w=np.where(keep, frame["w"], 0.0)), method, weight="w")
    dropped = _fit(frame[keep].reset_index(drop=True), method, weight="w")
    np.testing.assert_allclose(zeroed.estimates, dropped.estimates, rtol=1e-8)
    np.testing.assert_allclose(
        Analytic().infer(zeroed, np.random.default_rng(0)).se,
        Analytic().infer(dropped, np.random.default_rng(0)).se,
        rtol=1e-7,
    )
    assert zeroed.diagnostics["n_zero_weight"] == int((~keep).sum())


def test_weighted_probit_is_additive():
    """Unit weights reproduce the unweighted probit bit for bit; weights scale scores and Hessian."""
    rng = np.random.default_rng(0)
    X = np.column_stack([np.ones(400), rng.standard_normal((400, 2))])
    d = X @ [0.1, 0.8, -0.4] + rng.standard_normal(400) > 0
    plain, ones = fit_probit(X, d), fit_probit(X, d, weights=np.ones(400))
    for a, b in ((plain.coef, ones.coef), (plain.scores, ones.scores), (plain.vcov, ones.vcov)):
        assert np.array_equal(a, b)
    w = rng.integers(1, 4, 400)
    weighted = fit_probit(X, d, weights=w.astype(float))
    repeated = fit_probit(np.repeat(X, w, axis=0), np.repeat(d, w))
    np.testing.assert_allclose(weighted.coef, repeated.coef, rtol=1e-10)
    np.testing.assert_allclose(weighted.hessian, repeated.hessian, rtol=1e-10)


def test_few_clusters_warn_and_one_cluster_is_an_error():
    frame = _frame()
    few = _fit(frame.assign(c=frame["unit"] % 12), cluster="c")
    assert few.diagnostics["n_clusters"] == 12
    assert any("only 12 clusters" in w for w in few.warnings)
    with pytest.raises(DataError, match="roles.cluster") as err:
        _fit(frame.assign(c=1), cluster="c")
    assert "\n" not in str(err.value)


def test_unselected_units_count_in_the_clusters():
    """Every unit (selected or not) is analysed: the clusters are read from all rows."""
    frame = _frame()
    fit = _fit(frame, cluster="cl")
    assert fit.clusters is not None and fit.clusters.codes.shape == (len(frame),)
    assert fit.diagnostics["n_clusters"] == 100
    assert fit.clusters.regressors == 5  # intercept, treat, x1, x2 and lambda


@pytest.mark.parametrize("method", METHODS)
def test_cluster_bootstrap_refits_with_the_weights(method):
    frame = _frame(400)
    fit = _fit(frame, method, weight="w", cluster="cl")
    assert fit.resampler is not None
    np.testing.assert_allclose(fit.resampler.refit(np.arange(len(frame))), fit.estimates, rtol=1e-8)
    out = Bootstrap(BootstrapParams(n_boot=40)).infer(fit, np.random.default_rng(1))
    assert np.all(np.isfinite(out.se)) and np.all(out.se > 0)


def test_dgp_without_clusters_keeps_its_draws_and_hash():
    """Pinned: the frame of the HEAD before the cluster parameter existed (sha256 of its values)."""
    p = HeckmanSelectionParams(n=500, **VALID)
    frame = HeckmanSelection(p).simulate(np.random.default_rng(1)).dataset.frame
    digest = hashlib.sha256(np.ascontiguousarray(frame.to_numpy(np.float64)).tobytes())
    assert digest.hexdigest() == "3e59e1f49457a703ebc7b678144455b176fcdb883601da03a0acfbcf3ed58773"
    assert "cluster" not in p.model_dump()


def test_clustered_dgp_roles_marginals_and_errors():
    """Exposure stays Bernoulli(1/2) user by user but is shared within clusters.

    2,000 clusters of 10: without ``exposure_icc`` the cluster means of the exposure have SD
    0.19 (covariates shared), with 0.5 about 0.32 (three seeds each, measured); the overall
    rate's SD is then at most 0.32/sqrt(2000) = 0.007, so 0.03 is four SDs.
    """
    sds = []
    for share in (0.0, 0.5):
        c = HeckmanClusterParams(n_clusters=2000, icc=0.5, x_icc=0.6, exposure_icc=share)
        sim = HeckmanSelection(HeckmanSelectionParams(n=20000, cluster=c, **VALID)).simulate(
            np.random.default_rng(2)
        )
        f = sim.dataset.frame
        assert sim.dataset.roles.cluster == "cluster" and f["cluster"].nunique() == 2000
        assert abs(f["treat"].mean() - 0.5) < 0.03
        sds.append(f.groupby("cluster")["treat"].mean().std())
    assert sds[0] < 0.22 < 0.28 < sds[1]
    off = HeckmanSelectionParams(
        n=200, cluster=HeckmanClusterParams(n_clusters=20, role=False), **VALID
    )
    assert HeckmanSelection(off).simulate(np.random.default_rng(2)).dataset.roles.cluster is None
    with pytest.raises(ConfigError, match="dgp.cluster.n_clusters"):
        HeckmanSelectionParams(cluster=HeckmanClusterParams(exposure_icc=0.3))
    with pytest.raises(ConfigError, match="dgp.cluster.n_clusters"):
        HeckmanSelectionParams(n=30, cluster=HeckmanClusterParams(n_clusters=31))
