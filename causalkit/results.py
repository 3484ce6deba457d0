"""Immutable results (one dataset's effects; one Monte Carlo cell), their summaries and ``compare``."""

from __future__ import annotations

import dataclasses
import math
import re
import warnings as _warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from causalkit.contracts import DiagnosticValue, Fit, InferenceOutcome, LazyTables, Roles
from causalkit.performance import MEASURES
from causalkit.summary import (
    Section,
    Summary,
    fixed_or_scientific,
    formatted,
    plain,
    pvalue,
    scalar,
    signed,
)

if TYPE_CHECKING:
    from causalkit.config import RunConfig

__all__ = [
    "EffectResult",
    "CellResult",
    "CELL_METRICS",
    "EFFECT_COLUMNS",
    "SUMMARY_METRICS",
    "build_result",
    "compare",
    "CausalkitWarning",
    "emit_warnings",
]

EFFECT_COLUMNS = ("estimate", "se", "ci_lower", "ci_upper", "p_value", "p_value_raw")
"""Columns of :attr:`EffectResult.effects` (``p_value_raw`` only when joint), in this order."""

SUMMARY_METRICS: tuple[str, ...] = MEASURES
"""Performance measures of a Monte Carlo cell with their MCSEs (:func:`causalkit.performance.summarise`)."""

CELL_METRICS: tuple[str, ...] = (*SUMMARY_METRICS, "n_failed", "reps", "seconds")
"""Keys of :attr:`CellResult.metrics`."""

_POPULATIONS = {
    "ATE": "average effect over everyone",
    "ATT": "average effect on the treated",
    "ATC": "average effect on the controls",
    "ITT": "effect of being assigned to treatment",
    "CACE": "average effect on the compliers",
    "DIFF": "a contrast without a causal label",
    "MEAN1": "mean outcome if everyone were treated",
    "MEAN0": "mean outcome if no one were treated",
}


_PVALUE = re.compile(r"(?:^|[._])p(?:_value)?(?:_raw|_lower|_upper)?$")
"""Diagnostic names that hold a p-value (``lr_rho0_p``, ``x.p_value``), printed as p-values."""


def estimand_text(estimand: str) -> str:
    """Show the estimand as a summary does: ``ATT (average effect on the treated)``."""
    meaning = _POPULATIONS.get(estimand)
    return f"{estimand} ({meaning})" if meaning else estimand


class CausalkitWarning(UserWarning):
    """A problem with a result the user must read (the text of ``result.warnings``).

    Emitted once per :func:`causalkit.fit` or :func:`causalkit.run`, when it returns, so a
    notebook shows it; filter with ``warnings.filterwarnings("ignore", category=CausalkitWarning)``.
    """


def _equal(a: Any, b: Any) -> bool:
    """Value equality where NaN equals NaN: scalars, arrays, frames, mappings, sequences."""
    if isinstance(a, pd.DataFrame) or isinstance(b, pd.DataFrame):
        return isinstance(a, pd.DataFrame) and isinstance(b, pd.DataFrame) and a.equals(b)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return list(a) == list(b) and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def _fields_equal(a: Any, b: Any) -> bool:
    """Whether two dataclass instances of one type hold equal values in every field."""
    return type(a) is type(b) and all(
        _equal(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a)
    )


# --------------------------------------------------------------------------------------------
# One dataset: the effect result
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, init=False, repr=False)
class EffectResult:
    """One estimator + inference on one dataset: k named effects with their uncertainty.

    The headline (the first effect) is :attr:`estimate`, :attr:`se`, :attr:`ci_lower`,
    :attr:`ci_upper`, :attr:`p_value`; :attr:`effects` is the whole vector as a table.

    Parameters
    ----------
    estimator, inference : str
        Registry names of the plugins that produced it.
    estimand : str
        Estimand label of the headline (from :class:`~causalkit.contracts.Estimand`).
    names : tuple of str
        One name per effect, the headline first.
    values : ndarray, shape (k, 6)
        Per effect: estimate, standard error, interval bounds at ``level``, p-value and the
        unadjusted p-value (NaN unless ``joint``).
    level : float
        Confidence level of the intervals.
    n : int
        Units used.
    joint : bool
        Whether the intervals are simultaneous (sup-t) bands over the k effects and the
        p-values Holm-adjusted.
    diagnostics : mapping
        Flat scalar diagnostics from the estimator and (prefixed ``inference.``) the inference.
    tables : mapping
        Named data frames from the estimator (balance table, per-period gaps, ...).
    truth, truth_estimand : float or None, str or None
        The known truth the headline is judged by, when simulated.
    warnings : tuple of str
        Problems the user must read.
    cluster, weight : str or None
        The columns of the ``cluster`` and ``weight`` roles when the fit was clustered or
        weighted by them (the summary says so under the standard error); ``None`` otherwise.
    """

    estimator: str
    inference: str
    estimand: str
    names: tuple[str, ...]
    level: float
    n: int
    joint: bool
    diagnostics: Mapping[str, DiagnosticValue]
    tables: Mapping[str, pd.DataFrame]
    truth: float | None
    truth_estimand: str | None
    warnings: tuple[str, ...]
    cluster: str | None
    weight: str | None
    _values: np.ndarray

    def __init__(
        self,
        estimator: str,
        inference: str,
        estimand: str,
        names: Sequence[str],
        values: np.ndarray,
        level: float,
        n: int,
        *,
        joint: bool = False,
        diagnostics: Mapping[str, DiagnosticValue] | None = None,
        tables: Mapping[str, pd.DataFrame] | None = None,
        truth: float | None = None,
        truth_estimand: str | None = None,
        warnings: tuple[str, ...] = (),
        cluster: str | None = None,
        weight: str | None = None,
    ) -> None:
        vals = np.array(values, dtype=np.float64)
        if vals.shape != (len(names), len(EFFECT_COLUMNS)):
            raise ValueError(
                f"EffectResult.values: expected shape ({len(names)}, {len(EFFECT_COLUMNS)}), got {vals.shape}"
            )
        vals.flags.writeable = False
        for name, value in (
            ("estimator", estimator),
            ("inference", inference),
            ("estimand", estimand),
            ("names", tuple(names)),
            ("level", float(level)),
            ("n", int(n)),
            ("joint", bool(joint)),
            ("diagnostics", MappingProxyType(dict(diagnostics or {}))),
            (
                "tables",
                tables if isinstance(tables, LazyTables) else MappingProxyType(dict(tables or {})),
            ),
            ("truth", truth),
            ("truth_estimand", truth_estimand),
            ("warnings", tuple(warnings)),
            ("cluster", cluster),
            ("weight", weight),
            ("_values", vals),
        ):
            object.__setattr__(self, name, value)

    @property
    def estimate(self) -> float:
        """Headline estimate."""
        return float(self._values[0, 0])

    @property
    def se(self) -> float:
        """Standard error of the headline."""
        return float(self._values[0, 1])

    @property
    def ci_lower(self) -> float:
        """Lower bound of the headline's interval at :attr:`level`."""
        return float(self._values[0, 2])

    @property
    def ci_upper(self) -> float:
        """Upper bound of the headline's interval at :attr:`level`."""
        return float(self._values[0, 3])

    @property
    def p_value(self) -> float:
        """Two-sided p-value of the headline for zero effect (Holm-adjusted when joint)."""
        return float(self._values[0, 4])

    @property
    def k(self) -> int:
        """Number of effects."""
        return len(self.names)

    @property
    def effects(self) -> pd.DataFrame:
        """All k effects as a fresh table, indexed by effect name.

        Columns: estimate, se, ci_lower, ci_upper, p_value and, when :attr:`joint`, the
        unadjusted ``p_value_raw``.
        """
        cols = EFFECT_COLUMNS if self.joint else EFFECT_COLUMNS[:-1]
        return pd.DataFrame(
            self._values[:, : len(cols)].copy(),
            index=pd.Index(self.names, name="effect"),
            columns=list(cols),
        )

    @property
    def covers(self) -> bool | None:
        """Whether the headline's interval contains the truth (``None`` without a truth)."""
        if self.truth is None:
            return None
        return bool(self.ci_lower <= self.truth <= self.ci_upper)

    def to_dict(self) -> dict[str, DiagnosticValue | None]:
        """Flatten the headline: plugins, estimate, se, CI, p-value, n, truth, diagnostics.

        This is what MLflow logs.
        """
        out: dict[str, DiagnosticValue | None] = {
            "estimator": self.estimator,
            "inference": self.inference,
            "estimand": self.estimand,
            "estimate": self.estimate,
            "se": self.se,
            "ci_lower": self.ci_lower,
            "ci_upper": self.ci_upper,
            "p_value": self.p_value,
            "level": self.level,
            "n": self.n,
            "truth": self.truth,
        }
        for key, value in self.diagnostics.items():
            if key in out:
                raise KeyError(f"diagnostic {key!r} shadows a result field")
            out[key] = value
        return out

    def to_row(self) -> dict[str, DiagnosticValue | None]:
        """Return one row of a Monte Carlo replications table.

        The numeric part of :meth:`to_dict`, then ``covers``, ``truth_estimand``, ``estimand``,
        ``inference`` and ``n_warnings`` (how many warnings the result carries).
        """
        row: dict[str, DiagnosticValue | None] = {
            k: v
            for k, v in self.to_dict().items()
            if v is None or isinstance(v, (int, float, bool))
        }
        row.update(
            covers=self.covers,
            truth_estimand=self.truth_estimand,
            estimand=self.estimand,
            inference=self.inference,
            n_warnings=len(self.warnings),
        )
        return row

    def to_frame(self) -> pd.DataFrame:
        """One-row data frame of :meth:`to_dict`, indexed by the estimand."""
        return pd.DataFrame([self.to_dict()], index=pd.Index([self.estimand], name="estimand"))

    def summary(self) -> Summary:
        """Report in the style of a statistics package (text, HTML, LaTeX)."""
        pct = int(round(self.level * 100))
        band = " (simultaneous)" if self.joint else ""
        head = [
            ("estimand", estimand_text(self.estimand)),
            ("estimate", signed(self.estimate)),
            ("std. error", plain(self.se)),
            *self._design_pairs(),
            (f"{pct}% CI{band}", f"[{signed(self.ci_lower)}, {signed(self.ci_upper)}]"),
            ("p-value (Holm)" if self.joint else "p-value", pvalue(self.p_value)),
            ("n", str(self.n)),
        ]
        if self.truth is not None:
            head.append((f"truth ({self.truth_estimand})", signed(self.truth)))
        sections = [Section(pairs=tuple(head))]
        if self.k > 1:
            kind = (
                f"{pct}% sup-t bands, Holm-adjusted p-values"
                if self.joint
                else f"pointwise {pct}% CIs"
            )
            fmt: dict[str, Callable[[Any], str]] = {
                "estimate": signed,
                "ci_lower": signed,
                "ci_upper": signed,
                "se": plain,
                "p_value": pvalue,
                "p_value_raw": pvalue,
            }
            sections.append(
                Section(f"effects ({self.k}; {kind})", table=formatted(self.effects, fmt))
            )
        if self.diagnostics:
            pairs = tuple(
                (k, pvalue(v) if _PVALUE.search(k) and isinstance(v, float) else scalar(v))
                for k, v in self.diagnostics.items()
            )
            sections.append(Section("diagnostics", pairs=pairs, width=26, indent="  "))
        balance = self.tables.get("balance")
        if balance is not None and len(balance):
            sections.append(
                Section(
                    "balance (SMD; denominator: pooled SD sqrt((s_T^2 + s_C^2)/2))",
                    table=formatted(
                        balance,
                        {
                            str(c): fixed_or_scientific(
                                balance[c], sign=not str(c).startswith("var_ratio")
                            )
                            for c in balance
                        },
                    ),
                )
            )
        benchmarks = self.tables.get("sensitivity.bounds")
        if benchmarks is not None and len(benchmarks):
            sections.append(
                Section(
                    "sensitivity benchmarks (a confounder as strong as each left-out covariate)",
                    table=formatted(benchmarks, {}, lambda v: f"{v:.4g}"),
                )
            )
        if self.warnings:
            sections.append(Section(lines=tuple(f"WARNING: {w}" for w in self.warnings)))
        return Summary(f"causalkit result: {self.estimator} / {self.inference}", tuple(sections))

    def _design_pairs(self) -> tuple[tuple[str, str], ...]:
        """Return the summary lines under the standard error: clustered by, weighted by."""
        pairs: list[tuple[str, str]] = []
        if self.cluster is not None:
            g = self.diagnostics.get("n_clusters")
            pairs.append(("  clustered by", self.cluster + (f" ({g} clusters)" if g else "")))
        if self.weight is not None:
            pairs.append(("  weighted by", self.weight))
        return tuple(pairs)

    def __eq__(self, other: object) -> bool:
        """Equal values in every field (NaN equals NaN; tables compared as frames)."""
        return _fields_equal(self, other)

    __hash__ = None  # type: ignore[assignment]

    def _repr_html_(self) -> str:
        return self.summary().as_html()

    def __str__(self) -> str:
        """Return the summary's text."""
        return self.summary().as_text()

    def __repr__(self) -> str:
        """Return a one-line description."""
        return (
            f"EffectResult(estimator={self.estimator!r}, inference={self.inference!r}, "
            f"estimand={self.estimand!r}, estimate={self.estimate!r}, se={self.se!r}, k={self.k}, n={self.n})"
        )


def build_result(
    estimator: str,
    fit: Fit,
    outcome: InferenceOutcome,
    truth: tuple[str, float] | None = None,
    roles: Roles | None = None,
) -> EffectResult:
    """Combine a fit, its inference and (optionally) the truth into an immutable result.

    With the dataset's ``roles``, a fit clustered (weighted) by the data keeps the name of
    the ``cluster`` (``weight``) column for its summary.

    Raises
    ------
    ValueError
        When the inference's arrays do not have one value per estimate of the fit.
    """
    k = fit.k
    cols = [
        fit.estimates,
        outcome.se,
        outcome.ci_lower,
        outcome.ci_upper,
        outcome.p_value,
        outcome.p_value_raw if outcome.p_value_raw is not None else np.full(k, np.nan),
    ]
    for name, col in zip(EFFECT_COLUMNS[1:], cols[1:], strict=True):
        if np.shape(col) != (k,):
            raise ValueError(
                f"inference {outcome.method!r}: {name} has shape {np.shape(col)}, expected ({k},)"
            )
    diagnostics = dict(fit.diagnostics)
    for key, value in outcome.diagnostics.items():
        diagnostics[f"inference.{key}"] = value
    return EffectResult(
        estimator,
        outcome.method,
        str(fit.estimand),
        fit.names,
        np.column_stack(cols),
        outcome.level,
        fit.n,
        joint=outcome.joint,
        diagnostics=diagnostics,
        tables=fit.tables,
        truth=None if truth is None else truth[1],
        truth_estimand=None if truth is None else truth[0],
        warnings=(*fit.warnings, *outcome.warnings),
        cluster=roles.cluster if roles is not None and fit.clusters is not None else None,
        weight=roles.weight if roles is not None and fit.weights is not None else None,
    )


def emit_warnings(result: EffectResult | CellResult, stacklevel: int = 3) -> None:
    """Emit a result's warnings through :mod:`warnings` as :class:`CausalkitWarning`, once.

    For :func:`causalkit.fit` and :func:`causalkit.run` as they return (never per Monte
    Carlo replication): an effect result's (or a one-replication cell's) warnings one by one;
    a cell of many replications one aggregate line, how many replications warned.

    Parameters
    ----------
    result : EffectResult or CellResult
        The result being returned.
    stacklevel : int
        Passed to :func:`warnings.warn`; the default points at the caller of ``fit``/``run``.
    """
    if isinstance(result, CellResult) and result.single is None:
        table = result.replications
        warned = int((table["n_warnings"].fillna(0) > 0).sum()) if "n_warnings" in table else 0
        lines = (
            [
                f"{result.estimator}: {warned} of {len(table)} replications carried warnings "
                "(their count per replication: result.replications['n_warnings'])"
            ]
            if warned
            else []
        )
    else:
        single = result.single if isinstance(result, CellResult) else result
        assert single is not None
        lines = list(single.warnings)
    for line in lines:
        _warnings.warn(line, CausalkitWarning, stacklevel=stacklevel)


# --------------------------------------------------------------------------------------------
# One Monte Carlo cell
# --------------------------------------------------------------------------------------------


def coverage_text(metrics: Mapping[str, float]) -> str:
    r"""Coverage with its Morris MCSE and 95% Wilson interval, the MCSE flagged at 0 or 1.

    At an empirical coverage of exactly 0 or 1 the binomial MCSE
    :math:`\sqrt{\hat c(1-\hat c)/R}` is 0, which would read as an exact figure; the Wilson
    interval (``coverage_lower``, ``coverage_upper``) is what bounds the true coverage there.
    """
    c, mcse = metrics.get("coverage", math.nan), metrics.get("coverage_mcse", math.nan)
    lo, hi = metrics.get("coverage_lower", math.nan), metrics.get("coverage_upper", math.nan)
    if math.isnan(c):
        return "nan"
    flag = ", at the boundary: not exact" if c in (0.0, 1.0) else ""
    wilson = f"; 95% Wilson [{lo:.4f}, {hi:.4f}]" if not math.isnan(lo) else ""
    return f"{c:.4f}  (MCSE {mcse:.4f}{flag}{wilson})"


@dataclass(frozen=True, eq=False)
class CellResult:
    """A Monte Carlo cell: one estimator + inference over the replications of one design.

    ``metrics`` holds :data:`CELL_METRICS` of the headline estimate; definitions and MCSEs
    follow Morris, White & Crowther (2019), *Stat. Med.* 38:2074, Table 6.

    Parameters
    ----------
    config : RunConfig
        The validated cell.
    estimator, inference, estimand : str
        Plugins and the estimand of the headline.
    truth, truth_estimand : float or None, str or None
        The truth bias and coverage are measured against.
    level : float
        Confidence level of the intervals.
    metrics : mapping of str to float
        Bias, empirical and model SEs, RMSE, coverage, CI width (each with its MCSE), failed
        and total replications, seconds.
    replications : DataFrame
        One row per replication (failed ones with their ``error``).
    errors : tuple of str
        ``"replication r: <error>"`` for each failed replication.
    seconds : float
        Wall-clock time of the cell.
    single : EffectResult or None
        With one replication, its full result (tables, diagnostics, warnings).
    """

    config: RunConfig
    estimator: str
    inference: str
    estimand: str
    truth: float | None
    truth_estimand: str | None
    level: float
    metrics: Mapping[str, float]
    replications: pd.DataFrame
    errors: tuple[str, ...]
    seconds: float
    single: EffectResult | None = None

    def __post_init__(self) -> None:
        """Freeze the metrics."""
        object.__setattr__(self, "metrics", MappingProxyType(dict(self.metrics)))

    @property
    def failed(self) -> bool:
        """Whether every replication failed."""
        return len(self.errors) == len(self.replications)

    def to_dict(self) -> dict[str, float | str | None]:
        """Plugins, estimand, truth and the metrics, flat."""
        return {
            "estimator": self.estimator,
            "inference": self.inference,
            "estimand": self.estimand,
            "truth": self.truth,
            **self.metrics,
        }

    def to_frame(self) -> pd.DataFrame:
        """One-row data frame of :meth:`to_dict`."""
        return pd.DataFrame([self.to_dict()])

    def summary(self) -> Summary:
        """Report the single replication, or the Monte Carlo performance with MCSEs."""
        if self.single is not None:
            return self.single.summary()
        m = self.metrics
        pct = int(round(self.level * 100))
        truth = "none" if self.truth is None else f"{self.truth:+.4f} ({self.truth_estimand})"

        def with_mcse(name: str, spec: str) -> str:
            return f"{format(m[name], spec)}  (MCSE {format(m[name + '_mcse'], '.' + spec.lstrip('+.'))})"

        pairs = (
            ("estimand", estimand_text(self.estimand)),
            ("truth", truth),
            ("replications", f"{int(m['reps'])} ({int(m['n_failed'])} failed)"),
            ("mean estimate", f"{m['mean_estimate']:+.5f}"),
            ("bias", with_mcse("bias", "+.5f")),
            ("empirical SE", with_mcse("emp_se", ".5f")),
            ("mean model SE", with_mcse("mean_se", ".5f")),
            ("RMSE", with_mcse("rmse", ".5f")),
            (f"coverage of {pct}% CI", coverage_text(m)),
            ("mean CI width", with_mcse("ci_width", ".5f")),
            ("seconds", f"{m['seconds']:.2f}"),
        )
        sections = [Section(pairs=pairs, width=26)]
        if "max_reps" in m:
            sections.append(_plan_section(m))
        if self.errors:
            shown = self.errors[:3] + (
                (f"... and {len(self.errors) - 3} more",) if len(self.errors) > 3 else ()
            )
            ok = int(m["reps"]) - len(self.errors)
            note = f"(every measure above is over the {ok} replications that succeeded)"
            sections.append(Section("failed replications", lines=(note, *shown)))
        return Summary(
            f"causalkit Monte Carlo cell: {self.estimator} / {self.inference}", tuple(sections)
        )

    def __eq__(self, other: object) -> bool:
        """Equal values in every field (NaN equals NaN; the replications compared as frames)."""
        return _fields_equal(self, other)

    __hash__ = None  # type: ignore[assignment]

    def _repr_html_(self) -> str:
        return self.summary().as_html()

    def __str__(self) -> str:
        """Return the summary's text."""
        return self.summary().as_text()

    def __repr__(self) -> str:
        """Return a one-line description."""
        return (
            f"CellResult(estimator={self.estimator!r}, inference={self.inference!r}, "
            f"estimand={self.estimand!r}, reps={int(self.metrics['reps'])}, "
            f"n_failed={int(self.metrics['n_failed'])}, cell_hash={self.config.cell_hash!r})"
        )


def _plan_section(m: Mapping[str, float]) -> Section:
    """Report the plan of ``mc.target_mcse``: targets, achieved MCSEs, why the cell stopped."""
    from causalkit.planning import MEASURES

    pairs = []
    for name in MEASURES:
        if f"target_mcse.{name}" not in m:
            continue
        target, got = m[f"target_mcse.{name}"], m[f"achieved_mcse.{name}"]
        verdict = "undefined" if math.isnan(got) else "met" if got <= target else "not met"
        pairs.append((f"MCSE of {name}", f"{got:.5g}  (target {target:.5g}: {verdict})"))
    reps, cap = int(m["reps"]), int(m["max_reps"])
    if m["targets_met"]:
        why = f"every target met at {reps:,} replications (cap {cap:,})"
    elif m["reps_capped"]:
        why = f"the cap of {cap:,} replications, a target unmet"
    else:
        why = f"a targeted MCSE is undefined at {reps:,} replications (cap {cap:,})"
    pairs.append(("stopped by", why))
    return Section("replications planned from mc.target_mcse", pairs=tuple(pairs), width=26)


# --------------------------------------------------------------------------------------------
# Results side by side
# --------------------------------------------------------------------------------------------

_EFFECT_ROWS = ("estimate", "se", "ci_lower", "ci_upper", "p_value", "level", "n", "truth")
_CELL_ROWS = (
    "truth",
    "level",
    "reps",
    "n_failed",
    "mean_estimate",
    "bias",
    "bias_mcse",
    "emp_se",
    "mean_se",
    "rmse",
    "rmse_mcse",
    "coverage",
    "coverage_mcse",
    "coverage_lower",
    "coverage_upper",
    "ci_width",
    "seconds",
)


def _column(res: EffectResult | CellResult) -> dict[str, Any]:
    if not isinstance(res, (EffectResult, CellResult)):
        raise TypeError(f"compare: expected EffectResult or CellResult, got {type(res).__name__}")
    if isinstance(res, CellResult) and res.single is not None:
        res = res.single
    col: dict[str, Any] = {
        "estimator": res.estimator,
        "inference": res.inference,
        "estimand": res.estimand,
    }
    if isinstance(res, EffectResult):
        flat = res.to_dict()
        col.update({k: flat[k] for k in _EFFECT_ROWS})
        col.update({f"diag.{k}": v for k, v in res.diagnostics.items()})
    else:
        col.update({"truth": res.truth, "level": res.level})
        col.update({k: res.metrics.get(k, math.nan) for k in _CELL_ROWS[2:]})
    return col


def _labels(results: Sequence[EffectResult | CellResult]) -> list[str]:
    labels = [r.estimator for r in results]
    if len(set(labels)) < len(labels):
        labels = [f"{r.estimator}/{r.inference}" for r in results]
    if len(set(labels)) < len(labels):
        labels = [f"{label} [{i}]" for i, label in enumerate(labels)]
    return labels


def compare(
    results: Sequence[EffectResult | CellResult] | Mapping[str, EffectResult | CellResult],
    diagnostics: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Results side by side, one column each (like linearmodels' ``compare``).

    Parameters
    ----------
    results : sequence or mapping of EffectResult / CellResult
        The results; a mapping names the columns, otherwise columns are named by estimator
        (with the inference, then a position, where that is ambiguous). A Monte Carlo cell of
        one replication is shown as its effect result.
    diagnostics : sequence of str, optional
        Diagnostics to show (rows ``diag.<name>``); default every diagnostic of any result.

    Returns
    -------
    DataFrame
        Rows: estimator, inference, estimand; for effect results estimate, se, ci_lower,
        ci_upper, p_value, level, n, truth; for Monte Carlo cells the truth, level,
        replications and the metrics with their MCSEs; then the diagnostics. Missing entries
        are NaN.
    """
    items = list(results.values() if isinstance(results, Mapping) else results)
    if not items:
        raise ValueError("compare: expected at least one result, got none")
    cols = [_column(r) for r in items]
    labels = [str(k) for k in results] if isinstance(results, Mapping) else _labels(items)
    order = ["estimator", "inference", "estimand"]
    for group in (_EFFECT_ROWS, _CELL_ROWS):
        order += [k for k in group if k not in order and any(k in c for c in cols)]
    if diagnostics is None:
        diag = list(dict.fromkeys(k for c in cols for k in c if k.startswith("diag.")))
    else:
        diag = [f"diag.{d}" for d in diagnostics]
    rows = order + diag
    data = {
        label: [c.get(row, math.nan) for row in rows] for label, c in zip(labels, cols, strict=True)
    }
    return pd.DataFrame(data, index=pd.Index(rows, name="statistic"), dtype=object)
