"""Per-unit arrays for simplex MicroSynth: a fast reshape of sorted long panels and lagged outcomes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from causalkit.contracts import Dataset
from causalkit.errors import ConfigError, DataError
from causalkit.panel import (
    UnitTable,
    binary_column,
    ever_on,
    require_roles,
    single_onset,
    time_invariant,
    unit_table,
)
from causalkit_plugins.estimators.microsynth.unit_arrays import sorted_layout

__all__ = ["SimplexInputs", "simplex_inputs", "sorted_unit_table"]


@dataclass(frozen=True)
class SimplexInputs:
    """The unit table plus the balance columns built from pre-period outcomes.

    Attributes
    ----------
    table : UnitTable
        One row per unit.
    lags : ndarray, shape (n, k)
        Pre-period outcomes balanced as extra covariates, named ``"<outcome>@<period>"``.
    lag_names : tuple of str
        Their names.
    """

    table: UnitTable
    lags: np.ndarray
    lag_names: tuple[str, ...]


def _float_column(frame: pd.DataFrame, col: str, role: str) -> np.ndarray:
    s = frame[col]
    if s.dtype == bool:
        return s.to_numpy(dtype=np.float64)
    if not pd.api.types.is_numeric_dtype(s):
        raise DataError(
            f"roles.{role}", f"numeric column {col!r} (encode categories first)", f"dtype {s.dtype}"
        )
    return s.to_numpy(dtype=np.float64, copy=False)


def _grid_if_sorted(
    frame: pd.DataFrame, unit: str, time: str
) -> tuple[np.ndarray, np.ndarray] | None:
    """Unit labels and period labels when rows are sorted by unit, then period, and balanced."""
    u = frame[unit].to_numpy()
    labels = sorted_layout(u, frame[time].to_numpy())
    return None if labels is None else (u[:: labels.size], labels)


def sorted_unit_table(
    data: Dataset, group_role: Literal["treatment", "assignment"], who: str
) -> UnitTable | None:
    """:func:`causalkit.panel.unit_table` for a long panel sorted by unit then period, or ``None``.

    Same checks and errors as the framework's reshape, but the arrays are reshaped views of
    the frame's columns instead of scattered copies, which is several times faster and
    lighter on a million units. Returns ``None`` (use the general reshape) for any other
    row order, an unbalanced or duplicated panel, or a cross-section.
    """
    roles = data.roles
    if roles.time is None or roles.unit is None:
        return None
    if data.panel is not None:  # already per-unit arrays: the framework reads them off directly
        return unit_table(data, group_role=group_role, who=who)
    require_roles(data, ["outcome", group_role], who)
    frame = data.frame
    found = _grid_if_sorted(frame, roles.unit, roles.time)
    if found is None:
        return None
    units, periods = found
    n_u, n_t = units.size, periods.size

    def flags(role: str) -> np.ndarray | None:
        col = getattr(roles, role)
        return None if col is None else binary_column(frame[col], role).reshape(n_u, n_t)

    d_grid, z_grid = flags("treatment"), flags("assignment")
    g_grid = d_grid if group_role == "treatment" else z_grid
    assert g_grid is not None
    y = _float_column(frame, roles.outcome, "outcome")  # type: ignore[arg-type]
    if np.isnan(y).any():
        raise DataError(
            "roles.outcome",
            f"no missing values in {roles.outcome!r}",
            f"{int(np.isnan(y).sum())} missing",
        )
    y_grid = y.reshape(n_u, n_t)
    covs = tuple(roles.covariates)
    X = np.empty((n_u, len(covs)), order="F")  # column-major: contiguous per-column writes
    for j, c in enumerate(covs):
        xg = _float_column(frame, c, "covariates").reshape(n_u, n_t)
        X[:, j] = xg[:, 0]
        # NaN != NaN, so equal periods also rule out missing values (one period: check them).
        same = all(np.array_equal(xg[:, k], xg[:, 0]) for k in range(1, n_t))
        if not same or (n_t == 1 and np.isnan(X[:, j]).any()):
            if np.isnan(xg).any():
                raise DataError(
                    "roles.covariates",
                    f"no missing values in {c!r}",
                    f"{int(np.isnan(xg).sum())} missing",
                )
            time_invariant(xg, c)  # raises: some unit's value varies
    t0 = single_onset(d_grid if d_grid is not None else g_grid, np.asarray(periods), group_role)
    group = ever_on(g_grid)
    n1 = int(group.sum())
    if n1 == 0:
        raise DataError(f"roles.{group_role}", "at least one treated unit", "none")
    if n1 == n_u:
        raise DataError(
            f"roles.{group_role}", "at least one control unit", "none (every unit is treated)"
        )
    return UnitTable(
        units=units,
        group=group,
        treatment=None if d_grid is None else ever_on(d_grid),
        assignment=None if z_grid is None else ever_on(z_grid),
        X=X,
        covariates=covs,
        y_pre=y_grid[:, :t0],
        y_post=y_grid[:, t0:],
        pre_periods=periods[:t0],
        post_periods=periods[t0:],
    )


def _pre_outcomes(
    data: Dataset,
    group_role: Literal["treatment", "assignment"],
    who: str,
    outcome: str,
    fast: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Pre-period outcome matrix of column ``outcome`` (units in the table's order)."""
    roles = data.roles.model_copy(update={"outcome": outcome, "covariates": ()})
    sub = data.with_roles(roles)
    t = sorted_unit_table(sub, group_role, who) if fast else None
    t = t if t is not None else unit_table(sub, group_role=group_role, who=who)
    return t.y_pre, t.pre_periods


def simplex_inputs(
    data: Dataset,
    group_role: Literal["treatment", "assignment"],
    lag_periods: Sequence[int | float | str],
    match_outcomes: Sequence[str],
    who: str = "microsynth",
) -> SimplexInputs:
    """Unit table and lagged-outcome balance columns.

    ``lag_periods`` are pre-period labels; the outcomes ``match_outcomes`` (default: the
    outcome role) at those periods become balance constraints, jointly for all outcomes.
    """
    if match_outcomes and not lag_periods:
        raise ConfigError(
            "estimator.outcome_lag_periods", "pre-period labels when match_outcomes is set", "none"
        )
    table = sorted_unit_table(data, group_role, who)
    fast = table is not None
    if table is None:
        table = unit_table(data, group_role=group_role, who=who)
    if not lag_periods:
        return SimplexInputs(table, np.empty((table.n, 0)), ())
    pre = list(table.pre_periods)
    pos = []
    for p in lag_periods:
        hits = [i for i, q in enumerate(pre) if q == p]
        if not hits:
            raise ConfigError(
                "estimator.outcome_lag_periods", f"pre-period labels (one of {pre[:8]})", repr(p)
            )
        pos.append(hits[0])
    outcomes = list(match_outcomes) or [data.roles.outcome]
    missing = [o for o in outcomes if o not in data.columns]
    if missing:
        raise ConfigError(
            "estimator.match_outcomes", "columns of the table", ", ".join(map(repr, missing))
        )
    cols, names = [], []
    for o in outcomes:
        y_pre = (
            table.y_pre
            if o == data.roles.outcome
            else _pre_outcomes(data, group_role, who, o, fast)[0]
        )
        for p, i in zip(lag_periods, pos, strict=True):
            cols.append(y_pre[:, i])
            names.append(f"{o}@{p}")
    return SimplexInputs(table, np.column_stack(cols), tuple(names))
