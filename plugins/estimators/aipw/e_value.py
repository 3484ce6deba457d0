"""The E-value of an AIPW effect (:func:`~causalkit.evalue.e_value`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from causalkit.contracts import DiagnosticValue, Estimand
from causalkit.evalue import e_value
from causalkit_plugins.estimators.aipw.scores import aipw_scores, ratio_effect

if TYPE_CHECKING:
    from causalkit_plugins.estimators.aipw.estimator import CrossFit

__all__ = ["aipw_baseline", "aipw_e_value"]


def aipw_baseline(cf: CrossFit) -> float:
    r"""The cross-fit's estimate of the estimand's mean outcome without treatment.

    Parameters
    ----------
    cf : CrossFit
        One cross-fit (kept rows; clipped or normalised propensity; sampling weights).

    Returns
    -------
    float
        ATE: the doubly robust :math:`\widehat{E[Y(0)]} = \sum_i s_i\{\hat g_0 +
        (1-d_i)(y_i-\hat g_0)/(1-\hat m_i)\}/\sum_i s_i` (``MEAN0``'s estimate). ATT:
        :math:`\widehat{E[Y(0)\mid D=1]} = \bar y_1 - \hat\theta`, the treated's (weighted)
        mean outcome minus the effect, which is the ATT score's own counterfactual mean.
    """
    if cf.estimand is Estimand.ATE:
        g0 = cf.nuisances.g0[cf.kept]
        s = aipw_scores(cf.y, cf.d, g0, g0, cf.m, Estimand.MEAN0, cf.weights)
        return ratio_effect(s.num, s.den)[0]
    t = cf.d == 1
    return float(np.average(cf.y[t], weights=None if cf.weights is None else cf.weights[t])) - (
        cf.estimate
    )


def aipw_e_value(estimate: float, cfs: Sequence[CrossFit]) -> dict[str, DiagnosticValue]:
    """The ``e_value.*`` diagnostics of an effect; none for ``MEAN1``/``MEAN0``.

    Parameters
    ----------
    estimate : float
        The reported effect (with repeated cross-fitting, the median over repetitions).
    cfs : sequence of CrossFit
        The cross-fit(s); with several, the baseline risk is the median of their
        :func:`aipw_baseline` and the SD that of the first one's kept rows.

    Returns
    -------
    dict
        :meth:`~causalkit.evalue.EValue.diagnostics`: a 0/1
        outcome's risk ratio from :func:`aipw_baseline`, otherwise the VanderWeele-Ding
        approximation with the pooled within-arm SD (weighted by the sampling weights).
    """
    cf = cfs[0]
    if cf.estimand in (Estimand.MEAN1, Estimand.MEAN0):
        return {}
    baseline = float(np.median([aipw_baseline(c) for c in cfs]))
    return e_value(estimate, cf.y, cf.d.astype(bool), baseline, cf.weights).diagnostics()
