r"""Clusters of units in panel mode: how the treated area lies in them, placebo cluster areas.

With the ``cluster`` role every unit lies in one cluster (a unit's periods are already
one draw: the unit-level variance of
:mod:`~causalkit_plugins.estimators.microsynth.panel_influence` is clustered by unit). The
influence values are summed within clusters by inference; this module says how the treated
area sits in the clusters and draws the placebo areas of ``inference=permutation`` as whole
control clusters, which is an exact test of no effect when treatment was assigned to whole
clusters (as many as the treated area spans, exchangeably). When a cluster holds treated and
control units, no placebo area of whole clusters mirrors the assignment and the test is
refused.
"""

from __future__ import annotations

import numpy as np

from causalkit.contracts import Clusters, DiagnosticValue
from causalkit.errors import DataError

__all__ = ["cluster_notes", "placebo_clusters"]


def _treated_per_cluster(treated: np.ndarray, clusters: Clusters) -> tuple[np.ndarray, np.ndarray]:
    """Treated units and all units in each cluster."""
    g = clusters.n_clusters
    return (
        np.bincount(clusters.codes, weights=treated.astype(np.float64), minlength=g),
        np.bincount(clusters.codes, minlength=g).astype(np.float64),
    )


def cluster_notes(
    treated: np.ndarray, clusters: Clusters
) -> tuple[dict[str, DiagnosticValue], tuple[str, ...]]:
    """``n_treated_clusters``, ``n_mixed_clusters`` and a warning when clusters mix the arms.

    Parameters
    ----------
    treated : ndarray of bool, shape (n,)
        The treated area.
    clusters : Clusters
        Each unit's cluster.

    Returns
    -------
    diagnostics : dict
        Clusters holding a treated unit, and those holding both treated and control units.
    warnings : tuple of str
        With mixed clusters: the clustered SE is conservative there (see
        :class:`~causalkit_plugins.estimators.microsynth.panel_estimator.MicroSynthPanel`).
    """
    n_t, size = _treated_per_cluster(treated, clusters)
    mixed = int(((n_t > 0) & (n_t < size)).sum())
    warnings: tuple[str, ...] = ()
    if mixed:
        warnings = (
            f"microsynth_panel: {mixed} clusters hold treated and control units; the clustered "
            "SE counts treated units as if they came in whole clusters and leaves out their "
            "covariance with controls of the same cluster, so it is conservative when units of "
            "a cluster share shocks, and inference=permutation is refused",
        )
    return {"n_treated_clusters": int((n_t > 0).sum()), "n_mixed_clusters": mixed}, warnings


def placebo_clusters(
    treated: np.ndarray, clusters: Clusters, rng: np.random.Generator
) -> np.ndarray:
    r"""A placebo area: as many control clusters as the treated area spans, without replacement.

    Parameters
    ----------
    treated : ndarray of bool, shape (n,)
        The treated area (whole clusters).
    clusters : Clusters
        Each unit's cluster.
    rng : Generator
        The permutation plugin's generator.

    Returns
    -------
    ndarray of bool, shape (n,)
        The placebo area's units; the donors are the other control units.

    Raises
    ------
    DataError
        A cluster with treated and control units, or no more control clusters than
        treated ones (no donor cluster would be left): the design refuses every draw.
    """
    n_t, size = _treated_per_cluster(treated, clusters)
    mixed = int(((n_t > 0) & (n_t < size)).sum())
    if mixed:
        raise DataError(
            "inference=permutation",
            "treatment constant within each cluster of roles.cluster (placebo areas are "
            "whole clusters; use inference=analytic)",
            f"{mixed} clusters with treated and control units",
        )
    g_t = int((n_t > 0).sum())
    control = np.flatnonzero(n_t == 0)
    if control.size <= g_t:
        raise DataError(
            "inference=permutation",
            f"more control clusters than treated clusters ({g_t})",
            f"{control.size} control clusters",
        )
    pick = control[rng.choice(control.size, size=g_t, replace=False)]
    return np.isin(clusters.codes, pick)
