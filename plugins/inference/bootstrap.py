"""Nonparametric bootstrap by refitting on resampled units, optionally stratified."""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field
from scipy import stats

from causalkit.contracts import Fit, InferenceOutcome, Params
from causalkit.errors import EstimationError, PluginError
from causalkit.progress import bar, progress
from causalkit_plugins.inference.basic import normal_outcome

__all__ = ["Bootstrap", "BootstrapParams", "resample_indices"]

REFIT_BATCH = 32
"""Resamples handed to ``Fit.refit_batch`` per call: a constant, so results never depend on it."""


class BootstrapParams(Params):
    """Parameters of the refitting bootstrap."""

    n_boot: int = Field(500, ge=20, description="bootstrap replications")
    level: float = Field(0.95, gt=0, lt=1)
    ci: Literal["percentile", "normal"] = "percentile"
    stratified: bool = Field(True, description="resample within the fit's strata (treated/control)")


def resample_indices(
    rng: np.random.Generator,
    strata: np.ndarray | None,
    n: int,
    members: list[np.ndarray] | None = None,
) -> np.ndarray:
    """Indices of one bootstrap sample; within each stratum when ``strata`` is given.

    Stratified ("paired") resampling keeps each stratum's size, so the treated fraction is fixed.
    ``members`` (from :func:`stratum_members`) saves regrouping the strata on every call.
    """
    if strata is None:
        return rng.integers(0, n, size=n)
    if members is None:
        members = stratum_members(strata)
    return np.concatenate([m[rng.integers(0, m.size, size=m.size)] for m in members])


def stratum_members(strata: np.ndarray) -> list[np.ndarray]:
    """Positions of each stratum's units, strata in sorted order."""
    return [np.flatnonzero(strata == s) for s in np.unique(strata)]


class Bootstrap:
    r"""Refitting bootstrap.

    For :math:`b = 1..B` draw units with replacement (within strata when the fit gives them
    and ``stratified``), refit, and collect :math:`\hat\theta^{(b)}`. SE is their SD
    (ddof=1); the CI is the percentile interval :math:`[q_{\alpha/2}, q_{1-\alpha/2}]` or the
    normal interval; the p-value is the normal one, :math:`2\Phi(-|\hat\theta|/\widehat{se})`.
    Replications whose refit fails are dropped and counted (``n_failed``). When the fit offers
    ``refit_batch`` the same resamples (same draws, same order) are re-estimated
    ``REFIT_BATCH`` at a time through it.

    References
    ----------
    Efron, B. & Tibshirani, R. (1993). *An Introduction to the Bootstrap*. Chapman & Hall.
    """

    name: ClassVar[str] = "bootstrap"
    Params: ClassVar[type[Params]] = BootstrapParams

    def __init__(self, params: BootstrapParams | None = None) -> None:
        self.params = params or BootstrapParams()

    def infer(self, fit: Fit, rng: np.random.Generator) -> InferenceOutcome:
        p = self.params
        if fit.refit is not None:
            strata = fit.strata if p.stratified else None
            members = None if strata is None else stratum_members(strata)
            draws = np.full(p.n_boot, np.nan)
            if fit.refit_batch is not None:
                # The same draws in the same order as one at a time, solved in fixed-size batches.
                shown = bar(p.n_boot, "bootstrap")
                for start in range(0, p.n_boot, REFIT_BATCH):
                    stop = min(start + REFIT_BATCH, p.n_boot)
                    idxs = [
                        resample_indices(rng, strata, fit.n, members) for _ in range(start, stop)
                    ]
                    draws[start:stop] = fit.refit_batch(idxs)
                    if shown is not None:
                        shown.update(stop - start)
                if shown is not None:
                    shown.close()
            else:
                for b in progress(range(p.n_boot), p.n_boot, "bootstrap"):
                    idx = resample_indices(rng, strata, fit.n, members)
                    try:
                        draws[b] = fit.refit(idx)
                    except EstimationError:
                        continue
        elif fit.replicates is not None:
            draws = np.asarray(fit.replicates(rng, p.n_boot), dtype=float)
        else:
            raise PluginError(
                "inference=bootstrap: this estimator provides no refit or replicates hook"
            )
        ok = draws[np.isfinite(draws)]
        n_failed = int(p.n_boot - ok.size)
        if ok.size < 2:
            raise EstimationError(f"bootstrap: only {ok.size} of {p.n_boot} replications succeeded")
        se = float(np.std(ok, ddof=1))
        if p.ci == "normal":
            out = normal_outcome(self.name, fit.estimate, se, p.level)
            lo, hi = out.ci_lower, out.ci_upper
        else:
            alpha = 1 - p.level
            lo, hi = (float(v) for v in np.quantile(ok, [alpha / 2, 1 - alpha / 2]))
        z = abs(fit.estimate) / se if se > 0 else math.nan
        pval = float(2 * stats.norm.sf(z)) if math.isfinite(z) else math.nan
        return InferenceOutcome(
            self.name, se, lo, hi, pval, p.level, {"n_boot": int(ok.size), "n_failed": n_failed}
        )
