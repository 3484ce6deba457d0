"""``python -m causalkit.report``: the comparison table and plot of a sweep, read back from MLflow."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from causalkit.config import TrackingConfig
from causalkit.errors import CausalkitError, ConfigError
from causalkit.performance import paired, summarise
from causalkit.report_page import html_page
from causalkit.results import CELL_METRICS
from causalkit.runner import SWEEP_CELL_TAG
from causalkit.tracking import SWEEP_TAG, MlflowTracker

__all__ = [
    "CellFiles",
    "html_page",
    "sweep_table",
    "latest_sweep",
    "main",
    "common_draws",
    "common_draws_tables",
    "render_common_draws",
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


def latest_sweep(tracker: MlflowTracker) -> str:
    """Id of the most recent sweep parent run in the experiment."""
    runs = tracker.client.search_runs(
        [tracker.experiment_id()],
        f"tags.`{SWEEP_TAG}` = '1'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        raise ConfigError(
            "report",
            f"a sweep in experiment {tracker.cfg.experiment!r} (run one with -m)",
            "none found",
        )
    return str(runs[0].info.run_id)


NOT_RUN = "NOT RUN"
"""Status of a sweep cell that recorded no run (it failed before its run started, or was never reached)."""


def _cell_runs(tracker: MlflowTracker, sweep_id: str) -> list[tuple[str, Any]]:
    """Return the run standing for each cell of a sweep, as ``(cell label, run or None)``.

    Each cell's runner names that run in the parent's tag ``causalkit.cell.<number>``: the run
    it made in this sweep, or the earlier run of the same identity and replications it read
    back. Nothing else is looked up, so another run's cell never shows, and a cell with no
    tag (it failed before its run started) is listed as :data:`NOT_RUN`. Sweeps recorded
    before these tags existed fall back to the parent's child runs.
    """
    parent = tracker.client.get_run(sweep_id)
    tags = parent.data.tags
    prefix = SWEEP_CELL_TAG + "."
    bound = {
        int(k[len(prefix) :]): v
        for k, v in tags.items()
        if k.startswith(prefix) and k[len(prefix) :].isdigit()
    }
    n = int(tags["causalkit.cells"]) if tags.get("causalkit.cells", "").isdigit() else 0
    if not bound:
        children = tracker.client.search_runs(
            [tracker.experiment_id()],
            f"tags.mlflow.parentRunId = '{sweep_id}'",
            max_results=10000,
            order_by=["attributes.start_time ASC"],
        )
        if children or not n:
            return [(str(r.info.run_name), r) for r in children]
    out: list[tuple[str, Any]] = []
    for i in range(max([n, *(k + 1 for k in bound)])):
        run = tracker.client.get_run(bound[i]) if i in bound else None
        out.append((str(run.info.run_name) if run is not None else f"cell {i}", run))
    return out


class CellFiles:
    """Each cell run's ``config.yaml`` and ``replications.parquet``, read once per report.

    The common-random-numbers tables and the zip plots both need a cell's replications; one
    memo (per run id) serves both, so each file is read (or downloaded) once.
    """

    def __init__(self, tracker: MlflowTracker) -> None:
        self.tracker = tracker
        self._memo: dict[str, tuple[dict[str, Any] | None, pd.DataFrame | None]] = {}

    def read(self, run: Any) -> tuple[dict[str, Any] | None, pd.DataFrame | None]:
        """Return ``(config, replications)`` of ``run``; ``None`` for a file it lacks or that is unreadable."""
        key = str(run.info.run_id)
        if key not in self._memo:
            import yaml
            from mlflow.exceptions import MlflowException

            # a run that failed early lacks its files (MLflow: "No such artifact")
            unreadable = (OSError, ValueError, yaml.YAMLError, MlflowException)
            config: dict[str, Any] | None = None
            reps: pd.DataFrame | None = None
            with self.tracker.run_artifacts(run) as fetch:
                try:
                    config = yaml.safe_load(fetch("config.yaml").read_text()) or {}
                except unreadable:
                    pass
                try:
                    reps = pd.read_parquet(fetch("replications.parquet"))
                except unreadable:
                    pass
            self._memo[key] = (config, reps)
        return self._memo[key]


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
    for label, run in _cell_runs(tracker, sweep_id):
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
            f"{r['rmse']:>9.4f}{_coverage(r):>25}"
            f"{r['ci_width']:>10.4f}{_count(r['reps']):>6}{_count(r['n_failed']):>7}{r['seconds']:>8.1f}"
            + (f"  {r['plan'] or '-'}" if planned else "")
        )
    return "\n".join(lines)


def _count(value: float) -> int:
    return int(value) if pd.notna(value) else 0


def _coverage(row: pd.Series) -> str:
    """``coverage [lower, upper]`` (the Wilson interval), or ``nan``."""
    if pd.isna(row["coverage"]):
        return "nan"
    return f"{row['coverage']:.3f} [{row['coverage_lower']:.3f}, {row['coverage_upper']:.3f}]"


# --------------------------------------------------------------------------------------------
# Common random numbers: cells compared on the draws every one of them analysed
# --------------------------------------------------------------------------------------------

COMMON_COLUMNS = (
    "reps",
    "n_failed",
    "n_common",
    "bias",
    "bias_mcse",
    "bias_diff",
    "bias_diff_mcse",
    "rmse",
    "rmse_diff",
    "rmse_diff_mcse",
    "rel_precision",
    "rel_precision_mcse",
    "emp_se",
    "mean_se",
    "coverage",
    "coverage_lower",
    "coverage_upper",
    "ci_width",
)
"""Columns of :func:`common_draws` (after ``cell``)."""


def common_draws(cells: Mapping[str, pd.DataFrame], reference: str | None = None) -> pd.DataFrame:
    r"""Compare cells that analysed the same simulated datasets on the draws all of them got through.

    Under ``mc.common_random_numbers`` replication :math:`r` of every cell of a study
    analyses the same draw. Each cell's own metrics are over its own successful replications,
    so cells that fail on different draws (typically the hard ones) are compared on different
    datasets. Here every cell is summarised (:func:`causalkit.montecarlo.summarise`) on
    :math:`C`, the replications that succeeded in *every* cell (``n_common`` = :math:`|C|`),
    beside its own ``reps`` and ``n_failed``. ``bias_diff`` is the paired difference of bias
    to the first cell, :math:`\overline{(\hat\theta_{ir}-\theta_i)-(\hat\theta_{1r}-\theta_1)}`
    over :math:`r \in C`, with MCSE :math:`\mathrm{sd}_r(\cdot)/\sqrt{|C|}`, which is
    smaller than the unpaired one by the correlation the common draws induce; ``rmse_diff``
    and ``rel_precision`` (% gain in precision) against the same reference carry paired MCSEs
    too (:func:`causalkit.performance.paired`, on the errors
    :math:`\hat\theta_{ir}-\theta_i`).

    Parameters
    ----------
    cells : mapping of str to DataFrame
        Cell name to its replications table (``replication``, ``estimate``, ``se``,
        ``ci_lower``, ``ci_upper``, ``truth``, ``error``), in display order.
    reference : str, optional
        The cell the others are compared with (default the first).

    Returns
    -------
    DataFrame
        One row per cell: ``cell`` and :data:`COMMON_COLUMNS`.

    Raises
    ------
    ConfigError
        A reference that names no cell.
    """
    if reference is not None and reference not in cells:
        raise ConfigError("--reference", f"one of the cells {', '.join(cells)}", reference)

    ok: dict[str, pd.DataFrame] = {}
    for name, table in cells.items():
        failed = table["error"].notna() if "error" in table else pd.Series(False, table.index)
        ok[name] = table[~failed.to_numpy()].set_index("replication")
    common = sorted(set.intersection(*(set(t.index) for t in ok.values()))) if ok else []
    measures: dict[str, dict[str, float]] = {}
    errors: dict[str, np.ndarray] = {}
    for name in cells:
        sub = ok[name].loc[common]
        col = {c: sub[c].to_numpy(dtype=float) for c in ("estimate", "se", "ci_lower", "ci_upper")}
        truths = sub["truth"].dropna() if "truth" in sub else pd.Series(dtype=float)
        truth = float(truths.iloc[0]) if len(truths) else None
        measures[name] = summarise(
            col["estimate"], col["se"], col["ci_lower"], col["ci_upper"], truth
        )
        errors[name] = col["estimate"] - (truth if truth is not None else np.nan)
    ref_err = errors[reference if reference is not None else next(iter(cells))] if cells else None
    rows = []
    for name, table in cells.items():
        assert ref_err is not None
        row = {
            "cell": name,
            "reps": len(table),
            "n_failed": len(table) - len(ok[name]),
            "n_common": len(common),
            **measures[name],
            **paired(errors[name], ref_err, 0.0),
        }
        rows.append({k: row.get(k, np.nan) for k in ("cell", *COMMON_COLUMNS)})
    return pd.DataFrame(rows, columns=["cell", *COMMON_COLUMNS])


def _draw_key(config: Mapping) -> str | None:
    """Return what defines a cell's draws under common random numbers (data, dgp, seed), or ``None``."""
    mc = config.get("mc", {})
    if not mc.get("common_random_numbers") or int(mc.get("reps", 1)) < 2:
        return None
    return json.dumps(
        {"data": config.get("data"), "dgp": config.get("dgp"), "seed": mc.get("seed")},
        sort_keys=True,
        default=str,
    )


def common_draws_tables(
    tracker: MlflowTracker,
    sweep_id: str,
    reference: str | None = None,
    files: CellFiles | None = None,
) -> list[pd.DataFrame]:
    """One :func:`common_draws` table per group of a sweep's cells that share their draws.

    Only Monte Carlo cells run with ``mc.common_random_numbers`` take part; a group needs at
    least two cells. Each cell's ``config.yaml`` and ``replications.parquet`` are read back
    from its run's artifacts, through ``files`` when given (a report shares one).
    """
    files = files or CellFiles(tracker)
    groups: dict[str, dict[str, pd.DataFrame]] = {}
    for _, run in _cell_runs(tracker, sweep_id):
        if run is None or run.info.status != "FINISHED":
            continue
        config, table = files.read(run)
        key = _draw_key(config) if config is not None else None
        if key is None or table is None:
            continue
        groups.setdefault(key, {})[run.info.run_name or run.info.run_id] = table
    shared = [cells for cells in groups.values() if len(cells) > 1]
    if reference is not None and not any(reference in cells for cells in shared):
        names = sorted(name for cells in shared for name in cells)
        raise ConfigError(
            "--reference", f"a cell run with common random numbers ({', '.join(names)})", reference
        )
    return [common_draws(cells, reference if reference in cells else None) for cells in shared]


def render_common_draws(table: pd.DataFrame) -> str:
    """Plain text of one :func:`common_draws` table."""
    w = max([34, *(len(str(c)) + 1 for c in table["cell"])])
    n_common = int(table["n_common"].iloc[0]) if len(table) else 0
    lines = [
        f"common random numbers: {len(table)} cells on the {n_common} draws every one analysed",
        f"{'cell':<{w}}{'reps':>6}{'failed':>7}{'common':>7}{'bias ± MCSE':>22}"
        f"{'bias vs ref ± paired':>24}{'RMSE vs ref ± paired':>24}{'% precision ± paired':>23}"
        f"{'emp SE':>9}{'mean SE':>9}{'coverage [95% Wilson]':>25}",
    ]
    for _, r in table.iterrows():
        lines.append(
            f"{str(r['cell']):<{w}}{_count(r['reps']):>6}{_count(r['n_failed']):>7}"
            f"{_count(r['n_common']):>7}{r['bias']:>+12.4f} ± {r['bias_mcse']:<7.4f}"
            f"{r['bias_diff']:>+14.4f} ± {r['bias_diff_mcse']:<7.4f}"
            f"{r['rmse_diff']:>+14.4f} ± {r['rmse_diff_mcse']:<7.4f}"
            f"{r['rel_precision']:>+13.1f} ± {r['rel_precision_mcse']:<7.1f}"
            f"{r['emp_se']:>9.4f}{r['mean_se']:>9.4f}{_coverage(r):>25}"
        )
    return "\n".join(lines)


def _common_draws_section(
    tracker: MlflowTracker,
    sweep_id: str,
    out: Path,
    reference: str | None = None,
    files: CellFiles | None = None,
) -> str:
    """Return the text of the sweep's common-random-numbers comparisons (``""`` without any).

    Their tables go to ``common_draws.csv`` (column ``group`` tells groups of shared draws apart).
    """
    tables = common_draws_tables(tracker, sweep_id, reference, files)
    out.mkdir(parents=True, exist_ok=True)
    if not tables:
        return ""
    pd.concat([t.assign(group=i) for i, t in enumerate(tables)], ignore_index=True).to_csv(
        out / "common_draws.csv", index=False
    )
    return "".join("\n\n" + render_common_draws(t) for t in tables)


NESTED_LOOP_MEASURES = ("bias", "rmse", "coverage")
"""Measures drawn as nested-loop plots when a sweep varies design factors."""


def _simulation_figures(
    tracker: MlflowTracker, done: pd.DataFrame, out: Path, files: CellFiles | None = None
) -> list[str]:
    """Write the measure forest plot, the nested-loop plots and one zip plot per Monte Carlo cell.

    Returns the files written (relative to ``out``). Zip plots need a cell's replications
    table and truth (``replications.parquet``, read through ``files``); cells without them
    get none.
    """
    from causalkit.plots import pyplot
    from causalkit.simplots import measures_plot, nested_loop_plot, zip_plot

    plt = pyplot()
    files = files or CellFiles(tracker)

    written: list[str] = []

    def save(fig: Any, name: str) -> None:
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(name)

    mc = done[done["reps"].fillna(0) > 1]
    if not len(mc):
        return written
    save(measures_plot(mc), "measures.png")
    factors = design_factors(done)
    if factors:
        scenarios = mc[factors].astype(str).drop_duplicates()
        if len(scenarios) > 1:
            for measure in NESTED_LOOP_MEASURES:
                if mc[measure].notna().any():
                    save(nested_loop_plot(mc, factors, measure), f"nested_loop_{measure}.png")
    for _, row in mc.iterrows():
        _, reps = files.read(tracker.client.get_run(row["run_id"]))
        if reps is None or "truth" not in reps:
            continue
        if "error" in reps:
            reps = reps[reps["error"].isna().to_numpy()]
        if not len(reps) or reps["truth"].isna().any():
            continue
        level = float(reps["level"].dropna().iloc[0]) if "level" in reps else 0.95
        safe = "".join(ch if ch.isalnum() or ch in "-_.=" else "_" for ch in str(row["cell"]))
        save(zip_plot(reps, None, level, str(row["cell"])), f"zip/{safe}.png")
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Write the latest (or given) sweep's table, plot and HTML page; return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m causalkit.report", description=__doc__)
    parser.add_argument(
        "--uri", default=None, help="MLflow tracking URI (default: sqlite:///runs/mlflow.db)"
    )
    parser.add_argument("--experiment", default="causalkit")
    parser.add_argument("--sweep", default=None, help="parent run id (default: the latest sweep)")
    parser.add_argument("--out", default="runs/report", help="directory for CSV and plot")
    parser.add_argument(
        "--reference",
        default=None,
        help="cell the common-random-numbers comparisons are against (default: the first)",
    )
    args = parser.parse_args(argv)
    try:
        from causalkit.tracking import default_uri

        uri = args.uri or default_uri()
        if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).exists():
            raise ConfigError("--uri", "an existing MLflow store (run an experiment first)", uri)
        tracker = MlflowTracker(TrackingConfig(uri=uri, experiment=args.experiment))
        sweep = args.sweep or latest_sweep(tracker)
        table = sweep_table(tracker, sweep)
        out = Path(args.out) / sweep
        files = CellFiles(tracker)
        common = _common_draws_section(tracker, sweep, out, args.reference, files)
    except CausalkitError as exc:
        print(f"causalkit.report: error: {exc}", file=sys.stderr)
        return 2
    name = tracker.client.get_run(sweep).info.run_name or sweep
    print(f"{name} ({sweep}): {len(table)} cells")
    text = render(table) + common
    print(text)
    (out / "comparison.txt").write_text(text + "\n")
    table.to_csv(out / "comparison.csv", index=False)
    done = table[table["status"] == "FINISHED"]
    png = None
    if len(done):
        from causalkit.plots import comparison_plot, pyplot

        plt = pyplot()
        fig = comparison_plot(done)
        fig.savefig(out / "comparison.png", dpi=110)
        plt.close(fig)
        png = (out / "comparison.png").read_bytes()
    written = _simulation_figures(tracker, done, out, files)
    embedded = [(f, (out / f).read_bytes()) for f in written]
    configs = [
        config
        for run_id in table["run_id"]
        if run_id
        for config in [files.read(tracker.client.get_run(run_id))[0]]
        if config is not None
    ]
    page = html_page(table, sweep, name, png, embedded, configs)
    (out / "report.html").write_text(page, encoding="utf-8")
    tracker.client.log_artifacts(sweep, str(out), artifact_path="report")
    print(
        f"written: {out}/comparison.txt, comparison.csv, report.html"
        + (", comparison.png" if png else "")
        + "".join(f", {f}" for f in written)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
