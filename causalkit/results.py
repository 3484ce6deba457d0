"""Immutable results: one effect estimate with its uncertainty and diagnostics."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import pandas as pd

from causalkit.contracts import DiagnosticValue, Fit, InferenceOutcome, LazyTables

__all__ = ["EffectResult", "build_result"]


def _fmt(x: float, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    return f"{x:+.{digits}f}"


@dataclass(frozen=True)
class EffectResult:
    """The result of one estimator + inference on one dataset.

    Attributes
    ----------
    estimator, inference : str
        Registry names of the plugins that produced it.
    estimand : str
        Estimand label (from :class:`~causalkit.contracts.Estimand`).
    estimate, se, ci_lower, ci_upper, p_value : float
        Point estimate, standard error, confidence interval at ``level`` and two-sided p-value.
    n : int
        Units used.
    diagnostics : mapping
        Flat scalar diagnostics from the estimator and the inference method.
    tables : mapping
        Named data frames (balance table, per-period effects, ...).
    truth, truth_estimand : float or None, str or None
        The known truth the estimate is judged by, when simulated.
    warnings : tuple of str
        Problems the user must read.
    """

    estimator: str
    inference: str
    estimand: str
    estimate: float
    se: float
    ci_lower: float
    ci_upper: float
    p_value: float
    level: float
    n: int
    diagnostics: Mapping[str, DiagnosticValue] = field(default_factory=dict)
    tables: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    truth: float | None = None
    truth_estimand: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def covers(self) -> bool | None:
        """Whether the CI contains the truth (``None`` without a truth)."""
        if self.truth is None:
            return None
        return bool(self.ci_lower <= self.truth <= self.ci_upper)

    def to_dict(self) -> dict[str, DiagnosticValue | None]:
        """Flat dictionary: estimate, se, ci_lower, ci_upper, p_value, n, truth, diagnostics."""
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

    def to_frame(self) -> pd.DataFrame:
        """One-row data frame of :meth:`to_dict`, indexed by the estimand."""
        return pd.DataFrame([self.to_dict()], index=pd.Index([self.estimand], name="estimand"))

    def summary(self) -> str:
        """A plain-text report in the style of a statistics package."""
        pct = int(round(self.level * 100))
        lines = [
            f"causalkit result: {self.estimator} / {self.inference}",
            "=" * 64,
            f"{'estimand':<22}{self.estimand}",
            f"{'estimate':<22}{_fmt(self.estimate)}",
            f"{'std. error':<22}{self.se:.4f}" if not math.isnan(self.se) else f"{'std. error':<22}nan",
            f"{f'{pct}% CI':<22}[{_fmt(self.ci_lower)}, {_fmt(self.ci_upper)}]",
            f"{'p-value':<22}{self.p_value:.4g}",
            f"{'n':<22}{self.n}",
        ]
        if self.truth is not None:
            lines.append(f"{'truth (' + str(self.truth_estimand) + ')':<22}{_fmt(self.truth)}")
        if self.diagnostics:
            lines += ["-" * 64, "diagnostics"]
            for key, value in self.diagnostics.items():
                shown = f"{value:.4g}" if isinstance(value, float) else str(value)
                lines.append(f"  {key:<26}{shown}")
        balance = self.tables.get("balance")
        if balance is not None and len(balance):
            lines += ["-" * 64, "balance (SMD; denominator: pooled SD sqrt((s_T^2 + s_C^2)/2))"]
            lines.append(balance.to_string(float_format=lambda v: f"{v:+.2e}"))
        if self.warnings:
            lines += ["-" * 64] + [f"WARNING: {w}" for w in self.warnings]
        lines.append("=" * 64)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def build_result(
    estimator: str,
    fit: Fit,
    outcome: InferenceOutcome,
    truth: tuple[str, float] | None = None,
) -> EffectResult:
    """Combine a fit, its inference and (optionally) the truth into an immutable result."""
    diagnostics = dict(fit.diagnostics)
    for key, value in outcome.diagnostics.items():
        diagnostics[f"inference.{key}"] = value
    return EffectResult(
        estimator=estimator,
        inference=outcome.method,
        estimand=str(fit.estimand),
        estimate=float(fit.estimate),
        se=float(outcome.se),
        ci_lower=float(outcome.ci_lower),
        ci_upper=float(outcome.ci_upper),
        p_value=float(outcome.p_value),
        level=float(outcome.level),
        n=int(fit.n),
        diagnostics=MappingProxyType(diagnostics),
        tables=fit.tables if isinstance(fit.tables, LazyTables) else MappingProxyType(dict(fit.tables)),
        truth=None if truth is None else truth[1],
        truth_estimand=None if truth is None else truth[0],
        warnings=tuple(fit.warnings),
    )


CELL_METRICS: tuple[str, ...] = (
    "mean_estimate",
    "bias",
    "bias_mcse",
    "emp_se",
    "emp_se_mcse",
    "mean_se",
    "mean_se_mcse",
    "rmse",
    "rmse_mcse",
    "coverage",
    "coverage_mcse",
    "ci_width",
    "ci_width_mcse",
    "n_failed",
    "reps",
    "seconds",
)


@dataclass(frozen=True)
class CellSummary:
    """Performance of one estimator + inference over the replications of a Monte Carlo cell.

    ``metrics`` holds :data:`CELL_METRICS`; ``replications`` one row per replication
    (failed ones with their error). Metric definitions and MCSEs follow Morris, White &
    Crowther (2019), *Stat. Med.* 38:2074, Table 6.
    """

    estimator: str
    inference: str
    estimand: str
    truth_estimand: str | None
    truth: float | None
    level: float
    metrics: Mapping[str, float]
    replications: pd.DataFrame

    def to_dict(self) -> dict[str, float | str | None]:
        return {"estimator": self.estimator, "inference": self.inference, "estimand": self.estimand,
                "truth": self.truth, **self.metrics}

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([self.to_dict()])

    def summary(self) -> str:
        m = self.metrics
        pct = int(round(self.level * 100))
        truth = "none" if self.truth is None else f"{self.truth:+.4f} ({self.truth_estimand})"
        lines = [
            f"causalkit Monte Carlo cell: {self.estimator} / {self.inference}",
            "=" * 64,
            f"{'estimand':<26}{self.estimand}",
            f"{'truth':<26}{truth}",
            f"{'replications':<26}{int(m['reps'])} ({int(m['n_failed'])} failed)",
            f"{'mean estimate':<26}{m['mean_estimate']:+.5f}",
            f"{'bias':<26}{m['bias']:+.5f}  (MCSE {m['bias_mcse']:.5f})",
            f"{'empirical SE':<26}{m['emp_se']:.5f}  (MCSE {m['emp_se_mcse']:.5f})",
            f"{'mean model SE':<26}{m['mean_se']:.5f}  (MCSE {m['mean_se_mcse']:.5f})",
            f"{'RMSE':<26}{m['rmse']:.5f}  (MCSE {m['rmse_mcse']:.5f})",
            f"{f'coverage of {pct}% CI':<26}{m['coverage']:.4f}  (MCSE {m['coverage_mcse']:.4f})",
            f"{'mean CI width':<26}{m['ci_width']:.5f}  (MCSE {m['ci_width_mcse']:.5f})",
            f"{'seconds':<26}{m['seconds']:.2f}",
            "=" * 64,
        ]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()
