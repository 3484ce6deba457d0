"""Analytic (influence-function / model-based) inference and the ``none`` method."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from causalkit.contracts import Capability, Fit, InferenceOutcome, Params
from causalkit.errors import PluginError
from causalkit_plugins.inference.common import (
    InferenceParams,
    gaussian_sup_t,
    influence_rows,
    outcome,
    wald_outcome,
)

__all__ = [
    "Analytic",
    "AnalyticParams",
    "NoInference",
    "NoInferenceParams",
    "influence_cov",
    "influence_se",
]


class AnalyticParams(InferenceParams):
    """Parameters of analytic inference."""


def influence_cov(psi: np.ndarray, n: int | None = None) -> np.ndarray:
    r"""Covariance of the estimates from an n x k influence matrix, :math:`n^{-2}\psi^\top\psi`.

    ``n`` defaults to the rows of ``psi``; it differs for cluster sums
    (:func:`~causalkit_plugins.inference.common.influence_rows`).
    """
    n = psi.shape[0] if n is None else n
    return (psi.T @ psi) / n**2


def influence_se(psi: np.ndarray, n: int | None = None) -> np.ndarray:
    r"""Standard errors :math:`n^{-1}(\sum_i \psi_{ij}^2)^{1/2}` of an n x k influence matrix.

    Column by column (the same summation as for a single estimate, bit for bit). Where the
    squares overflow (influence values near 1e300) or underflow (near 1e-300), the column is
    summed again divided by its largest absolute value, so the SE is exact at any scale.
    ``n`` defaults to the rows of ``psi``; it differs for cluster sums.
    """
    n = psi.shape[0] if n is None else n
    with np.errstate(over="ignore", under="ignore"):  # both are handled below
        se = np.array([np.sqrt(np.sum(psi[:, j] ** 2)) / n for j in range(psi.shape[1])])
    for j in np.flatnonzero(~(np.isfinite(se) & (se > 0))):
        top = float(np.max(np.abs(psi[:, j]))) if psi.shape[0] else 0.0
        if np.isfinite(top) and top > 0:
            se[j] = top * (np.sqrt(np.sum((psi[:, j] / top) ** 2)) / n)
    return se


def degenerate_se(method: str, names: tuple[str, ...], se: np.ndarray) -> tuple[str, ...]:
    """Warnings for standard errors that are zero or not finite (their CI and p-value are void)."""
    bad = np.flatnonzero(~(np.isfinite(se) & (se > 0)))
    return tuple(
        f"{method}: the standard error of {names[j]} is {se[j]:g} (values out of floating-point "
        "range or no variation); its interval and p-value mean nothing"
        for j in bad
    )


class Analytic:
    r"""Large-sample normal inference.

    With an n x k influence matrix :math:`\psi` the variance of estimate :math:`j` is
    :math:`\widehat{V}_j = n^{-2}\sum_i \psi_{ij}^2`; otherwise the estimator's own model-based
    standard errors are used. A fit that gives both (``heckman``) is judged by its model SEs,
    the influence values giving the joint band's correlation (and the multiplier bootstrap its
    draws). Never falls back silently to anything else.

    With clusters (the ``cluster`` role) the influence values are summed within clusters
    first: :math:`\widehat{V}_j = c\,n^{-2}\sum_g(\sum_{i\in g}\psi_{ij})^2` with the CR1
    factor :math:`c` (:func:`~causalkit_plugins.inference.common.influence_rows`):
    :math:`\frac{G}{G-1}\frac{N-1}{N-K}` for the estimators that are regression coefficients
    (``naive``/``itt``: OLS of the outcome on an intercept and the group, :math:`K = 2`,
    equal to statsmodels' ``cov_type="cluster"``; ``ols``: the fully interacted regression,
    :math:`K = 2p` for :math:`p` coefficients per arm) and :math:`\frac{G}{G-1}` alone for
    the M-estimator ``ipw`` (no regression defines :math:`K`). Model SEs are never
    clustered: an estimator that takes the cluster role gives influence values.

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
        from scipy.special import ndtri

        p = self.params
        cov = None
        if fit.influence is not None:
            psi, n = influence_rows(fit)
            se = influence_se(psi, n)
            cov = influence_cov(psi, n) if p.joint and fit.k > 1 else None
        if fit.model_se is not None:  # the estimator's own formula first (heckman gives both)
            se = fit.model_se
        elif fit.influence is None:
            raise PluginError(
                "inference=analytic: the fit carries neither influence values nor a model SE"
            )
        warnings = degenerate_se(self.name, fit.names, se)
        flag = {"se_degenerate": len(warnings)} if warnings else {}
        if not (p.joint and fit.k > 1):
            return wald_outcome(self.name, p, fit.estimates, se, None, flag, warnings)
        if cov is not None:
            crit, how = gaussian_sup_t(cov, p.level, rng), "sup-t"
        else:
            crit, how = float(ndtri(1 - (1 - p.level) / (2 * fit.k))), "bonferroni"
        return wald_outcome(
            self.name,
            p,
            fit.estimates,
            se,
            crit,
            {"critical_value": crit, "joint_method": how, **flag},
            warnings,
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
