"""AIPW (doubly robust) scores for the ATE, the ATT and the potential-outcome means, as ratio estimating equations."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from causalkit.contracts import Estimand

__all__ = ["Scores", "aipw_scores", "normalized_propensity", "ratio_effect"]


@dataclass(frozen=True)
class Scores:
    r"""Per-row AIPW score elements: every effect is a ratio :math:`\sum num_i / \sum den_i`.

    Attributes
    ----------
    num : ndarray
        ATE: :math:`\varphi_i = \hat g_1 - \hat g_0 + \frac{d(y-\hat g_1)}{\hat m}
        - \frac{(1-d)(y-\hat g_0)}{1-\hat m}`. ATT: :math:`a_i = d(\hat g_1-\hat g_0)
        + \hat m\big[\frac{d(y-\hat g_1)}{\hat m} - \frac{(1-d)(y-\hat g_0)}{1-\hat m}\big]`.
        MEAN1: :math:`\hat g_1 + \frac{d(y-\hat g_1)}{\hat m}`; MEAN0:
        :math:`\hat g_0 + \frac{(1-d)(y-\hat g_0)}{1-\hat m}` (the ATE's two arm terms).
    den : ndarray
        ATE, MEAN1, MEAN0: 1. ATT: :math:`d_i`.

    With sampling weights :math:`s_i` both are multiplied by :math:`s_i`
    (:func:`aipw_scores`), so every ratio, the segments' included, is a weighted one.
    """

    estimand: Estimand
    num: np.ndarray
    den: np.ndarray

    @property
    def per_row(self) -> np.ndarray:
        """The score scaled to the effect: ATE :math:`\\varphi_i`; ATT :math:`a_i/\\bar d` (DoubleML's ``psi_b``)."""
        return self.num / self.den.mean()


def normalized_propensity(
    m: np.ndarray, d: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    r"""The propensity that makes the IPW part use normalised (Hajek) weights.

    Identical to DoubleML's ``normalize_ipw``: with :math:`s_1 = \overline{d/m}` and
    :math:`s_0 = \overline{(1-d)/(1-m)}`, treated rows get :math:`m s_1` and controls
    :math:`1 - (1-m) s_0`, so that the inverse weights average to one within each arm.
    With sampling weights the averages are weighted (:func:`numpy.average`).
    """
    s1 = np.average(d / m, weights=weights)
    s0 = np.average((1.0 - d) / (1.0 - m), weights=weights)
    return d * m * s1 + (1.0 - d) * (1.0 - (1.0 - m) * s0)


def aipw_scores(
    y: np.ndarray,
    d: np.ndarray,
    g0: np.ndarray,
    g1: np.ndarray,
    m: np.ndarray,
    estimand: Estimand,
    weights: np.ndarray | None = None,
) -> Scores:
    r"""AIPW score elements (Robins, Rotnitzky & Zhao 1994; Chernozhukov et al. 2018, eqs. 5.3-5.4).

    Parameters
    ----------
    y, d : ndarray
        Outcome and 0/1 treatment as floats.
    g0, g1 : ndarray
        Out-of-fold predictions of :math:`E[Y\mid D=0,X]` and :math:`E[Y\mid D=1,X]`.
    m : ndarray
        Out-of-fold (clipped, possibly normalised) propensity :math:`P(D=1\mid X)`.
    estimand : Estimand
        ``ATE``, ``ATT``, ``MEAN1`` or ``MEAN0``.
    weights : ndarray, optional
        Sampling weights :math:`s_i \ge 0`; the nuisances should be fitted with them.

    Notes
    -----
    ATE :math:`\hat\theta = n^{-1}\sum\varphi_i`; ATT
    :math:`\hat\theta = \sum a_i / \sum d_i`, which equals DoubleML's ATTE
    :math:`-\overline{\psi_b}/\overline{\psi_a}` with :math:`\psi_a = -d/\bar d`. The
    influence value of a ratio is :math:`(num_i - \hat\theta\, den_i)/\overline{den}`.
    The potential-outcome mean :math:`\widehat{E[Y(1)]} = n^{-1}\sum_i\{\hat g_1 +
    d_i(y_i-\hat g_1)/\hat m_i\}` is Kang & Schafer's (2007) doubly robust
    :math:`\hat\mu_{BC\text{-}OLS}` when :math:`\hat g_1` is the least squares fit on the
    treated and :math:`\hat m` a logit fitted without cross-fitting (``folds=1``); the ATE's
    score is its difference with that of :math:`\widehat{E[Y(0)]}`.

    With sampling weights the elements are :math:`s_i num_i` and :math:`s_i den_i`: the
    ATE :math:`\hat\theta = \sum s_i\varphi_i/\sum s_i` with influence
    :math:`s_i(\varphi_i - \hat\theta)/\bar s`, the ATT
    :math:`\sum s_i a_i/\sum s_i d_i` with influence
    :math:`s_i(a_i - \hat\theta d_i)/\overline{sd}`: the effects of the weighted population,
    each weighted unit one independent draw (Stata's ``pweight``; a frequency weight's copies
    would count as :math:`s_i` draws, giving :math:`\sum s_i(\varphi_i-\hat\theta)^2` instead
    of :math:`\sum s_i^2(\varphi_i-\hat\theta)^2` in the variance). The score stays Neyman
    orthogonal in the weighted population's nuisances, which weighted learners estimate.
    """
    if estimand == Estimand.MEAN1:
        num, den = g1 + d * (y - g1) / m, np.ones_like(y)
    elif estimand == Estimand.MEAN0:
        num, den = g0 + (1.0 - d) * (y - g0) / (1.0 - m), np.ones_like(y)
    else:
        ipw = d * (y - g1) / m - (1.0 - d) * (y - g0) / (1.0 - m)
        if estimand == Estimand.ATE:
            num, den = (g1 - g0) + ipw, np.ones_like(y)
        else:
            num, den = d * (g1 - g0) + m * ipw, d.astype(np.float64)
    if weights is not None:
        num, den = weights * num, weights * den
    return Scores(estimand, num, den)


def ratio_effect(num: np.ndarray, den: np.ndarray) -> tuple[float, np.ndarray]:
    r"""Effect :math:`\hat\theta = \sum num/\sum den` and influence :math:`(num - \hat\theta den)/\overline{den}`."""
    theta = float(num.sum() / den.sum())
    return theta, (num - theta * den) / den.mean()
