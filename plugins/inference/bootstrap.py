"""Nonparametric bootstrap by refitting on resampled units, optionally stratified."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from causalkit.contracts import (
    Capability,
    Clusters,
    DiagnosticValue,
    Fit,
    InferenceOutcome,
    Params,
)
from causalkit.errors import EstimationError, PluginError
from causalkit.progress import bar, progress
from causalkit_plugins.inference.common import (
    ResamplingParams,
    draws_sup_t,
    normal_p_values,
    outcome,
    refused_outcome,
    resampling_failures,
    wald_outcome,
)

__all__ = ["Bootstrap", "BootstrapParams", "ClusterDraws", "resample_indices"]

REFIT_BATCH = 32
"""Resamples handed to ``Fit.refit_batch`` per call: a constant, so results never depend on it."""


class BootstrapParams(ResamplingParams):
    """Parameters of the refitting bootstrap."""

    n_boot: int = Field(500, ge=20, description="bootstrap replications")
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


@dataclass(frozen=True)
class ClusterDraws:
    """Whole-cluster resampling: each cluster's units, and the clusters of each stratum.

    Built by :meth:`of`; ``groups`` holds one array of all cluster codes when the clusters
    are not resampled within strata.
    """

    members: list[np.ndarray]
    groups: list[np.ndarray]

    @classmethod
    def of(cls, clusters: Clusters, strata: np.ndarray | None) -> ClusterDraws:
        """Resample within strata when ``strata`` is given and every cluster lies in one stratum."""
        members = clusters.members()
        g = len(members)
        if strata is not None:
            first = strata[[m[0] for m in members]]
            if np.array_equal(first[clusters.codes], strata):
                return cls(members, stratum_members(first))
        return cls(members, [np.arange(g)])

    @property
    def within_strata(self) -> bool:
        """Whether clusters are drawn within strata."""
        return len(self.groups) > 1

    def indices(self, rng: np.random.Generator) -> np.ndarray:
        """Unit indices of one bootstrap sample: the units of clusters drawn with replacement."""
        drawn = np.concatenate(
            [grp[rng.integers(0, grp.size, size=grp.size)] for grp in self.groups]
        )
        return np.concatenate([self.members[c] for c in drawn])


class Bootstrap:
    r"""Refitting bootstrap over the whole vector of estimates.

    For :math:`b = 1..B` draw units with replacement (within strata when the fit's resampler
    gives them and ``stratified``), refit, and collect :math:`\hat\theta^{(b)}` (k estimates).
    SE is their SD (ddof=1); the CI is the percentile interval
    :math:`[q_{\alpha/2}, q_{1-\alpha/2}]` or the normal interval; the p-value is the normal
    one, :math:`2\Phi(-|\hat\theta|/\widehat{se})`. With ``joint`` (k > 1) the band is
    :math:`\hat\theta_j \pm c\,\widehat{se}_j` with :math:`c` the ``level`` quantile of
    :math:`\max_j|\hat\theta^{(b)}_j-\hat\theta_j|/\widehat{se}_j` (sup-t) and the p-values
    are Holm-adjusted.

    A replication fails when its refit raises :class:`~causalkit.errors.EstimationError` or
    returns a NaN in any of the k estimates (the whole vector is then left out, so every
    estimate uses the same resamples). Failures are counted (``n_failed``); with
    :math:`F` failures out of :math:`B`, :math:`F/B \le` ``max_failed`` gives the SE and
    interval from the :math:`B-F` successes and a warning, :math:`F/B >` ``max_failed``
    (or fewer than two successes) gives no SE, CI or p-value (NaN), a warning and the
    diagnostic ``refused`` (see :func:`~causalkit_plugins.inference.common.resampling_failures`).
    When the resampler offers ``refit_batch`` the same resamples (same draws,
    same order) are re-estimated ``REFIT_BATCH`` at a time through it; when it only offers
    ``replicates`` (a backend that resamples without copying the data, e.g. Poisson weights
    on Spark) those are used, drawn from the run's Generator.

    With clusters (the ``cluster`` role) whole clusters are drawn with replacement and every
    unit of a drawn cluster enters the resample (Cameron, Gelbach & Miller 2008, the pairs
    cluster bootstrap). When the fit's strata (e.g. the treated/control arms) nest the
    clusters (each cluster in one stratum, as in a cluster-randomised trial) the clusters are
    drawn within strata; when clusters cut across strata (treated and control units in one
    cluster) they are drawn from the whole sample, which is the ordinary bootstrap of the
    contrast (diagnostic ``clusters_within_strata``). Backends that draw their own replicates
    cannot resample clusters and are refused.

    References
    ----------
    Efron, B. & Tibshirani, R. (1993). *An Introduction to the Bootstrap*. Chapman & Hall.
    Cameron, A.C., Gelbach, J.B. & Miller, D.L. (2008). Bootstrap-based improvements for
    inference with clustered errors. *Rev. Econ. Stat.* 90(3), 414-427.
    """

    name: ClassVar[str] = "bootstrap"
    Params: ClassVar[type[Params]] = BootstrapParams
    requires_any: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.RESAMPLE, Capability.REPLICATES}
    )

    def __init__(self, params: BootstrapParams | None = None) -> None:
        self.params = params or BootstrapParams()

    def _draws(self, fit: Fit, rng: np.random.Generator) -> np.ndarray:
        p = self.params
        rs = fit.resampler
        if rs is None:
            raise PluginError("inference=bootstrap: this fit provides no resampler")
        draws = np.full((p.n_boot, fit.k), np.nan)
        if rs.refit is None and rs.refit_batch is None:
            if fit.clusters is not None:
                raise PluginError(
                    "inference=bootstrap: this fit's backend draws its own replicates and "
                    "cannot resample whole clusters"
                )
            assert rs.replicates is not None
            reps = np.asarray(rs.replicates(rng, p.n_boot), dtype=np.float64)
            return reps.reshape(p.n_boot, fit.k)
        strata = rs.strata if p.stratified else None
        members = None if strata is None else stratum_members(strata)
        clustered = None if fit.clusters is None else ClusterDraws.of(fit.clusters, strata)

        def sample() -> np.ndarray:
            if clustered is not None:
                return clustered.indices(rng)
            return resample_indices(rng, strata, rs.n, members)

        if rs.refit_batch is not None:
            # The same draws in the same order as one at a time, solved in fixed-size batches.
            shown = bar(p.n_boot, "bootstrap")
            for start in range(0, p.n_boot, REFIT_BATCH):
                stop = min(start + REFIT_BATCH, p.n_boot)
                idxs = [sample() for _ in range(start, stop)]
                draws[start:stop] = np.asarray(rs.refit_batch(idxs), dtype=np.float64).reshape(
                    stop - start, fit.k
                )
                if shown is not None:
                    shown.update(stop - start)
            if shown is not None:
                shown.close()
            return draws
        assert rs.refit is not None
        for b in progress(range(p.n_boot), p.n_boot, "bootstrap"):
            idx = sample()
            try:
                draws[b] = rs.refit(idx)
            except EstimationError:
                continue
        return draws

    def infer(self, fit: Fit, rng: np.random.Generator) -> InferenceOutcome:
        p = self.params
        draws = self._draws(fit, rng)
        good = np.isfinite(draws).all(axis=1)
        ok = draws[good]
        n_failed = int(p.n_boot - ok.shape[0])
        diag: dict[str, DiagnosticValue] = {"n_boot": int(ok.shape[0]), "n_failed": n_failed}
        if fit.clusters is not None and fit.resampler is not None:
            strata = fit.resampler.strata if p.stratified else None
            diag["clusters_within_strata"] = ClusterDraws.of(fit.clusters, strata).within_strata
        refused, warnings = resampling_failures(
            self.name, n_failed, p.n_boot, p.max_failed, "resamples"
        )
        if refused:
            return refused_outcome(self.name, p, fit.k, diag, warnings)
        se = np.std(ok, axis=0, ddof=1)
        if p.joint and fit.k > 1:
            crit = draws_sup_t(ok, fit.estimates, se, p.level)
            diag["critical_value"] = crit
            return wald_outcome(self.name, p, fit.estimates, se, crit, diag, warnings)
        if p.ci == "normal":
            return wald_outcome(self.name, p, fit.estimates, se, None, diag, warnings)
        alpha = 1 - p.level
        lo = np.empty(fit.k)
        hi = np.empty(fit.k)
        for j in range(fit.k):
            lo[j], hi[j] = np.quantile(ok[:, j], [alpha / 2, 1 - alpha / 2])
        return outcome(self.name, p, se, lo, hi, normal_p_values(fit.estimates, se), diag, warnings)
