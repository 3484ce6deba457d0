r"""How heavy the tails of the inverse-probability weights are: the Hill tail index and its warning.

Under limited overlap the weights :math:`1/\hat p` (treated) and :math:`1/(1-\hat p)`
(controls) can have a tail so heavy that their variance is infinite (tail index
:math:`\alpha < 2`). IPW and matching estimators are then no longer root-n normal and their
standard errors, bootstrap included, understate the uncertainty (Khan & Tamer 2010; Ma & Wang
2020): in causalkit's coverage matrix, IPW's ATE intervals cover 0.84-0.89 and matching's ATT
0.88 in such a world. The estimators report the Hill estimate and warn below 2.
"""

from __future__ import annotations

import math

import numpy as np

from causalkit.contracts import DiagnosticValue

__all__ = [
    "TAIL_INDEX_WARN",
    "hill_tail_index",
    "overlap_diagnostics",
    "tail_warnings",
    "weight_tail_index",
]

TAIL_INDEX_WARN = 2.0
"""Below this estimated tail index the weights' variance is taken to be infinite."""

_MIN_UNITS = 20
"""Fewest weights on which a tail index is estimated."""


def hill_tail_index(weights: np.ndarray) -> float:
    r"""Hill's (1975) estimate of the tail index of positive ``weights``.

    With the order statistics :math:`w_{(1)} \ge w_{(2)} \ge \dots` and
    :math:`k = \max(5, \lfloor\sqrt m\rfloor)` of the :math:`m` weights,

    .. math:: \hat\alpha = \Big[\frac1k\sum_{i=1}^{k}\log\frac{w_{(i)}}{w_{(k+1)}}\Big]^{-1}.

    NaN with fewer than 20 weights or when the top :math:`k+1` weights are equal (no tail).

    References
    ----------
    Hill, B. M. (1975). A simple general approach to inference about the tail of a
    distribution. *Annals of Statistics* 3(5), 1163-1174.
    """
    m = weights.size
    if m < _MIN_UNITS:
        return math.nan
    k = max(5, math.isqrt(m))
    part = np.partition(weights, m - k - 1)  # the k largest after the (k+1)-th largest
    top = np.sort(part[m - k :])[::-1]
    mean_log = float(np.mean(np.log(top / part[m - k - 1])))
    return 1.0 / mean_log if mean_log > 0 else math.nan


def weight_tail_index(score: np.ndarray, d: np.ndarray, estimand: str) -> float:
    r"""The smallest Hill tail index of the weights the estimand puts on each arm.

    ATE: :math:`1/\hat p` on the treated and :math:`1/(1-\hat p)` on the controls; ATT:
    the odds :math:`\hat p/(1-\hat p)` on the controls; ATC: :math:`(1-\hat p)/\hat p` on the
    treated. NaN when no arm has enough units.
    """
    d = np.asarray(d, dtype=bool)
    p_t, p_c = score[d], score[~d]
    arms = {
        "ATE": (1.0 / p_t, 1.0 / (1.0 - p_c)),
        "ATT": (p_c / (1.0 - p_c),),
        "ATC": ((1.0 - p_t) / p_t,),
    }[estimand]
    found = [a for a in (hill_tail_index(w) for w in arms) if math.isfinite(a)]
    return min(found) if found else math.nan


def overlap_diagnostics(
    score: np.ndarray, d: np.ndarray, bound: float, estimand: str
) -> dict[str, DiagnosticValue]:
    """Propensity range by arm, the share of scores within ``bound`` of 0 or 1, and the
    weights' tail index for ``estimand`` (:func:`weight_tail_index`)."""
    d = np.asarray(d, dtype=bool)
    return {
        "ps_min_treated": float(score[d].min()),
        "ps_max_treated": float(score[d].max()),
        "ps_min_control": float(score[~d].min()),
        "ps_max_control": float(score[~d].max()),
        "share_ps_near_0": float(np.mean(score < bound)),
        "share_ps_near_1": float(np.mean(score > 1.0 - bound)),
        "weight_tail_index": weight_tail_index(score, d, estimand),
    }


def tail_warnings(who: str, diagnostics: dict[str, DiagnosticValue]) -> list[str]:
    """The warning for an estimated weight tail index below :data:`TAIL_INDEX_WARN`."""
    alpha = diagnostics.get("weight_tail_index")
    if not isinstance(alpha, float) or not alpha < TAIL_INDEX_WARN:
        return []
    return [
        f"{who}: the inverse-probability weights are heavy-tailed (Hill tail index {alpha:.2f} "
        f"< {TAIL_INDEX_WARN:g}: overlap is too weak for a finite variance); the SE and intervals "
        "understate the uncertainty. Restrict the population (trim) or target the overlap"
    ]
