"""Multiplier (score) bootstrap from a fit's influence values, without refitting."""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from causalkit.contracts import Capability, DiagnosticValue, Fit, InferenceOutcome, Params
from causalkit.errors import PluginError
from causalkit_plugins.inference.common import (
    InferenceParams,
    draws_sup_t,
    influence_rows,
    normal_p_values,
    outcome,
)

__all__ = ["MultiplierBootstrap", "MultiplierParams", "multiplier_weights"]

Weights = Literal["gaussian", "rademacher", "mammen"]
_CHUNK_ELEMENTS = 2_000_000


def multiplier_weights(
    rng: np.random.Generator, kind: Weights, shape: tuple[int, int]
) -> np.ndarray:
    r"""I.i.d. multipliers with mean 0 and variance 1.

    ``gaussian``: :math:`N(0,1)`; ``rademacher``: :math:`\pm 1` with probability 1/2;
    ``mammen``: :math:`(1-\sqrt5)/2` with probability :math:`(\sqrt5+1)/(2\sqrt5)`, else
    :math:`(1+\sqrt5)/2` (third moment 1; Mammen 1993).
    """
    if kind == "gaussian":
        return rng.standard_normal(shape)
    if kind == "rademacher":
        return 2.0 * rng.integers(0, 2, size=shape).astype(np.float64) - 1.0
    s5 = math.sqrt(5.0)
    p = (s5 + 1) / (2 * s5)
    return np.where(rng.random(shape) < p, (1 - s5) / 2, (1 + s5) / 2)


class MultiplierParams(InferenceParams):
    """Parameters of the multiplier bootstrap."""

    n_boot: int = Field(1000, ge=50, le=100_000, description="bootstrap draws")
    weights: Weights = "gaussian"
    ci: Literal["percentile_t", "normal"] = Field(
        "percentile_t", description="CI from the |t*| quantile, or estimate ± z·SE_boot"
    )


class MultiplierBootstrap:
    r"""Multiplier bootstrap of an asymptotically linear estimator, over the vector of estimates.

    With an n x k influence matrix :math:`\psi` and :math:`\hat\sigma_j = \sqrt{\sum_i\psi_{ij}^2}/n`,
    each draw is :math:`\delta^*_j = n^{-1}\sum_i \xi_i\psi_{ij}` with i.i.d. multipliers
    :math:`\xi_i` (mean 0, variance 1; one per unit, shared by the k estimates) from the run's
    Generator. ``SE`` is the SD of the draws; the ``percentile_t`` CI is
    :math:`\hat\theta_j \pm c_j\,\hat\sigma_j` with :math:`c_j` the ``level`` quantile of
    :math:`|\delta^*_j|/\hat\sigma_j` — or, with ``joint``, one :math:`c` for all, the
    quantile of :math:`\max_j|\delta^*_j|/\hat\sigma_j` (DoubleML's ``confint(joint=True)``),
    with Holm-adjusted p-values; the p-value is normal with the bootstrap SE.

    With clusters (the ``cluster`` role) there is one multiplier per cluster, shared by its
    units: :math:`\delta^*_j = n^{-1}\sum_g \xi_g\tilde\psi_{gj}` with the cluster sums
    :math:`\tilde\psi_{gj}` scaled by the CR1 factor, as analytic inference uses them
    (:func:`~causalkit_plugins.inference.common.influence_rows`).

    References
    ----------
    Chernozhukov, V., Chetverikov, D. & Kato, K. (2013). Gaussian approximations and
    multiplier bootstrap for maxima of sums of high-dimensional random vectors. *Ann. Statist.* 41.
    """

    name: ClassVar[str] = "multiplier"
    Params: ClassVar[type[Params]] = MultiplierParams
    requires_any: ClassVar[frozenset[Capability]] = frozenset({Capability.INFLUENCE})

    def __init__(self, params: MultiplierParams | None = None) -> None:
        self.params = params or MultiplierParams()

    def infer(self, fit: Fit, rng: np.random.Generator) -> InferenceOutcome:
        from scipy.special import ndtri

        if fit.influence is None:
            raise PluginError("inference=multiplier: the fit carries no influence values")
        p = self.params
        psi, n = influence_rows(fit)
        m, k = psi.shape
        sigma = np.array([np.sqrt(np.sum(psi[:, j] ** 2)) / n for j in range(k)])
        draws = np.empty((p.n_boot, k))
        chunk = max(1, _CHUNK_ELEMENTS // max(m, 1))
        for start in range(0, p.n_boot, chunk):
            b = min(chunk, p.n_boot - start)
            draws[start : start + b] = multiplier_weights(rng, p.weights, (b, m)) @ psi / n
        se = np.std(draws, axis=0, ddof=1)
        joint = p.joint and k > 1
        z = float(ndtri(0.5 + p.level / 2))
        # Columns whose analytic SE is not a positive number (an undefined estimate, or one
        # without variance) get the normal interval with the bootstrap SE: NaN, or a point.
        studentised = np.isfinite(sigma) & (sigma > 0)
        c = np.full(k, z)
        if p.ci == "percentile_t" and joint and studentised.any():
            cols = np.flatnonzero(studentised)
            c[cols] = draws_sup_t(draws[:, cols], np.zeros(cols.size), sigma[cols], p.level)
        elif p.ci == "percentile_t":
            for j in np.flatnonzero(studentised):
                c[j] = np.quantile(np.abs(draws[:, j]) / sigma[j], p.level)
        half = np.where(studentised & (p.ci == "percentile_t"), c * sigma, c * se)
        warnings: tuple[str, ...] = ()
        if joint and not studentised.all():
            left = ", ".join(fit.names[j] for j in np.flatnonzero(~studentised))
            warnings = (
                f"multiplier: the joint band covers the {int(studentised.sum())} estimates with a "
                f"positive finite SE; left out (pointwise normal interval): {left}",
            )
        diag: dict[str, DiagnosticValue] = {"n_boot": p.n_boot}
        if k == 1:
            diag |= {"critical_value": float(c[0]), "se_analytic": float(sigma[0])}
        elif joint and studentised.any():
            diag["critical_value"] = float(c[studentised][0])
        est = fit.estimates
        return outcome(
            self.name, p, se, est - half, est + half, normal_p_values(est, se), diag, warnings
        )
