"""The comparison table of a sweep: one row per cell (factors, method, status, metrics) and its text."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from causalkit.report_runs import NOT_RUN, cell_runs
from causalkit.results import CELL_METRICS

if TYPE_CHECKING:
    from causalkit.tracking import MlflowTracker

__all__ = [
    "COLUMNS",
    "design_factors",
    "sweep_table",
    "plan_outcome",
    "render",
    "count",
    "coverage_interval",
]

_NOT_SHOWN = frozenset(
    {
        "mean_estimate",
        "emp_se_mcse",
        "mean_se_mcse",
        "ci_width_mcse",
        "rel_bias_mcse",
        "model_se_mcse",
        "mse",
        "mse_mcse",
        "be_coverage_mcse",
        "power_mcse",
        "type1_error_mcse",
    }
)
COLUMNS = ("estimator", "inference", "status", *(m for m in CELL_METRICS if m not in _NOT_SHOWN))
"""Columns of :func:`sweep_table` (after ``cell``): the plugins, the run status, the metrics shown."""


_METHOD_AXES = ("estimator", "inference")
"""Sweep axes under these groups define the methods compared; every other axis is a design factor."""


def design_factors(table: pd.DataFrame) -> list[str]:
    """Return the columns of :func:`sweep_table` that are design factors (axes, not methods)."""
    return list(table.attrs.get("factors", []))


def sweep_table(tracker: MlflowTracker, sweep_id: str) -> pd.DataFrame:
    """One row per cell of the sweep: its factors, plugins, status and Monte Carlo metrics.

    The sweep's axes (the run's params) under ``estimator`` and ``inference`` define the
    method of each cell (column ``method``); every other axis that takes more than one
    value across the cells (``dgp.n``, a DGP parameter, ...) is a design factor with a
    column of its own, listed in ``table.attrs["factors"]`` (:func:`design_factors`).
    """
    rows = []
    axes: dict[str, dict[str, str]] = {}
    for label, run in cell_runs(tracker, sweep_id):
        if run is None:
            row = {"cell": label, "status": NOT_RUN, "run_id": ""}
            row["error"] = "no run recorded (it failed before its run started, or was not reached)"
            rows.append(row)
            continue
        m = run.data.metrics
        axes[label] = {
            k: v
            for k, v in run.data.params.items()
            if k != "config_hash" and not k.startswith(("tracking.", "hydra"))
        }
        row = {
            "cell": label,
            "estimator": run.data.tags.get("causalkit.estimator"),
            "inference": run.data.tags.get("causalkit.inference"),
            "status": run.info.status,
        }
        if "bias" not in m and "estimate" in m:  # single-replication cells
            m = {**m, "bias": m["estimate"] - m.get("truth", float("nan")), "reps": 1}
        for col in CELL_METRICS:
            row[col] = m.get(col, float("nan"))
        row["estimand"] = run.data.tags.get("causalkit.estimand", "")
        row["truth_estimand"] = run.data.tags.get("causalkit.truth_estimand", "")
        # the mean of the replications' truths (the bias is measured against each one's own)
        row["truth"] = m.get("truth", m.get("mean_estimate", np.nan) - row["bias"])
        row["plan"] = plan_outcome(m)
        row["error"] = run.data.tags.get("causalkit.error", "")
        row["run_id"] = run.info.run_id
        rows.append(row)
    table = pd.DataFrame(
        rows,
        columns=[
            "cell",
            *COLUMNS[:3],
            *CELL_METRICS,
            "estimand",
            "truth_estimand",
            "truth",
            "plan",
            "error",
            "run_id",
        ],
    )
    keys = list(dict.fromkeys(k for a in axes.values() for k in a))
    factors = [
        k
        for k in keys
        if not k.startswith(_METHOD_AXES) and len({a.get(k) for a in axes.values()}) > 1
    ]
    methods = [k for k in keys if k.startswith(_METHOD_AXES)]
    method = [
        "/".join(
            [str(r["estimator"]), str(r["inference"])]
            + [
                f"{k}={axes[r['cell']][k]}"
                for k in methods
                if "." in k and k in axes.get(r["cell"], {})
            ]
        )
        for _, r in table.iterrows()
    ]
    table.insert(1, "method", method)
    for i, k in enumerate(factors):
        table.insert(2 + i, k, [axes.get(c, {}).get(k, "") for c in table["cell"]])
    table.attrs["factors"] = factors
    return table


def plan_outcome(metrics: Mapping[str, float]) -> str:
    """How a cell planned by ``mc.target_mcse`` stopped: ``targets met``, ``capped`` or ``undefined``; ``""`` if unplanned."""
    if "targets_met" not in metrics:
        return ""
    if metrics["targets_met"] == 1:
        return "targets met"
    return "capped" if metrics.get("reps_capped") == 1 else "undefined"


def render(table: pd.DataFrame) -> str:
    """Plain-text table: bias ± MCSE, RMSE, coverage [95% Wilson], CI width, reps, failed, seconds.

    The cell column is as wide as the longest cell name: names are the sweep axes, and cutting
    them hides the axis that tells the cells apart. Coverage carries its Wilson interval, not
    the binomial MCSE, which is 0 at a coverage of 0 or 1 (:func:`causalkit.results.coverage_text`).
    """
    w = max([34, *(len(str(c)) + 1 for c in table["cell"])])
    planned = "plan" in table and bool(table["plan"].fillna("").astype(str).str.len().any())
    factors = design_factors(table)
    fw = {f: max(len(f), *(len(str(v)) for v in table[f])) + 2 for f in factors}
    lines = [
        f"{'cell':<{w}}"
        + "".join(f"{f:>{fw[f]}}" for f in factors)
        + f"  {'status':<10}{'bias ± MCSE':>22}{'RMSE':>9}{'coverage [95% Wilson]':>25}{'CI width':>10}{'reps':>6}{'failed':>7}{'sec':>8}"
        + ("  plan" if planned else "")
    ]
    for _, r in table.iterrows():
        lines.append(
            f"{str(r['cell']):<{w}}"
            + "".join(f"{str(r[f]):>{fw[f]}}" for f in factors)
            + f"  {r['status']:<10}{r['bias']:>+12.4f} ± {r['bias_mcse']:<7.4f}"
            f"{r['rmse']:>9.4f}{coverage_interval(r):>25}"
            f"{r['ci_width']:>10.4f}{count(r['reps']):>6}{count(r['n_failed']):>7}{r['seconds']:>8.1f}"
            + (f"  {r['plan'] or '-'}" if planned else "")
        )
    return "\n".join(lines)


def count(value: float) -> int:
    """Return a count column's value as an int (``0`` where it is missing)."""
    return int(value) if pd.notna(value) else 0


def coverage_interval(row: pd.Series) -> str:
    """``coverage [lower, upper]`` (the Wilson interval), or ``nan``."""
    if pd.isna(row["coverage"]):
        return "nan"
    return f"{row['coverage']:.3f} [{row['coverage_lower']:.3f}, {row['coverage_upper']:.3f}]"
