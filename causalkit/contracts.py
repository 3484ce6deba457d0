"""The contracts every plugin kind implements: data, DGP, estimator and inference."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Annotated, Any, ClassVar, Literal, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)

__all__ = [
    "Estimand",
    "EstimandName",
    "Roles",
    "FormulaTerm",
    "Dataset",
    "LazySource",
    "PanelArrays",
    "Truth",
    "Simulated",
    "Capability",
    "Resampler",
    "Linearisation",
    "Clusters",
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


@dataclass(frozen=True)
class FormulaTerm:
    """One term of an expanded covariate formula (:func:`causalkit.formulas.expand_formulas`).

    Attributes
    ----------
    label : str
        The term as formulaic writes it, e.g. ``"C(education)"``, ``"I(age ** 2)"``.
    factors : tuple of str
        Its factors, sorted (``a:b`` and ``b:a`` are one term).
    columns : tuple of str
        The design-matrix columns it produced, e.g. ``("C(education)[T.2]", ...)``.
    variables : tuple of str
        The table columns it reads, e.g. ``("education",)``.
    """

    label: str
    factors: tuple[str, ...]
    columns: tuple[str, ...]
    variables: tuple[str, ...]


class Estimand(str, Enum):
    """Causal estimands; the single source of estimand labels."""

    ATE = "ATE"
    ATT = "ATT"
    ATC = "ATC"
    ITT = "ITT"
    CACE = "CACE"
    DIFF = "DIFF"  # a plain contrast with no causal label (e.g. a coefficient)
    MEAN1 = "MEAN1"  # E[Y(1)], the mean potential outcome under treatment
    MEAN0 = "MEAN0"  # E[Y(0)], the mean potential outcome under control

    def __str__(self) -> str:
        return self.value


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


EstimandName = Annotated[Estimand, BeforeValidator(_upper)]
"""An estimand parameter: the :class:`Estimand` spelling (upper case); lower case accepted on input.

Narrow the admissible values in a plugin with a validator or a ``Literal`` of members."""


class Params(BaseModel):
    """Base class of every plugin's parameter model: immutable, unknown keys forbidden.

    Fields named in ``added_fields`` (parameters added after studies were run) are left out
    of the dump while they hold their default, so the config hashes, and the Monte Carlo
    seeds drawn from them, of cells that keep the default stay those they had before the
    field existed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())
    added_fields: ClassVar[frozenset[str]] = frozenset()
    seed_neutral: ClassVar[frozenset[str]] = frozenset()
    """Fields that change what is reported, never what is drawn or estimated (e.g. a
    sensitivity analysis): left out of the hash that seeds a cell's random streams, so
    switching them on keeps the folds, resamples and estimate (:attr:`RunConfig.seed_hash`)."""

    def seed_dump(self) -> dict[str, Any]:
        """Return :meth:`model_dump` (JSON mode) without the :attr:`seed_neutral` fields."""
        return {k: v for k, v in self.model_dump(mode="json").items() if k not in self.seed_neutral}

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name in self.added_fields:
            if name in data and getattr(self, name) == type(self).model_fields[name].default:
                data.pop(name)
        return data


class Roles(Params):
    """Which column plays which part in the analysis.

    Every role is optional here; each estimator declares the roles it requires.
    """

    unit: str | None = None
    time: str | None = None
    treatment: str | None = None
    assignment: str | None = None
    outcome: str | None = None
    covariates: tuple[str, ...] | str = ()
    """Column names, or one formula (``"age + I(age**2) + C(education)"``) that the core
    expands into columns before fitting (:mod:`causalkit.formulas`); likewise the other
    covariate roles."""
    selected: str | None = None
    selection_covariates: tuple[str, ...] | str = ()
    propensity_covariates: tuple[str, ...] | str | None = None
    segments: tuple[str, ...] = ()
    fold: str | tuple[str, ...] | None = None
    """Given cross-fitting folds: one column, or one column per repetition (aipw ``n_rep``)."""
    cluster: str | None = None
    """Units with one label are dependent (a user's impressions, a school's pupils): inference
    treats the clusters, not the rows, as the independent draws."""
    weight: str | None = None
    """Non-negative sampling (or frequency) weights: estimates target the weighted population
    and inference accounts for the weights."""

    added_fields: ClassVar[frozenset[str]] = frozenset({"cluster", "weight"})
    formula_roles: ClassVar[tuple[str, ...]] = (
        "covariates",
        "selection_covariates",
        "propensity_covariates",
    )
    """The roles that take a formula string as well as a list of columns."""
    _terms: tuple[FormulaTerm, ...] = PrivateAttr(default=())

    @property
    def terms(self) -> tuple[FormulaTerm, ...]:
        """The terms of the formulas these roles' covariate lists were expanded from.

        Set by :func:`causalkit.formulas.expand_formulas` (empty without formulas); not a
        configuration field (never dumped or hashed), kept by ``model_copy``. Sensitivity
        benchmarks may name a term or a variable (:func:`causalkit.formulas.benchmark_groups`).
        """
        return self._terms

    def with_terms(self, terms: tuple[FormulaTerm, ...]) -> Roles:
        """Return a copy carrying ``terms`` (:attr:`terms`)."""
        out = self.model_copy()
        out._terms = terms
        return out

    @field_validator(*formula_roles)
    @classmethod
    def _formula_parses(cls, value: Any) -> Any:
        if isinstance(value, str):
            from causalkit.formulas import parse_formula

            parse_formula(value)  # a ValueError here is a one-line config error
        return value

    def columns(self) -> list[str]:
        """All columns named by a role (a formula: the columns it reads), in a stable order, once."""
        out: list[str] = []
        for role in type(self).model_fields:
            value = getattr(self, role)
            if isinstance(value, str) and role in self.formula_roles:
                from causalkit.formulas import formula_variables

                value = formula_variables(value)
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
        """Number of units."""
        return len(self.units)

    def names(self) -> list[str]:
        """Column names of the long table."""
        return [self.unit, self.time, *self.columns]

    def to_frame(self) -> pd.DataFrame:
        """Build the long table: one row per unit and period, sorted by unit, then period."""
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


@dataclass(frozen=True)
class LazySource:
    """A table left where it is, for estimators that read it themselves (e.g. by passes).

    Parameters
    ----------
    format : {"parquet"}
        How the table is stored.
    path : str
        A parquet file or dataset directory.
    columns : tuple of str
        Column names of the stored table (its schema).
    """

    format: Literal["parquet"]
    path: str
    columns: tuple[str, ...]


@dataclass(frozen=True, eq=False, init=False)
class Dataset:
    """A table together with its roles.

    Built from a table (``Dataset(frame, roles)``), by simulators from panel arrays
    (:meth:`from_panel`), in which case ``frame`` is built on first access, or from a
    :class:`LazySource` (:meth:`from_source`), which only estimators that read the source
    themselves accept: reading ``frame`` is then an error.
    """

    roles: Roles
    panel: PanelArrays | None
    source: LazySource | None
    _frame: pd.DataFrame | None = field(repr=False)

    def __init__(
        self,
        frame: pd.DataFrame | None,
        roles: Roles,
        panel: PanelArrays | None = None,
        source: LazySource | None = None,
    ) -> None:
        if frame is None and panel is None and source is None:
            raise ValueError("Dataset needs a frame, panel arrays or a lazy source")
        object.__setattr__(self, "roles", roles)
        object.__setattr__(self, "panel", panel)
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "_frame", frame)

    @classmethod
    def from_source(cls, source: LazySource, roles: Roles) -> Dataset:
        """Build a dataset left in storage: estimators read ``source`` themselves (no ``frame``)."""
        return cls(None, roles, source=source)

    @classmethod
    def from_panel(cls, panel: PanelArrays, roles: Roles) -> Dataset:
        """Make a dataset whose long table is built only when read."""
        return cls(None, roles, panel)

    @property
    def frame(self) -> pd.DataFrame:
        """The table (built from panel arrays on first access)."""
        if self._frame is None:
            if self.panel is None:
                from causalkit.errors import DataError

                raise DataError(
                    "data.lazy",
                    "a table in memory for this estimator (lazy sources: estimator=microsynth "
                    "with estimator.backend=columnar or spark)",
                    "a lazy parquet source",
                )
            object.__setattr__(self, "_frame", self.panel.to_frame())
        assert self._frame is not None
        return self._frame

    @property
    def columns(self) -> list[str]:
        """Column names of the table (without building a table held as panel arrays)."""
        if self._frame is None and self.panel is not None:
            return self.panel.names()
        if self._frame is None and self.source is not None:
            return list(self.source.columns)
        return [str(c) for c in self.frame.columns]

    def with_roles(self, roles: Roles) -> Dataset:
        """Return the same data under other roles."""
        return Dataset(self._frame, roles, self.panel, self.source)


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

    def for_estimand(
        self, estimand: Estimand, override: Estimand | None = None
    ) -> tuple[str, float] | None:
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


class Capability(str, Enum):
    """What a fit offers to inference; each inference plugin declares what it requires.

    The registry derives the valid (estimator, inference) pairings from these declarations
    (:meth:`causalkit.registry.Registry.pairings`), so a pairing that validates never fails
    later for lack of a capability.
    """

    INFLUENCE = "influence"
    """An n x k influence matrix :math:`\\psi` (:attr:`Fit.influence`)."""
    MODEL_SE = "model_se"
    """The estimator's own variance formula, k standard errors (:attr:`Fit.model_se`)."""
    RESAMPLE = "resample"
    """Re-estimation on resampled units (:attr:`Resampler.refit` / ``refit_batch``)."""
    REPLICATES = "replicates"
    """Bootstrap replicates drawn by the backend itself (:attr:`Resampler.replicates`)."""
    PLACEBO = "placebo"
    """Placebo estimates under the sharp null (:attr:`Fit.placebo`)."""
    LINEARISATION = "linearisation"
    """R microsynth's panel linearisation terms (:attr:`Fit.linearisation`)."""

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Resampler:
    """How an estimator is re-estimated on resampled data (for the bootstrap).

    Parameters
    ----------
    n : int
        Number of resampling units (rows of the influence matrix).
    strata : ndarray or None
        Integer stratum per unit for a stratified (paired) bootstrap, e.g. treated/control.
    refit : callable or None
        ``refit(indices)`` re-estimates on the units ``indices`` (with repeats) and returns the
        k estimates; raises :class:`~causalkit.errors.EstimationError` when it cannot.
    refit_batch : callable or None
        ``refit_batch(index_sets)`` re-estimates on several index sets at once and returns a
        ``(len(index_sets), k)`` array, NaN rows where one failed.
    replicates : callable or None
        ``replicates(rng, B)`` returns a ``(B, k)`` array of bootstrap replicates drawn by the
        backend without copying the data (e.g. Poisson weights on Spark), NaN rows where one
        failed. Every random draw comes from ``rng``.
    """

    n: int
    strata: np.ndarray | None = None
    refit: Callable[[np.ndarray], np.ndarray] | None = None
    refit_batch: Callable[[list[np.ndarray]], np.ndarray] | None = None
    replicates: Callable[[np.random.Generator, int], np.ndarray] | None = None

    def __post_init__(self) -> None:
        if self.refit is None and self.refit_batch is None and self.replicates is None:
            raise ValueError("Resampler needs refit, refit_batch or replicates")

    @property
    def capabilities(self) -> frozenset[Capability]:
        """What this resampler offers to inference."""
        caps: set[Capability] = set()
        if self.refit is not None or self.refit_batch is not None:
            caps.add(Capability.RESAMPLE)
        if self.replicates is not None:
            caps.add(Capability.REPLICATES)
        return frozenset(caps)


@dataclass(frozen=True)
class Linearisation:
    r"""R microsynth's panel linearisation inputs, turned into a variance by its inference plugin.

    Parameters
    ----------
    terms : ndarray, shape (m, k)
        Linearisation terms, one row per independent draw as R treats it (e.g. a unit-period),
        so that :math:`\\widehat{V}_j = \\sum_i t_{ij}^2` reproduces R's variance.
    """

    terms: np.ndarray


@dataclass(frozen=True)
class Clusters:
    r"""Which cluster each unit belongs to, for clustered inference.

    Parameters
    ----------
    codes : ndarray of int, shape (n,)
        Cluster of unit :math:`i`, coded :math:`0, \dots, G-1` (every code used).
    regressors : int or None
        :math:`K` of the CR1 factor when the estimate is a regression coefficient (as in
        Stata's and statsmodels' clustered OLS); ``None``: the factor is :math:`G/(G-1)` only.
    """

    codes: np.ndarray
    regressors: int | None = None

    @property
    def n_clusters(self) -> int:
        """Number of clusters :math:`G`."""
        return int(self.codes.max()) + 1 if self.codes.size else 0

    def factor(self) -> float:
        r"""Return the CR1 factor :math:`\frac{G}{G-1}\frac{N-1}{N-K}` (or :math:`\frac{G}{G-1}`)."""
        g, n = self.n_clusters, self.codes.size
        c = g / (g - 1)
        return c if self.regressors is None else c * (n - 1) / (n - self.regressors)

    def sums(self, psi: np.ndarray) -> np.ndarray:
        """Column sums of the (n, k) ``psi`` within each cluster, shape (G, k)."""
        g = self.n_clusters
        return np.column_stack(
            [np.bincount(self.codes, weights=psi[:, j], minlength=g) for j in range(psi.shape[1])]
        )

    def members(self) -> list[np.ndarray]:
        """Positions of each cluster's units, clusters in code order."""
        order = np.argsort(self.codes, kind="stable")
        counts = np.bincount(self.codes, minlength=self.n_clusters)
        return np.split(order, np.cumsum(counts)[:-1])


@dataclass(frozen=True, init=False)
class Fit:
    r"""What an estimator hands to inference: k named estimates and what inference needs.

    Parameters
    ----------
    estimand : Estimand
        The estimand of the headline estimate.
    estimates : array-like, shape (k,)
        The estimates; the headline first, then segment, per-outcome or per-period effects.
    n : int
        Number of units used.
    names : tuple of str, optional
        One name per estimate; default the estimand label for k = 1.
    influence : ndarray, shape (n, k), or None
        Per-unit influence values :math:`\psi_{ij}` with
        :math:`\hat	heta_j - 	heta_j = n^{-1}\sum_i \psi_{ij} + o_p(n^{-1/2})`, accounting
        for every estimated nuisance. A 1-d array is taken as one column.
    model_se : array-like, shape (k,), or None
        Standard errors from the estimator's own variance formula (e.g. Heckman's corrected
        covariance, Abadie-Imbens), used by analytic inference when ``influence`` is ``None``.
    resampler : Resampler or None
        How to re-estimate on resampled units, where that is valid.
    placebo : callable or None
        ``placebo(rng)`` returns one draw of the k estimates under the sharp null.
    linearisation : Linearisation or None
        R microsynth's panel linearisation terms.
    clusters : Clusters or None
        The unit's cluster (from the ``cluster`` role): analytic and multiplier inference sum
        the influence values within clusters, the bootstrap resamples whole clusters.
    weights : ndarray, shape (n,), or None
        The units' sampling weights (from the ``weight`` role) when the estimates and the
        influence values are weighted; the refit carries them into every resample.
    diagnostics : mapping
        Flat scalar diagnostics, e.g. ``max_abs_smd_after``, ``ess``, ``feasible``.
    tables : mapping
        Named tables (balance table, per-period gaps, ...), logged as artifacts; a
        :class:`LazyTables` builds each only when read.
    warnings : tuple of str
        Numerical or design trouble the user must see.
    """

    estimand: Estimand
    estimates: np.ndarray
    n: int
    names: tuple[str, ...]
    influence: np.ndarray | None
    model_se: np.ndarray | None
    resampler: Resampler | None
    placebo: Callable[[np.random.Generator], np.ndarray] | None
    linearisation: Linearisation | None
    clusters: Clusters | None
    weights: np.ndarray | None
    diagnostics: Mapping[str, DiagnosticValue]
    tables: Mapping[str, pd.DataFrame]
    warnings: tuple[str, ...]

    def __init__(
        self,
        estimand: Estimand,
        estimates: float | np.ndarray | list[float],
        n: int,
        *,
        names: tuple[str, ...] | None = None,
        influence: np.ndarray | None = None,
        model_se: float | np.ndarray | list[float] | None = None,
        resampler: Resampler | None = None,
        placebo: Callable[[np.random.Generator], np.ndarray] | None = None,
        linearisation: Linearisation | None = None,
        clusters: Clusters | None = None,
        weights: np.ndarray | None = None,
        diagnostics: Mapping[str, DiagnosticValue] | None = None,
        tables: Mapping[str, pd.DataFrame] | None = None,
        warnings: tuple[str, ...] = (),
    ) -> None:
        est = np.atleast_1d(np.asarray(estimates, dtype=np.float64))
        if est.ndim != 1 or est.size == 0:
            raise ValueError(f"Fit.estimates: expected a non-empty vector, got shape {est.shape}")
        k = est.size
        if names is None:
            if k != 1:
                raise ValueError(f"Fit.names: expected {k} names for {k} estimates, got none")
            names = (str(estimand),)
        if len(names) != k:
            raise ValueError(f"Fit.names: expected {k} names, got {len(names)}")
        if influence is not None:
            influence = np.asarray(influence, dtype=np.float64)
            if influence.ndim == 1:
                influence = influence[:, None]
            if influence.shape[1] != k:
                raise ValueError(
                    f"Fit.influence: expected {k} columns, got shape {influence.shape}"
                )
        se = None if model_se is None else np.atleast_1d(np.asarray(model_se, dtype=np.float64))
        if se is not None and se.shape != (k,):
            raise ValueError(f"Fit.model_se: expected shape ({k},), got {se.shape}")
        if clusters is not None and clusters.codes.shape != (int(n),):
            raise ValueError(
                f"Fit.clusters: expected {int(n)} cluster codes, got shape {clusters.codes.shape}"
            )
        if weights is not None and np.shape(weights) != (int(n),):
            raise ValueError(
                f"Fit.weights: expected {int(n)} weights, got shape {np.shape(weights)}"
            )
        for name, value in (
            ("estimand", estimand),
            ("estimates", est),
            ("n", int(n)),
            ("names", tuple(names)),
            ("influence", influence),
            ("model_se", se),
            ("resampler", resampler),
            ("placebo", placebo),
            ("linearisation", linearisation),
            ("clusters", clusters),
            ("weights", weights),
            ("diagnostics", dict(diagnostics or {})),
            ("tables", tables if tables is not None else {}),
            ("warnings", tuple(warnings)),
        ):
            object.__setattr__(self, name, value)

    @property
    def estimate(self) -> float:
        """The headline estimate (the first)."""
        return float(self.estimates[0])

    @property
    def k(self) -> int:
        """Number of estimates."""
        return int(self.estimates.size)

    @property
    def capabilities(self) -> frozenset[Capability]:
        """What this fit offers to inference."""
        caps: set[Capability] = set()
        if self.influence is not None:
            caps.add(Capability.INFLUENCE)
        if self.model_se is not None:
            caps.add(Capability.MODEL_SE)
        if self.resampler is not None:
            caps |= self.resampler.capabilities
        if self.placebo is not None:
            caps.add(Capability.PLACEBO)
        if self.linearisation is not None:
            caps.add(Capability.LINEARISATION)
        return frozenset(caps)


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
    """Uncertainty for the k estimates of one fit (arrays of shape (k,)).

    ``ci_lower``/``ci_upper`` are pointwise intervals at ``level``, or simultaneous (sup-t)
    bands when ``joint``; ``p_value`` are two-sided p-values for zero effect, Holm-adjusted
    over the k estimates when ``joint`` (the unadjusted ones are then in ``p_value_raw``).
    """

    method: str
    se: np.ndarray
    ci_lower: np.ndarray
    ci_upper: np.ndarray
    p_value: np.ndarray
    level: float
    joint: bool = False
    p_value_raw: np.ndarray | None = None
    diagnostics: Mapping[str, DiagnosticValue] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("se", "ci_lower", "ci_upper", "p_value"):
            object.__setattr__(
                self, name, np.atleast_1d(np.asarray(getattr(self, name), dtype=np.float64))
            )


@runtime_checkable
class DataSource(Protocol):
    """Loads a user's table (or nothing, for purely synthetic studies)."""

    name: ClassVar[str]
    Params: ClassVar[type[Params]]

    def __init__(self, params: BaseModel) -> None: ...

    def load(self) -> Dataset | None:
        """Return the user's table with its roles, or ``None`` for a purely synthetic study."""
        ...


@runtime_checkable
class DGP(Protocol):
    """Simulates a world with known truth; may take covariates from a base dataset."""

    name: ClassVar[str]
    Params: ClassVar[type[Params]]
    needs_base: ClassVar[bool]

    def __init__(self, params: BaseModel) -> None: ...

    def simulate(self, rng: np.random.Generator, base: Dataset | None) -> Simulated:
        """Draw one dataset and its truth; every random draw comes from ``rng``."""
        ...


@runtime_checkable
class Estimator(Protocol):
    """Turns a dataset into an estimate plus what inference needs."""

    name: ClassVar[str]
    Params: ClassVar[type[Params]]
    required_roles: ClassVar[tuple[str, ...]]
    default_inference: ClassVar[str]

    def __init__(self, params: BaseModel) -> None: ...

    @classmethod
    def capabilities(cls, params: BaseModel) -> frozenset[Capability]:
        """Declare what every fit under ``params`` offers to inference.

        Declared as data and checked on every fit by the conformance suite; an option that
        removes a capability removes the pairings that need it.
        """
        ...

    def fit(self, data: Dataset, rng: np.random.Generator) -> Fit:
        """Estimate on ``data``; every random draw comes from ``rng``."""
        ...


@runtime_checkable
class Inference(Protocol):
    """Turns a fit into uncertainty; never mutates the fit."""

    name: ClassVar[str]
    Params: ClassVar[type[Params]]
    requires_any: ClassVar[frozenset[Capability]]
    """The fit must offer at least one of these; empty: any fit (e.g. ``none``)."""

    def __init__(self, params: BaseModel) -> None: ...

    def infer(self, fit: Fit, rng: np.random.Generator) -> InferenceOutcome:
        """Return the uncertainty of the fit's k estimates; every random draw comes from ``rng``."""
        ...
