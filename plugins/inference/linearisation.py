r"""R microsynth's panel linearisation inference: Wald intervals and normal tests from fixed terms.

The estimator hands over terms :math:`t_{rj}` (``fit.linearisation.terms``, one row per
draw as R treats it, one column per estimate) and this plugin does exactly what R's
``get.stats1`` does with them:

.. math::
    \widehat V_j = \sum_r t_{rj}^2,\qquad z_j = \hat\theta_j/\sqrt{\widehat V_j},

with a normal reference: :math:`p = \Phi(z)` for ``test="lower"``, :math:`1-\Phi(z)` for
``"upper"``, :math:`2\Phi(-|z|)` for ``"twosided"``. Intervals are always two-sided Wald
intervals :math:`\hat\theta_j \pm z_{(1+\text{level})/2}\sqrt{\widehat V_j}` (R's
``confidence`` is ``level``; R microsynth's default is 0.9). With ``joint`` the critical value
is the sup-t quantile of the Gaussian with covariance :math:`\sum_r t_r t_r^\top` and the
p-values are Holm-adjusted.

For MicroSynth panel mode a log-ratio estimate :math:`x = \log(\mathrm{Trt}/\mathrm{Con})`
with its delta-method terms gives R's percent-change interval as
:math:`[e^{x_{lower}} - 1, e^{x_{upper}} - 1]`.

What it ignores, as R does: the weights are treated as fixed (not as estimated by
calibration or the QP) and every row is an independent draw, so rows of one unit in
different periods are independent, and the residuals of the regression on the treatment
indicator and period dummies keep the unit levels that matching on pre-period outcomes
removed. It is therefore conservative: on ``area_panel`` (``selection=0``, 300 areas, 8
treated, R = 500) the mean SE is 3.31 times the empirical SE and 95% intervals cover every
time. It is here to reproduce R; ``microsynth_panel``'s default is ``analytic`` on the
unit-level calibration linearisation
(:mod:`~causalkit_plugins.estimators.microsynth.panel_influence`).

References
----------
Robbins, M.W. & Davenport, S. (2021). microsynth: synthetic control methods for
disaggregated and micro-level data in R. *J. Stat. Softw.* 97(2).
Binder, D.A. (1983). On the variances of asymptotically normal estimators from complex
surveys. *Int. Stat. Rev.* 51.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from causalkit.contracts import Capability, Fit, InferenceOutcome, Params
from causalkit.errors import PluginError
from causalkit_plugins.inference.common import InferenceParams, gaussian_sup_t, outcome

__all__ = ["PanelLinearisation", "LinearisationParams", "directed_p_values"]

Test = Literal["lower", "upper", "twosided"]


def directed_p_values(z: np.ndarray, test: Test) -> np.ndarray:
    r"""Normal p-values of :math:`z` for the alternative ``test`` (NaN stays NaN)."""
    from scipy.special import ndtr

    z = np.asarray(z, dtype=np.float64)
    if test == "lower":
        return np.asarray(ndtr(z))
    if test == "upper":
        return np.asarray(ndtr(-z))
    return np.asarray(2 * ndtr(-np.abs(z)))


class LinearisationParams(InferenceParams):
    """Parameters of R's panel linearisation inference."""

    test: Test = Field(
        "twosided", description="alternative of the p-values (R microsynth: lower, upper, twosided)"
    )


class PanelLinearisation:
    """R microsynth's linearisation inference from ``fit.linearisation`` (see the module docstring)."""

    name: ClassVar[str] = "linearisation"
    Params: ClassVar[type[Params]] = LinearisationParams
    requires_any: ClassVar[frozenset[Capability]] = frozenset({Capability.LINEARISATION})

    def __init__(self, params: LinearisationParams | None = None) -> None:
        self.params = params or LinearisationParams()

    def infer(self, fit: Fit, rng: np.random.Generator) -> InferenceOutcome:
        """SEs, Wald intervals and directed normal p-values for every estimate of ``fit``."""
        from scipy.special import ndtri

        if fit.linearisation is None:
            raise PluginError(
                "inference=linearisation: this estimator provides no linearisation terms"
            )
        p = self.params
        terms = np.asarray(fit.linearisation.terms, dtype=np.float64)
        if terms.ndim != 2 or terms.shape[1] != fit.k:
            raise PluginError(
                f"inference=linearisation: expected terms of shape (m, {fit.k}), got {terms.shape}"
            )
        est = fit.estimates
        se = np.sqrt(np.einsum("rj,rj->j", terms, terms))
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(se > 0, est / se, np.nan)
        diag: dict[str, float | int | str] = {"test": p.test}
        if p.joint and fit.k > 1:
            ok = np.isfinite(se)  # NaN estimates (e.g. an undefined log ratio) are left out
            crit = gaussian_sup_t(terms[:, ok].T @ terms[:, ok], p.level, rng)
            diag["critical_value"] = crit
        else:
            crit = float(ndtri(0.5 + p.level / 2))
        return outcome(
            self.name, p, se, est - crit * se, est + crit * se, directed_p_values(z, p.test), diag
        )
