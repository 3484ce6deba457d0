"""Analytic (influence-function / model-based) inference and the ``none`` method."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy import stats

from causalkit.contracts import Capability, Fit, InferenceOutcome, Params
from causalkit.errors import PluginError
from causalkit_plugins.inference.common import (
    InferenceParams,
    gaussian_sup_t,
    outcome,
    wald_outcome,
)

__all__ = ["Analytic", "AnalyticParams", "NoInference", "NoInferenceParams", "influence_cov"]


class AnalyticParams(InferenceParams):
    """Parameters of analytic inference."""


def influence_cov(psi: np.ndarray) -> np.ndarray:
    r"""Covariance of the estimates from an n x k influence matrix, :math:`n^{-2}\psi^\top\psi`."""
    n = psi.shape[0]
    return (psi.T @ psi) / n**2


class Analytic:
    r"""Large-sample normal inference.

    With an n x k influence matrix :math:`\psi` the variance of estimate :math:`j` is
    :math:`\widehat{V}_j = n^{-2}\sum_i \psi_{ij}^2`; otherwise the estimator's own model-based
    standard errors are used. Never falls back silently to anything else.

    With ``joint`` and k > 1 the band's critical value is the sup-t quantile of a Gaussian
    vector with the influence-based correlation :math:`n^{-2}\psi^\top\psi` (drawn from the
    run's Generator); with model SEs only (no correlation known) it is Bonferroni's
    :math:`z_{1-\alpha/(2k)}`, which is conservative (``joint_method`` says which).
    """

    name: ClassVar[str] = "analytic"
    Params: ClassVar[type[Params]] = AnalyticParams
    requires_any: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.INFLUENCE, Capability.MODEL_SE}
    )

    def __init__(self, params: AnalyticParams | None = None) -> None:
        self.params = params or AnalyticParams()

    def infer(self, fit: Fit, rng: np.random.Generator) -> InferenceOutcome:
        p = self.params
        cov = None
        if fit.influence is not None:
            psi = fit.influence
            # Column by column: the same summation as for a single estimate, bit for bit.
            se = np.array([np.sqrt(np.sum(psi[:, j] ** 2)) / psi.shape[0] for j in range(fit.k)])
            cov = influence_cov(psi) if p.joint and fit.k > 1 else None
        elif fit.model_se is not None:
            se = fit.model_se
        else:
            raise PluginError(
                "inference=analytic: the fit carries neither influence values nor a model SE"
            )
        if not (p.joint and fit.k > 1):
            return wald_outcome(self.name, p, fit.estimates, se)
        if cov is not None:
            crit, how = gaussian_sup_t(cov, p.level, rng), "sup-t"
        else:
            crit, how = float(stats.norm.ppf(1 - (1 - p.level) / (2 * fit.k))), "bonferroni"
        return wald_outcome(
            self.name,
            p,
            fit.estimates,
            se,
            crit,
            {"critical_value": crit, "joint_method": how},
        )


class NoInferenceParams(InferenceParams):
    """Parameters of the ``none`` method."""


class NoInference:
    """Point estimates only: SE, CI and p-value are NaN."""

    name: ClassVar[str] = "none"
    Params: ClassVar[type[Params]] = NoInferenceParams
    requires_any: ClassVar[frozenset[Capability]] = frozenset()

    def __init__(self, params: NoInferenceParams | None = None) -> None:
        self.params = params or NoInferenceParams()

    def infer(self, fit: Fit, rng: np.random.Generator) -> InferenceOutcome:
        nan = np.full(fit.k, np.nan)
        return outcome(self.name, self.params, nan, nan, nan, nan)
