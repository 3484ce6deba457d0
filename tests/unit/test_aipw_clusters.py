"""AIPW with the ``cluster`` role: whole clusters per fold, clustered analytic SE, cluster refits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from causalkit.contracts import Dataset, Roles
from causalkit.errors import DataError
from causalkit_plugins.estimators.aipw.estimator import AIPW, AIPWParams
from causalkit_plugins.estimators.aipw.folds import cluster_folds
from causalkit_plugins.inference.basic import Analytic
from causalkit_plugins.inference.bootstrap import ClusterDraws

G, SIZE = 40, 8


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    n = G * SIZE
    cluster = np.repeat(rng.permutation(G), SIZE)  # labels not in row order
    shared = rng.standard_normal((3, G))[:, cluster]
    x1 = 0.7 * shared[0] + 0.7 * rng.standard_normal(n)
    x2 = 0.7 * shared[1] + 0.7 * rng.standard_normal(n)
    d = (rng.random(n) < 1 / (1 + np.exp(-(0.4 * x1 - 0.3 * x2)))).astype(np.int64)
    y = 1.0 + x1 + 0.5 * x2 + 0.8 * d + shared[2] + rng.standard_normal(n)
    return pd.DataFrame({"x1": x1, "x2": x2, "d": d, "y": y, "g": [f"c{c}" for c in cluster]})


def _roles(**extra) -> Roles:
    return Roles(outcome="y", treatment="d", covariates=("x1", "x2"), cluster="g", **extra)


def test_drawn_folds_hold_whole_clusters_and_balance_rows(frame):
    cf = AIPW().crossfit(Dataset(frame, _roles()), np.random.default_rng(1))
    folds = cf.nuisances.folds
    assert (pd.Series(folds).groupby(frame["g"]).nunique() == 1).all()
    sizes = np.bincount(folds)
    assert sizes.size == 5 and sizes.max() - sizes.min() <= 2 * SIZE


def test_cluster_folds_deal_pure_arms_separately():
    codes = np.repeat(np.arange(12), 3)
    d = codes % 2 == 0  # six all-treated, six all-control clusters
    folds = cluster_folds(codes, d, 3, np.random.default_rng(0))
    for arm in (True, False):
        assert np.array_equal(np.bincount(folds[d == arm], minlength=3), [6, 6, 6])
    with pytest.raises(DataError, match="at least folds=5 clusters"):
        cluster_folds(np.repeat(np.arange(4), 3), np.ones(12, bool), 5, np.random.default_rng(0))


def test_clustered_analytic_se_equals_cluster_summed_scores(frame):
    r"""CR factor :math:`G/(G-1)` on the cluster sums of the AIPW influence values.

    With the given folds, nuisances are refitted here with scikit-learn (standardised logit
    with ``C=1`` clipped to [0.01, 0.99], per-arm OLS); :math:`\varphi_i` is the ATE score,
    :math:`\hat\theta=\bar\varphi`, and
    :math:`se = n^{-1}\{G/(G-1)\sum_g(\sum_{i\in g}\varphi_i-\hat\theta)^2\}^{1/2}`.
    """
    df = frame.assign(fold=cluster_folds(
        pd.factorize(frame["g"], sort=True)[0], frame["d"].to_numpy(bool), 4,
        np.random.default_rng(3),
    ))  # fmt: skip
    fit = AIPW(AIPWParams(outcome_model="linear")).fit(
        Dataset(df, _roles(fold="fold")), np.random.default_rng(0)
    )
    X, d, y = df[["x1", "x2"]].to_numpy(), df["d"].to_numpy(), df["y"].to_numpy()
    m, g0, g1 = np.empty(len(df)), np.empty(len(df)), np.empty(len(df))
    for k in range(4):
        test, train = df["fold"].to_numpy() == k, df["fold"].to_numpy() != k
        ps = make_pipeline(StandardScaler(), LogisticRegression()).fit(X[train], d[train])
        m[test] = np.clip(ps.predict_proba(X[test])[:, 1], 0.01, 0.99)
        for arm, out in ((0, g0), (1, g1)):
            rows = train & (d == arm)
            out[test] = LinearRegression().fit(X[rows], y[rows]).predict(X[test])
    phi = g1 - g0 + d * (y - g1) / m - (1 - d) * (y - g0) / (1 - m)
    theta = phi.mean()
    sums = pd.Series(phi - theta).groupby(df["g"]).sum().to_numpy()
    se = np.sqrt(G / (G - 1) * np.sum(sums**2)) / len(df)
    assert fit.diagnostics["n_clusters"] == G and fit.clusters is not None
    np.testing.assert_allclose(fit.estimate, theta, rtol=1e-8)
    np.testing.assert_allclose(Analytic().infer(fit, np.random.default_rng(0)).se[0], se, rtol=1e-8)


def test_fold_role_splitting_a_cluster_is_refused(frame):
    df = frame.assign(fold=np.arange(len(frame)) % 3)
    with pytest.raises(DataError, match="every cluster of 'g' in one fold"):
        AIPW().fit(Dataset(df, _roles(fold="fold")), np.random.default_rng(0))


def test_batch_refit_of_a_cluster_draw_equals_the_per_draw_refit(frame):
    """Whole-cluster draws through both refit paths (unpenalised logit: both solve exactly)."""
    params = AIPWParams(propensity_model="logit_unpenalized")
    fit = AIPW(params).fit(Dataset(frame, _roles()), np.random.default_rng(2))
    rs = fit.resampler
    assert rs is not None and rs.refit is not None and rs.refit_batch is not None
    assert fit.clusters is not None
    draws = ClusterDraws.of(fit.clusters, None)
    idx = [draws.indices(np.random.default_rng(s)) for s in (7, 8)]
    batch = np.asarray(rs.refit_batch(idx))
    for b, one in enumerate(idx):
        np.testing.assert_allclose(batch[b], rs.refit(one), rtol=1e-7, atol=1e-9)


def test_sensitivity_limits_are_clustered(frame):
    r"""Lower CI bound :math:`\theta - C S - z_{0.95}\,s_-` with the clustered
    :math:`s_-^2 = \frac{G}{G-1} n^{-2}\sum_g(\sum_{i\in g}\psi_{\theta,i} - C\psi_{S,i})^2`,
    :math:`C = \sqrt{c_Y c_D/(1-c_D)}` (:math:`\rho = 1`); with :math:`c_Y = c_D = 0` it is the
    clustered analytic interval's one-sided limit.
    """
    data = Dataset(frame, _roles())
    for cf_y, cf_d in ((0.0, 0.0), (0.03, 0.05)):
        params = AIPWParams(sensitivity={"cf_y": cf_y, "cf_d": cf_d})
        fit = AIPW(params).fit(data, np.random.default_rng(0))
        cf = AIPW(params).crossfit(data, np.random.default_rng(0))  # the fit's first draws
        el = AIPW._elements(cf)
        strength = np.sqrt(cf_y * cf_d / (1 - cf_d))
        sums = pd.Series(cf.influence - strength * el.psi_max_bias).groupby(frame["g"]).sum()
        s_lower = np.sqrt(G / (G - 1) * np.sum(sums.to_numpy() ** 2)) / len(frame)
        want = cf.estimate - strength * el.max_bias - norm.ppf(0.95) * s_lower
        np.testing.assert_allclose(fit.diagnostics["sensitivity.ci_lower"], want, rtol=1e-10)
        if cf_y == 0:  # no confounding: the clustered analytic SE
            se = Analytic().infer(fit, np.random.default_rng(0)).se[0]
            np.testing.assert_allclose(s_lower, se, rtol=1e-10)
