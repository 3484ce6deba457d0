r"""Clustered standard errors of ``naive``, ``itt``, ``ols`` and ``ipw`` against independent computations.

The dataset is built here: 900 units in 45 clusters of unequal size (5 to 35), with a
cluster shift in the covariate, the treatment probability and the outcome noise, so the
clustered and the unclustered SEs differ by about a fifth.

- ``naive`` and ``itt`` (the difference in means) with ``cluster`` equal the treatment
  coefficient of statsmodels' OLS of :math:`y` on :math:`(1, d)` with
  ``cov_type="cluster"`` (CR1 factor :math:`\frac{G}{G-1}\frac{N-1}{N-K}`, :math:`K=2`):
  estimate and SE to 1e-8 relative (the two computations are algebraically equal; they
  differ by rounding only, ~1e-14).
- ``ols`` (regression adjustment, one regression per arm) is not one statsmodels
  regression: its ATE is the treatment coefficient of the fully interacted regression
  :math:`y \sim d + \tilde x + d\tilde x` with covariates centred at their sample mean
  (checked against statsmodels to 1e-8), but that regression's SE treats the sample mean as
  fixed, while the ATE's influence function also has the term
  :math:`\hat\mu_1(x_i)-\hat\mu_0(x_i)-\hat\tau` of the covariates' sampling. Its clustered
  SE is therefore checked against the stacked M-estimation sandwich computed here
  independently: parameters :math:`\theta = (\beta_1, \beta_0, \tau)`, moment functions
  :math:`m_i = (d_iz_i(y_i - z_i^\top\beta_1),\ (1-d_i)z_i(y_i - z_i^\top\beta_0),\
  z_i^\top\beta_1 - z_i^\top\beta_0 - \tau)`, bread :math:`A = n^{-1}\sum_i\partial m_i/\partial\theta`
  (by complex-step differentiation, exact to rounding), meat
  :math:`B = \sum_g S_gS_g^\top` with :math:`S_g = \sum_{i\in g} m_i(\hat\theta)`, and
  :math:`\widehat V = c\,n^{-2}A^{-1}BA^{-\top}` with the CR1 factor of the interacted
  regression, :math:`c = \frac{G}{G-1}\frac{N-1}{N-2p}` (:math:`p` coefficients per arm).
- ``ipw`` (Hajek, ATE, logit score) against the same construction for the stacked system
  :math:`m_i = ((d_i - e_i)z_i,\ d_i(y_i-\mu_1)/e_i,\ (1-d_i)(y_i-\mu_0)/(1-e_i))`,
  :math:`e_i = \operatorname{expit}(z_i^\top\gamma)`, :math:`\tau = \mu_1-\mu_0`, with the
  factor :math:`c = G/(G-1)` (an M-estimator: no regression defines :math:`K`). The
  propensity coefficients come from statsmodels' ``Logit``.

Tolerance 1e-8 relative throughout: the references are exact up to rounding (complex-step
derivatives have no truncation error) and agree with ours to about 1e-12.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy.special import expit

import causalkit as ck

pytestmark = pytest.mark.reference

RTOL = 1e-8


@pytest.fixture(scope="module")
def clustered() -> pd.DataFrame:
    rng = np.random.default_rng(20261130)
    sizes = rng.integers(5, 36, size=45)
    g = np.repeat(np.arange(sizes.size), sizes)
    n = g.size
    a, u, v = rng.standard_normal((3, sizes.size))
    x1 = a[g] + rng.standard_normal(n)
    x2 = rng.standard_normal(n)
    d = (rng.random(n) < expit(-0.2 + 0.6 * x1 - 0.4 * x2 + 0.5 * v[g])).astype(int)
    y = 1 + d * (1 + 0.5 * x1) + x1 + 0.5 * x2 + u[g] + rng.standard_normal(n)
    labels = np.array([f"c{j:02d}" for j in range(sizes.size)])[g]  # text labels work too
    return pd.DataFrame({"y": y, "d": d, "x1": x1, "x2": x2, "g": labels})


def _sandwich(moments, theta: np.ndarray, groups: np.ndarray, factor: float) -> np.ndarray:
    """Clustered M-estimation covariance, bread by complex-step derivatives."""
    n = groups.size
    h = 1e-30
    bread = np.empty((theta.size, theta.size))
    for j in range(theta.size):
        step = theta.astype(complex)
        step[j] += 1j * h
        bread[:, j] = moments(step).mean(axis=0).imag / h
    m = moments(theta.astype(complex)).real
    codes = pd.factorize(groups)[0]
    sums = np.zeros((codes.max() + 1, theta.size))
    np.add.at(sums, codes, m)
    inv = np.linalg.inv(bread)
    return factor * inv @ (sums.T @ sums) @ inv.T / n**2


def _cr1(groups: np.ndarray, k: int | None) -> float:
    n, g = groups.size, np.unique(groups).size
    return g / (g - 1) * ((n - 1) / (n - k) if k is not None else 1.0)


def _fit_and_arrays(df: pd.DataFrame, estimator: str):
    """The clustered fit, and the design (with intercept), treatment and outcome arrays."""
    res = ck.fit(df, estimator, outcome="y", treatment="d", covariates=["x1", "x2"], cluster="g")
    z = np.column_stack([np.ones(len(df)), df[["x1", "x2"]].to_numpy()])
    return res, z, df["d"].to_numpy(float), df["y"].to_numpy()


@pytest.mark.parametrize("estimator", ["naive", "itt"])
def test_difference_in_means_equals_statsmodels_cluster(clustered, estimator):
    df = clustered
    role = "treatment" if estimator == "naive" else "assignment"
    res = ck.fit(df, estimator, outcome="y", cluster="g", **{role: "d"})
    ols = sm.OLS(df["y"], sm.add_constant(df["d"].astype(float))).fit(
        cov_type="cluster", cov_kwds={"groups": pd.factorize(df["g"])[0]}
    )
    out = res.to_dict()
    assert out["estimate"] == pytest.approx(ols.params["d"], rel=RTOL)
    assert out["se"] == pytest.approx(ols.bse["d"], rel=RTOL)
    assert out["n_clusters"] == 45
    unclustered = ck.fit(df, estimator, outcome="y", **{role: "d"}).to_dict()["se"]
    assert out["se"] > 1.1 * unclustered  # the dataset is clustered enough to matter


def test_ols_cluster_equals_stacked_sandwich(clustered):
    res, z, d, y = _fit_and_arrays(clustered, "ols")
    n = z.shape[0]
    p = z.shape[1]

    centred = z[:, 1:] - z[:, 1:].mean(axis=0)
    interacted = np.column_stack([np.ones(n), d, centred, d[:, None] * centred])
    coef = sm.OLS(y, interacted).fit().params
    assert res.to_dict()["estimate"] == pytest.approx(coef[1], rel=RTOL)

    b1 = np.linalg.lstsq(z[d == 1], y[d == 1], rcond=None)[0]
    b0 = np.linalg.lstsq(z[d == 0], y[d == 0], rcond=None)[0]
    tau = float(np.mean(z @ (b1 - b0)))

    def moments(theta):
        t1, t0, t = theta[:p], theta[p : 2 * p], theta[-1]
        return np.column_stack([
            (d * (y - z @ t1))[:, None] * z,
            ((1 - d) * (y - z @ t0))[:, None] * z,
            z @ t1 - z @ t0 - t,
        ])  # fmt: skip

    groups = clustered["g"].to_numpy()
    cov = _sandwich(moments, np.r_[b1, b0, tau], groups, _cr1(groups, 2 * p))
    assert res.to_dict()["estimate"] == pytest.approx(tau, rel=RTOL)
    assert res.to_dict()["se"] == pytest.approx(np.sqrt(cov[-1, -1]), rel=RTOL)


def test_ipw_cluster_equals_stacked_sandwich(clustered):
    res, z, d, y = _fit_and_arrays(clustered, "ipw")
    gamma = sm.Logit(d, z).fit(disp=0, tol=1e-12).params
    e = expit(z @ gamma)
    mu1 = np.sum(d * y / e) / np.sum(d / e)
    mu0 = np.sum((1 - d) * y / (1 - e)) / np.sum((1 - d) / (1 - e))

    def moments(theta):
        k = z.shape[1]
        ee = 1 / (1 + np.exp(-(z @ theta[:k])))
        return np.column_stack([
            (d - ee)[:, None] * z,
            d * (y - theta[k]) / ee,
            (1 - d) * (y - theta[k + 1]) / (1 - ee),
        ])  # fmt: skip

    groups = clustered["g"].to_numpy()
    cov = _sandwich(moments, np.r_[gamma, mu1, mu0], groups, _cr1(groups, None))
    contrast = np.r_[np.zeros(z.shape[1]), 1.0, -1.0]
    out = res.to_dict()
    assert out["estimate"] == pytest.approx(mu1 - mu0, rel=RTOL)
    assert out["se"] == pytest.approx(np.sqrt(contrast @ cov @ contrast), rel=RTOL)
