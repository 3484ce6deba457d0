"""The one balance-table builder of weighting and matching estimators: SMD, variance ratios, message."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = [
    "BALANCE_COLUMNS",
    "N_MEAN_COLUMNS",
    "smd",
    "smd_from_moments",
    "balance_table",
    "balance_block",
    "weighted_balance",
    "effective_sample_size",
    "balance_diagnostics",
    "balance_scalars",
    "balance_message",
]

BALANCE_COLUMNS: tuple[str, ...] = (
    "mean_treated_before",
    "mean_treated_after",
    "mean_control_before",
    "mean_control_after",
    "smd_before",
    "smd_after",
    "var_ratio_before",
    "var_ratio_after",
)
"""The columns of :func:`balance_table`, in order: each arm's mean, the SMD and the variance
ratio before weighting (or matching) and after it. The first :data:`N_MEAN_COLUMNS` are means."""

N_MEAN_COLUMNS = 4
"""How many of :data:`BALANCE_COLUMNS` are means (in the covariates' units)."""


def _wmean_var(X: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    if w is None:
        return X.mean(axis=0), X.var(axis=0, ddof=1) if X.shape[0] > 1 else np.zeros(X.shape[1])
    w = w / w.sum()
    m = w @ X
    v = w @ (X - m) ** 2
    return m, v


def smd_from_moments(m1: np.ndarray, m0: np.ndarray, v1: np.ndarray, v0: np.ndarray) -> np.ndarray:
    r"""Standardised mean differences from the arm means and the *unweighted* arm variances.

    .. math:: \mathrm{SMD}_k = \frac{m_{1k} - m_{0k}}{\sqrt{(s_{1k}^2 + s_{0k}^2)/2}}

    The one place the SMD and its denominator are written. A covariate whose pooled SD is
    zero has SMD 0 when the means agree and ``inf`` otherwise.

    Parameters
    ----------
    m1, m0 : ndarray, shape (d,)
        Treated and control means (weighted or not).
    v1, v0 : ndarray, shape (d,)
        Unweighted treated and control variances (ddof=1): the shared scale.

    Returns
    -------
    ndarray, shape (d,)
    """
    sd = np.sqrt((v1 + v0) / 2)
    diff = m1 - m0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0, diff / np.where(sd > 0, sd, 1.0), np.where(diff == 0, 0.0, np.inf))


def smd(
    X_t: np.ndarray,
    X_c: np.ndarray,
    w_c: np.ndarray | None = None,
    w_t: np.ndarray | None = None,
) -> np.ndarray:
    r"""Standardised mean differences, treated minus (weighted) controls.

    .. math:: \mathrm{SMD}_k = \frac{\bar x_{1k} - \bar x^{w}_{0k}}{\sqrt{(s_{1k}^2 + s_{0k}^2)/2}}

    The denominator uses the *unweighted* treated and control variances (ddof=1), so that
    SMD before and after weighting share one scale (Austin & Stuart 2015). A covariate that
    is constant in both groups has SMD 0 when the means agree and ``inf`` otherwise
    (:func:`smd_from_moments`).

    References
    ----------
    Austin, P. & Stuart, E. (2015). Moving towards best practice when using inverse
    probability of treatment weighting. *Stat. Med.* 34(28), 3661-3679.
    """
    m1, _ = _wmean_var(X_t, w_t)
    m0, _ = _wmean_var(X_c, w_c)
    _, v1 = _wmean_var(X_t, None)
    _, v0 = _wmean_var(X_c, None)
    return smd_from_moments(m1, m0, v1, v0)


def effective_sample_size(w: np.ndarray) -> float:
    r"""Kish's effective sample size :math:`(\sum w)^2 / \sum w^2`."""
    w = np.asarray(w, dtype=float)
    return float(w.sum() ** 2 / np.sum(w**2))


def balance_block(
    m1: np.ndarray,
    m1w: np.ndarray,
    m0: np.ndarray,
    m0w: np.ndarray,
    v1: np.ndarray,
    v0: np.ndarray,
    v1w: np.ndarray,
    v0w: np.ndarray,
) -> np.ndarray:
    r"""Build the :data:`BALANCE_COLUMNS` as a ``(d, 8)`` block from the arm moments.

    For estimators that hold the moments already (e.g. from one pass over a million
    units); :func:`balance_table` is this block from the data.

    Parameters
    ----------
    m1, m1w : ndarray, shape (d,)
        Treated means, unweighted and weighted.
    m0, m0w : ndarray, shape (d,)
        Control means, unweighted and weighted.
    v1, v0 : ndarray, shape (d,)
        Unweighted arm variances (ddof=1), the SMD scale of :func:`smd_from_moments`.
    v1w, v0w : ndarray, shape (d,)
        Weighted arm variances :math:`\sum_i \tilde w_i (x_i - \bar x^w)^2` with weights
        normalised to sum to one (the unweighted ones when an arm is not weighted).

    Returns
    -------
    ndarray, shape (d, 8)
        Treated and control means before and after weighting, SMD before and after
        (:func:`smd_from_moments`), variance ratio treated/control before and after.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        vr_before = v1 / v0
        vr_after = v1w / v0w
    return np.column_stack(
        [
            m1,
            m1w,
            m0,
            m0w,
            smd_from_moments(m1, m0, v1, v0),
            smd_from_moments(m1w, m0w, v1, v0),
            vr_before,
            vr_after,
        ]
    )


def balance_table(
    names: Sequence[str],
    X_t: np.ndarray,
    X_c: np.ndarray,
    w_c: np.ndarray | None = None,
    w_t: np.ndarray | None = None,
) -> pd.DataFrame:
    """Means, SMD and variance ratio before and after weighting, one row per covariate.

    Parameters
    ----------
    names : sequence of str
        Covariate names (the index).
    X_t, X_c : ndarray, shape (n_t, d) and (n_c, d)
        Treated and control covariates.
    w_c, w_t : ndarray or None
        Control and treated weights (``None``: unweighted).

    Returns
    -------
    DataFrame
        Columns :data:`BALANCE_COLUMNS` (:func:`balance_block`), index ``covariate``.
    """
    m1, v1 = _wmean_var(X_t, None)
    m0, v0 = _wmean_var(X_c, None)
    m1w, v1w = _wmean_var(X_t, w_t)
    m0w, v0w = _wmean_var(X_c, w_c)
    block = balance_block(m1, m1w, m0, m0w, v1, v0, v1w, v0w)
    return pd.DataFrame(
        block.reshape(len(names), len(BALANCE_COLUMNS)),
        columns=list(BALANCE_COLUMNS),
        index=pd.Index(list(names), name="covariate"),
    )


def weighted_balance(
    names: Sequence[str],
    X_t: np.ndarray,
    X_c: np.ndarray,
    w_t: np.ndarray,
    w_c: np.ndarray,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Build the balance table and every scalar balance diagnostic of a weighted comparison.

    Parameters
    ----------
    names : sequence of str
        Covariate names.
    X_t, X_c : ndarray
        Treated and control covariates.
    w_t, w_c : ndarray
        Treated and control weights (for matching: how often each unit is used).

    Returns
    -------
    table : DataFrame
        :func:`balance_table`.
    diagnostics : dict
        :func:`balance_diagnostics` (of the controls' weights) plus ``ess_treated``,
        ``ess_control`` (Kish, :func:`effective_sample_size`) and ``max_weight_treated``.
    """
    table = balance_table(names, X_t, X_c, w_c=w_c, w_t=w_t)
    diagnostics = balance_diagnostics(table, w_c)
    diagnostics.update(
        {
            "ess_treated": effective_sample_size(w_t),
            "ess_control": effective_sample_size(w_c),
            "max_weight_treated": float(np.max(w_t) / np.sum(w_t)),
        }
    )
    return table, diagnostics


def balance_diagnostics(table: pd.DataFrame, w_c: np.ndarray) -> dict[str, float]:
    """Compute the scalar balance diagnostics every balancing estimator reports."""
    return balance_scalars(
        np.asarray(table["smd_before"], dtype=float),
        np.asarray(table["smd_after"], dtype=float),
        w_c,
    )


def balance_scalars(
    smd_before: np.ndarray, smd_after: np.ndarray, w_c: np.ndarray
) -> dict[str, float]:
    r""":func:`balance_diagnostics` from the SMD columns as arrays (no table needed).

    ``max_abs_smd_*`` is the largest :math:`|\mathrm{SMD}|` ignoring NaN (as pandas'
    ``max``), NaN when every value is NaN and 0 when there are no covariates; ``ess`` is
    Kish's effective sample size and ``max_weight`` the largest normalised weight.
    """
    w = np.asarray(w_c, dtype=float)
    return {
        "max_abs_smd_before": _max_abs(smd_before),
        "max_abs_smd_after": _max_abs(smd_after),
        "ess": effective_sample_size(w),
        "max_weight": float(w.max() / w.sum()),
    }


def _max_abs(x: np.ndarray) -> float:
    """Largest absolute value skipping NaN; NaN if all are NaN, 0.0 if ``x`` is empty."""
    if x.size == 0:
        return 0.0
    a = np.abs(x)
    top = a.max()
    if np.isnan(top):
        a = a[~np.isnan(a)]
        return float(a.max()) if a.size else float("nan")
    return float(top)


def balance_message(
    max_abs_smd: float, tol: float, converged: bool = True, detail: str = ""
) -> tuple[bool, str]:
    r"""Whether balance was achieved, and the one message saying so.

    Parameters
    ----------
    max_abs_smd : float
        Largest :math:`|\mathrm{SMD}|` after weighting (``max_abs_smd_after``).
    tol : float
        Tolerance the weights were asked to meet.
    converged : bool
        Whether the weighting solver reported convergence.
    detail : str
        The solver's own message, appended when balance is not achieved.

    Returns
    -------
    achieved : bool
        ``converged`` and ``max_abs_smd <= tol``.
    message : str
        ``"balance achieved (max |SMD| = ... <= tol)"`` or ``"balance NOT achieved (...)"``.
    """
    within = bool(max_abs_smd <= tol)
    achieved = bool(converged) and within
    if achieved:
        return True, f"balance achieved (max |SMD| = {max_abs_smd:.2e} <= {tol:.0e})"
    cmp = "<=" if within else ">"
    why = "" if converged or not within else "the solver did not converge; "
    msg = f"balance NOT achieved ({why}max |SMD| = {max_abs_smd:.2e} {cmp} {tol:.0e})"
    return False, f"{msg}: {detail}" if detail else msg
