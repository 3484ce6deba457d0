"""Probit maximum likelihood by Newton's method with its scores, Hessian and covariance."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from causalkit.inputs import separating_columns

__all__ = ["ProbitFit", "fit_probit", "log_cdf", "mills", "mills_derivative"]

_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)


def log_cdf(a: np.ndarray) -> np.ndarray:
    r""":math:`\log\Phi(a)`: ``log(ndtr)`` (3x faster) except in the far left tail (``log_ndtr``)."""
    from scipy.special import log_ndtr, ndtr

    with np.errstate(divide="ignore"):  # log(0) below -38 is replaced from the tail branch
        out = np.log(ndtr(a))
    tail = a < -20.0
    if tail.any():
        out[tail] = log_ndtr(a[tail])
    return out


def mills(a: np.ndarray, logcdf: np.ndarray | None = None) -> np.ndarray:
    r"""Inverse Mills ratio :math:`m(a) = \phi(a)/\Phi(a)`, stable for very negative ``a``.

    ``logcdf`` may pass :math:`\log\Phi(a)` when already computed.
    """
    logcdf = log_cdf(a) if logcdf is None else logcdf
    return np.exp(-0.5 * a * a - _LOG_SQRT_2PI - logcdf)


def mills_derivative(a: np.ndarray, m: np.ndarray | None = None) -> np.ndarray:
    r""":math:`m'(a) = -m(a)\,(a + m(a))`, the second derivative of :math:`\log\Phi(a)`."""
    m = mills(a) if m is None else m
    return -m * (a + m)


@dataclass(frozen=True)
class ProbitFit:
    r"""A fitted probit :math:`P(d=1\mid w) = \Phi(w^\top\gamma)`.

    Attributes
    ----------
    coef : ndarray, shape (k,)
        :math:`\hat\gamma`.
    vcov : ndarray, shape (k, k)
        Inverse of the observed information :math:`-H^{-1}` (as R's ``sampleSelection::probit``
        and statsmodels' ``Probit``; the expected information differs in finite samples).
    hessian : ndarray, shape (k, k)
        :math:`H = \sum_i \partial^2 \ell_i / \partial\gamma\partial\gamma^\top` at :math:`\hat\gamma`.
    scores : ndarray, shape (n, k)
        Per-unit scores :math:`s_i = \partial \ell_i/\partial\gamma`. The influence function of
        :math:`\hat\gamma` is :math:`n\,(-H)^{-1} s_i`, i.e. ``scores @ vcov * n``.
    index : ndarray, shape (n,)
        Linear index :math:`w_i^\top\hat\gamma`.
    loglik : float
        Maximised log-likelihood.
    converged : bool
        Whether the Newton step fell below ``tol``.
    n_iter : int
        Newton iterations taken.
    separation : bool
        True when some fitted probability is within 1e-10 of 0 or 1 (quasi-complete
        separation) or a regressor alone predicts ``d`` (complete separation): estimates
        and SEs are not trustworthy.
    """

    coef: np.ndarray
    vcov: np.ndarray
    hessian: np.ndarray
    scores: np.ndarray
    index: np.ndarray
    loglik: float
    converged: bool
    n_iter: int
    separation: bool

    @property
    def probability(self) -> np.ndarray:
        """Fitted :math:`\\Phi(w_i^\\top\\hat\\gamma)`."""
        from scipy.special import ndtr

        return ndtr(self.index)


def fit_probit(
    X: np.ndarray,
    d: np.ndarray,
    *,
    max_iter: int = 100,
    tol: float = 1e-10,
    start: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> ProbitFit:
    r"""Fit a probit by Newton-Raphson with step halving.

    Parameters
    ----------
    X : ndarray, shape (n, k)
        Regressors (include a column of ones for an intercept).
    d : ndarray, shape (n,)
        0/1 (or boolean) outcome.
    max_iter : int
        Maximum Newton iterations.
    tol : float
        Convergence when the largest absolute Newton step is below ``tol``.
    start : ndarray, optional
        Starting coefficients (zeros by default).
    weights : ndarray, shape (n,), optional
        Non-negative sampling weights :math:`w_i`: the weighted (pseudo-)likelihood
        :math:`\sum_i w_i\log\Phi(a_i)` is maximised, and ``scores``, ``hessian`` and
        ``loglik`` are the weighted ones (so ``scores @ vcov * n`` is the influence of the
        weighted estimator; ``vcov`` is then not a valid covariance, use the sandwich).

    Returns
    -------
    ProbitFit

    Notes
    -----
    With :math:`q_i = 2d_i - 1` and :math:`a_i = q_i w_i^\top\gamma`,
    :math:`\ell = \sum_i \log\Phi(a_i)`, score :math:`s_i = q_i m(a_i) w_i` and Hessian
    :math:`H = -\sum_i m(a_i)(a_i + m(a_i))\, w_i w_i^\top` where :math:`m = \phi/\Phi`. The
    log-likelihood is globally concave, so Newton with step halving converges whenever the
    MLE exists (no separation).
    """
    from scipy.special import ndtr

    X = np.asarray(X, dtype=np.float64)
    q = 2.0 * np.asarray(d, dtype=np.float64) - 1.0
    k = X.shape[1]
    # multiplying by the scalar 1.0 is exact: without weights every value is bit-identical
    sw = 1.0 if weights is None else np.asarray(weights, dtype=np.float64)
    coef = np.zeros(k) if start is None else np.asarray(start, dtype=np.float64).copy()
    index = X @ coef
    a = q * index
    lc = log_cdf(a)
    ll = float((lc * sw).sum())
    converged = False
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007
        m = mills(a, lc)
        grad = X.T @ (q * m * sw)
        info = X.T @ (X * (-mills_derivative(a, m) * sw)[:, None])
        try:
            step = np.linalg.solve(info, grad)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(info, grad, rcond=None)[0]
        t = 1.0
        dindex = X @ step
        while True:
            index_new = index + t * dindex
            a_new = q * index_new
            lc_new = log_cdf(a_new)
            ll_new = float((lc_new * sw).sum())
            if ll_new >= ll - 1e-12 * abs(ll) or t < 1e-8:
                break
            t *= 0.5
        coef = coef + t * step
        index, a, lc, ll = index_new, a_new, lc_new, ll_new
        if np.max(np.abs(t * step)) < tol:
            converged = True
            break
    m = mills(a, lc)
    scores = X * (q * m * sw)[:, None]
    hessian = -(X.T @ (X * (-mills_derivative(a, m) * sw)[:, None]))
    try:
        vcov = np.linalg.inv(-hessian)
    except np.linalg.LinAlgError:
        vcov = np.full((k, k), np.nan)
    p = ndtr(index)
    separation = bool(np.any((p < 1e-10) | (p > 1 - 1e-10))) or bool(separating_columns(X, q > 0))
    return ProbitFit(coef, vcov, hessian, scores, index, ll, converged, it, separation)
