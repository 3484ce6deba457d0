r"""E-values (VanderWeele & Ding 2017) that say how they got their risk ratio.

Every estimator of an effect on an outcome reports one (:class:`EValue`): the risk ratio
itself for a 0/1 outcome, VanderWeele & Ding's :math:`\exp(0.91\,d)` approximation with the SD
behind :math:`d` (weighted with sampling weights) for any other outcome. A small core module
so that an estimator reporting one imports nothing else.

References
----------
VanderWeele, T. & Ding, P. (2017). Sensitivity analysis in observational research:
introducing the E-value. *Ann. Intern. Med.* 167(4), 268-274.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, cast, get_args

import numpy as np

from causalkit.contracts import DiagnosticValue

__all__ = [
    "EValue",
    "e_value",
    "e_value_ci",
    "e_value_rr",
    "e_value_rr_ci",
    "e_value_difference",
    "e_value_interval",
    "pooled_sd",
    "RR_PER_SD",
]

RR_PER_SD = 0.91
"""VanderWeele & Ding's (2017) conversion of a standardised mean difference to a risk ratio."""


def e_value_rr(rr: float) -> float:
    r"""Return the E-value of a risk ratio: :math:`RR + \sqrt{RR(RR-1)}` after :math:`RR \to 1/RR` if below 1.

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
    """Return the E-value of the confidence limit closest to the null: 1 when the interval covers 1."""
    if lower <= 1.0 <= upper:
        return 1.0
    return e_value_rr(lower if lower > 1.0 else upper)


def pooled_sd(y: np.ndarray, d: np.ndarray, weights: np.ndarray | None = None) -> float:
    r"""Pooled within-arm SD of the outcome, weighted by sampling weights if given.

    Parameters
    ----------
    y : ndarray, shape (n,)
        Outcome.
    d : ndarray of bool, shape (n,)
        Arm.
    weights : ndarray, shape (n,), optional
        Sampling weights :math:`w_i \ge 0`.

    Returns
    -------
    float
        Without weights :math:`\sqrt{((n_1-1)s_1^2 + (n_0-1)s_0^2)/(n-2)}`. With weights,
        over the :math:`m` units of positive weight, with :math:`\tilde w_i = m\,w_i/\sum_j w_j`
        (mean 1) and the weighted arm means :math:`\bar y_g = \sum_{i\in g} w_iy_i/\sum_{i\in g}
        w_i`: :math:`\sqrt{\sum_g\sum_{i\in g}\tilde w_i(y_i-\bar y_g)^2/(m-2)}`, the unweighted
        one when the weights are equal. NaN with two units or fewer, or an arm without weight.
    """
    if weights is not None:
        return _weighted_pooled_sd(
            np.asarray(y, dtype=np.float64), np.asarray(d, dtype=bool), weights
        )
    d = np.asarray(d, dtype=bool)
    n1, n0 = int(d.sum()), int((~d).sum())
    ss = np.sum((y[d] - y[d].mean()) ** 2) + np.sum((y[~d] - y[~d].mean()) ** 2)
    return float(math.sqrt(ss / (n1 + n0 - 2))) if n1 + n0 > 2 else math.nan


def _weighted_pooled_sd(y: np.ndarray, d: np.ndarray, weights: np.ndarray) -> float:
    """:func:`pooled_sd` with sampling weights (formula there)."""
    w = np.asarray(weights, dtype=np.float64)
    w1, w0 = w[d].sum(), w[~d].sum()
    m = int(np.count_nonzero(w > 0))
    if m <= 2 or not (w1 > 0 and w0 > 0):
        return math.nan
    mean = np.where(d, (w[d] @ y[d]) / w1, (w[~d] @ y[~d]) / w0)
    ss = float(w @ (y - mean) ** 2) * m / (w1 + w0)
    return float(math.sqrt(ss / (m - 2)))


def e_value_difference(estimate: float, sd: float) -> float:
    r"""Return the E-value of a mean difference.

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
    return e_value_rr(_smd(sd).ratio(estimate))


def e_value_interval(lower: float, upper: float, sd: float) -> float:
    r"""Return the E-value of the CI limit closest to the null, for a mean difference.

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
    return _smd(sd).interval(lower, upper)


Conversion = Literal["risk_ratio", "smd_0.91"]
"""How an outcome contrast became a risk ratio: observed risks, or the 0.91 SMD approximation."""


@dataclass(frozen=True)
class EValue:
    r"""The E-value of an effect with the conversion that produced its risk ratio.

    Attributes
    ----------
    value : float
        E-value of the estimate (:func:`e_value_rr` of ``rr``).
    conversion : {"risk_ratio", "smd_0.91"}
        ``risk_ratio``: a 0/1 outcome, :math:`RR = (p_0 + \hat\tau)/p_0` with :math:`p_0` the
        estimand's control-arm risk (``baseline``); ``smd_0.91``: any other outcome,
        :math:`RR \approx \exp(0.91\,\hat\tau/s)` with :math:`s` the pooled within-arm SD
        (``sd``, :func:`pooled_sd`).
    rr : float
        The risk ratio (observed or approximated; below 1 for a harmful-to-protective flip).
    baseline : float
        :math:`p_0` (``risk_ratio``), else NaN.
    sd : float
        :math:`s` (``smd_0.91``), else NaN.
    weighted : bool
        :math:`s` is the weighted pooled SD (sampling weights, :func:`pooled_sd`).
    """

    value: float
    conversion: Conversion
    rr: float
    baseline: float
    sd: float
    weighted: bool = False

    def ratio(self, contrast: float) -> float:
        """Return the risk ratio of an outcome-scale contrast under this conversion (NaN when undefined)."""
        if self.conversion == "risk_ratio":
            p0 = self.baseline
            ok = math.isfinite(p0) and p0 > 0 and p0 + contrast > 0
            return (p0 + contrast) / p0 if ok else math.nan
        if not (math.isfinite(self.sd) and self.sd > 0):
            return math.nan
        return math.exp(RR_PER_SD * (contrast / self.sd))

    def interval(self, lower: float, upper: float) -> float:
        """Return the E-value of the CI limit (outcome scale) closest to the null; 1 if it covers 0.

        The same conversion as the estimate's, the baseline risk taken as fixed.
        """
        if lower <= 0.0 <= upper:
            return 1.0
        return e_value_rr(self.ratio(lower if lower > 0 else upper))

    def words(self) -> str:
        """One sentence: the E-value, its risk ratio and where the risk ratio came from."""
        if self.conversion == "risk_ratio":
            return (
                f"E-value {self.value:.4g} of the risk ratio {self.rr:.4g} = (p0 + estimate) / p0, "
                f"p0 = {self.baseline:.4g} (0/1 outcome; the estimand's control-arm risk)"
            )
        return (
            f"E-value {self.value:.4g} of the risk ratio ~ exp(0.91 * estimate / SD) = "
            f"{self.rr:.4g} (VanderWeele-Ding approximation for a continuous outcome; "
            f"SD = {self.sd:.4g}, the {'weighted ' if self.weighted else ''}pooled within-arm SD)"
        )

    def diagnostics(self) -> dict[str, DiagnosticValue]:
        """Return ``e_value``, ``e_value.conversion``, ``e_value.rr``, ``e_value.baseline`` or ``.sd``, ``.basis``."""
        out: dict[str, DiagnosticValue] = {
            "e_value": self.value,
            "e_value.conversion": self.conversion,
            "e_value.rr": self.rr,
        }
        if self.conversion == "risk_ratio":
            out["e_value.baseline"] = self.baseline
        else:
            out["e_value.sd"] = self.sd
        out["e_value.basis"] = self.words()
        return out


def _smd(sd: float) -> EValue:
    """Return the ``smd_0.91`` conversion with standardiser ``sd`` (no estimate yet)."""
    return EValue(math.nan, "smd_0.91", math.nan, math.nan, sd)


def e_value(
    estimate: float,
    y: np.ndarray,
    d: np.ndarray,
    baseline: float,
    weights: np.ndarray | None = None,
) -> EValue:
    r"""Return the E-value of an effect on ``y``, converted as the outcome requires.

    Parameters
    ----------
    estimate : float
        The effect :math:`\hat\tau` on the outcome scale.
    y, d : ndarray
        The outcome and the treatment (bool) of the analysed units.
    baseline : float
        :math:`p_0`, the estimand's mean outcome without treatment as the estimator estimates
        it (e.g. IPW's weighted control mean); used only for a 0/1 outcome, as given.
    weights : ndarray, optional
        Sampling weights of the units: :math:`s` is then the weighted pooled within-arm SD
        (:func:`pooled_sd`), the SD of the population the weighted estimate is for.

    Returns
    -------
    EValue

    Notes
    -----
    A 0/1 outcome has a risk ratio: :math:`RR = p_1/p_0` with :math:`p_1 = p_0 + \hat\tau`
    (inverted when below 1 by :func:`e_value_rr`), and :math:`E = RR + \sqrt{RR(RR-1)}`
    (VanderWeele & Ding 2017). Any other outcome has none; :math:`RR \approx \exp(0.91\,d)`,
    :math:`d = \hat\tau/s` with the pooled within-arm SD :math:`s` (VanderWeele & Ding 2017,
    Table 2; ``EValue::evalues.MD``), an approximation for a roughly normal outcome.

    References
    ----------
    VanderWeele, T. & Ding, P. (2017). Sensitivity analysis in observational research:
    introducing the E-value. *Ann. Intern. Med.* 167(4), 268-274.
    """
    y = np.asarray(y, dtype=np.float64)
    if y.size and bool(np.isin(y, (0.0, 1.0)).all()):
        ev = EValue(math.nan, "risk_ratio", math.nan, float(baseline), math.nan)
    else:
        ev = _smd(pooled_sd(y, d, weights))
    rr = ev.ratio(estimate)
    weighted = weights is not None and ev.conversion == "smd_0.91"
    return EValue(e_value_rr(rr), ev.conversion, rr, ev.baseline, ev.sd, weighted)


def e_value_ci(diagnostics: Mapping[str, DiagnosticValue], lower: float, upper: float) -> float:
    """Return the E-value of a CI with the conversion a fit reported (its ``e_value.*`` diagnostics).

    ``e_value_ci(res.diagnostics, res.ci_lower, res.ci_upper)`` for a result's interval.
    """
    conversion = diagnostics["e_value.conversion"]
    if conversion not in get_args(Conversion):
        raise ValueError(f"e_value.conversion: expected risk_ratio or smd_0.91, got {conversion!r}")
    ev = EValue(
        float(diagnostics["e_value"]),
        cast(Conversion, conversion),
        float(diagnostics["e_value.rr"]),
        float(diagnostics.get("e_value.baseline", math.nan)),
        float(diagnostics.get("e_value.sd", math.nan)),
    )
    return ev.interval(lower, upper)
