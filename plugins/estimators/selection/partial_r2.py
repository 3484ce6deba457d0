r"""Partial-R² sensitivity of a regression coefficient to omitted variables (Cinelli & Hazlett 2020).

In the regression :math:`Y = \hat\tau D + X\hat\beta + \hat\varepsilon` a confounder :math:`Z`
left out changes the treatment's coefficient by at most

.. math::

    |\widehat{\text{bias}}| = \operatorname{se}(\hat\tau)\,\sqrt{\text{dof}}\,
        \sqrt{\frac{R^2_{Y\sim Z|D,X}\,R^2_{D\sim Z|X}}{1 - R^2_{D\sim Z|X}}},

with :math:`R^2_{Y\sim Z|D,X}` (``r2yz_dx``) the share of the outcome's residual variance
explained by :math:`Z` and :math:`R^2_{D\sim Z|X}` (``r2dz_x``) the share of the treatment's
residual variance explained by it; ``se`` is the classical (homoskedastic) standard error and
``dof`` the residual degrees of freedom of the regression. Every function here is a pure
function of those summaries, as in the ``sensemakr`` packages (R, Python, Stata), whose
argument names they keep.

References
----------
Cinelli, C. & Hazlett, C. (2020). Making sense of sensitivity: extending omitted variable bias.
*J. R. Stat. Soc. B* 82(1), 39-67 (sections 4-6). Cinelli, C., Ferwerda, J. & Hazlett, C.
(2024). sensemakr: sensitivity analysis tools for OLS in R and Stata. *Observational Studies*
10(2), 93-127.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = [
    "BOUNDS_COLUMNS",
    "adjusted_estimate",
    "adjusted_se",
    "adjusted_t",
    "benchmark_bounds",
    "bias",
    "bounds_table",
    "contour_grid",
    "critical_t",
    "group_partial_r2",
    "partial_r2",
    "robustness_value",
]

BOUNDS_COLUMNS = (
    "r2dz_x",
    "r2yz_dx",
    "adjusted_estimate",
    "adjusted_se",
    "adjusted_t",
    "adjusted_lower_CI",
    "adjusted_upper_CI",
)
"""Columns of the bounds table, those of ``sensemakr``'s ``ovb_bounds`` (its ``bound_label``
is the table's index, so that every column is a number)."""


def partial_r2(t: float, dof: float) -> float:
    r"""Partial R² of one regressor with the outcome from its t-value: :math:`t^2/(t^2 + \text{dof})`.

    Parameters
    ----------
    t : float
        Classical t-value of the coefficient.
    dof : float
        Residual degrees of freedom of the regression.

    Returns
    -------
    float
    """
    return float(t**2 / (t**2 + dof))


def group_partial_r2(coef: np.ndarray, cov_unscaled: np.ndarray, rss: float) -> float:
    r"""Partial R² of a group of regressors with the outcome of a least-squares fit.

    Parameters
    ----------
    coef : ndarray, shape (g,)
        The group's coefficients :math:`b_G`.
    cov_unscaled : ndarray, shape (g, g)
        Their block :math:`[(W^\top W)^{-1}]_{GG}` of the unscaled covariance.
    rss : float
        Residual sum of squares of the full regression.

    Returns
    -------
    float

    Notes
    -----
    Dropping the group raises the residual sum of squares by
    :math:`Q = b_G^\top[(W^\top W)^{-1}]_{GG}^{-1}b_G` (Frisch-Waugh-Lovell), so the partial
    R² is :math:`Q/(Q + \text{RSS})`. For one regressor it is :func:`partial_r2` of its
    classical t-value.
    """
    coef = np.atleast_1d(coef)
    q = float(coef @ np.linalg.solve(np.atleast_2d(cov_unscaled), coef))
    return q / (q + rss)


def critical_t(alpha: float, dof: float) -> float:
    r""":math:`|t_{\alpha/2,\,\text{dof}}|`, the two-sided critical value of a t-test at level ``alpha``."""
    from scipy import stats

    return float(abs(stats.t.ppf(alpha / 2, dof)))


def robustness_value(t: float, dof: float, q: float = 1.0, alpha: float | None = None) -> float:
    r"""Robustness value :math:`RV_q` (``alpha`` None) or :math:`RV_{q,\alpha}`.

    The smallest strength :math:`R^2_{Y\sim Z|D,X} = R^2_{D\sim Z|X} = RV` of a confounder
    that reduces the estimate by :math:`100q\%` (:math:`RV_q`), or that makes the
    reduced-by-:math:`100q\%` null not rejected at level :math:`\alpha` (:math:`RV_{q,\alpha}`).

    Parameters
    ----------
    t : float
        Classical t-value of the coefficient.
    dof : float
        Residual degrees of freedom.
    q : float
        Fraction of the estimate to explain away (1: all of it).
    alpha : float or None
        Significance level; ``None`` for :math:`RV_q`.

    Returns
    -------
    float

    Notes
    -----
    With the partial Cohen's :math:`f_q = q|t|/\sqrt{\text{dof}}` and, for :math:`RV_{q,\alpha}`,
    :math:`f^* = |t^*_{\alpha/2,\text{dof}-1}|/\sqrt{\text{dof}-1}` (0 for :math:`RV_q`) and
    :math:`f = f_q - f^*`,

    .. math::

        RV = \begin{cases} 0 & f < 0,\\
            \frac{f_q^2 - f^{*2}}{1 + f_q^2} & f_q > 1/f^* \text{ (the confounder need only
            explain the treatment: the bound on } R^2_{Y\sim Z|D,X}\text{ binds at 1)},\\
            \tfrac12\left(\sqrt{f^4 + 4f^2} - f^2\right) & \text{otherwise}
        \end{cases}

    (Cinelli & Hazlett 2020, section 5.1; the middle case is that of ``sensemakr`` since
    version 0.1.4, Cinelli, Ferwerda & Hazlett 2024).
    """
    fq = q * abs(t) / np.sqrt(dof)
    f_crit = 0.0 if alpha is None else critical_t(alpha, dof - 1) / np.sqrt(dof - 1)
    f = fq - f_crit
    if f < 0:
        return 0.0
    if f_crit > 0 and fq > 1 / f_crit:
        return float((fq**2 - f_crit**2) / (1 + fq**2))
    return float(0.5 * (np.sqrt(f**4 + 4 * f**2) - f**2))


def bias(se: float, dof: float, r2dz_x: np.ndarray, r2yz_dx: np.ndarray) -> np.ndarray:
    r"""The largest bias a confounder of the given strengths can cause (formula in the module notes).

    Parameters
    ----------
    se : float
        Classical standard error of the coefficient.
    dof : float
        Residual degrees of freedom.
    r2dz_x, r2yz_dx : array-like
        Partial R² of the confounder with the treatment and with the outcome (:math:`<1`, :math:`\le 1`).

    Returns
    -------
    ndarray
    """
    r2dz_x, r2yz_dx = np.asarray(r2dz_x, float), np.asarray(r2yz_dx, float)
    return np.asarray(se * np.sqrt(dof) * np.sqrt(r2yz_dx * r2dz_x / (1 - r2dz_x)))


def adjusted_estimate(
    estimate: float,
    se: float,
    dof: float,
    r2dz_x: np.ndarray,
    r2yz_dx: np.ndarray,
    reduce: bool = True,
) -> np.ndarray:
    r"""The estimate moved by :func:`bias` towards zero (``reduce``) or away from it.

    :math:`\operatorname{sign}(\hat\tau)\,(|\hat\tau| \mp |\widehat{\text{bias}}|)`.

    Parameters
    ----------
    estimate : float
        The coefficient :math:`\hat\tau`.
    se, dof, r2dz_x, r2yz_dx
        As in :func:`bias`.
    reduce : bool
        True: the confounder reduces the absolute estimate (the usual worry).

    Returns
    -------
    ndarray
    """
    b = bias(se, dof, r2dz_x, r2yz_dx)
    return np.asarray(np.sign(estimate) * (abs(estimate) + (-b if reduce else b)))


def adjusted_se(se: float, dof: float, r2dz_x: np.ndarray, r2yz_dx: np.ndarray) -> np.ndarray:
    r"""Classical SE of the coefficient in the regression that also contains the confounder.

    .. math::

        \operatorname{se}(\hat\tau)\sqrt{\frac{1 - R^2_{Y\sim Z|D,X}}{1 - R^2_{D\sim Z|X}}
            \,\frac{\text{dof}}{\text{dof} - 1}}

    (Cinelli & Hazlett 2020, section 4.1; one more regressor, one degree of freedom fewer).

    Parameters
    ----------
    se, dof, r2dz_x, r2yz_dx
        As in :func:`bias`.

    Returns
    -------
    ndarray
    """
    r2dz_x, r2yz_dx = np.asarray(r2dz_x, float), np.asarray(r2yz_dx, float)
    return np.asarray(se * np.sqrt((1 - r2yz_dx) / (1 - r2dz_x) * dof / (dof - 1)))


def adjusted_t(
    estimate: float,
    se: float,
    dof: float,
    r2dz_x: np.ndarray,
    r2yz_dx: np.ndarray,
    reduce: bool = True,
) -> np.ndarray:
    """t-value of :func:`adjusted_estimate` with :func:`adjusted_se` (against zero)."""
    return np.asarray(
        adjusted_estimate(estimate, se, dof, r2dz_x, r2yz_dx, reduce)
        / adjusted_se(se, dof, r2dz_x, r2yz_dx)
    )


def benchmark_bounds(
    r2dxj_x: float, r2yxj_dx: float, kd: Sequence[float], ky: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    r"""Strengths of a confounder :math:`k_D`, :math:`k_Y` times as strong as a covariate :math:`X_j`.

    Parameters
    ----------
    r2dxj_x : float
        :math:`R^2_{D\sim X_j|X_{-j}}`, the benchmark's partial R² with the treatment.
    r2yxj_dx : float
        :math:`R^2_{Y\sim X_j|D,X_{-j}}`, its partial R² with the outcome.
    kd, ky : sequence of float
        Multiples of the benchmark's strength with the treatment and the outcome (same length).

    Returns
    -------
    r2dz_x, r2yz_dx : ndarray
        The bounds on the confounder's partial R² with the treatment and the outcome;
        ``r2yz_dx`` is capped at 1 (the cap is the caller's to report).

    Raises
    ------
    ValueError
        A ``kd`` so large that the implied :math:`R^2_{D\sim Z|X}` or
        :math:`R^2_{Z\sim X_j|X_{-j},D}` reaches 1 (no such confounder exists).

    Notes
    -----
    For a confounder orthogonal to the observed covariates (Cinelli & Hazlett 2020,
    section 6.1 and footnote 10),

    .. math::

        R^2_{D\sim Z|X} = k_D\,\frac{R^2_{D\sim X_j|X_{-j}}}{1 - R^2_{D\sim X_j|X_{-j}}},
        \qquad
        R^2_{Y\sim Z|D,X} \le \eta^2\,\frac{R^2_{Y\sim X_j|D,X_{-j}}}{1 - R^2_{Y\sim X_j|D,X_{-j}}},
        \qquad \eta = \frac{\sqrt{k_Y} + \sqrt{r}}{\sqrt{1 - r}},

    with :math:`r = R^2_{Z\sim X_j|X_{-j},D} = \dfrac{k_D\,R^{4}_{D\sim X_j|X_{-j}}}
    {(1 - k_DR^2_{D\sim X_j|X_{-j}})(1 - R^2_{D\sim X_j|X_{-j}})}` the association with
    :math:`X_j` that conditioning on the treatment induces.
    """
    kd_, ky_ = np.asarray(kd, float), np.asarray(ky, float)
    r2dz_x = kd_ * r2dxj_x / (1 - r2dxj_x)
    r2zxj_xd = kd_ * r2dxj_x**2 / ((1 - kd_ * r2dxj_x) * (1 - r2dxj_x))
    if np.any(r2dz_x >= 1) or np.any(r2zxj_xd >= 1) or np.any(kd_ * r2dxj_x >= 1):
        raise ValueError("the implied partial R2 of the confounder with the treatment reaches 1")
    r2yz_dx = ((np.sqrt(ky_) + np.sqrt(r2zxj_xd)) / np.sqrt(1 - r2zxj_xd)) ** 2 * (
        r2yxj_dx / (1 - r2yxj_dx)
    )
    return r2dz_x, np.minimum(r2yz_dx, 1.0)


def bounds_table(
    rows: Sequence[tuple[str, float, float]],
    estimate: float,
    se: float,
    dof: float,
    alpha: float,
    reduce: bool = True,
) -> pd.DataFrame:
    r"""The ``sensemakr`` bounds table: each confounder's strengths and the adjusted inference.

    Parameters
    ----------
    rows : sequence of (label, r2dz_x, r2yz_dx)
        One confounding scenario per row (e.g. from :func:`benchmark_bounds`).
    estimate, se, dof
        The coefficient, its classical SE and the residual degrees of freedom.
    alpha : float
        Significance level of the adjusted confidence interval.
    reduce : bool
        As in :func:`adjusted_estimate`.

    Returns
    -------
    DataFrame
        Indexed by ``bound_label``, columns :data:`BOUNDS_COLUMNS`; the interval is
        :math:`\hat\tau_{adj} \pm |t_{\alpha/2,\text{dof}}|\operatorname{se}_{adj}`, the
        critical value of the regression without :math:`Z` as in ``sensemakr``'s
        ``ovb_bounds`` (the regression with :math:`Z` would have :math:`\text{dof}-1`; at
        :math:`\text{dof} = 783` the two differ by 4e-6 relative).
    """
    labels = [r[0] for r in rows]
    r2d = np.array([r[1] for r in rows], float)
    r2y = np.array([r[2] for r in rows], float)
    est = adjusted_estimate(estimate, se, dof, r2d, r2y, reduce)
    ase = adjusted_se(se, dof, r2d, r2y)
    half = critical_t(alpha, dof) * ase
    return pd.DataFrame(
        {
            "r2dz_x": r2d,
            "r2yz_dx": r2y,
            "adjusted_estimate": est,
            "adjusted_se": ase,
            "adjusted_t": est / ase,
            "adjusted_lower_CI": est - half,
            "adjusted_upper_CI": est + half,
        },
        index=pd.Index(labels, name="bound_label"),
        columns=list(BOUNDS_COLUMNS),
    )


def contour_grid(
    estimate: float,
    se: float,
    dof: float,
    alpha: float,
    reduce: bool = True,
    lim: float = 0.4,
    size: int = 41,
) -> pd.DataFrame:
    r"""Adjusted estimate and t-value on a grid of confounder strengths, for the contour plot.

    Parameters
    ----------
    estimate, se, dof, alpha, reduce
        As in :func:`bounds_table`.
    lim : float
        Largest partial R² on both axes (``sensemakr``'s default 0.4; below 1).
    size : int
        Grid points per axis.

    Returns
    -------
    DataFrame
        Long format, ``r2yz_dx`` varying slowest: ``r2dz_x``, ``r2yz_dx``,
        ``adjusted_estimate``, ``adjusted_t``, and the constants ``estimate`` and
        ``t_threshold`` (:math:`|t_{\alpha/2,\text{dof}-1}|`, the t-value contour drawn).
    """
    axis = np.linspace(0.0, lim, size)
    r2d, r2y = (a.ravel() for a in np.meshgrid(axis, axis))
    return pd.DataFrame(
        {
            "r2dz_x": r2d,
            "r2yz_dx": r2y,
            "adjusted_estimate": adjusted_estimate(estimate, se, dof, r2d, r2y, reduce),
            "adjusted_t": adjusted_t(estimate, se, dof, r2d, r2y, reduce),
            "estimate": estimate,
            "t_threshold": critical_t(alpha, dof - 1),
        }
    )
