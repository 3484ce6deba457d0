"""Shared balance diagnostics for weighting and matching estimators."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = [
    "smd",
    "balance_table",
    "effective_sample_size",
    "balance_diagnostics",
    "balance_scalars",
]


def _wmean_var(X: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    if w is None:
        return X.mean(axis=0), X.var(axis=0, ddof=1) if X.shape[0] > 1 else np.zeros(X.shape[1])
    w = w / w.sum()
    m = w @ X
    v = w @ (X - m) ** 2
    return m, v


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
    is constant in both groups has SMD 0 when the means agree and ``inf`` otherwise.
    """
    m1, _ = _wmean_var(X_t, w_t)
    m0, _ = _wmean_var(X_c, w_c)
    _, v1 = _wmean_var(X_t, None)
    _, v0 = _wmean_var(X_c, None)
    sd = np.sqrt((v1 + v0) / 2)
    diff = m1 - m0
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(sd > 0, diff / np.where(sd > 0, sd, 1.0), np.where(diff == 0, 0.0, np.inf))
    return out


def effective_sample_size(w: np.ndarray) -> float:
    r"""Kish's effective sample size :math:`(\sum w)^2 / \sum w^2`."""
    w = np.asarray(w, dtype=float)
    return float(w.sum() ** 2 / np.sum(w**2))


def balance_table(
    names: Sequence[str],
    X_t: np.ndarray,
    X_c: np.ndarray,
    w_c: np.ndarray | None = None,
    w_t: np.ndarray | None = None,
) -> pd.DataFrame:
    """Means, SMD and variance ratio before and after weighting, one row per covariate."""
    m1, v1 = _wmean_var(X_t, None)
    m0, v0 = _wmean_var(X_c, None)
    m1w, v1w = _wmean_var(X_t, w_t)
    m0w, v0w = _wmean_var(X_c, w_c)
    with np.errstate(divide="ignore", invalid="ignore"):
        vr_before = v1 / v0
        vr_after = v1w / v0w
    return pd.DataFrame(
        {
            "mean_treated": m1w,
            "mean_control_before": m0,
            "mean_control_after": m0w,
            "smd_before": smd(X_t, X_c),
            "smd_after": smd(X_t, X_c, w_c, w_t),
            "var_ratio_before": vr_before,
            "var_ratio_after": vr_after,
        },
        index=pd.Index(list(names), name="covariate"),
    )


def balance_diagnostics(table: pd.DataFrame, w_c: np.ndarray) -> dict[str, float]:
    """The scalar balance diagnostics every balancing estimator reports."""
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
