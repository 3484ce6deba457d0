"""The contracts every plugin kind implements: data, DGP, estimator and inference."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

__all__ = [
    "Estimand",
    "Roles",
    "Dataset",
    "PanelArrays",
    "Truth",
    "Simulated",
    "Fit",
    "LazyTables",
    "InferenceOutcome",
    "Params",
    "DataSource",
    "DGP",
    "Estimator",
    "Inference",
    "DiagnosticValue",
]

DiagnosticValue = float | int | bool | str


class Estimand(str, Enum):
    """Causal estimands; the single source of estimand labels."""

    ATE = "ATE"
    ATT = "ATT"
    ATC = "ATC"
    ITT = "ITT"
    CACE = "CACE"
    DIFF = "DIFF"  # a plain contrast with no causal label (e.g. a coefficient)

    def __str__(self) -> str:
        return self.value


class Params(BaseModel):
    """Base class of every plugin's parameter model: immutable, unknown keys forbidden."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


class Roles(Params):
    """Which column plays which part in the analysis.

    Every role is optional here; each estimator declares the roles it requires.
    """

    unit: str | None = None
    time: str | None = None
    treatment: str | None = None
    assignment: str | None = None
    outcome: str | None = None
    covariates: tuple[str, ...] = ()
    selected: str | None = None
    selection_covariates: tuple[str, ...] = ()
    propensity_covariates: tuple[str, ...] | None = None
    segments: tuple[str, ...] = ()
    fold: str | None = None

    def columns(self) -> list[str]:
        """All columns named by a role, in a stable order, without duplicates."""
        out: list[str] = []
        for role in type(self).model_fields:
            value = getattr(self, role)
            items = value if isinstance(value, tuple) else (value,)
            for item in items:
                if isinstance(item, str) and item not in out:
                    out.append(item)
        return out


@dataclass(frozen=True)
class PanelArrays:
    """A balanced long panel held as per-unit arrays, before (or instead of) any table.

    What a simulator has in hand right after its draws. Estimators that reshape a long table
    into one row per unit (:func:`causalkit.panel.unit_table`) read these arrays directly;
    the long table itself is only built (by :meth:`to_frame`) when somebody asks for it.

    Parameters
    ----------
    unit, time : str
        Names of the unit and period columns of the long table.
    units : array-like, shape (n,)
        Unit labels, one per unit (a numpy array or a pandas extension array).
    periods : ndarray, shape (T,)
        Period labels, increasing.
    columns : mapping of str to ndarray
        Every other column, in the table's order: shape ``(n,)`` for a time-invariant column
        (repeated over periods in the table) or ``(n, T)`` for one value per unit and period.
    """

    unit: str
    time: str
    units: np.ndarray | pd.api.extensions.ExtensionArray
    periods: np.ndarray
    columns: Mapping[str, np.ndarray]

    @property
    def n(self) -> int:
        return len(self.units)

    def names(self) -> list[str]:
        """Column names of the long table."""
        return [self.unit, self.time, *self.columns]

    def to_frame(self) -> pd.DataFrame:
        """The long table: one row per unit and period, sorted by unit, then period."""
        n, t = self.n, len(self.periods)
        units = self.units
        if isinstance(units, np.ndarray):
            unit_col = np.repeat(units, t)
        else:
            unit_col = units.take(np.repeat(np.arange(n), t))
        cols = {self.unit: unit_col, self.time: np.tile(self.periods, n)}
        for name, v in self.columns.items():
            cols[name] = v.ravel() if v.ndim == 2 else np.repeat(v, t)
        return pd.DataFrame(cols)


@dataclass(frozen=True, eq=False, init=False)
class Dataset:
    """A table together with its roles.

    Built from a table (``Dataset(frame, roles)``) or, by simulators, from panel arrays
    (:meth:`from_panel`), in which case ``frame`` is built on first access.
    """

    roles: Roles
    panel: PanelArrays | None
    _frame: pd.DataFrame | None = field(repr=False)

    def __init__(self, frame: pd.DataFrame | None, roles: Roles, panel: PanelArrays | None = None) -> None:
        if frame is None and panel is None:
            raise ValueError("Dataset needs a frame or panel arrays")
        object.__setattr__(self, "roles", roles)
        object.__setattr__(self, "panel", panel)
        object.__setattr__(self, "_frame", frame)

    @classmethod
    def from_panel(cls, panel: PanelArrays, roles: Roles) -> Dataset:
        """A dataset whose long table is built only when read."""
        return cls(None, roles, panel)

    @property
    def frame(self) -> pd.DataFrame:
        if self._frame is None:
            assert self.panel is not None
            object.__setattr__(self, "_frame", self.panel.to_frame())
        assert self._frame is not None
        return self._frame

    @property
    def columns(self) -> list[str]:
        """Column names of the table (without building a table held as panel arrays)."""
        if self._frame is None and self.panel is not None:
            return self.panel.names()
        return [str(c) for c in self.frame.columns]

    def with_roles(self, roles: Roles) -> Dataset:
        """The same data under other roles."""
        return Dataset(self._frame, roles, self.panel)


@dataclass(frozen=True)
class Truth:
    """Known true values of estimands in a simulated world.

    ``target`` names the estimand a study is about (e.g. the lift of exposure in the
    contaminated-holdout study); when set, bias and coverage of every estimator in the
    cell are measured against it. When ``None``, each estimator is compared with the
    truth of its own estimand.
    """

    values: Mapping[str, float]
    target: Estimand | None = None

    def for_estimand(self, estimand: Estimand, override: Estimand | None = None) -> tuple[str, float] | None:
        """Return ``(label, value)`` of the truth an estimate of ``estimand`` is judged by."""
        key = override or self.target or estimand
        if str(key) in self.values:
            return str(key), float(self.values[str(key)])
        return None


@dataclass(frozen=True)
class Simulated:
    """What a DGP returns: the simulated dataset and its truth."""

    dataset: Dataset
    truth: Truth


@dataclass(frozen=True)
class Fit:
    """What an estimator hands to inference.

    Parameters
    ----------
    estimand : Estimand
        The estimand the estimate targets.
    estimate : float
        The point estimate.
    n : int
        Number of units used.
    influence : ndarray or None
        Per-unit influence values :math:`\\psi_i` with
        :math:`\\hat\\theta - \\theta = n^{-1}\\sum_i \\psi_i + o_p(n^{-1/2})`, accounting for
        every estimated nuisance. Analytic and multiplier-bootstrap inference use it.
    model_se : float or None
        A standard error from the estimator's own variance formula (e.g. Heckman's corrected
        covariance, Abadie-Imbens), used by analytic inference when ``influence`` is ``None``.
    strata : ndarray or None
        Integer stratum per unit for a stratified (paired) bootstrap, e.g. treated/control.
    refit : callable or None
        ``refit(indices)`` re-estimates on the units ``indices`` (with repeats) and returns the
        estimate; raises :class:`~causalkit.errors.EstimationError` when it cannot.
    refit_batch : callable or None
        ``refit_batch(index_sets)`` re-estimates on several index sets at once (as ``refit``
        on each) and returns an array of the estimates, NaN where one failed. The bootstrap
        uses it instead of ``refit`` when given (e.g. resamples solved in lockstep).
    placebo : callable or None
        ``placebo(rng)`` returns one draw of the estimate under the sharp null (permutation).
    replicates : callable or None
        ``replicates(rng, B)`` returns ``B`` bootstrap replicates of the estimate at once (NaN
        where a replicate failed), for backends that resample without copying the data
        (e.g. Poisson weights on Spark). Used by the bootstrap when ``refit`` is ``None``.
    diagnostics : mapping
        Flat scalar diagnostics, e.g. ``max_abs_smd_after``, ``ess``, ``feasible``.
    tables : mapping
        Named tables (balance table, per-period gaps, ...), logged as artifacts; a
        :class:`LazyTables` builds each only when read.
    warnings : tuple of str
        Numerical or design trouble the user must see.
    """

    estimand: Estimand
    estimate: float
    n: int
    influence: np.ndarray | None = None
    model_se: float | None = None
    strata: np.ndarray | None = None
    refit: Callable[[np.ndarray], float] | None = None
    refit_batch: Callable[[list[np.ndarray]], np.ndarray] | None = None
    placebo: Callable[[np.random.Generator], float] | None = None
    replicates: Callable[[np.random.Generator, int], np.ndarray] | None = None
    diagnostics: Mapping[str, DiagnosticValue] = field(default_factory=dict)
    tables: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


class LazyTables(Mapping[str, pd.DataFrame]):
    """Read-only named tables, each built by its function on first access (then kept).

    For estimators whose tables are cheap to describe but costly to assemble relative to
    the fit (pandas frames in every Monte Carlo replication, where nobody reads them).
    """

    def __init__(self, builders: Mapping[str, Callable[[], pd.DataFrame]]) -> None:
        self._builders = dict(builders)
        self._built: dict[str, pd.DataFrame] = {}

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self._built:
            self._built[name] = self._builders[name]()
        return self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._builders)

    def __len__(self) -> int:
        return len(self._builders)

    def __repr__(self) -> str:
        return f"LazyTables({list(self._builders)})"


@dataclass(frozen=True)
class InferenceOutcome:
    """Uncertainty for one fit: SE, CI at ``level`` and a two-sided p-value for zero effect."""

    method: str
    se: float
    ci_lower: float
    ci_upper: float
    p_value: float
    level: float
    diagnostics: Mapping[str, DiagnosticValue] = field(default_factory=dict)


@runtime_checkable
class DataSource(Protocol):
    """Loads a user's table (or nothing, for purely synthetic studies)."""

    name: ClassVar[str]
    Params: ClassVar[type[Params]]

    def __init__(self, params: Params) -> None: ...

    def load(self) -> Dataset | None: ...


@runtime_checkable
class DGP(Protocol):
    """Simulates a world with known truth; may take covariates from a base dataset."""

    name: ClassVar[str]
    Params: ClassVar[type[Params]]
    needs_base: ClassVar[bool]

    def __init__(self, params: Params) -> None: ...

    def simulate(self, rng: np.random.Generator, base: Dataset | None) -> Simulated: ...


@runtime_checkable
class Estimator(Protocol):
    """Turns a dataset into an estimate plus what inference needs."""

    name: ClassVar[str]
    Params: ClassVar[type[Params]]
    required_roles: ClassVar[tuple[str, ...]]
    default_inference: ClassVar[str]
    supported_inference: ClassVar[tuple[str, ...]]

    def __init__(self, params: Params) -> None: ...

    def fit(self, data: Dataset, rng: np.random.Generator) -> Fit: ...


@runtime_checkable
class Inference(Protocol):
    """Turns a fit into uncertainty; never mutates the fit."""

    name: ClassVar[str]
    Params: ClassVar[type[Params]]

    def __init__(self, params: Params) -> None: ...

    def infer(self, fit: Fit, rng: np.random.Generator) -> InferenceOutcome: ...
