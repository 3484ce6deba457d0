"""Heckman's two-step estimator with the Heckman (1979) / Greene (1981) corrected covariance."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from causalkit_plugins.estimators.selection.probit import ProbitFit, fit_probit, mills

__all__ = ["TwoStepResult", "heckman_twostep", "corrected_covariance"]


@dataclass(frozen=True)
class TwoStepResult:
    r"""Result of the two-step fit.

    Attributes
    ----------
    probit : ProbitFit
        First step: selection probit on all units.
    coef : ndarray, shape (k + 1,)
        Outcome coefficients :math:`\hat\beta` followed by :math:`\hat\beta_\lambda`.
    vcov : ndarray, shape (k + 1, k + 1)
        Corrected covariance of ``coef``.
    sigma, rho : float
        :math:`\hat\sigma` and :math:`\hat\rho = \hat\beta_\lambda/\hat\sigma` (clipped to
        [-1, 1] when it falls outside; ``rho_raw`` keeps the unclipped ratio).
    rho_raw : float
    imr : ndarray, shape (n_selected,)
        Inverse Mills ratio :math:`\lambda_i = \phi(w_i^\top\hat\gamma)/\Phi(w_i^\top\hat\gamma)`.
    delta : ndarray, shape (n_selected,)
        :math:`\delta_i = \lambda_i(\lambda_i + w_i^\top\hat\gamma)`.
    residuals : ndarray, shape (n_selected,)
        Second-step OLS residuals.
    """

    probit: ProbitFit
    coef: np.ndarray
    vcov: np.ndarray
    sigma: float
    rho: float
    rho_raw: float
    imr: np.ndarray
    delta: np.ndarray
    residuals: np.ndarray


def corrected_covariance(
    Xs: np.ndarray,
    Ws: np.ndarray,
    delta: np.ndarray,
    sigma: float,
    rho: float,
    vcov_probit: np.ndarray,
) -> np.ndarray:
    r"""Heckman/Greene covariance of the second-step coefficients.

    Parameters
    ----------
    Xs : ndarray, shape (n_1, k + 1)
        Second-step regressors :math:`X^* = [X, \lambda]` of the selected units.
    Ws : ndarray, shape (n_1, q)
        Selection regressors of the selected units.
    delta : ndarray, shape (n_1,)
        :math:`\delta_i`.
    sigma, rho : float
        Estimates of :math:`\sigma` and :math:`\rho`.
    vcov_probit : ndarray, shape (q, q)
        Covariance of the probit coefficients.

    Returns
    -------
    ndarray, shape (k + 1, k + 1)

    Notes
    -----
    .. math::
        \widehat V = \hat\sigma^2 (X^{*\top}X^*)^{-1}
            \big[X^{*\top}(I - \hat\rho^2\Delta)X^* + Q\big](X^{*\top}X^*)^{-1},\qquad
        Q = \hat\rho^2 (X^{*\top}\Delta W)\,\widehat V_\gamma\,(W^\top\Delta X^*),

    with :math:`\Delta = \operatorname{diag}(\delta_i)`. The first term is the
    heteroskedasticity of the truncated error, the second the first-step estimation error.
    This is ``sampleSelection::heckit``'s and Stata's ``heckman, twostep`` covariance.

    References
    ----------
    Heckman, J. (1979). Sample selection bias as a specification error. *Econometrica* 47(1).
    Greene, W. (1981). Sample selection bias as a specification error: comment.
    *Econometrica* 49(3). Greene, W. *Econometric Analysis*, section 19.5.
    """
    bread = np.linalg.inv(Xs.T @ Xs)
    F = Xs.T @ (Ws * delta[:, None])
    meat = Xs.T @ (Xs * (1.0 - rho**2 * delta)[:, None]) + rho**2 * F @ vcov_probit @ F.T
    return sigma**2 * bread @ meat @ bread


def heckman_twostep(
    y: np.ndarray,
    X: np.ndarray,
    W: np.ndarray,
    d: np.ndarray,
    probit: ProbitFit | None = None,
    max_iter: int = 100,
) -> TwoStepResult:
    r"""Heckman's two-step ("heckit") estimator.

    Parameters
    ----------
    y : ndarray, shape (n_1,)
        Outcomes of the selected units.
    X : ndarray, shape (n_1, k)
        Outcome regressors of the selected units.
    W : ndarray, shape (n, q)
        Selection regressors of all units.
    d : ndarray of bool, shape (n,)
        Selection indicator.
    probit : ProbitFit, optional
        A first step already fitted on ``(W, d)``.
    max_iter : int
        Newton iterations allowed for the probit.

    Returns
    -------
    TwoStepResult

    Notes
    -----
    Step 1: probit :math:`P(d=1\mid w)=\Phi(w^\top\gamma)`. Step 2: OLS of :math:`y` on
    :math:`[x, \hat\lambda]` over the selected units, since
    :math:`E[y\mid x, d=1] = x^\top\beta + \rho\sigma\lambda(w^\top\gamma)`. Then
    :math:`\hat\sigma^2 = e^\top e/n_1 + \hat\beta_\lambda^2\bar\delta` and
    :math:`\hat\rho = \hat\beta_\lambda/\hat\sigma`.
    """
    d = np.asarray(d, dtype=bool)
    pf = fit_probit(W, d, max_iter=max_iter) if probit is None else probit
    eta = pf.index[d]
    lam = mills(eta)
    delta = lam * (lam + eta)
    Xs = np.column_stack([X, lam])
    coef, *_ = np.linalg.lstsq(Xs, y, rcond=None)
    resid = y - Xs @ coef
    sigma = float(np.sqrt(resid @ resid / y.shape[0] + coef[-1] ** 2 * delta.mean()))
    rho_raw = float(coef[-1] / sigma)
    rho = float(np.clip(rho_raw, -1.0, 1.0))
    vcov = corrected_covariance(Xs, W[d], delta, sigma, rho, pf.vcov)
    return TwoStepResult(pf, coef, vcov, sigma, rho, rho_raw, lam, delta, resid)
