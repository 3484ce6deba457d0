"""Long panels and cross-sections reshaped into per-unit arrays, with the checks users need.

The one long-to-unit reshape of the framework: :func:`unit_table` reads panel arrays, a long
table sorted by unit then period or by period then unit (reshaped views, no scatter) or any
balanced long table (unit ids factorised once, then one gather per column), with the same
checks and errors in every case. :func:`sorted_layout` is the unit-major layout test, shared
with the streaming parquet reader (:mod:`causalkit_plugins.data.files`); :func:`period_blocks`
the period-major one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from causalkit.contracts import Dataset, Roles
from causalkit.errors import DataError

__all__ = [
    "UnitTable",
    "unit_table",
    "require_roles",
    "binary_column",
    "numeric_columns",
    "single_onset",
    "ever_on",
    "time_invariant",
    "sorted_layout",
    "period_blocks",
]


@dataclass(frozen=True)
class UnitTable:
    """One row per unit.

    Attributes
    ----------
    units : ndarray
        Unit identifiers (row ``i`` of every array below).
    group : ndarray of bool
        The contrast indicator: actual treatment (``group_role="treatment"``) or the
        randomised arm (``group_role="assignment"``), ever-on over the panel.
    treatment, assignment : ndarray of bool or None
        Both indicators when their roles are given.
    X : ndarray, shape (n, d)
        Time-invariant covariates.
    y_pre, y_post : ndarray, shape (n, T_pre) / (n, T_post)
        Outcomes before and from the treatment onset on. A cross-section has one post column.
    pre_periods, post_periods : ndarray
        Period labels of the columns of ``y_pre`` and ``y_post``.
    """

    units: np.ndarray
    group: np.ndarray
    treatment: np.ndarray | None
    assignment: np.ndarray | None
    X: np.ndarray
    covariates: tuple[str, ...]
    y_pre: np.ndarray
    y_post: np.ndarray
    pre_periods: np.ndarray
    post_periods: np.ndarray
    n_unselected: int = 0

    @property
    def n(self) -> int:
        """Number of units."""
        return int(self.units.shape[0])

    @property
    def y(self) -> np.ndarray:
        """Per-unit outcome: the mean over post periods."""
        return self.y_post.mean(axis=1)


def require_roles(data: Dataset, roles: Sequence[str], who: str) -> None:
    """Fail with one line when a role ``who`` needs is unset or names a missing column."""
    for role in roles:
        value = getattr(data.roles, role)
        if value is None or (isinstance(value, tuple) and role == "covariates" and not value):
            if role == "covariates":
                raise DataError(f"roles.{role}", f"at least one covariate for {who}", "none")
            raise DataError(f"roles.{role}", f"a column name (required by {who})", "nothing")
    names = data.columns
    cols = set(names)
    for name in data.roles.columns():
        if name not in cols:
            shown = ", ".join(map(str, names[:12]))
            raise DataError(
                "roles",
                f"a column of the table ({shown}{', ...' if len(cols) > 12 else ''})",
                repr(name),
            )


def binary_column(values: pd.Series, role: str) -> np.ndarray:
    """Read a 0/1 (or boolean) column as bool; anything else is a one-line error."""
    if isinstance(values.dtype, np.dtype):  # fast path, no pandas ops; NaN fails: reported below
        clean = _clean(values.to_numpy(), binary=True)
        if clean is not None:
            return clean
    if values.isna().any():
        raise DataError(
            f"roles.{role}",
            "no missing values",
            f"{int(values.isna().sum())} missing in {values.name!r}",
        )
    uniq = pd.unique(values)
    ok = set(np.asarray(uniq, dtype=object).tolist()) <= {0, 1}
    if not ok:
        shown = ", ".join(map(repr, list(uniq)[:5]))
        raise DataError(
            f"roles.{role}", f"a binary 0/1 column in {values.name!r}", f"values {shown}"
        )
    return values.to_numpy().astype(bool)


def numeric_columns(frame: pd.DataFrame, cols: Sequence[str], role: str) -> np.ndarray:
    """Numeric columns as a float64 matrix; non-numeric or missing values are a one-line DataError."""
    out = np.empty((len(frame), len(cols)), dtype=np.float64)
    for j, c in enumerate(cols):
        s = frame[c]
        clean = _clean(s.to_numpy(), binary=False) if isinstance(s.dtype, np.dtype) else None
        if clean is not None:  # fast path, no pandas ops
            out[:, j] = clean
            continue
        if s.dtype == bool:
            s = s.astype(np.float64)
        if not pd.api.types.is_numeric_dtype(s):
            raise DataError(
                f"roles.{role}",
                f"numeric column {c!r} (encode categories first)",
                f"dtype {s.dtype}",
            )
        if s.isna().any():
            raise DataError(
                f"roles.{role}", f"no missing values in {c!r}", f"{int(s.isna().sum())} missing"
            )
        out[:, j] = s.to_numpy(dtype=np.float64)
    return out


def unit_table(
    data: Dataset,
    group_role: Literal["treatment", "assignment"] = "treatment",
    who: str = "estimator",
) -> UnitTable:
    """Reshape ``data`` into one row per unit.

    A long panel (roles ``unit`` and ``time``) must be balanced, with one row per unit and
    period, covariates constant within a unit, and a single treatment onset (no staggered
    adoption). The ``treatment`` column is an exposure indicator, 1 only in the periods a
    unit is exposed; a group indicator (1 in every period of the treated units) is refused
    when there are several periods (see :func:`single_onset`), while ``assignment`` (the
    randomised arm) may be constant. Periods from the onset on are post periods. Without ``time`` each row is a unit.
    When the ``selected`` role is set (outcome observed only where it is 1), the estimator
    analyses the selected rows and ``n_unselected`` counts the rows left out.
    """
    roles = data.roles
    need = ["outcome", group_role]
    require_roles(data, need, who)
    if _panel_usable(data):
        table = _panel_table(data, group_role)
        if table is not None:
            return table
    frame = data.frame
    if roles.selected is None and roles.unit is not None and roles.time is not None:
        table = _sorted_table(frame, data.roles, group_role)
        if table is not None:
            return table
    n_unselected = 0
    if roles.selected is not None:
        keep = binary_column(frame[roles.selected], "selected")
        n_unselected = int((~keep).sum())
        frame = frame[keep]
    covs = tuple(roles.covariates)
    out_col = roles.outcome
    assert out_col is not None

    if roles.time is None:
        g = binary_column(frame[getattr(roles, group_role)], group_role)
        d = binary_column(frame[roles.treatment], "treatment") if roles.treatment else None
        z = binary_column(frame[roles.assignment], "assignment") if roles.assignment else None
        y = numeric_columns(frame, [out_col], "outcome")
        X = numeric_columns(frame, covs, "covariates") if covs else np.empty((len(frame), 0))
        units = frame[roles.unit].to_numpy() if roles.unit else np.arange(len(frame))
        table = UnitTable(
            units,
            g,
            d,
            z,
            X,
            covs,
            np.empty((len(frame), 0)),
            y,
            np.empty(0),
            np.array([0]),
            n_unselected,
        )
        _check_groups(table, group_role)
        return table

    if roles.unit is None:
        raise DataError("roles.unit", "a unit column when roles.time is set", "nothing")
    u_codes, u_labels = pd.factorize(frame[roles.unit], sort=False)
    t_codes, t_labels = pd.factorize(frame[roles.time], sort=True)
    n_u, n_t = len(u_labels), len(t_labels)
    if (u_codes < 0).any() or (t_codes < 0).any():
        raise DataError("roles.unit/time", "no missing unit or time labels", "missing labels")
    cell = u_codes.astype(np.int64) * n_t + t_codes
    counts = np.bincount(cell, minlength=n_u * n_t)
    if counts.max() > 1:
        bad = int((counts > 1).sum())
        raise DataError(
            "roles.unit/time",
            "one row per unit and period",
            f"{bad} duplicated (unit, period) cells",
        )
    if counts.min() == 0:
        missing_units = int((counts.reshape(n_u, n_t) == 0).any(axis=1).sum())
        raise DataError(
            "roles.time",
            "a balanced panel (every unit observed in every period)",
            f"{missing_units} units with missing periods",
        )

    # Row of each (unit, period) cell: every column is then read by one gather.
    rows = np.empty(n_u * n_t, dtype=np.intp)
    rows[cell] = np.arange(cell.size)
    order = rows.reshape(n_u, n_t)
    return _grid_table(
        frame,
        roles,
        group_role,
        np.asarray(u_labels),
        np.asarray(t_labels),
        lambda v: v.take(order),
        n_unselected,
    )


def sorted_layout(unit: np.ndarray, time: np.ndarray) -> np.ndarray | None:
    """Period labels when rows are sorted by unit, then period, one row per unit and period.

    Then row ``r`` is unit ``r // T``, period ``r % T``: a unit's rows are strided slices and
    nothing needs hashing or scattering. ``None`` for any other layout.
    """
    if time.dtype.kind in "iuf" and time.size > 1:
        # Sorted and balanced: every unit's block repeats the first one, which is increasing.
        stops = np.flatnonzero(time[1:] <= time[:-1])
        labels = time[: stops[0] + 1 if stops.size else time.size]
    else:
        labels = np.sort(pd.unique(time))
    T = labels.size
    if (
        T == 0
        or time.size % T
        or not np.array_equal(time.reshape(-1, T), np.broadcast_to(labels, (time.size // T, T)))
    ):
        return None
    blocks = unit.reshape(-1, T)
    first = blocks[:, 0]
    if T > 1 and not (blocks[:, 1:] == first[:, None]).all():
        return None
    increasing = first.dtype.kind in "iu" and bool((first[1:] > first[:-1]).all())
    if not increasing and (pd.isna(first).any() or pd.unique(first).size != first.size):
        return None
    return labels.copy()


def _period_keys(time: pd.Series) -> np.ndarray:
    """Period labels that sort in time order: an ordered categorical's codes, else the values.

    Text labels never get here (:func:`causalkit.inputs.check_inputs` refuses them): they
    would sort alphabetically (``2024-W10`` before ``2024-W9``).
    """
    if isinstance(time.dtype, pd.CategoricalDtype):
        return time.cat.codes.to_numpy()
    return time.to_numpy()


def period_blocks(unit: np.ndarray, time: np.ndarray) -> np.ndarray | None:
    """Period labels when rows are sorted by period, then by unit in the same order every period.

    The order of weekly exports appended one after another: row ``r`` is period ``r // n``,
    unit ``r % n``, so a unit's values are the column's rows ``i, i + n, ...``: contiguous
    blocks per period, read without hashing or scattering. ``None`` for any other layout.
    """
    if time.dtype.kind not in "iufmM" or time.size < 2:
        return None
    starts = np.flatnonzero(time[1:] != time[:-1]) + 1  # NaN labels: every row a block
    T = starts.size + 1
    n = time.size // T
    if time.size % T or not np.array_equal(starts, np.arange(1, T) * n):
        return None
    labels = time[::n]
    if not (labels[1:] > labels[:-1]).all():
        return None
    blocks = unit.reshape(T, n)
    first = blocks[0]
    if not (blocks[1:] == first).all():
        return None
    increasing = first.dtype.kind in "iu" and bool((first[1:] > first[:-1]).all())
    if not increasing and (pd.isna(first).any() or pd.unique(first).size != n):
        return None
    return labels.copy()


def _float_column(frame: pd.DataFrame, col: str, role: str, check: bool = True) -> np.ndarray:
    """Read a numeric column as float64 (a view when it already is); missing values are a DataError.

    ``check=False`` skips the missing-value pass over a numpy column (the caller rules them out).
    """
    s = frame[col]
    if isinstance(s.dtype, np.dtype) and s.dtype.kind in "iuf":
        v = s.to_numpy(dtype=np.float64, copy=False)
        if not check or not np.isnan(v).any():
            return v
    return numeric_columns(frame, [col], role)[:, 0]  # other dtypes; words the error


def _sorted_table(frame: pd.DataFrame, roles: Roles, group_role: str) -> UnitTable | None:
    """:func:`unit_table` of a long table in one of the two common orders; ``None`` otherwise.

    Sorted by unit, then period (:func:`sorted_layout`), or by period, then unit
    (:func:`period_blocks`): every column is then a units x periods view of itself, with
    no hashing and no scatter. ``None`` (use the general reshape) for any other row order,
    an unbalanced or duplicated panel.
    """
    assert roles.unit is not None and roles.time is not None
    u = frame[roles.unit].to_numpy()
    keys = _period_keys(frame[roles.time])
    periods = sorted_layout(u, keys)
    by_unit = periods is not None
    if periods is None:
        periods = period_blocks(u, keys)
        if periods is None:
            return None
    if isinstance(frame[roles.time].dtype, pd.CategoricalDtype):
        periods = np.asarray(frame[roles.time].cat.categories)[periods]
    n_t = periods.size
    n_u = u.size // n_t
    if by_unit:
        return _grid_table(
            frame, roles, group_role, u[::n_t], periods, lambda v: v.reshape(n_u, n_t), 0
        )
    return _grid_table(
        frame, roles, group_role, u[:n_u], periods, lambda v: v.reshape(n_t, n_u).T, 0
    )


def _grid_table(
    frame: pd.DataFrame,
    roles: Roles,
    group_role: str,
    units: np.ndarray,
    periods: np.ndarray,
    grid: Callable[[np.ndarray], np.ndarray],
    n_unselected: int,
) -> UnitTable:
    """Build the unit table of a balanced long table whose columns ``grid`` maps to units x periods.

    Each role column is read once; covariates are written column by column into a
    column-major ``X`` after the time-invariance check (equal periods, compared in place).
    """
    assert roles.outcome is not None
    n_u, n_t = units.size, periods.size

    def flags(role: str) -> np.ndarray | None:
        col = getattr(roles, role)
        return None if col is None else grid(binary_column(frame[col], role))

    d_grid, z_grid = flags("treatment"), flags("assignment")
    g_grid = d_grid if group_role == "treatment" else z_grid
    assert g_grid is not None
    y_grid = grid(_float_column(frame, roles.outcome, "outcome"))
    covs = tuple(roles.covariates)
    X = np.empty((n_u, len(covs)), order="F")  # column-major: contiguous per-column writes
    for j, c in enumerate(covs):
        xg = grid(_float_column(frame, c, "covariates", check=n_t == 1))
        X[:, j] = xg[:, 0]
        # NaN != NaN, so equal periods also rule out missing values.
        if not all(np.array_equal(xg[:, k], X[:, j]) for k in range(1, n_t)):
            _float_column(frame, c, "covariates")  # raises on a missing value
            time_invariant(xg, c)  # raises: some unit's value varies
    return _assemble(
        units, periods, g_grid, d_grid, z_grid, y_grid, X, covs, n_unselected, group_role
    )


def _assemble(
    units: np.ndarray,
    periods: np.ndarray,
    g_grid: np.ndarray,
    d_grid: np.ndarray | None,
    z_grid: np.ndarray | None,
    y_grid: np.ndarray,
    X: np.ndarray,
    covs: tuple[str, ...],
    n_unselected: int,
    group_role: str,
) -> UnitTable:
    """Build the unit table from units x periods grids: one onset, pre/post split, both groups present."""
    # The onset comes from the actual treatment when given (assignment is usually constant).
    onset_role = "treatment" if d_grid is not None else group_role
    t0 = single_onset(d_grid if d_grid is not None else g_grid, periods, group_role, onset_role)
    table = UnitTable(
        units=units,
        group=ever_on(g_grid),
        treatment=None if d_grid is None else ever_on(d_grid),
        assignment=None if z_grid is None else ever_on(z_grid),
        X=X,
        covariates=covs,
        y_pre=y_grid[:, :t0],
        y_post=y_grid[:, t0:],
        pre_periods=periods[:t0],
        post_periods=periods[t0:],
        n_unselected=n_unselected,
    )
    _check_groups(table, group_role)
    return table


def time_invariant(xg: np.ndarray, name: str) -> np.ndarray:
    """Return the per-unit value of a units x periods covariate grid that must not vary over time."""
    if not np.all(xg == xg[:, :1]):
        nbad = int((xg != xg[:, :1]).any(axis=1).sum())
        raise DataError(
            "roles.covariates",
            f"{name!r} constant within each unit (time-invariant)",
            f"{nbad} units where it varies",
        )
    return xg[:, 0]


def _panel_usable(data: Dataset) -> bool:
    """Panel arrays describe this dataset's long table under its roles (no row selection)."""
    panel, roles = data.panel, data.roles
    return (
        panel is not None
        and roles.selected is None
        and roles.unit == panel.unit
        and roles.time == panel.time
        and all(c in panel.columns for c in roles.columns() if c not in (panel.unit, panel.time))
    )


def _clean(v: np.ndarray, binary: bool) -> np.ndarray | None:
    """0/1 values as bool, or numbers as float64; ``None`` when anything needs the table's checks."""
    if v.dtype.kind not in "biuf":
        return None
    if binary:
        if v.dtype == bool:
            return v.copy()
        if v.dtype.kind in "iu":  # two reductions instead of three temporaries
            return v.astype(bool) if v.size == 0 or (v.min() >= 0 and v.max() <= 1) else None
        return v.astype(bool) if ((v == 0) | (v == 1)).all() else None
    out = v.astype(np.float64)
    return None if np.isnan(out).any() else out


def _panel_table(data: Dataset, group_role: str) -> UnitTable | None:
    """:func:`unit_table` read off panel arrays, no long table.

    ``None`` when a role column is not clean (missing values, non-binary flags, other
    dtypes): the caller then goes through the long table, whose checks word the error.
    """
    panel, roles = data.panel, data.roles
    assert panel is not None
    n, n_t = panel.n, len(panel.periods)
    grids: dict[str, np.ndarray] = {}
    for role, binary in (("treatment", True), ("assignment", True), ("outcome", False)):
        name = getattr(roles, role)
        if name is None:
            continue
        v = _clean(np.asarray(panel.columns[name]), binary)
        if v is None:
            return None
        grids[role] = np.broadcast_to(v[:, None], (n, n_t)) if v.ndim == 1 else v
    covs = tuple(roles.covariates)
    X = np.empty((n, len(covs)))
    for j, c in enumerate(covs):
        xg = _clean(np.asarray(panel.columns[c]), False)
        if xg is None:
            return None
        X[:, j] = time_invariant(xg, c) if xg.ndim == 2 else xg
    return _assemble(
        np.asarray(panel.units),
        np.asarray(panel.periods),
        grids[group_role],
        grids.get("treatment"),
        grids.get("assignment"),
        grids["outcome"],
        X,
        covs,
        0,
        group_role,
    )


def ever_on(grid: np.ndarray) -> np.ndarray:
    """Per-unit "on in any period" of a units x periods bool grid.

    Column by column: numpy's ``any(axis=1)`` over a handful of periods costs ~40 us per
    2,000 units, the loop a few us per period.
    """
    out = grid[:, 0].astype(bool)  # a copy
    for k in range(1, grid.shape[1]):
        out |= grid[:, k].astype(bool, copy=False)
    return out


def single_onset(
    onset_grid: np.ndarray, periods: np.ndarray, group_role: str, onset_role: str = "treatment"
) -> int:
    """Column index of the one treatment onset in a units x periods 0/1 grid.

    The grid is an exposure indicator: 1 in the periods a unit is exposed, 0 before its
    onset. Raises a one-line :class:`DataError` when nobody is treated, when units start
    treatment in different periods (staggered adoption), or when the indicator never changes
    within any unit over two or more periods: a group indicator (1 in every period of the
    treated units) would put the onset at the first period and average the pre-periods
    into the effect. ``onset_role`` names the role the grid comes from in that message.
    """
    on = onset_grid if onset_grid.dtype == bool else onset_grid != 0
    n_t = on.shape[1]
    first = np.full(on.shape[0], n_t)
    for k in range(n_t - 1, -1, -1):  # first period on, per unit (n_t when never on)
        first[on[:, k]] = k
    treated = first[first < n_t]
    if treated.size == 0:
        raise DataError(f"roles.{group_role}", "at least one treated unit", "none")
    if treated.min() != treated.max():
        onsets = np.unique(treated)
        shown = ", ".join(map(str, periods[onsets[:5]]))
        raise DataError(
            "roles.treatment",
            "a single treatment onset (no staggered adoption)",
            f"{onsets.size} onsets ({shown})",
        )
    if treated[0] == 0 and n_t > 1 and on[first == 0].all():
        raise DataError(
            f"roles.{onset_role}",
            f"1 only in exposed periods, 0 before the onset (for a group indicator G "
            f"whose exposure starts in period t0, pass {onset_role} = G * (time >= t0))",
            f"a column constant within every unit over {n_t} periods "
            f"(treated units are 1 from the first period, {periods[0]}: no pre-periods)",
        )
    return int(treated[0])


def _check_groups(table: UnitTable, group_role: str) -> None:
    n1 = int(table.group.sum())
    if n1 == 0:
        raise DataError(f"roles.{group_role}", "at least one treated unit", "none")
    if n1 == table.n:
        raise DataError(
            f"roles.{group_role}", "at least one control unit", "none (every unit is treated)"
        )
