"""One check of every estimator's input, run by the core before each fit.

:func:`checked_fit` is how the core hands a dataset to an estimator (the Python API and every
Monte Carlo replication). It first expands covariate formulas into columns
(:func:`causalkit.formulas.expand_formulas`), then refuses, in one line naming the column,
what no estimator can use correctly, and flags what makes large-sample answers unreliable:

- duplicate column names, and one column in two roles (a single-column role, such as the
  treatment, also listed among the covariates; the covariate lists may overlap each other,
  and the treatment may be a selection covariate);
- infinite values in any numeric role column;
- missing values in the outcome (where no ``selected`` role says it is unobserved) and in
  the covariates, unless the estimator's parameters ask for imputation explicitly
  (``impute`` other than ``"none"``): the missing values are then counted in the diagnostic
  ``input.n_imputed`` and a warning;
- a constant outcome (every effect is exactly zero and every standard error zero: a
  p-value would be meaningless), refused;
- period labels that are text (ordered alphabetically, ``2024-W10`` would come before
  ``2024-W9``): numbers, dates or an ordered pandas ``Categorical`` are required;
- a cross-section with only a handful of treated (or control) units: the diagnostic
  ``input.n_smaller_group`` and a warning that large-sample standard errors are unreliable.

Tables left in storage (:class:`~causalkit.contracts.LazySource`) are read by their
estimators, which check their values; here only their column names and roles are checked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from causalkit.clusters import require_handled
from causalkit.contracts import Dataset, DiagnosticValue, Fit, Roles
from causalkit.errors import DataError, EstimationError
from causalkit.formulas import expand_formulas

__all__ = [
    "FEW_UNITS",
    "InputNotes",
    "check_inputs",
    "checked_fit",
    "separating_columns",
    "with_notes",
]

FEW_UNITS = 10
"""A cross-section whose treated (or control) group has fewer units is flagged."""

_SINGLE_ROLES = (
    "unit",
    "time",
    "treatment",
    "assignment",
    "outcome",
    "selected",
    "fold",
    "cluster",
    "weight",
)
_LIST_ROLES = ("covariates", "selection_covariates", "propensity_covariates", "segments")
_COVARIATE_ROLES = ("covariates", "selection_covariates", "propensity_covariates")
_SHARED = (
    {"treatment", "selection_covariates"},
    {"assignment", "selection_covariates"},
    {"cluster", "segments"},
)
"""Roles that may name the same column: the treatment may drive selection (Heckman), and
segments may be the clusters (one effect per region, clustered by region)."""
_DATES = ("date", "datetime", "datetime64")
"""What :func:`pandas.api.types.infer_dtype` calls a column of date or datetime objects."""
_IMPUTE_HINT = " (aipw imputes them when asked: estimator.impute=median)"


@dataclass(frozen=True)
class InputNotes:
    """What the input check found that the result must report (nothing when the data are clean)."""

    diagnostics: Mapping[str, DiagnosticValue]
    warnings: tuple[str, ...]


def _role_columns(roles: Roles) -> Iterator[tuple[str, str]]:
    """``(role, column)`` for every column named by a role, lists included."""
    for role in (*_SINGLE_ROLES, *_LIST_ROLES):
        value = getattr(roles, role)
        for col in value if isinstance(value, tuple) else (value,):
            if isinstance(col, str):
                yield role, col


def _check_names(columns: list[str], roles: Roles) -> None:
    """Duplicate column names, a column twice in one role list, or in two roles: one line each."""
    seen: set[str] = set()
    for c in columns:
        if c in seen:
            raise DataError(
                "data", "unique column names", f"{columns.count(c)} columns named {c!r}"
            )
        seen.add(c)
    owner: dict[str, str] = {}
    for role, col in _role_columns(roles):
        first = owner.setdefault(col, role)
        if first == role and role in _LIST_ROLES:
            if getattr(roles, role).count(col) > 1:
                raise DataError(f"roles.{role}", "each column once", f"{col!r} listed twice")
        elif first != role and (first in _SINGLE_ROLES or role in _SINGLE_ROLES):
            if {first, role} in _SHARED:
                continue
            raise DataError(
                "roles", "each column in one role", f"{col!r} is both {first} and {role}"
            )


def _check_time(labels: Any, col: str) -> None:
    """Period labels must order as time does: numbers, dates or an ordered categorical."""
    dtype = labels.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        if dtype.ordered:
            return
        given = f"an unordered categorical in {col!r}"
    elif pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        return
    elif (
        pd.api.types.is_object_dtype(dtype)
        and pd.api.types.infer_dtype(labels, skipna=False) in _DATES
    ):
        return
    else:
        shown = ", ".join(map(repr, pd.unique(np.asarray(labels))[:3]))
        given = f"text labels in {col!r} ({shown}, ...), which would be ordered alphabetically"
    raise DataError(
        "roles.time",
        "numbers, dates or an ordered categorical as period labels (convert them with "
        "pd.to_datetime, to period numbers, or pd.Categorical(..., categories=[in time order], "
        "ordered=True))",
        given,
    )


def _values(data: Dataset, col: str) -> Any:
    """Return a role column's values without building a table held as panel arrays."""
    panel = data.panel
    if panel is not None and col in (panel.unit, panel.time, *panel.columns):
        if col == panel.unit:
            return panel.units
        return panel.periods if col == panel.time else panel.columns[col]
    return data.frame[col]


def _numbers(values: Any) -> np.ndarray | None:
    """Return the values as a numeric numpy array (``None`` for text, categories and dates)."""
    if isinstance(values, pd.Series):
        dtype = values.dtype
        if isinstance(dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(dtype):
            return None
        if not isinstance(dtype, np.dtype):  # nullable extension types: NA as NaN
            return values.to_numpy(dtype=np.float64, na_value=np.nan)
        values = values.to_numpy()
    v = np.asarray(values)
    return v if v.dtype.kind in "biuf" else None


def _n_missing(values: Any, v: np.ndarray | None) -> int:
    if v is None:
        return int(pd.isna(values).sum())
    return int(np.isnan(v).sum()) if v.dtype.kind == "f" else 0


def check_inputs(data: Dataset, params: Any = None) -> InputNotes:
    """Check ``data`` (a :class:`~causalkit.contracts.Dataset`) before an estimator sees it.

    Parameters
    ----------
    data : Dataset
        The table and its roles.
    params : pydantic model, optional
        The estimator's parameters; ``impute`` other than ``"none"`` there lets missing
        covariate values through (the estimator imputes them), counted and reported.

    Returns
    -------
    InputNotes
        Diagnostics and warnings for the result (empty when nothing is worth saying).

    Raises
    ------
    DataError
        One line naming the column, what was expected and what was given.
    """
    roles = data.roles
    columns = data.columns
    _check_names(columns, roles)
    if data.panel is None and data.source is not None:
        return InputNotes({}, ())  # a lazy source: its estimator reads and checks the values
    present = set(columns)
    impute = str(getattr(params, "impute", "none"))
    group = roles.treatment if roles.treatment is not None else roles.assignment
    group_values: np.ndarray | None = None
    imputed: dict[str, int] = {}
    done: set[str] = set()
    for role, col in _role_columns(roles):
        if col in done or col not in present:  # a missing column is the estimator's one line
            continue
        done.add(col)
        values = _values(data, col)
        if role == "time":
            _check_time(values, col)
            continue
        v = _numbers(values)
        if col == group:
            group_values = v
        # One pass over clean numbers (the usual case); the details only when something is off.
        clean = v is not None and (v.dtype.kind != "f" or bool(np.isfinite(v).all()))
        if not clean and v is not None and np.isinf(v).any():
            raise DataError(
                f"roles.{role}", f"finite values in {col!r}", f"{int(np.isinf(v).sum())} infinite"
            )
        checks_missing = role in _COVARIATE_ROLES or (role == "outcome" and roles.selected is None)
        missing = 0 if clean or not checks_missing else _n_missing(values, v)
        if missing and (role == "outcome" or impute == "none"):
            raise DataError(
                f"roles.{role}",
                f"no missing values in {col!r}" + ("" if role == "outcome" else _IMPUTE_HINT),
                f"{missing} missing",
            )
        if missing:
            imputed[col] = missing
        if role == "outcome" and v is not None:
            _check_varies(v, col, clean)
    diagnostics: dict[str, DiagnosticValue] = {}
    warnings: list[str] = []
    if imputed:
        diagnostics["input.n_imputed"] = sum(imputed.values())
        shown = ", ".join(f"{c!r} ({k})" for c, k in imputed.items())
        warnings.append(
            f"input: missing covariate values imputed ({impute} for numbers, the most frequent "
            f"level for categories, as estimator.impute={impute} asks): {shown}"
        )
    if roles.time is None and group_values is not None:
        _few_units(group_values, diagnostics, warnings)
    return InputNotes(diagnostics, tuple(warnings))


def _check_varies(y: np.ndarray, col: str, clean: bool) -> None:
    """Refuse a constant outcome: every effect is then exactly zero and so is every SE."""
    if y.size < 2:
        return
    lo, hi = (y.min(), y.max()) if clean else (np.nanmin(y), np.nanmax(y))
    if lo == hi:
        raise DataError(
            "roles.outcome",
            f"an outcome that varies (a constant one makes every effect 0 with SE 0) in {col!r}",
            f"the constant {lo:g}",
        )


def _few_units(v: np.ndarray, diagnostics: dict[str, DiagnosticValue], warnings: list[str]) -> None:
    """Flag a cross-section with only a handful of treated (or control) units."""
    n1 = int(np.count_nonzero(v == 1))
    n0 = int(np.count_nonzero(v == 0))
    small = min(n1, n0)
    if 0 < small < FEW_UNITS and n1 + n0 == v.size:
        diagnostics["input.n_smaller_group"] = small
        which = "treated" if n1 <= n0 else "control"
        warnings.append(
            f"input: only {small} {which} unit{'s' if small > 1 else ''} among {v.size} rows: "
            "large-sample standard errors (influence, model-based) are unreliable and balance "
            "cannot be judged; report the effect as descriptive"
        )


def separating_columns(X: np.ndarray, d: np.ndarray) -> list[int]:
    """Columns of ``X`` that alone predict the 0/1 ``d`` perfectly (the arms' ranges are apart).

    A regression then extrapolates each arm into a region it never saw, and a score model's
    maximum likelihood estimate does not exist (complete separation).
    """
    d = np.asarray(d, dtype=bool)
    if X.shape[1] == 0 or d.all() or not d.any():
        return []
    x1, x0 = X[d], X[~d]
    apart = (x1.min(axis=0) > x0.max(axis=0)) | (x1.max(axis=0) < x0.min(axis=0))
    return [int(j) for j in np.flatnonzero(apart)]


def with_notes(fit: Fit, notes: InputNotes) -> Fit:
    """Return the fit with the input check's diagnostics and warnings (the same fit when none)."""
    if not notes.diagnostics and not notes.warnings:
        return fit
    return dataclasses.replace(
        fit,
        diagnostics={**fit.diagnostics, **notes.diagnostics},
        warnings=(*notes.warnings, *fit.warnings),
    )


def checked_fit(estimator: Any, data: Dataset, rng: np.random.Generator) -> Fit:
    """Expand covariate formulas, check ``data`` (:func:`check_inputs`), fit, attach the notes."""
    require_handled(estimator, data.roles)
    data, levels = expand_formulas(data)  # covariate formulas -> columns (formulas.py)
    notes = check_inputs(data, getattr(estimator, "params", None))
    notes = dataclasses.replace(notes, diagnostics={**levels, **notes.diagnostics})
    fit = estimator.fit(data, rng)
    for role, taken in (("cluster", fit.clusters), ("weight", fit.weights)):
        if getattr(data.roles, role) is not None and taken is None:
            raise EstimationError(
                f"{getattr(estimator, 'name', type(estimator).__name__)} lists roles.{role} in "
                "handles_roles but its fit did not carry it: a bug in the estimator"
            )
    return with_notes(fit, notes)
