"""Propensity-score models (logit, probit) with the pieces stacked estimating equations need."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from causalkit.contracts import Dataset
from causalkit.errors import DataError
from causalkit.inputs import separating_columns
from causalkit.panel import binary_column, numeric_columns, unit_table
from causalkit_plugins.estimators.selection.probit import fit_probit

__all__ = [
    "PropensityFit",
    "fit_propensity",
    "fit_logit",
    "PropensityModel",
    "TreatmentData",
    "treatment_data",
    "unselected_warnings",
]

PropensityModel = Literal["logit", "probit"]
_SQRT_2PI = np.sqrt(2.0 * np.pi)


@dataclass(frozen=True)
class TreatmentData:
    """One cross-section: outcome, treatment, covariates and propensity covariates."""

    y: np.ndarray
    d: np.ndarray
    X: np.ndarray
    P: np.ndarray
    covariates: tuple[str, ...]
    propensity_covariates: tuple[str, ...]
    frame: pd.DataFrame
    n_unselected: int = 0

    @property
    def n(self) -> int:
        return int(self.d.shape[0])


def treatment_data(data: Dataset, who: str) -> TreatmentData:
    """Read a cross-section for a propensity-score estimator, with one-line errors.

    With the ``selected`` role set, only the selected rows are analysed (``n_unselected``
    counts the others; ``frame`` is the analysed table). The propensity model uses ``roles.propensity_covariates`` when set, else
    ``roles.covariates``; at least one of them must name a column.
    """
    if data.roles.time is not None:
        raise DataError(
            "roles.time", f"a cross-section for {who} (one row per unit)", data.roles.time
        )
    frame = data.frame
    n_unselected = 0
    if data.roles.selected is not None:
        keep = binary_column(frame[data.roles.selected], "selected")
        n_unselected = int((~keep).sum())
        frame = frame.loc[keep]
    roles = data.roles.model_copy(update={"selected": None})
    table = unit_table(Dataset(frame, roles), group_role="treatment", who=who)
    pcols = roles.propensity_covariates
    if pcols is None:
        pcols = table.covariates
    pcols = tuple(pcols)
    if not pcols:
        raise DataError("roles.covariates", f"at least one covariate for {who}", "none")
    P = (
        table.X
        if pcols == table.covariates
        else numeric_columns(frame, pcols, "propensity_covariates")
    )
    return TreatmentData(
        table.y, table.group, table.X, P, table.covariates, pcols, frame, n_unselected
    )


def unselected_warnings(who: str, td: TreatmentData) -> list[str]:
    """The warning that unselected rows were left out (``selected`` role)."""
    if not td.n_unselected:
        return []
    return [
        f"{who}: {td.n_unselected} unselected units dropped (outcome observed only where the "
        "selected role is 1); the estimate is for the selected units"
    ]


@dataclass(frozen=True)
class PropensityFit:
    r"""A fitted propensity model :math:`e(x) = F(z^\top\gamma)` with :math:`z = (1, x)`.

    Attributes
    ----------
    score : ndarray, shape (n,)
        :math:`\hat e_i = F(z_i^\top\hat\gamma)`.
    index : ndarray, shape (n,)
        Linear index :math:`z_i^\top\hat\gamma` (the logit of the score for a logit model).
    coef : ndarray, shape (k,)
        :math:`\hat\gamma` (intercept first).
    influence : ndarray, shape (n, k)
        Per-unit influence of :math:`\hat\gamma`:
        :math:`\mathrm{IF}_i = (-n^{-1}H)^{-1} s_i`, so that
        :math:`\hat\gamma - \gamma = n^{-1}\sum_i \mathrm{IF}_i + o_p(n^{-1/2})`.
    gradient : ndarray, shape (n, k)
        :math:`\partial \hat e_i/\partial\gamma = f(z_i^\top\hat\gamma)\, z_i` with :math:`f = F'`.
    converged : bool
    separation : bool
        Some fitted score within 1e-10 of 0 or 1 (quasi-complete separation), or a covariate
        that alone predicts the treatment (complete separation, whatever the iterations reached).
    """

    score: np.ndarray
    index: np.ndarray
    coef: np.ndarray
    influence: np.ndarray
    gradient: np.ndarray
    converged: bool
    separation: bool


def fit_logit(
    Z: np.ndarray,
    d: np.ndarray,
    *,
    max_iter: int = 100,
    tol: float = 1e-10,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, bool]:
    r"""Logistic regression by Newton-Raphson with step halving.

    Maximises :math:`\ell(\gamma) = \sum_i d_i\eta_i - \log(1 + e^{\eta_i})`,
    :math:`\eta_i = z_i^\top\gamma`; score :math:`z_i(d_i - p_i)`, Hessian
    :math:`-\sum_i p_i(1-p_i) z_i z_i^\top` (observed = expected information). With
    ``weights`` every unit's term is multiplied by :math:`w_i` (weighted pseudo-likelihood).

    Returns
    -------
    coef, index, converged
    """
    from scipy.special import expit

    coef = np.zeros(Z.shape[1])
    eta = np.zeros(Z.shape[0])

    w: np.ndarray | float = 1.0 if weights is None else weights  # 1.0: exact, same bits

    def loglik(e: np.ndarray) -> float:
        return float(np.sum(w * (d * e - np.logaddexp(0.0, e))))

    ll = loglik(eta)
    for _ in range(max_iter):
        p = expit(eta)
        grad = Z.T @ (w * (d - p))
        info = Z.T @ (Z * (w * p * (1.0 - p))[:, None])
        try:
            step = np.linalg.solve(info, grad)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(info, grad, rcond=None)[0]
        t = 1.0
        deta = Z @ step
        while True:
            eta_new = eta + t * deta
            ll_new = loglik(eta_new)
            if ll_new >= ll - 1e-12 * abs(ll) or t < 1e-8:
                break
            t *= 0.5
        coef = coef + t * step
        eta, ll = eta_new, ll_new
        if np.max(np.abs(t * step)) < tol:
            return coef, eta, True
    return coef, eta, False


def fit_propensity(
    X: np.ndarray,
    d: np.ndarray,
    model: PropensityModel = "logit",
    weights: np.ndarray | None = None,
) -> PropensityFit:
    r"""Fit :math:`P(D=1\mid x)` by maximum likelihood (intercept added).

    Parameters
    ----------
    X : ndarray, shape (n, p)
        Covariates (no intercept column).
    d : ndarray of bool, shape (n,)
        Treatment indicator.
    model : {"logit", "probit"}
        :math:`F` is the logistic or standard normal CDF.
    weights : ndarray, shape (n,), optional
        Sampling weights of a weighted logit (the score and information of unit :math:`i`
        multiplied by :math:`w_i`); not available for the probit.

    Returns
    -------
    PropensityFit

    Notes
    -----
    The influence of :math:`\hat\gamma` uses the observed information (the Jacobian of the
    score equations), as the sandwich of the stacked estimating equations requires (Stata's
    ``teffects ipw``). The probit is fitted by
    :func:`~causalkit_plugins.estimators.selection.probit.fit_probit`.
    """
    from scipy.special import expit, ndtr

    n = X.shape[0]
    Z = np.column_stack([np.ones(n), X])
    dd = np.asarray(d, dtype=np.float64)
    rank = np.linalg.matrix_rank(Z.T @ Z)
    if rank < Z.shape[1]:
        raise DataError(
            "roles.covariates",
            "propensity covariates that are not collinear (with the intercept)",
            f"rank {rank} < {Z.shape[1]} columns",
        )
    if model == "logit":
        coef, index, converged = fit_logit(Z, dd, weights=weights)
        score = expit(index)
        dens = score * (1.0 - score)
        w: np.ndarray | float = 1.0 if weights is None else weights
        scores = Z * (w * (dd - score))[:, None]
        info = Z.T @ (Z * (w * dens)[:, None]) / n
    else:
        assert weights is None, "the weighted probit is not implemented"
        pf = fit_probit(Z, dd)
        coef, index, converged = pf.coef, pf.index, pf.converged
        score = ndtr(index)
        dens = np.exp(-0.5 * index * index) / _SQRT_2PI
        scores = pf.scores
        info = -pf.hessian / n
    try:
        influence = np.linalg.solve(info, scores.T).T
    except np.linalg.LinAlgError:
        influence = np.full_like(scores, np.nan)
    separation = bool(np.any((score < 1e-10) | (score > 1 - 1e-10))) or bool(
        separating_columns(X, d)
    )
    return PropensityFit(score, index, coef, influence, Z * dens[:, None], converged, separation)
