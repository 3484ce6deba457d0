"""Analytic (influence-function / model-based) inference and the ``none`` method."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from pydantic import Field
from scipy import stats

from causalkit.contracts import Fit, InferenceOutcome, Params
from causalkit.errors import PluginError

__all__ = ["Analytic", "NoInference", "normal_outcome"]


def normal_outcome(method: str, estimate: float, se: float, level: float, **diag: float) -> InferenceOutcome:
    """Wald CI ``estimate ± z_{1-α/2}·se`` and two-sided normal p-value for zero."""
    z = stats.norm.ppf(0.5 + level / 2)
    p = float(2 * stats.norm.sf(abs(estimate) / se)) if se > 0 else math.nan
    return InferenceOutcome(method, se, estimate - z * se, estimate + z * se, p, level, diag)


class AnalyticParams(Params):
    """Parameters of analytic inference."""

    level: float = Field(0.95, gt=0, lt=1, description="confidence level")


class Analytic:
    r"""Large-sample normal inference.

    With per-unit influence values :math:`\psi_i` the variance is
    :math:`\widehat{V} = n^{-2}\sum_i \psi_i^2`; otherwise the estimator's own model-based
    standard error is used. Never falls back silently to anything else.
    """

    name: ClassVar[str] = "analytic"
    Params: ClassVar[type[Params]] = AnalyticParams

    def __init__(self, params: AnalyticParams | None = None) -> None:
        self.params = params or AnalyticParams()

    def infer(self, fit: Fit, rng: np.random.Generator) -> InferenceOutcome:
        if fit.influence is not None:
            psi = np.asarray(fit.influence, dtype=float)
            se = float(np.sqrt(np.sum(psi**2)) / psi.shape[0])
        elif fit.model_se is not None:
            se = float(fit.model_se)
        else:
            raise PluginError("inference=analytic: the fit carries neither influence values nor a model SE")
        return normal_outcome(self.name, fit.estimate, se, self.params.level)


class NoInferenceParams(Params):
    """Parameters of the ``none`` method."""

    level: float = Field(0.95, gt=0, lt=1)


class NoInference:
    """Point estimate only: SE, CI and p-value are NaN."""

    name: ClassVar[str] = "none"
    Params: ClassVar[type[Params]] = NoInferenceParams

    def __init__(self, params: NoInferenceParams | None = None) -> None:
        self.params = params or NoInferenceParams()

    def infer(self, fit: Fit, rng: np.random.Generator) -> InferenceOutcome:
        nan = math.nan
        return InferenceOutcome(self.name, nan, nan, nan, nan, self.params.level)
