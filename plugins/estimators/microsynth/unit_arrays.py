"""Per-unit arrays of a long panel, split into control and treated blocks, read from parquet without pandas.

:func:`read_unit_arrays` streams the role columns of a parquet file or dataset into column-major
per-unit blocks (the single-machine path of ``data=parquet_units`` with ``backend=columnar``)
under the rules of :func:`causalkit.panel.unit_table` (its layout test, onset and flags);
:func:`split_units` splits a unit table already in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from causalkit.contracts import Roles
from causalkit.errors import DataError
from causalkit.panel import binary_column, ever_on, period_blocks, single_onset, sorted_layout

__all__ = ["UnitArrays", "split_units", "read_unit_arrays"]


@dataclass(frozen=True)
class UnitArrays:
    """One row per unit, split by group: control rows ``Xc``/``Yc`` and treated rows ``Xt``/``Yt``.

    ``group`` is the treated flag in unit order; the control (treated) rows are the units with
    ``group`` false (true) in that order. Covariate blocks are column-major (each covariate
    contiguous) in float64 or float32; outcomes are float64, one column per post period.
    """

    Xc: np.ndarray
    Xt: np.ndarray
    Yc: np.ndarray
    Yt: np.ndarray
    group: np.ndarray
    covariates: tuple[str, ...]
    post_periods: np.ndarray

    @property
    def n(self) -> int:
        return int(self.group.shape[0])


def split_units(
    X: np.ndarray,
    group: np.ndarray,
    Y: np.ndarray,
    covariates: tuple[str, ...],
    post_periods: np.ndarray,
    dtype: Literal["float64", "float32"] = "float64",
) -> UnitArrays:
    """:class:`UnitArrays` from unit-ordered arrays (copies; the inputs are left untouched)."""
    group = np.asarray(group, dtype=bool)
    Xc, Xt = (np.asfortranarray(X[m], dtype=dtype) for m in (~group, group))
    Yc, Yt = (np.asarray(Y[m], dtype=np.float64) for m in (~group, group))
    return UnitArrays(Xc, Xt, Yc, Yt, group, covariates, np.asarray(post_periods))


def _row_groups(files: list[str], columns: list[str]) -> Iterator[dict[str, np.ndarray]]:
    """Row groups in file order as numpy columns (nulls become NaN), decoded one ahead.

    The next row group is decoded by pyarrow (threads over columns, GIL released) while the
    caller works on the current one, so decoding and numpy work overlap on two cores.
    """
    import pyarrow.parquet as pq

    handles = [pq.ParquetFile(f) for f in files]
    tasks = [(h, i) for h in handles for i in range(h.num_row_groups)]

    def read(k: int) -> dict[str, np.ndarray]:
        h, i = tasks[k]
        t = h.read_row_group(i, columns=columns, use_threads=True)
        return {c: t.column(c).to_numpy() for c in columns}

    with ThreadPoolExecutor(max_workers=1) as pool:
        ahead = pool.submit(read, 0) if tasks else None
        for k in range(len(tasks)):
            assert ahead is not None
            current = ahead.result()
            ahead = pool.submit(read, k + 1) if k + 1 < len(tasks) else None
            yield current


def _equal(a: np.ndarray, b: np.ndarray | float) -> bool:
    """Element-wise equality with NaN equal to NaN (broadcasting ``b``)."""
    eq = a == b
    return bool(eq.all() or (eq | (np.isnan(a) & np.isnan(b))).all())


@dataclass
class _Grid:
    """Where each row of the long panel goes: unit and period codes, group positions."""

    T: int
    codes: tuple[np.ndarray, np.ndarray] | None  # (unit, period) per row; None: sorted layout
    ever: np.ndarray
    pos: np.ndarray  # position of each unit within its group
    starts: tuple[np.ndarray, np.ndarray]  # controls / treated before each unit (sorted layout)


def _grid(files: list[str], roles: Roles) -> tuple[_Grid, np.ndarray, int]:
    """First pass over the key columns: layout, treatment grid, onset; returns (grid, periods, t0)."""
    keys = [c for c in (roles.unit, roles.time) if c is not None and roles.time is not None]
    treat = roles.treatment
    assert treat is not None
    cols: dict[str, list[np.ndarray]] = {c: [] for c in [*keys, treat]}
    for part in _row_groups(files, list(cols)):
        for c, v in part.items():
            cols[c].append(v)
    whole = {c: np.concatenate(v) if v else np.empty(0) for c, v in cols.items()}
    del cols
    d_rows = binary_column(pd.Series(whole.pop(treat), name=treat, copy=False), "treatment")
    if d_rows.size == 0:
        raise DataError("data.path", "a parquet panel with rows", "no rows")
    codes = None
    if not keys:
        periods, T = np.array([0]), 1
    else:
        unit, time = whole[str(roles.unit)], whole[str(roles.time)]
        labels = sorted_layout(unit, time)
        weekly = None if labels is not None else period_blocks(unit, time)
        if labels is not None:
            periods, T = labels, labels.size
        elif weekly is not None:  # period-major: row r is unit r % n, period r // n; no hashing
            periods, T = weekly, weekly.size
            n = unit.size // T
            codes = (np.tile(np.arange(n), T), np.repeat(np.arange(T), n))
        else:
            ucode, _ = pd.factorize(unit, sort=False)
            tcode, periods = pd.factorize(time, sort=True)
            T = len(periods)
            n_u = int(ucode.max()) + 1
            counts = np.bincount(ucode * T + tcode, minlength=n_u * T)
            if counts.max() > 1 or counts.min() == 0:
                raise DataError(
                    "roles.unit/time",
                    "a balanced panel with one row per unit and period",
                    f"{int((counts != 1).sum())} (unit, period) cells missing or duplicated",
                )
            codes = (ucode, tcode)
    if codes is None:
        D = d_rows.reshape(-1, T)
    else:
        D = np.zeros((int(codes[0].max()) + 1, T), dtype=bool)
        D[codes] = d_rows
    t0 = single_onset(D, np.asarray(periods), "treatment")
    ever = ever_on(D)
    if ever.all():
        raise DataError(
            "roles.treatment", "at least one control unit", "none (every unit is treated)"
        )
    before = np.stack([np.cumsum(~ever) - ~ever, np.cumsum(ever) - ever])
    pos = np.where(ever, before[1], before[0])
    starts = (np.append(before[0], (~ever).sum()), np.append(before[1], ever.sum()))
    return _Grid(T, codes, ever, pos, starts), np.asarray(periods), t0


def _varies(v: np.ndarray, o: int, T: int, prev: float | None) -> bool:
    """Whether a covariate changes within a unit, in a row group of the sorted layout.

    Rows ``[0, o)`` finish the unit begun in the previous row group (whose value was ``prev``);
    from ``o`` on, units start every ``T`` rows (the last one may continue in the next group).
    """
    if o and prev is not None and not _equal(v[:o], prev):
        return True
    body = v[o:]
    full = body.size // T * T
    blocks = body[:full].reshape(-1, T)
    if T > 1 and full and not _equal(blocks[:, 1:], blocks[:, :1]):
        return True
    return bool(body.size > full and not _equal(body[full:], body[full]))


def read_unit_arrays(
    path: str | Path, roles: Roles, dtype: Literal["float64", "float32"] = "float64"
) -> UnitArrays:
    r"""Per-unit arrays from a parquet file or directory, reading only the role columns.

    Two streaming passes over the row groups. The first reads the unit, time and treatment
    columns: the layout (sorted by unit, then period, with one row per unit and period;
    sorted by period, then unit, coded by position; else any balanced order, factorised), the
    ever-treated flag and the single onset (the rules of :func:`causalkit.panel.unit_table`).
    The second reads the outcome and the
    covariates, decoded one row group ahead on a background thread, and writes each
    covariate straight into the control or treated block of its unit: with the sorted
    layout a unit's value is a strided slice (rows :math:`o, o+T, \dots`) compared with the
    other periods' rows in place (time invariance), otherwise a scatter by unit code. No
    pandas object of the long panel is built and memory stays near the size of
    :math:`X` (:math:`n \times d` in ``dtype``) plus one row group and the :math:`n \times T`
    outcome grid. Units are in file order (of their first row); ``group`` is their treated flag.
    """
    path = Path(path)
    import pyarrow.dataset as ds

    files = sorted(ds.dataset(path, format="parquet").files)
    covs = tuple(roles.covariates)
    if roles.treatment is None or roles.outcome is None:
        raise DataError("roles", "treatment and outcome columns", "none")
    if roles.time is not None and roles.unit is None:
        raise DataError("roles.unit", "a unit column when roles.time is set", "nothing")
    grid, periods, t0 = _grid(files, roles)
    n_c, n_t = int((~grid.ever).sum()), int(grid.ever.sum())
    d, T = len(covs), grid.T
    Xc = np.empty((n_c, d), dtype=dtype, order="F")
    Xt = np.empty((n_t, d), dtype=dtype, order="F")
    Y = np.empty((grid.ever.size, T))
    prev: list[float | None] = [None] * d
    seen = np.zeros(grid.ever.size, dtype=bool)
    r0 = 0
    for part in _row_groups(files, [roles.outcome, *covs]):
        m = len(part[roles.outcome])
        if grid.codes is None:  # sorted: rows r0.. are consecutive cells of the unit x period grid
            Y.reshape(-1)[r0 : r0 + m] = part[roles.outcome]
            o = -r0 % T
            ua = (r0 + o) // T
            ub = ua + len(range(o, m, T))
            treated = grid.ever[ua:ub]
            rows_c, rows_t = np.flatnonzero(~treated), np.flatnonzero(treated)
            (c0, c1), (s0, s1) = ((s[ua], s[ub]) for s in grid.starts)
            for j, c in enumerate(covs):
                v = part[c]
                if _varies(v, o, T, prev[j]):
                    raise DataError(
                        "roles.covariates",
                        f"{c!r} constant within each unit (time-invariant)",
                        "values that vary within a unit",
                    )
                first = v[o::T]
                Xc[c0:c1, j] = first.take(rows_c)
                Xt[s0:s1, j] = first.take(rows_t)
                if first.size:
                    prev[j] = float(first[-1])
        else:
            u, t = grid.codes[0][r0 : r0 + m], grid.codes[1][r0 : r0 + m]
            Y[u, t] = part[roles.outcome]
            fresh = ~seen[u]
            first_u, first_i = np.unique(u[fresh], return_index=True)
            rows = np.flatnonzero(fresh)[first_i]
            seen[first_u] = True
            tr = grid.ever[u]
            new_tr = grid.ever[first_u]
            for j, c in enumerate(covs):
                v = np.asarray(part[c], dtype=dtype)
                Xc[grid.pos[first_u[~new_tr]], j] = v[rows[~new_tr]]
                Xt[grid.pos[first_u[new_tr]], j] = v[rows[new_tr]]
                # A unit's first row set its value; every row must agree (time invariance).
                if not (
                    _equal(Xc[grid.pos[u[~tr]], j], v[~tr])
                    and _equal(Xt[grid.pos[u[tr]], j], v[tr])
                ):
                    raise DataError(
                        "roles.covariates",
                        f"{c!r} constant within each unit (time-invariant)",
                        "values that vary within a unit",
                    )
        r0 += m
    Y = Y[:, t0:]
    return UnitArrays(Xc, Xt, Y[~grid.ever], Y[grid.ever], grid.ever, covs, periods[t0:])
