"""The ``cluster`` role read into a :class:`~causalkit.contracts.Clusters` for an estimator's fit.

Estimators with clustered inference call :func:`fit_clusters` with the rows (a
cross-section) or units (a panel) they analysed; inference does the rest (see
:class:`~causalkit.contracts.Clusters`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from causalkit.contracts import Clusters, Dataset, DiagnosticValue
from causalkit.errors import DataError
from causalkit.panel import binary_column

__all__ = ["FEW_CLUSTERS", "ClusterParts", "fit_clusters"]

FEW_CLUSTERS = 30
"""Fewer clusters than this give a warning: clustered SEs are then too small and unstable."""


@dataclass(frozen=True)
class ClusterParts:
    """What a clustered fit carries: the clusters, ``n_clusters`` and the few-clusters warning."""

    clusters: Clusters | None = None
    diagnostics: dict[str, DiagnosticValue] | None = None
    warnings: tuple[str, ...] = ()


def _labels(data: Dataset, col: str, units: np.ndarray | None) -> pd.Series:
    frame = data.frame
    if data.roles.time is None:
        values = frame[col]
        if data.roles.selected is not None:
            values = values[binary_column(frame[data.roles.selected], "selected")]
        return values.reset_index(drop=True)
    unit = data.roles.unit
    assert unit is not None and units is not None
    spread = frame.groupby(unit, sort=False)[col].nunique(dropna=False)
    if (spread > 1).any():
        raise DataError(
            "roles.cluster",
            f"one cluster per unit in {col!r}",
            f"{int((spread > 1).sum())} units in several clusters",
        )
    per_unit = frame.drop_duplicates(unit).set_index(unit)[col]
    return per_unit.reindex(pd.Index(units)).reset_index(drop=True)


def fit_clusters(
    data: Dataset,
    n: int,
    who: str,
    *,
    units: np.ndarray | None = None,
    regressors: int | None = None,
) -> ClusterParts:
    """Read ``roles.cluster`` for the ``n`` rows (or ``units`` of a panel) an estimator analysed.

    Parameters
    ----------
    data : Dataset
        The estimator's input; a cross-section's rows are taken in order, without the
        unselected ones when the ``selected`` role is set.
    n : int
        Number of units analysed (a check).
    who : str
        The estimator, for messages.
    units : ndarray, optional
        The unit labels of a panel's unit table; each unit must lie in one cluster.
    regressors : int, optional
        :math:`K` of the CR1 factor when the estimate is a regression coefficient.

    Returns
    -------
    ClusterParts
        Empty without a cluster role; else the clusters, the diagnostic ``n_clusters`` and,
        below :data:`FEW_CLUSTERS`, a warning.

    Raises
    ------
    DataError
        Missing labels, or a single cluster.
    """
    col = data.roles.cluster
    if col is None:
        return ClusterParts()
    labels = _labels(data, col, units)
    if len(labels) != n:
        raise DataError("roles.cluster", f"one cluster label per analysed unit ({n})", len(labels))
    codes, uniques = pd.factorize(labels, sort=True)
    if (codes < 0).any():
        raise DataError(
            "roles.cluster",
            f"no missing cluster labels in {col!r}",
            f"{int((codes < 0).sum())} missing",
        )
    g = len(uniques)
    if g < 2:
        raise DataError(
            "roles.cluster",
            f"at least two clusters in {col!r} (one cluster leaves nothing to vary)",
            f"the single cluster {list(uniques)[0]!r}" if g else "no rows",
        )
    warnings: tuple[str, ...] = ()
    if g < FEW_CLUSTERS:
        warnings = (
            f"{who}: only {g} clusters in {col!r} (fewer than {FEW_CLUSTERS}): clustered standard "
            "errors are too small and unstable with few clusters; treat the intervals as optimistic",
        )
    return ClusterParts(Clusters(codes.astype(np.int64), regressors), {"n_clusters": g}, warnings)
