"""The ``cluster`` and ``weight`` roles read for the rows or units an estimator analysed.

Estimators with clustered inference call :func:`fit_clusters` with the rows (a
cross-section) or units (a panel) they analysed; inference does the rest (see
:class:`~causalkit.contracts.Clusters`). Estimators that take sampling weights read them
with :func:`fit_weights` and weight their estimating equations (and so their influence
values) themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from causalkit.contracts import Clusters, Dataset, DiagnosticValue, Roles
from causalkit.errors import DataError
from causalkit.panel import binary_column

__all__ = [
    "DESIGN_ROLES",
    "FEW_CLUSTERS",
    "ClusterParts",
    "fit_clusters",
    "fit_weights",
    "require_handled",
    "weight_diagnostics",
]

DESIGN_ROLES = ("cluster", "weight")
"""Roles that change what inference must account for; an estimator lists those it handles in
its ``handles_roles`` class attribute and the core refuses the others before any fit."""

FEW_CLUSTERS = 30
"""Fewer clusters than this give a warning: clustered SEs are then too small and unstable."""


@dataclass(frozen=True)
class ClusterParts:
    """What a clustered fit carries: the clusters, ``n_clusters`` and the few-clusters warning."""

    clusters: Clusters | None = None
    diagnostics: dict[str, DiagnosticValue] | None = None
    warnings: tuple[str, ...] = ()


def require_handled(estimator: Any, roles: Roles, prefix: str = "roles") -> None:
    """Refuse a ``cluster`` or ``weight`` role the estimator does not account for.

    Parameters
    ----------
    estimator : type or object
        The estimator class (or instance); its ``handles_roles`` attribute (a set of role
        names, default empty: third-party estimators that predate the roles) says which of
        :data:`DESIGN_ROLES` its fit and influence values account for.
    roles : Roles
        The roles of the data it is about to see.
    prefix : str
        Where the roles were given, for the message (``data.roles`` in a config).

    Raises
    ------
    DataError
        A role the estimator would silently ignore: its standard errors would treat
        clustered rows as independent, or its estimate would target the unweighted sample.
    """
    handled = frozenset(getattr(estimator, "handles_roles", frozenset()))
    name = getattr(estimator, "name", getattr(estimator, "__name__", type(estimator).__name__))
    for role in DESIGN_ROLES:
        if getattr(roles, role) is not None and role not in handled:
            what = "clustered inference" if role == "cluster" else "sampling weights"
            raise DataError(
                f"{prefix}.{role}",
                f"an estimator with {what} (estimator {name} would ignore {role}="
                f"{getattr(roles, role)!r}; remove the role or choose another estimator)",
                f"estimator={name}",
            )


def _labels(data: Dataset, col: str, units: np.ndarray | None, role: str = "cluster") -> pd.Series:
    """Return the column's value for each analysed row (a cross-section) or unit (a panel)."""
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
            f"roles.{role}",
            f"one {role} per unit in {col!r}",
            f"{int((spread > 1).sum())} units in several {role}s",
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


def fit_weights(data: Dataset, n: int, *, units: np.ndarray | None = None) -> np.ndarray | None:
    """Read ``roles.weight`` for the ``n`` rows (or ``units`` of a panel) an estimator analysed.

    Parameters
    ----------
    data : Dataset
        The estimator's input, read as :func:`fit_clusters` reads it.
    n : int
        Number of units analysed (a check).
    units : ndarray, optional
        The unit labels of a panel's unit table; each unit must carry one weight.

    Returns
    -------
    ndarray of float64, shape (n,), or None
        The weights; ``None`` without a weight role.

    Raises
    ------
    DataError
        Weights that are not numbers, missing, negative or all zero (one line naming
        ``roles.weight``).
    """
    col = data.roles.weight
    if col is None:
        return None
    values = _labels(data, col, units, "weight")
    if len(values) != n:
        raise DataError("roles.weight", f"one weight per analysed unit ({n})", len(values))
    if isinstance(values.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(
        values.dtype
    ):
        raise DataError("roles.weight", f"numeric weights in {col!r}", f"dtype {values.dtype}")
    w = values.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = int((~np.isfinite(w)).sum())
    if bad:
        raise DataError("roles.weight", f"finite weights in {col!r}", f"{bad} missing or infinite")
    if (w < 0).any():
        raise DataError(
            "roles.weight",
            f"non-negative weights in {col!r}",
            f"{int((w < 0).sum())} negative (smallest {w.min():g})",
        )
    if not (w > 0).any():
        raise DataError("roles.weight", f"some positive weight in {col!r}", "all weights zero")
    return w


def weight_diagnostics(w: np.ndarray | None) -> dict[str, DiagnosticValue]:
    r"""``weight_ess`` (Kish: :math:`(\sum w)^2/\sum w^2`) and ``n_zero_weight``; empty without weights."""
    if w is None:
        return {}
    return {"weight_ess": float(w.sum() ** 2 / (w @ w)), "n_zero_weight": int((w == 0).sum())}
