r"""Sampling weights in ``naive``, ``itt``, ``ols`` and ``ipw`` against independent computations.

The dataset is built here: 800 units with log-normal weights (log-SD about 0.94)
that depend on the covariate ``x1`` which drives the effect, 25 of them zero, and 40 clusters
of unequal size (8 to 32) for the clustered case.

- ``naive``/``itt`` with ``weight`` equal the treatment coefficient of statsmodels' WLS of
  :math:`y` on :math:`(1, d)` with ``cov_type="HC2"``: the weighted difference of means and
  its sandwich with leverage :math:`h_i = w_i/W_g` (statsmodels computes :math:`h` from the
  whitened design, :math:`w_ix_i^\top(X^\top WX)^{-1}x_i`, which is that). HC2 is the
  unweighted contrast's finite-sample convention: with equal weights it is the Welch
  variance :math:`s_1^2/n_1 + s_0^2/n_0` ``naive`` reports without weights. With ``cluster``
  too they equal WLS with ``cov_type="cluster"`` (CR1, :math:`K = 2`, :math:`N` counting
  the zero-weight rows as statsmodels does).
- ``ols`` (per-arm weighted regression adjustment): its estimate is the treatment
  coefficient of statsmodels' WLS of the interacted regression
  :math:`y \sim d + \tilde x + d\tilde x` with the covariates centred at their *weighted*
  mean; that regression's SE treats the mean as fixed, so the SE (HC0, as without weights:
  Stata's ``teffects ra`` robust convention) is checked against the weighted stacked
  M-estimation sandwich written here: :math:`\theta = (\beta_1, \beta_0, \tau)`,
  :math:`m_i = w_i\,(d_iz_i(y_i - z_i^\top\beta_1),\ (1-d_i)z_i(y_i - z_i^\top\beta_0),\
  z_i^\top\beta_1 - z_i^\top\beta_0 - \tau)`, :math:`A = n^{-1}\sum_i\partial m_i/\partial\theta`
  (complex-step derivatives, by ``test_cluster_statsmodels``'s helper),
  :math:`B = \sum_i m_im_i^\top` (or the cluster sums, with
  the CR1 factor :math:`\frac{G}{G-1}\frac{N-1}{N-2p}`), :math:`\widehat V = n^{-2}A^{-1}BA^{-\top}`.
- ``ipw`` (Hajek, ATE, logit score) with weights: derivation of the direct computation.
  The population's arm means solve :math:`E[D(Y-\mu_1)/e(X)] = 0` and
  :math:`E[(1-D)(Y-\mu_0)/(1-e(X))] = 0`, and the score :math:`\gamma` solves
  :math:`E[(D - e(X))Z] = 0`. A sample drawn with probability :math:`\pi_i` and weights
  :math:`w_i = 1/\pi_i` estimates each population expectation by the weighted sample sum,
  so :math:`\hat\theta = (\hat\gamma, \hat\mu_1, \hat\mu_0)` solves
  :math:`\sum_i w_i\,m_i(\theta) = 0` with
  :math:`m_i = ((d_i - e_i)z_i,\ d_i(y_i-\mu_1)/e_i,\ (1-d_i)(y_i-\mu_0)/(1-e_i))`:
  :math:`\hat\gamma` is statsmodels' ``GLM(Binomial, freq_weights=w)`` (the weighted logit's
  score equations are the same whatever the weights mean), and
  :math:`\hat\mu_1 = \sum_i w_id_iy_i/\hat e_i \big/ \sum_i w_id_i/\hat e_i` (likewise
  :math:`\hat\mu_0`). Its variance is the M-estimation sandwich of :math:`w_im_i` (rows
  independent given the weights, as for ``naive`` and ``ols``):
  :math:`n^{-2}A^{-1}BA^{-\top}`, :math:`A = n^{-1}\sum_i w_i\partial m_i/\partial\theta`,
  :math:`B = \sum_i w_i^2m_im_i^\top`, and :math:`\widehat V(\hat\tau) = c^\top\widehat Vc`,
  :math:`c = (0, \dots, 0, 1, -1)`. ``ipw`` reaches it through the weighted influence values
  (no finite-sample factor, as without weights).

Tolerance 1e-8 relative throughout (exact up to rounding; agreement is about 1e-12).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy.special import expit

import causalkit as ck

from .test_cluster_statsmodels import _sandwich

pytestmark = pytest.mark.reference

RTOL = 1e-8


@pytest.fixture(scope="module")
def weighted() -> pd.DataFrame:
    rng = np.random.default_rng(20261130)
    sizes = rng.integers(8, 33, size=40)
    g = np.repeat(np.arange(sizes.size), sizes)[:800]
    n = 800
    u = rng.standard_normal(sizes.size)
    x1, x2, e = rng.standard_normal((3, n))
    d = (rng.random(n) < expit(-0.2 + 0.6 * x1 - 0.4 * x2)).astype(int)
    y = 1 + d * (1 + 0.5 * x1) + x1 + 0.5 * x2 + 0.7 * u[g] + e
    w = np.exp(-0.8 * x1 + 0.5 * rng.standard_normal(n))
    w[rng.choice(n, 25, replace=False)] = 0.0  # zero weights are allowed
    return pd.DataFrame({"y": y, "d": d, "x1": x1, "x2": x2, "w": w, "g": g})


def _arrays(df: pd.DataFrame):
    z = np.column_stack([np.ones(len(df)), df[["x1", "x2"]].to_numpy()])
    return z, df["d"].to_numpy(float), df["y"].to_numpy(), df["w"].to_numpy()


@pytest.mark.parametrize("estimator", ["naive", "itt"])
def test_weighted_difference_equals_statsmodels_wls_hc2(weighted, estimator):
    df = weighted
    role = "treatment" if estimator == "naive" else "assignment"
    out = ck.fit(df, estimator, outcome="y", weight="w", **{role: "d"}).to_dict()
    wls = sm.WLS(df["y"], sm.add_constant(df["d"].astype(float)), weights=df["w"]).fit(
        cov_type="HC2"
    )
    assert out["estimate"] == pytest.approx(wls.params["d"], rel=RTOL)
    assert out["se"] == pytest.approx(wls.bse["d"], rel=RTOL)
    assert out["n_zero_weight"] == 25
    plain = ck.fit(df, estimator, outcome="y", **{role: "d"}).to_dict()
    assert abs(out["estimate"] - plain["estimate"]) > 2 * plain["se"]  # the weights matter


def test_equal_weights_give_the_unweighted_welch_contrast(weighted):
    df = weighted.assign(w=3.0)
    out = ck.fit(df, "naive", outcome="y", treatment="d", weight="w").to_dict()
    plain = ck.fit(df, "naive", outcome="y", treatment="d").to_dict()
    assert out["estimate"] == pytest.approx(plain["estimate"], rel=1e-12)
    assert out["se"] == pytest.approx(plain["se"], rel=1e-12)


def test_weighted_clustered_difference_equals_statsmodels_wls_cluster(weighted):
    df = weighted
    out = ck.fit(df, "naive", outcome="y", treatment="d", weight="w", cluster="g").to_dict()
    wls = sm.WLS(df["y"], sm.add_constant(df["d"].astype(float)), weights=df["w"]).fit(
        cov_type="cluster", cov_kwds={"groups": df["g"].to_numpy()}
    )
    assert out["estimate"] == pytest.approx(wls.params["d"], rel=RTOL)
    assert out["se"] == pytest.approx(wls.bse["d"], rel=RTOL)


@pytest.mark.parametrize("clustered", [False, True])
def test_weighted_ols_equals_wls_and_stacked_sandwich(weighted, clustered):
    df = weighted
    extra = {"cluster": "g"} if clustered else {}
    res = ck.fit(
        df, "ols", outcome="y", treatment="d", covariates=["x1", "x2"], weight="w", **extra
    )
    z, d, y, w = _arrays(df)
    n, p = z.shape

    centred = z[:, 1:] - np.average(z[:, 1:], axis=0, weights=w)
    interacted = np.column_stack([np.ones(n), d, centred, d[:, None] * centred])
    coef = sm.WLS(y, interacted, weights=w).fit().params
    assert res.to_dict()["estimate"] == pytest.approx(coef[1], rel=RTOL)

    b1 = sm.WLS(y[d == 1], z[d == 1], weights=w[d == 1]).fit().params
    b0 = sm.WLS(y[d == 0], z[d == 0], weights=w[d == 0]).fit().params
    tau = float(np.average(z @ (b1 - b0), weights=w))

    def moments(theta):
        t1, t0, t = theta[:p], theta[p : 2 * p], theta[-1]
        return w[:, None] * np.column_stack([
            (d * (y - z @ t1))[:, None] * z,
            ((1 - d) * (y - z @ t0))[:, None] * z,
            z @ t1 - z @ t0 - t,
        ])  # fmt: skip

    groups = df["g"].to_numpy() if clustered else np.arange(n)  # a row: its own cluster
    g = df["g"].nunique()
    factor = g / (g - 1) * (n - 1) / (n - 2 * p) if clustered else 1.0
    cov = _sandwich(moments, np.r_[b1, b0, tau], groups, factor)
    assert res.to_dict()["estimate"] == pytest.approx(tau, rel=RTOL)
    assert res.to_dict()["se"] == pytest.approx(np.sqrt(cov[-1, -1]), rel=RTOL)


def test_weighted_ipw_equals_direct_computation(weighted):
    df = weighted
    res = ck.fit(df, "ipw", outcome="y", treatment="d", covariates=["x1", "x2"], weight="w")
    z, d, y, w = _arrays(df)
    glm = sm.GLM(d, z, family=sm.families.Binomial(), freq_weights=w).fit(tol=1e-13)
    gamma = glm.params
    e = expit(z @ gamma)
    mu1 = np.sum(w * d * y / e) / np.sum(w * d / e)
    mu0 = np.sum(w * (1 - d) * y / (1 - e)) / np.sum(w * (1 - d) / (1 - e))

    def moments(theta):
        k = z.shape[1]
        ee = 1 / (1 + np.exp(-(z @ theta[:k])))
        return w[:, None] * np.column_stack([
            (d - ee)[:, None] * z,
            d * (y - theta[k]) / ee,
            (1 - d) * (y - theta[k + 1]) / (1 - ee),
        ])  # fmt: skip

    cov = _sandwich(moments, np.r_[gamma, mu1, mu0], np.arange(len(df)), 1.0)
    contrast = np.r_[np.zeros(z.shape[1]), 1.0, -1.0]
    out = res.to_dict()
    assert out["estimate"] == pytest.approx(mu1 - mu0, rel=RTOL)
    assert out["se"] == pytest.approx(np.sqrt(contrast @ cov @ contrast), rel=RTOL)


def test_weighted_bootstrap_carries_the_weights(weighted):
    """Every refit is weighted: the bootstrap SE is near the weighted analytic SE, not the plain one."""
    df = weighted
    kw = dict(outcome="y", treatment="d", covariates=["x1", "x2"])
    boot = ck.fit(
        df, "ols", inference={"name": "bootstrap", "n_boot": 399}, seed=2, weight="w", **kw
    )
    analytic = ck.fit(df, "ols", weight="w", **kw).to_dict()
    out = boot.to_dict()
    assert out["estimate"] == analytic["estimate"]
    assert out["se"] == pytest.approx(analytic["se"], rel=0.15)
    plain = ck.fit(df, "ols", **kw).to_dict()
    assert abs(out["se"] - analytic["se"]) < abs(plain["se"] - analytic["se"])
