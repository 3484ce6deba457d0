"""Multiplier (score) bootstrap from a fit's influence values, without refitting."""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field
from scipy import stats

from causalkit.contracts import Fit, InferenceOutcome, Params
from causalkit.errors import PluginError

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


class MultiplierParams(Params):
    """Parameters of the multiplier bootstrap."""

    n_boot: int = Field(1000, ge=50, le=100_000, description="bootstrap draws")
    weights: Weights = "gaussian"
    level: float = Field(0.95, gt=0, lt=1)
    ci: Literal["percentile_t", "normal"] = Field(
        "percentile_t", description="CI from the |t*| quantile, or estimate ± z·SE_boot"
    )


class MultiplierBootstrap:
    r"""Multiplier bootstrap of an asymptotically linear estimator.

    With influence values :math:`\psi_i` and :math:`\hat\sigma = \sqrt{\sum_i\psi_i^2}/n`,
    each draw is :math:`\delta^* = n^{-1}\sum_i \xi_i\psi_i` with i.i.d. multipliers
    :math:`\xi_i` (mean 0, variance 1) from the run's Generator. ``SE`` is the SD of the
    draws; the ``percentile_t`` CI is :math:`\hat\theta \pm c\,\hat\sigma` with :math:`c` the
    ``level`` quantile of :math:`|\delta^*|/\hat\sigma` (DoubleML's ``confint(joint=...)``
    construction for one parameter); the p-value is normal with the bootstrap SE.

    References
    ----------
    Chernozhukov, V., Chetverikov, D. & Kato, K. (2013). Gaussian approximations and
    multiplier bootstrap for maxima of sums of high-dimensional random vectors. *Ann. Statist.* 41.
    """

    name: ClassVar[str] = "multiplier"
    Params: ClassVar[type[Params]] = MultiplierParams

    def __init__(self, params: MultiplierParams | None = None) -> None:
        self.params = params or MultiplierParams()

    def infer(self, fit: Fit, rng: np.random.Generator) -> InferenceOutcome:
        if fit.influence is None:
            raise PluginError("inference=multiplier: the fit carries no influence values")
        p = self.params
        psi = np.asarray(fit.influence, dtype=np.float64)
        n = psi.shape[0]
        sigma = float(np.sqrt(np.sum(psi**2)) / n)
        draws = np.empty(p.n_boot)
        chunk = max(1, _CHUNK_ELEMENTS // max(n, 1))
        for start in range(0, p.n_boot, chunk):
            b = min(chunk, p.n_boot - start)
            draws[start : start + b] = multiplier_weights(rng, p.weights, (b, n)) @ psi / n
        se = float(np.std(draws, ddof=1))
        if p.ci == "normal" or sigma == 0:
            c = float(stats.norm.ppf(0.5 + p.level / 2))
            half = c * se
        else:
            c = float(np.quantile(np.abs(draws) / sigma, p.level))
            half = c * sigma
        pval = float(2 * stats.norm.sf(abs(fit.estimate) / se)) if se > 0 else math.nan
        return InferenceOutcome(
            self.name,
            se,
            fit.estimate - half,
            fit.estimate + half,
            pval,
            p.level,
            {"n_boot": p.n_boot, "critical_value": c, "se_analytic": sigma},
        )
