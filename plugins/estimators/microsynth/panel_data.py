"""Panel-mode input: several outcomes per unit over an R-style study window, from the core unit table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from causalkit.contracts import Dataset
from causalkit.errors import DataError
from causalkit.panel import UnitTable, unit_table

__all__ = ["WindowArrays", "window_arrays"]

_WHO = "microsynth_panel"


@dataclass(frozen=True)
class WindowArrays:
    """One row per unit, each outcome as an ``(n, T)`` matrix over the study window.

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
        """Number of units in the treated area."""
        return int(self.treated.sum())

    @property
    def post(self) -> np.ndarray:
        """Post-period mask; a cross-section (no pre period) is one post period."""
        return ~self.pre if self.pre.any() else np.ones(self.periods.size, dtype=bool)


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


def _all_periods(table: UnitTable) -> np.ndarray:
    return np.hstack([table.y_pre, table.y_post])


def window_arrays(
    data: Dataset,
    outcomes: Sequence[str],
    start_pre: float | None,
    end_pre: float | None,
    end_post: float | None,
    cross_section_ok: bool,
) -> WindowArrays:
    """Reshape a long panel into :class:`WindowArrays` with one-line errors.

    Every reshape and structural check (balanced panel, one row per unit and period,
    time-invariant covariates, a single onset, treated and control units present, numeric
    outcomes without missing values) is :func:`causalkit.panel.unit_table`'s, called once
    per outcome (covariates only the first time); the units come in the same order every
    time. Added here: covariates that vary across units, outcome columns that exist, and the
    window ``start_pre <= end_pre < onset <= end_post``. Without a time role
    (``cross_section_ok``, propensity mode) each row is a unit observed once.
    """
    roles = data.roles
    columns = set(data.columns)
    missing = [o for o in outcomes if o not in columns]
    if missing:
        raise DataError(
            "estimator.match_outcomes/result_outcomes", "columns of the table", ", ".join(missing)
        )
    if roles.time is None and not cross_section_ok:
        raise DataError(
            "roles.time", "a time column for panel mode (or propensity_mode=true)", "nothing"
        )
    first = unit_table(data.with_roles(roles.model_copy(update={"outcome": outcomes[0]})), who=_WHO)
    if first.covariates:
        const = [c for c, s in zip(first.covariates, first.X.std(axis=0), strict=True) if s == 0]
        if const:
            raise DataError(
                "roles.covariates",
                "covariates that vary across units",
                f"constant {', '.join(const)}",
            )
    ys = {outcomes[0]: _all_periods(first)}
    bare = roles.model_copy(update={"covariates": ()})
    for o in outcomes[1:]:
        ys[o] = _all_periods(
            unit_table(data.with_roles(bare.model_copy(update={"outcome": o})), who=_WHO)
        )
    if roles.time is None:
        return WindowArrays(
            first.units,
            first.group,
            first.X,
            first.covariates,
            ys,
            np.array([0]),
            np.zeros(1, dtype=bool),
        )
    labels = np.concatenate([first.pre_periods, first.post_periods])
    window, pre = _window_mask(labels, first.pre_periods.size, start_pre, end_pre, end_post)
    return WindowArrays(
        first.units,
        first.group,
        first.X,
        first.covariates,
        {o: y[:, window] for o, y in ys.items()},
        labels[window],
        pre,
    )
