"""Sensitivity to hidden bias: Rosenbaum's Γ bounds for matched pairs and the E-value."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "rosenbaum_bounds",
    "e_value_rr",
    "e_value_rr_ci",
    "e_value_difference",
    "e_value_interval",
    "pooled_sd",
    "RR_PER_SD",
]

RR_PER_SD = 0.91
"""VanderWeele & Ding's (2017) conversion of a standardised mean difference to a risk ratio."""


def rosenbaum_bounds(differences: np.ndarray, gammas: Sequence[float]) -> pd.DataFrame:
    r"""Bounds on the one-sided Wilcoxon signed-rank p-value under hidden bias :math:`\Gamma`.

    Parameters
    ----------
    differences : ndarray, shape (m,)
        Treated-minus-control outcome difference of each matched pair (for k:1 matching the
        difference with the mean of the matched controls). Zero differences are dropped.
    gammas : sequence of float
        Values :math:`\Gamma \ge 1` of the odds ratio of treatment within a pair.

    Returns
    -------
    DataFrame
        Columns ``gamma``, ``statistic`` (:math:`T^+`), ``p_lower``, ``p_upper`` (the
        smallest and largest one-sided p-values consistent with :math:`\Gamma`), ``n_pairs``.

    Notes
    -----
    With ranks :math:`r_i` of :math:`|D_i|` (average ranks for ties) and
    :math:`T^+ = \sum_i r_i 1[D_i > 0]`, a bias of at most :math:`\Gamma` makes :math:`T^+`
    stochastically between the sums of independent :math:`r_i B_i` with
    :math:`P(B_i = 1) = p^- = 1/(1+\Gamma)` and :math:`p^+ = \Gamma/(1+\Gamma)`. With the
    normal approximation, :math:`E = p\sum r_i`, :math:`V = p(1-p)\sum r_i^2` and the bound
    :math:`1 - \Phi((T^+ - E)/\sqrt V)` (Rosenbaum 2002, sec. 4.3.3; ``rbounds::psens``).
    The test is against an effect in the direction of the mean difference: when it is
    negative the signs are flipped first. At :math:`\Gamma = 1` both bounds equal the
    tie-corrected normal-approximation Wilcoxon p-value.

    References
    ----------
    Rosenbaum, P. (2002). *Observational Studies*, 2nd ed., Springer, ch. 4.
    Keele, L. (2010). An overview of rbounds: an R package for Rosenbaum bounds sensitivity
    analysis with matched data.
    """
    D = np.asarray(differences, dtype=np.float64)
    if D.size and np.mean(D) < 0:
        D = -D
    D = D[D != 0]
    r = stats.rankdata(np.abs(D))
    t_plus = float(r[D > 0].sum())
    s1, s2 = float(r.sum()), float(np.sum(r * r))
    rows = []
    for g in gammas:
        if g < 1:
            raise ValueError(f"gamma: expected a value >= 1, got {g}")
        bounds = []
        for p in (1.0 / (1.0 + g), g / (1.0 + g)):
            var = p * (1.0 - p) * s2
            z = (t_plus - p * s1) / math.sqrt(var) if var > 0 else math.nan
            bounds.append(float(stats.norm.sf(z)))
        rows.append((float(g), t_plus, bounds[0], bounds[1], int(D.size)))
    return pd.DataFrame(rows, columns=["gamma", "statistic", "p_lower", "p_upper", "n_pairs"])


def e_value_rr(rr: float) -> float:
    r"""E-value of a risk ratio: :math:`RR + \sqrt{RR(RR-1)}` after :math:`RR \to 1/RR` if below 1.

    References
    ----------
    VanderWeele, T. & Ding, P. (2017). Sensitivity analysis in observational research:
    introducing the E-value. *Ann. Intern. Med.* 167(4), 268-274.
    """
    if not math.isfinite(rr) or rr <= 0:
        return math.nan
    rr = 1.0 / rr if rr < 1 else rr
    return float(rr + math.sqrt(rr * (rr - 1.0)))


def e_value_rr_ci(lower: float, upper: float) -> float:
    """E-value of the confidence limit closest to the null: 1 when the interval covers 1."""
    if lower <= 1.0 <= upper:
        return 1.0
    return e_value_rr(lower if lower > 1.0 else upper)


def pooled_sd(y: np.ndarray, d: np.ndarray) -> float:
    r"""Pooled within-arm SD :math:`\sqrt{((n_1-1)s_1^2 + (n_0-1)s_0^2)/(n-2)}` of the outcome."""
    d = np.asarray(d, dtype=bool)
    n1, n0 = int(d.sum()), int((~d).sum())
    ss = np.sum((y[d] - y[d].mean()) ** 2) + np.sum((y[~d] - y[~d].mean()) ** 2)
    return float(math.sqrt(ss / (n1 + n0 - 2))) if n1 + n0 > 2 else math.nan


def e_value_difference(estimate: float, sd: float) -> float:
    r"""E-value of a mean difference.

    Parameters
    ----------
    estimate : float
        The effect on the outcome scale.
    sd : float
        Outcome standard deviation used to standardise (:func:`pooled_sd`).

    Returns
    -------
    float
        The E-value of :math:`RR \approx \exp(0.91\,\hat\tau/\sigma)`; NaN when ``sd`` is not
        positive.

    Notes
    -----
    VanderWeele & Ding (2017, Table 2) approximate the risk ratio of a standardised mean
    difference :math:`d = \hat\tau/\sigma` by :math:`RR \approx \exp(0.91\,d)`; the E-value is
    that of this risk ratio (R package ``EValue``, ``evalues.MD``). The approximation assumes
    a roughly normal outcome; it is a scale for comparison, not an exact bound. The E-value
    of a confidence limit is :func:`e_value_interval` of the interval an inference method gave.
    """
    if not (math.isfinite(sd) and sd > 0):
        return math.nan
    return e_value_rr(math.exp(RR_PER_SD * (estimate / sd)))


def e_value_interval(lower: float, upper: float, sd: float) -> float:
    r"""E-value of the limit closest to the null of a confidence interval of a mean difference.

    Parameters
    ----------
    lower, upper : float
        The interval on the outcome scale (from inference: ``ci_lower``, ``ci_upper``).
    sd : float
        Outcome standard deviation used to standardise (:func:`pooled_sd`).

    Returns
    -------
    float
        :func:`e_value_rr_ci` of :math:`(\exp(0.91\,l/\sigma), \exp(0.91\,u/\sigma))`: 1 when the
        interval covers zero; NaN when ``sd`` is not positive.
    """
    if not (math.isfinite(sd) and sd > 0):
        return math.nan
    return e_value_rr_ci(math.exp(RR_PER_SD * (lower / sd)), math.exp(RR_PER_SD * (upper / sd)))
