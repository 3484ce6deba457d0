"""Design matrices of a sample-selection model, with the outcome missing where unselected."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from causalkit.contracts import Dataset
from causalkit.errors import ConfigError, DataError
from causalkit.panel import binary_column, numeric_columns, require_roles

__all__ = ["SelectionData", "selection_data", "INTERCEPT"]

INTERCEPT = "intercept"
_RESERVED = (INTERCEPT, "lambda", "sel")


@dataclass(frozen=True)
class SelectionData:
    """Arrays of one selection problem.

    Attributes
    ----------
    y : ndarray, shape (n_1,)
        Outcome of the selected units.
    X : ndarray, shape (n_1, k)
        Outcome regressors of the selected units (intercept first when added).
    W : ndarray, shape (n, q)
        Selection regressors of all units.
    d : ndarray of bool, shape (n,)
        Selection indicator.
    outcome_names, selection_names : tuple of str
        Column names of ``X`` and ``W``.
    treatment : str or None
        The treatment column when it is among the outcome regressors.
    excluded : tuple of str
        Selection regressors absent from the outcome equation (the exclusion restriction).
    weights : ndarray, shape (n,), or None
        Sampling weights of all units (the ``weight`` role), set by the estimator.
    """

    y: np.ndarray
    X: np.ndarray
    W: np.ndarray
    d: np.ndarray
    outcome_names: tuple[str, ...]
    selection_names: tuple[str, ...]
    treatment: str | None
    excluded: tuple[str, ...]
    weights: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.d.shape[0])

    def subset(self, idx: np.ndarray) -> SelectionData:
        """The units ``idx`` of the full sample (with repeats), for resampling."""
        pos = np.cumsum(self.d) - 1  # row of each selected unit in y and X
        d = self.d[idx]
        rows = pos[idx[d]]
        return SelectionData(
            self.y[rows],
            self.X[rows],
            self.W[idx],
            d,
            self.outcome_names,
            self.selection_names,
            self.treatment,
            self.excluded,
            None if self.weights is None else self.weights[idx],
        )


def _check_names(names: Sequence[str], role: str, add_intercept: bool) -> None:
    for c in names:
        if c in _RESERVED and (c != INTERCEPT or add_intercept):
            raise ConfigError(
                f"roles.{role}", f"no column named one of {_RESERVED} (reserved labels)", c
            )


def selection_data(data: Dataset, add_intercept: bool, who: str = "heckman") -> SelectionData:
    """Build the design of a selection model from ``data``.

    The outcome may be missing exactly where ``selected`` is 0; every regressor must be
    present in the rows its equation uses (outcome regressors on selected rows, selection
    regressors everywhere). A ``treatment`` role not listed among the outcome covariates is
    prepended to them.
    """
    require_roles(data, ("outcome", "selected", "covariates", "selection_covariates"), who)
    roles, frame = data.roles, data.frame
    if not roles.selection_covariates:
        raise DataError("roles.selection_covariates", f"at least one covariate for {who}", "none")
    d = binary_column(frame[roles.selected], "selected")
    n1 = int(d.sum())
    if n1 == 0 or n1 == d.size:
        raise DataError(
            "roles.selected", "both selected and unselected units", f"{n1} of {d.size} selected"
        )
    out_cols = list(roles.covariates)
    treatment = roles.treatment
    if treatment is not None:
        binary_column(frame[treatment], "treatment")
        if treatment not in out_cols:
            out_cols.insert(0, treatment)
    sel_cols = list(roles.selection_covariates)
    _check_names(out_cols, "covariates", add_intercept)
    _check_names(sel_cols, "selection_covariates", add_intercept)
    y_all = frame[roles.outcome]
    if not pd.api.types.is_numeric_dtype(y_all):
        raise DataError(
            "roles.outcome", f"numeric column {roles.outcome!r}", f"dtype {y_all.dtype}"
        )
    y = y_all.to_numpy(dtype=np.float64)[d]
    if np.isnan(y).any():
        raise DataError(
            "roles.outcome",
            f"{roles.outcome!r} observed wherever {roles.selected!r} is 1",
            f"{int(np.isnan(y).sum())} missing among selected units",
        )
    X = numeric_columns(frame.loc[d, out_cols], out_cols, "covariates")
    W = numeric_columns(frame, sel_cols, "selection_covariates")
    if add_intercept:
        X = np.column_stack([np.ones(n1), X])
        W = np.column_stack([np.ones(d.size), W])
        out_cols.insert(0, INTERCEPT)
        sel_cols.insert(0, INTERCEPT)
    excluded = tuple(c for c in sel_cols if c not in out_cols)
    return SelectionData(y, X, W, d, tuple(out_cols), tuple(sel_cols), treatment, excluded)
