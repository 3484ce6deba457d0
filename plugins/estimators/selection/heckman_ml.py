"""Full-information maximum likelihood of the Heckman selection model, Newton with analytic Hessian."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from causalkit_plugins.estimators.selection.probit import log_cdf, mills, mills_derivative

__all__ = ["MLResult", "heckman_loglik", "heckman_ml", "heckman_scores"]

_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)


@dataclass(frozen=True)
class MLResult:
    r"""Result of the ML fit.

    Attributes
    ----------
    theta : ndarray
        Working parameters :math:`(\gamma, \beta, \log\sigma, \operatorname{atanh}\rho)`.
    vcov_theta : ndarray
        :math:`(-H)^{-1}` in the working parametrisation.
    gamma, beta : ndarray
        Selection and outcome coefficients.
    sigma, rho : float
    vcov : ndarray
        Covariance of :math:`(\gamma, \beta, \sigma, \rho)` by the delta method.
    loglik : float
    converged : bool
        Gradient norm (scaled by the Hessian) below tolerance at a negative-definite Hessian.
    n_iter : int
    grad_norm : float
        :math:`g^\top(-H)^{-1}g` at the solution (Newton decrement squared).
    """

    theta: np.ndarray
    vcov_theta: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray
    sigma: float
    rho: float
    vcov: np.ndarray
    loglik: float
    converged: bool
    n_iter: int
    grad_norm: float


def _split(theta: np.ndarray, q: int, k: int) -> tuple[np.ndarray, np.ndarray, float, float]:
    return theta[:q], theta[q : q + k], float(theta[q + k]), float(theta[q + k + 1])


def heckman_loglik(
    theta: np.ndarray,
    y: np.ndarray,
    X: np.ndarray,
    W: np.ndarray,
    d: np.ndarray,
    derivatives: int = 2,
    weights: np.ndarray | None = None,
) -> tuple[float, np.ndarray | None, np.ndarray | None]:
    r"""Log-likelihood, gradient and Hessian of the selection model.

    Parameters
    ----------
    theta : ndarray
        :math:`(\gamma, \beta, s, t)` with :math:`\sigma = e^s`, :math:`\rho = \tanh t`.
    y, X : ndarray
        Outcome and outcome regressors of the selected units.
    W : ndarray, shape (n, q)
        Selection regressors of all units.
    d : ndarray of bool, shape (n,)
    derivatives : {0, 1, 2, -1}
        How many derivatives to return (others are ``None``); -1 returns the per-unit
        scores in place of the gradient (:func:`heckman_scores`).
    weights : ndarray, shape (n,), optional
        Sampling weights :math:`\omega_i`: the pseudo-log-likelihood
        :math:`\sum_i\omega_i\ell_i` and its derivatives.

    Notes
    -----
    With :math:`\eta = w^\top\gamma`, :math:`r = (y - x^\top\beta)/\sigma`,
    :math:`a = (\eta + \rho r)/\sqrt{1-\rho^2} = \cosh(t)\,\eta + \sinh(t)\,r`:

    .. math::
        \ell_i = (1-d_i)\log\Phi(-\eta_i)
               + d_i\big[\log\Phi(a_i) - s - \tfrac12 r_i^2 - \tfrac12\log 2\pi\big].

    Each term depends on the parameters through the linear indices
    :math:`(\eta, \xi = x^\top\beta)` and the scalars :math:`(s, t)`, so the Hessian is
    :math:`\sum_i J_i^\top \nabla^2\ell_i(\eta,\xi,s,t) J_i` with the 4×4 per-unit Hessian
    written out below (:math:`m = \phi/\Phi`, :math:`m' = -m(a+m)`).
    """
    q, k = W.shape[1], X.shape[1]
    gamma, beta, s, t = _split(theta, q, k)
    ch, sh, es = np.cosh(t), np.sinh(t), np.exp(-s)
    eta_all = W @ gamma
    eta0 = eta_all[~d]
    eta = eta_all[d]
    r = (y - X @ beta) * es
    a = ch * eta + sh * r
    lc0, lc = log_cdf(-eta0), log_cdf(a)
    # weights multiply every per-unit term; the scalar 1.0 without them is exact (bit-identical)
    w0, w1 = (1.0, 1.0) if weights is None else (weights[~d], weights[d])
    ll = float((lc0 * w0).sum() + ((lc - s - 0.5 * r * r - _LOG_SQRT_2PI) * w1).sum())
    if derivatives == 0:
        return ll, None, None
    m0 = mills(-eta0, lc0)
    m = mills(a, lc)
    # first derivatives of a and of -r^2/2 with respect to (eta, xi, s, t)
    a_xi = -sh * es
    a_s = -sh * r
    a_t = sh * eta + ch * r
    g_eta = m * ch
    g_xi = m * a_xi + r * es
    g_s = m * a_s - 1.0 + r * r
    g_t = m * a_t
    Ws, W0 = W[d], W[~d]
    if derivatives == -1:  # per-unit scores (heckman_scores), rows in the order of d
        S = np.zeros((d.shape[0], q + k + 2))
        S[~d, :q] = W0 * (-m0 * w0)[:, None]
        S[d, :q] = Ws * (g_eta * w1)[:, None]
        S[d, q : q + k] = X * (g_xi * w1)[:, None]
        S[d, q + k] = g_s * w1
        S[d, q + k + 1] = g_t * w1
        return ll, S, None
    grad = np.concatenate(
        [
            W0.T @ (-m0 * w0) + Ws.T @ (g_eta * w1),
            X.T @ (g_xi * w1),
            [(g_s * w1).sum()],
            [(g_t * w1).sum()],
        ]
    )
    if derivatives == 1:
        return ll, grad, None
    L2 = mills_derivative(a, m)
    h_ee = L2 * ch * ch
    h_ex = L2 * ch * a_xi
    h_es = L2 * ch * a_s
    h_et = L2 * ch * a_t + m * sh
    h_xx = L2 * a_xi * a_xi - es * es
    h_xs = L2 * a_xi * a_s + m * sh * es - 2.0 * r * es
    h_xt = L2 * a_xi * a_t - m * ch * es
    h_ss = L2 * a_s * a_s + m * sh * r - 2.0 * r * r
    h_st = L2 * a_s * a_t - m * ch * r
    h_tt = L2 * a_t * a_t + m * a
    h0 = mills_derivative(-eta0, m0) * w0
    h_ee, h_ex, h_es, h_et, h_xx, h_xs, h_xt, h_ss, h_st, h_tt = (
        h * w1 for h in (h_ee, h_ex, h_es, h_et, h_xx, h_xs, h_xt, h_ss, h_st, h_tt)
    )
    p = q + k + 2
    H = np.empty((p, p))
    H[:q, :q] = (W0 * h0[:, None]).T @ W0 + (Ws * h_ee[:, None]).T @ Ws
    H[:q, q : q + k] = (Ws * h_ex[:, None]).T @ X
    H[:q, q + k] = Ws.T @ h_es
    H[:q, q + k + 1] = Ws.T @ h_et
    H[q : q + k, q : q + k] = (X * h_xx[:, None]).T @ X
    H[q : q + k, q + k] = X.T @ h_xs
    H[q : q + k, q + k + 1] = X.T @ h_xt
    H[q + k, q + k] = h_ss.sum()
    H[q + k, q + k + 1] = h_st.sum()
    H[q + k + 1, q + k + 1] = h_tt.sum()
    H = np.triu(H) + np.triu(H, 1).T
    return ll, grad, H


def heckman_scores(
    theta: np.ndarray,
    y: np.ndarray,
    X: np.ndarray,
    W: np.ndarray,
    d: np.ndarray,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    r"""Per-unit scores :math:`\omega_i\,\partial\ell_i/\partial\theta` of :func:`heckman_loglik`.

    Returns
    -------
    ndarray, shape (n, q + k + 2)
        One row per unit in the order of ``d`` (unselected units score in :math:`\gamma`
        only); the rows sum to the gradient.
    """
    S = heckman_loglik(theta, y, X, W, np.asarray(d, dtype=bool), -1, weights)[1]
    assert S is not None
    return S


def _loglik_derivatives(
    theta: np.ndarray,
    y: np.ndarray,
    X: np.ndarray,
    W: np.ndarray,
    d: np.ndarray,
    weights: np.ndarray | None = None,
) -> tuple[float, np.ndarray, np.ndarray]:
    """:func:`heckman_loglik` with its gradient and Hessian (both always present)."""
    ll, g, H = heckman_loglik(theta, y, X, W, d, 2, weights)
    assert g is not None and H is not None
    return ll, g, H


def heckman_ml(
    y: np.ndarray,
    X: np.ndarray,
    W: np.ndarray,
    d: np.ndarray,
    start: np.ndarray,
    max_iter: int = 200,
    tol: float = 1e-14,
    weights: np.ndarray | None = None,
) -> MLResult:
    r"""Maximise the selection-model likelihood by damped Newton steps.

    Parameters
    ----------
    y, X, W, d : ndarray
        As in :func:`heckman_loglik`.
    start : ndarray
        Starting working parameters, e.g. from the two-step estimates.
    max_iter : int
    tol : float
        Convergence when the Newton decrement :math:`g^\top(-H)^{-1}g` falls below ``tol``
        at a negative-definite Hessian. It bounds the distance to the optimum in SE units by
        :math:`\sqrt{tol}`, so it must be tiny to pin down the digits of a flat likelihood
        (1e-9 leaves Mroz's ML intercept 1e-6 away from the optimum); when no step improves
        the log-likelihood any more (machine precision) with a decrement below 1e-8 the fit
        also counts as converged.
    weights : ndarray, shape (n,), optional
        Sampling weights: the weighted pseudo-likelihood is maximised (``vcov`` is then not
        a valid covariance: use the sandwich of :func:`heckman_scores`).

    Notes
    -----
    The likelihood is flat in :math:`\rho` near zero when the exclusion restriction is weak,
    so :math:`(\log\sigma, \operatorname{atanh}\rho)` keep the search unconstrained and each
    step is Newton's (Levenberg-damped when the Hessian is not negative definite) with step
    halving; iterations stop only at a stationary point with a negative-definite Hessian.
    Standard errors are :math:`(-H)^{-1}` at the optimum, mapped to :math:`(\sigma,\rho)`
    by the delta method (exact at a stationary point, as the observed information is
    parametrisation-equivariant there).
    """
    d = np.asarray(d, dtype=bool)
    theta = np.asarray(start, dtype=np.float64).copy()
    ll, g, H = _loglik_derivatives(theta, y, X, W, d, weights)
    converged = False
    decrement = np.inf
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007
        negH = -H
        lam = 0.0
        scale = max(float(np.abs(np.diag(negH)).max()), 1.0)
        while True:
            try:
                chol = np.linalg.cholesky(negH + lam * np.eye(negH.shape[0]))
                break
            except np.linalg.LinAlgError:
                lam = max(2.0 * lam, 1e-8 * scale)
        step = np.linalg.solve(chol.T, np.linalg.solve(chol, g))
        decrement = float(g @ step)
        if lam == 0.0 and decrement < tol:
            converged = True
            break
        tstep = 1.0
        while True:
            cand = theta + tstep * step
            ll_new = heckman_loglik(cand, y, X, W, d, 0, weights)[0]
            if np.isfinite(ll_new) and ll_new >= ll - 1e-12 * abs(ll):
                break
            tstep *= 0.5
            if tstep < 1e-10:
                break
        if tstep < 1e-10:
            converged = lam == 0.0 and decrement < 1e-8
            break
        theta = cand
        ll, g, H = _loglik_derivatives(theta, y, X, W, d, weights)
    q, k = W.shape[1], X.shape[1]
    try:
        vcov_theta = np.linalg.inv(-H)
    except np.linalg.LinAlgError:
        vcov_theta = np.full_like(H, np.nan)
    gamma, beta, s, t = _split(theta, q, k)
    sigma, rho = float(np.exp(s)), float(np.tanh(t))
    jac = np.eye(theta.shape[0])
    jac[q + k, q + k] = sigma
    jac[q + k + 1, q + k + 1] = 1.0 - rho**2
    vcov = jac @ vcov_theta @ jac.T
    return MLResult(theta, vcov_theta, gamma, beta, sigma, rho, vcov, ll, converged, it, decrement)
