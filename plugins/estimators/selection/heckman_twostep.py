"""Heckman's two-step estimator with the Heckman (1979) / Greene (1981) corrected covariance."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from causalkit_plugins.estimators.selection.probit import ProbitFit, fit_probit, mills

__all__ = ["TwoStepResult", "heckman_twostep", "corrected_covariance", "twostep_influence"]


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
        Second-step OLS (WLS with weights) residuals.
    weights : ndarray, shape (n,), or None
        The sampling weights of the fit; ``vcov`` is then not valid (it assumes an unweighted
        sample): use :func:`twostep_influence`.
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
    weights: np.ndarray | None = None


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
    weights: np.ndarray | None = None,
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
    weights : ndarray, shape (n,), optional
        Sampling weights of all units: weighted probit and weighted least squares.

    Returns
    -------
    TwoStepResult

    Notes
    -----
    Step 1: probit :math:`P(d=1\mid w)=\Phi(w^\top\gamma)`. Step 2: OLS of :math:`y` on
    :math:`[x, \hat\lambda]` over the selected units, since
    :math:`E[y\mid x, d=1] = x^\top\beta + \rho\sigma\lambda(w^\top\gamma)`. Then
    :math:`\hat\sigma^2 = e^\top e/n_1 + \hat\beta_\lambda^2\bar\delta` and
    :math:`\hat\rho = \hat\beta_\lambda/\hat\sigma`. With sampling weights :math:`w_i`
    the probit maximises :math:`\sum_i w_i\ell_i`, the second step is weighted least squares
    and the means in :math:`\hat\sigma^2` are :math:`w`-weighted means over the selected.
    """
    d = np.asarray(d, dtype=bool)
    pf = fit_probit(W, d, max_iter=max_iter, weights=weights) if probit is None else probit
    eta = pf.index[d]
    lam = mills(eta)
    delta = lam * (lam + eta)
    Xs = np.column_stack([X, lam])
    if weights is None:
        coef, *_ = np.linalg.lstsq(Xs, y, rcond=None)
        resid = y - Xs @ coef
        sigma = float(np.sqrt(resid @ resid / y.shape[0] + coef[-1] ** 2 * delta.mean()))
    else:
        ws = weights[d]
        root = np.sqrt(ws)
        coef, *_ = np.linalg.lstsq(Xs * root[:, None], y * root, rcond=None)
        resid = y - Xs @ coef
        sigma = float(np.sqrt(((ws * resid) @ resid + coef[-1] ** 2 * (ws @ delta)) / ws.sum()))
    rho_raw = float(coef[-1] / sigma)
    rho = float(np.clip(rho_raw, -1.0, 1.0))
    vcov = corrected_covariance(Xs, W[d], delta, sigma, rho, pf.vcov)
    return TwoStepResult(pf, coef, vcov, sigma, rho, rho_raw, lam, delta, resid, weights)


def twostep_influence(ts: TwoStepResult, X: np.ndarray, W: np.ndarray, d: np.ndarray) -> np.ndarray:
    r"""Influence values of the two-step estimates from the stacked estimating equations.

    Parameters
    ----------
    ts : TwoStepResult
        The fit (weighted when ``ts.weights`` is set).
    X : ndarray, shape (n_1, k)
        Outcome regressors of the selected units.
    W : ndarray, shape (n, q)
        Selection regressors of all units.
    d : ndarray of bool, shape (n,)

    Returns
    -------
    ndarray, shape (n, k + 1 + q)
        :math:`\psi_i` of :math:`(\hat\beta, \hat\beta_\lambda, \hat\gamma)` for every unit,
        with :math:`\hat\theta - \theta = n^{-1}\sum_i\psi_i + o_p(n^{-1/2})`; unselected
        units enter through the probit only.

    Notes
    -----
    With sampling weights :math:`\omega_i` (1 without), :math:`\theta = (\beta, \beta_\lambda)`,
    :math:`x^*_i(\gamma) = (x_i, \lambda(w_i^\top\gamma))` and :math:`e_i = y_i - x_i^{*\top}\theta`,
    the estimates solve the stacked equations

    .. math::
        \sum_i \omega_i s_i(\gamma) = 0, \qquad \sum_i \omega_i d_i x^*_i(\gamma)\,e_i = 0,

    with :math:`s_i` the probit score. Expanding both about the truth, with
    :math:`H = \sum_i \omega_i\,\partial s_i/\partial\gamma^\top`,
    :math:`M = \sum_i \omega_i d_i x^*_ix_i^{*\top}` and, as :math:`\lambda' = -\delta`,

    .. math::
        C = \sum_i \omega_i d_i\,\frac{\partial (x^*_ie_i)}{\partial\gamma^\top}
          = \sum_i \omega_i d_i \delta_i\,(\beta_\lambda x^*_i - e_i\,\iota_{k+1})\,w_i^\top

    (:math:`\iota_{k+1}` the last unit vector), the influence values are

    .. math::
        \psi_{\gamma,i} = n(-H)^{-1}\omega_is_i, \qquad
        \psi_{\theta,i} = M^{-1}\{n\,\omega_id_ix^*_ie_i + C\,\psi_{\gamma,i}\}.

    :math:`n^{-2}\sum_i\psi_i\psi_i^\top` is the sandwich :math:`A^{-1}BA^{-\top}` of the
    stacked system; summing :math:`\psi_i` within clusters first gives its clustered form.
    Unweighted, it differs from :func:`corrected_covariance` in using the squared residuals
    for the outcome variance (heteroskedasticity-robust) and the sample's :math:`e_i\delta_i`
    term of :math:`C`, whose expectation is zero (Greene's formula drops it).

    References
    ----------
    Newey, W. & McFadden, D. (1994). Large sample estimation and hypothesis testing.
    *Handbook of Econometrics* IV, section 6 (two-step estimators).
    Wooldridge, J. (2010). *Econometric Analysis of Cross Section and Panel Data*, 2nd ed.,
    sections 12.4 and 19.6.
    """
    d = np.asarray(d, dtype=bool)
    n = d.shape[0]
    pf = ts.probit
    ws = np.ones(int(d.sum())) if ts.weights is None else ts.weights[d]
    Xs = np.column_stack([X, ts.imr])
    psi_gamma = n * pf.scores @ pf.vcov  # scores are already weighted; vcov = (-H)^-1
    C = (Xs * ts.coef[-1]).T @ (W[d] * (ws * ts.delta)[:, None])
    C[-1] -= (ws * ts.delta * ts.residuals) @ W[d]
    M = Xs.T @ (Xs * ws[:, None])
    g = np.zeros((n, Xs.shape[1]))
    g[d] = n * Xs * (ws * ts.residuals)[:, None]
    psi_theta = np.linalg.solve(M, (g + psi_gamma @ C.T).T).T
    return np.column_stack([psi_theta, psi_gamma])
