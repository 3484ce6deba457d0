"""Panel mode input: per-unit arrays of several outcomes over an R-style study window."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from causalkit.contracts import Dataset
from causalkit.errors import DataError
from causalkit.panel import unit_table

__all__ = ["PanelArrays", "panel_arrays"]


@dataclass(frozen=True)
class PanelArrays:
    """One row per unit, outcomes as ``(n, T)`` matrices over the study window.

    Attributes
    ----------
    units : ndarray
        Unit labels.
    treated : ndarray of bool
        Ever-treated units (the treated area).
    X : ndarray, shape (n, d)
        Time-invariant covariates.
    covariates : tuple of str
        Their names.
    outcomes : dict of str to ndarray, shape (n, T)
        Every outcome needed (matched and reported), over the window's periods.
    periods : ndarray
        Period labels of the window, ``start_pre .. end_post``.
    pre : ndarray of bool
        Which window periods are pre periods (``start_pre .. end_pre``); the rest are post.
    """

    units: np.ndarray
    treated: np.ndarray
    X: np.ndarray
    covariates: tuple[str, ...]
    outcomes: dict[str, np.ndarray]
    periods: np.ndarray
    pre: np.ndarray

    @property
    def n_treated(self) -> int:
        return int(self.treated.sum())


def _numeric_column(frame: pd.DataFrame, col: str, field: str) -> np.ndarray:
    s = frame[col]
    if s.dtype != bool and not pd.api.types.is_numeric_dtype(s):
        raise DataError(field, f"a numeric column {col!r}", f"dtype {s.dtype}")
    if s.isna().any():
        raise DataError(field, f"no missing values in {col!r}", f"{int(s.isna().sum())} missing")
    return s.to_numpy(dtype=np.float64)


def _window_mask(
    labels: np.ndarray,
    onset: int,
    start_pre: float | None,
    end_pre: float | None,
    end_post: float | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (in window, pre) over the sorted period labels."""
    try:
        t = labels.astype(np.float64)
    except (TypeError, ValueError):
        raise DataError(
            "roles.time", "numeric period labels (for start_pre/end_pre/end_post)", labels.dtype
        ) from None
    onset_label = t[onset]
    first_pre = t[0] if start_pre is None else float(start_pre)
    last_pre = t[onset - 1] if end_pre is None else float(end_pre)
    last_post = t[-1] if end_post is None else float(end_post)
    if last_pre >= onset_label:
        raise DataError(
            "estimator.end_pre", f"a period before the treatment onset {onset_label:g}", last_pre
        )
    if first_pre > last_pre:
        raise DataError("estimator.start_pre", f"at most end_pre={last_pre:g}", first_pre)
    if last_post < onset_label:
        raise DataError(
            "estimator.end_post", f"a period at or after the onset {onset_label:g}", last_post
        )
    window = (t >= first_pre) & (t <= last_post)
    pre = (t >= first_pre) & (t <= last_pre)
    if not pre.any():
        raise DataError(
            "estimator.start_pre/end_pre", "at least one pre period in the data", "none"
        )
    return window, pre[window]


def panel_arrays(
    data: Dataset,
    outcomes: Sequence[str],
    start_pre: float | None,
    end_pre: float | None,
    end_post: float | None,
    cross_section_ok: bool,
) -> PanelArrays:
    """Reshape a long panel into :class:`PanelArrays` with one-line errors.

    The structural checks (balanced panel, one row per unit and period, time-invariant
    covariates, a single onset, treated and control units present) are
    :func:`causalkit.panel.unit_table`'s; added here: constant covariates, extra outcome
    columns, and the window ``start_pre <= end_pre < onset <= end_post``. Without a time
    role (``cross_section_ok``, propensity mode) each row is a unit observed once.
    """
    table = unit_table(data, group_role="treatment", who="microsynth (panel)")
    roles = data.roles
    if table.covariates:
        const = [c for c, s in zip(table.covariates, table.X.std(axis=0), strict=True) if s == 0]
        if const:
            raise DataError(
                "roles.covariates",
                "covariates that vary across units",
                f"constant {', '.join(const)}",
            )
    frame = data.frame
    missing = [o for o in outcomes if o not in frame.columns]
    if missing:
        raise DataError(
            "estimator.match_outcomes/result_outcomes", "columns of the table", ", ".join(missing)
        )

    if roles.time is None:
        if not cross_section_ok:
            raise DataError(
                "roles.time", "a time column for panel mode (or propensity_mode=true)", "nothing"
            )
        ys = {o: _numeric_column(frame, o, f"outcome {o}")[:, None] for o in outcomes}
        return PanelArrays(
            table.units,
            table.group,
            table.X,
            table.covariates,
            ys,
            np.array([0]),
            np.zeros(1, dtype=bool),
        )

    u_codes, _ = pd.factorize(frame[roles.unit], sort=False)
    t_codes, t_labels = pd.factorize(frame[roles.time], sort=True)
    n_u, n_t = table.n, len(t_labels)
    cell = u_codes.astype(np.int64) * n_t + t_codes
    onset = int(table.pre_periods.shape[0])
    window, pre = _window_mask(np.asarray(t_labels), onset, start_pre, end_pre, end_post)
    ys = {}
    for o in outcomes:
        grid = np.empty(n_u * n_t)
        grid[cell] = _numeric_column(frame, o, f"outcome {o}")
        ys[o] = grid.reshape(n_u, n_t)[:, window]
    return PanelArrays(
        table.units, table.group, table.X, table.covariates, ys, np.asarray(t_labels)[window], pre
    )
