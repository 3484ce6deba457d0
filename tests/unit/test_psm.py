"""Unit tests of ``psm``: matchers against brute force, exact strata, variance pieces, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from causalkit.contracts import Capability, Dataset, Estimand, Roles
from causalkit.errors import ConfigError, DataError
from causalkit.evalue import e_value_difference
from causalkit.testing import check_estimator
from causalkit_plugins.dgps.selection_on_observables import (
    SelectionOnObservables,
    SelectionOnObservablesParams,
)
from causalkit_plugins.estimators.selection.psm import PSM, PSMParams
from causalkit_plugins.estimators.selection.psm_match import (
    MatchSpec,
    match_greedy,
    match_with_replacement,
)
from causalkit_plugins.inference.basic import Analytic


@pytest.fixture(scope="module")
def sim():
    return SelectionOnObservables(SelectionOnObservablesParams(n=500)).simulate(
        np.random.default_rng(5), None
    )


def _brute_knn(Qf, Qp, Sf, Sp, spec):
    out = set()
    for i in range(Qf.shape[0]):
        d2 = np.sum((Qp - Qf[i]) ** 2, axis=1)
        kk = min(spec.k, len(d2))
        if spec.ties:
            dist = np.sqrt(d2)
            dk = np.sort(dist)[kk - 1]
            cand = np.flatnonzero(dist <= dk + spec.tol)
        else:
            cand = np.argsort(d2, kind="stable")[:kk]
        for j in cand:
            if spec.caliper is None or np.all(np.abs(Sp[j] - Sf[i]) <= spec.caliper):
                out.add((i, int(j)))
    return out


def _brute_greedy(Qf, Qp, Sf, Sp, spec, order):
    taken = np.zeros(Qp.shape[0], bool)
    out = set()
    for _ in range(spec.k):
        for i in order:
            d2 = np.sum((Qp - Qf[i]) ** 2, axis=1)
            ok = ~taken
            if spec.caliper is not None:
                ok &= np.all(np.abs(Sp - Sf[i]) <= spec.caliper, axis=1)
            if ok.any():
                j = int(np.flatnonzero(ok)[np.argmin(d2[ok])])
                taken[j] = True
                out.add((int(i), j))
    return out


@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("ties", [True, False])
@pytest.mark.parametrize("caliper", [None, 0.15])
def test_matching_with_replacement_equals_brute_force(dim, k, ties, caliper):
    rng = np.random.default_rng(k + 10 * dim)
    # rounded values: many exact ties in distance
    Qf = np.round(rng.standard_normal((60, dim)), 1)
    Qp = np.round(rng.standard_normal((90, dim)), 1)
    spec = MatchSpec(k=k, ties=ties, tol=1e-5, caliper=caliper)
    pairs = match_with_replacement(Qf, Qp, Qf, Qp, spec)
    got = set(zip(pairs.focal.tolist(), pairs.pool.tolist(), strict=True))
    expected = _brute_knn(Qf, Qp, Qf, Qp, spec)
    if ties:
        assert got == expected
    else:  # tie-breaking among equal distances may differ: compare the distances matched
        assert len(got) == len(expected)
        dist = lambda s: sorted(round(float(np.sum((Qf[i] - Qp[j]) ** 2)), 10) for i, j in s)  # noqa: E731
        assert dist(got) == dist(expected)


@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("caliper", [None, 0.1])
def test_greedy_without_replacement_equals_brute_force(dim, k, caliper):
    rng = np.random.default_rng(dim + 7 * k)
    Qf = rng.standard_normal((40, dim))
    Qp = rng.standard_normal((100, dim)) * 1.2
    order = rng.permutation(40)
    spec = MatchSpec(k=k, ties=False, tol=0.0, caliper=caliper)
    pairs = match_greedy(Qf, Qp, Qf, Qp, spec, order)
    got = set(zip(pairs.focal.tolist(), pairs.pool.tolist(), strict=True))
    assert got == _brute_greedy(Qf, Qp, Qf, Qp, spec, order)
    assert len(set(pairs.pool.tolist())) == pairs.pool.size  # each control used once


def test_ai_variance_with_one_variance_match_is_abadie_imbens(sim):
    """Var.calc=1: sigma^2_i = (Y_i - Y_nn(i))^2 / 2 (AI 2006, J=1), sample variance formula."""
    fit = PSM(
        PSMParams(estimand="att", match_on="covariates", var_matches=1, variance="sample")
    ).fit(sim.dataset, np.random.default_rng(0))
    f = sim.dataset.frame
    X = f[["x1", "x2"]].to_numpy()
    S = (X - X.mean(0)) / X.std(0, ddof=1)
    d, y = f["treat"].to_numpy() == 1, f["y"].to_numpy()
    t, c = np.flatnonzero(d), np.flatnonzero(~d)
    K = np.zeros(len(y))
    tau = []
    for i in t:
        j = c[np.argmin(np.sum((S[c] - S[i]) ** 2, 1))]
        K[j] += 1
        tau.append(y[i] - y[j])
    sig2 = np.empty(len(y))
    for i in range(len(y)):
        same = np.flatnonzero(d == d[i])
        same = same[same != i]
        j = same[np.argmin(np.sum((S[same] - S[i]) ** 2, 1))]
        sig2[i] = 0.5 * (y[i] - y[j]) ** 2
    var = (np.sum(sig2[t]) + np.sum(K[c] ** 2 * sig2[c])) / len(t) ** 2
    assert fit.estimate == pytest.approx(np.mean(tau), rel=1e-12)
    assert fit.model_se[0] == pytest.approx(np.sqrt(var), rel=1e-10)


def test_exact_strata_are_respected(sim):
    frame = sim.dataset.frame.assign(
        g=(sim.dataset.frame["x2"] > 1.2).astype(int) + (sim.dataset.frame["x2"] > 1.9)
    )
    fit = PSM(PSMParams(exact=("g",))).fit(
        Dataset(frame, sim.dataset.roles), np.random.default_rng(0)
    )
    g, d = frame["g"].to_numpy(), frame["treat"].to_numpy() == 1
    no_pool = sum(int((g[d] == s).sum()) for s in np.unique(g) if not ((g == s) & ~d).any())
    assert fit.diagnostics["n_unmatched"] == no_pool
    with pytest.raises(DataError, match="estimator.exact"):
        PSM(PSMParams(exact=("nope",))).fit(sim.dataset, np.random.default_rng(0))


def test_caliper_drops_and_warns(sim):
    fit = PSM(PSMParams(caliper=0.001, ties=False)).fit(sim.dataset, np.random.default_rng(0))
    assert fit.diagnostics["n_unmatched"] > 0
    assert (
        fit.diagnostics["n_matched"] + fit.diagnostics["n_unmatched"]
        == fit.diagnostics["n_treated"]
    )
    assert any("dropped" in w for w in fit.warnings)


def test_greedy_order_random_uses_the_generator(sim):
    est = PSM(PSMParams(replace=False, order="random"))
    a = est.fit(sim.dataset, np.random.default_rng(1)).estimate
    assert a == est.fit(sim.dataset, np.random.default_rng(1)).estimate
    fits = {est.fit(sim.dataset, np.random.default_rng(s)).estimate for s in range(6)}
    assert len(fits) > 1
    fit = PSM(PSMParams(replace=False)).fit(sim.dataset, np.random.default_rng(0))
    assert fit.diagnostics["max_times_used"] == 1.0
    assert any("with replacement" in w for w in fit.warnings)


def test_outputs_and_conformance(sim):
    fit = check_estimator(PSM, sim.dataset)
    assert fit.estimand is Estimand.ATT and fit.influence is None and fit.model_se[0] > 0
    assert fit.resampler is None  # the bootstrap is invalid for matching (Abadie & Imbens 2008)
    assert PSM.capabilities(PSMParams()) == {Capability.MODEL_SE} == fit.capabilities
    assert list(fit.tables["overlap"].columns) == ["score", "treated"]
    assert list(fit.tables["balance"].index) == ["x1", "x2", "propensity_score"]
    ros = fit.tables["rosenbaum"]
    assert list(ros["gamma"]) == [1.0, 1.5, 2.0, 2.5, 3.0]
    assert np.all(np.diff(ros["p_upper"]) >= 0)
    assert set(ros["test"]) == {"m_test"}  # with replacement: matched sets, not pairs
    assert fit.diagnostics["ps_estimation_ignored_in_se"] is False
    assert not any("Abadie & Imbens 2016" in w for w in fit.warnings)
    known = PSM(PSMParams(se="ai2006")).fit(sim.dataset, np.random.default_rng(0))
    assert known.diagnostics["ps_estimation_ignored_in_se"] is True
    assert any("Abadie & Imbens 2016" in w for w in known.warnings)
    assert known.diagnostics["se_score_adjustment"] == 0.0
    assert known.model_se[0] ** 2 + fit.diagnostics["se_score_adjustment"] == pytest.approx(
        fit.model_se[0] ** 2, rel=1e-12
    )
    pairs = PSM(PSMParams(replace=False)).fit(sim.dataset, np.random.default_rng(0))
    assert set(pairs.tables["rosenbaum"]["test"]) == {"wilcoxon_signed_rank"}
    assert fit.diagnostics["ess_treated"] == pytest.approx(fit.diagnostics["n_treated"])
    assert fit.diagnostics["e_value"] == e_value_difference(
        fit.estimate, fit.diagnostics["outcome_sd"]
    )
    inf = Analytic().infer(fit, np.random.default_rng(0))
    assert np.array_equal(inf.se, fit.model_se)


@pytest.mark.parametrize("estimand", ["ate", "atc"])
def test_estimands_and_logit_distance(sim, estimand):
    fit = PSM(PSMParams(estimand=estimand, match_on="logit", propensity_model="probit")).fit(
        sim.dataset, np.random.default_rng(0)
    )
    assert fit.estimand is (Estimand.ATE if estimand == "ate" else Estimand.ATC)
    n = fit.diagnostics["n_treated"] + fit.diagnostics["n_control"]
    assert fit.diagnostics["n_matched"] == (
        n if estimand == "ate" else fit.diagnostics["n_control"]
    )


def _brute_adjustment(x, y, d, Z, e, f, estimand, tau, L):
    """AI (2016) adjustment by explicit loops over units (independent of the vectorised code)."""
    n = y.size
    cov = {True: np.zeros((n, Z.shape[1])), False: np.zeros((n, Z.shape[1]))}
    mu = {True: np.zeros(n), False: np.zeros(n)}
    for i in range(n):
        for arm in (True, False):
            pool = np.flatnonzero(d == arm)
            dist = np.abs(x[pool] - x[i])
            h = pool[dist <= np.sort(dist)[L - 1] + 1e-12]
            zc, yc = Z[h] - Z[h].mean(0), y[h] - y[h].mean()
            cov[arm][i] = zc.T @ yc / (h.size - 1)
            mu[arm][i] = y[h].mean()
    V = np.linalg.inv((Z * (f * f / (e * (1 - e)))[:, None]).T @ Z)
    if estimand == "ATE":
        c = np.mean(f[:, None] * (cov[True] / e[:, None] + cov[False] / (1 - e)[:, None]), 0)
        return -c @ V @ c
    if estimand == "ATT":
        n1 = d.sum()
        dtau = (Z * (f * (mu[True] - mu[False] - tau))[:, None]).sum(0) / n1
        c = dtau + (f[:, None] * (cov[True] + (e / (1 - e))[:, None] * cov[False])).sum(0) / n1
        dtau += (f[:, None] * (cov[True] - cov[False])).sum(0) / n1  # cov(X, tau(X) | p)
    else:
        n0 = (~d).sum()
        dtau = (Z * (f * (mu[False] - mu[True] + tau))[:, None]).sum(0) / n0
        c = dtau + (f[:, None] * (cov[False] + ((1 - e) / e)[:, None] * cov[True])).sum(0) / n0
        dtau += (f[:, None] * (cov[False] - cov[True])).sum(0) / n0
    return -c @ V @ c + dtau @ V @ dtau


@pytest.mark.parametrize("estimand", ["ATE", "ATT", "ATC"])
def test_score_adjustment_equals_explicit_formula(sim, estimand):
    fit = PSM(PSMParams(estimand=estimand, var_matches=2)).fit(
        sim.dataset, np.random.default_rng(0)
    )
    f = sim.dataset.frame
    X = f[["x1", "x2"]].to_numpy()
    d, y = f["treat"].to_numpy() == 1, f["y"].to_numpy()
    e = fit.tables["overlap"]["score"].to_numpy()
    Z = np.column_stack([np.ones(len(y)), X])
    expected = _brute_adjustment(e, y, d, Z, e, e * (1 - e), estimand, fit.estimate, L=3)
    assert fit.diagnostics["se_score_adjustment"] == pytest.approx(expected, rel=1e-8)
    if estimand == "ATE":
        assert expected < 0


def test_bad_configuration_is_one_line_error(sim):
    with pytest.raises(ConfigError, match="estimator.variance"):
        PSMParams(variance="sample")  # the AI (2016) adjustment is for the population effect
    PSMParams(variance="sample", se="ai2006")
    PSMParams(variance="sample", match_on="covariates")
    with pytest.raises(ConfigError, match="estimator.replace"):
        PSMParams(estimand="ate", replace=False)
    with pytest.raises(ConfigError, match="estimator.gammas"):
        PSMParams(gammas=(0.5,))
    with pytest.raises(ConfigError, match="estimator.distance"):
        PSMParams(distance="mahalanobis")  # the score is one column: no metric to choose
    with pytest.raises(ConfigError, match="estimator.order"):
        PSMParams(order="random")  # the order only matters for greedy matching
    with pytest.raises(ValueError, match="one of ATE, ATT, ATC"):
        PSMParams(estimand="itt")
    assert PSMParams(estimand="atc").estimand is Estimand.ATC
    frame = pd.DataFrame({"y": [1.0, 2, 3], "t": [1, 0, 0]})
    with pytest.raises(DataError, match="roles.covariates"):
        PSM(PSMParams(match_on="covariates")).fit(
            Dataset(frame, Roles(outcome="y", treatment="t", propensity_covariates=("y",))),
            np.random.default_rng(0),
        )
