"""``python -m causalkit.report``: the comparison table and plot of a sweep, read back from MLflow."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from causalkit.config import TrackingConfig
from causalkit.errors import CausalkitError, ConfigError
from causalkit.results import CELL_METRICS
from causalkit.tracking import SWEEP_TAG, MlflowTracker

__all__ = ["sweep_table", "latest_sweep", "main"]

_NOT_SHOWN = frozenset({"mean_estimate", "emp_se_mcse", "mean_se_mcse", "ci_width_mcse"})
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


def _cell_runs(tracker: MlflowTracker, sweep_id: str) -> list:
    """Find the run standing for each cell of a sweep: its latest FINISHED run by config hash.

    Cells skipped on a resumed sweep live in an earlier run; each cell appears exactly once.
    """
    parent = tracker.client.get_run(sweep_id)
    hashes = [h for h in parent.data.tags.get("causalkit.cell_hashes", "").split(",") if h]
    exp = [tracker.experiment_id()]
    if not hashes:
        return list(
            tracker.client.search_runs(
                exp,
                f"tags.mlflow.parentRunId = '{sweep_id}'",
                max_results=10000,
                order_by=["attributes.start_time ASC"],
            )
        )
    chosen = []
    for h in dict.fromkeys(hashes):
        found = tracker.client.search_runs(
            exp,
            f"tags.`causalkit.config_hash` = '{h}'",
            max_results=200,
            order_by=["attributes.start_time DESC"],
        )
        runs = [r for r in found if "sweep" not in r.data.tags.get("causalkit.kind", "")]
        if not runs:
            continue
        finished = [r for r in runs if r.info.status == "FINISHED"]
        mine = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == sweep_id]
        chosen.append((finished or mine or runs)[0])
    return chosen


def sweep_table(tracker: MlflowTracker, sweep_id: str) -> pd.DataFrame:
    """One row per cell of the sweep: its axes, plugins, status and Monte Carlo metrics."""
    rows = []
    for run in _cell_runs(tracker, sweep_id):
        m = run.data.metrics
        row = {
            "cell": run.info.run_name,
            "estimator": run.data.tags.get("causalkit.estimator"),
            "inference": run.data.tags.get("causalkit.inference"),
            "status": run.info.status,
        }
        if "bias" not in m and "estimate" in m:  # single-replication cells
            m = {**m, "bias": m["estimate"] - m.get("truth", float("nan")), "reps": 1}
        for col in COLUMNS[3:]:
            row[col] = m.get(col, float("nan"))
        row["error"] = run.data.tags.get("causalkit.error", "")
        row["run_id"] = run.info.run_id
        rows.append(row)
    return pd.DataFrame(rows, columns=["cell", *COLUMNS, "error", "run_id"])


def render(table: pd.DataFrame) -> str:
    """Plain-text table: bias ± MCSE, RMSE, coverage ± MCSE, CI width, seconds.

    The cell column is as wide as the longest cell name: names are the sweep axes, and cutting
    them hides the axis that tells the cells apart.
    """
    w = max([34, *(len(str(c)) + 1 for c in table["cell"])])
    lines = [
        f"{'cell':<{w}}{'status':<10}{'bias ± MCSE':>22}{'RMSE':>9}{'coverage ± MCSE':>18}{'CI width':>10}{'reps':>6}{'sec':>8}"
    ]
    for _, r in table.iterrows():
        lines.append(
            f"{str(r['cell']):<{w}}{r['status']:<10}{r['bias']:>+12.4f} ± {r['bias_mcse']:<7.4f}"
            f"{r['rmse']:>9.4f}{r['coverage']:>10.3f} ± {r['coverage_mcse']:<5.3f}{r['ci_width']:>10.4f}"
            f"{int(r['reps']) if pd.notna(r['reps']) else 0:>6}{r['seconds']:>8.1f}"
        )
    return "\n".join(lines)


def html_page(table: pd.DataFrame, sweep_id: str, sweep_name: str, png: bytes | None) -> str:
    """Build a self-contained HTML report: the comparison table and the embedded comparison figure."""
    import base64
    import html

    shown = table.drop(columns=["run_id"], errors="ignore")
    body = shown.to_html(
        index=False, float_format=lambda v: f"{v:.4g}", na_rep="", border=0, classes="cells"
    )
    img = (
        f'<img alt="comparison" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        if png
        else "<p>No finished cells to plot.</p>"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>causalkit sweep {html.escape(sweep_id)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;color:#222}} table.cells{{border-collapse:collapse;font-size:.9em}}
table.cells th,table.cells td{{padding:.3em .6em;border-bottom:1px solid #ddd;text-align:right}}
table.cells td:first-child,table.cells th:first-child{{text-align:left}} img{{max-width:100%}}</style></head>
<body><h1>causalkit sweep</h1><p>{html.escape(sweep_name)}<br>parent run <code>{html.escape(sweep_id)}</code>,
{len(table)} cells. Bias and coverage carry their Monte Carlo standard errors (Morris, White &amp; Crowther 2019);
the coverage panel shades the nominal level ± 1.96 binomial MCSE.</p>
{body}
<h2>Comparison</h2>{img}
</body></html>
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Write the latest (or given) sweep's table, plot and HTML page; return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m causalkit.report", description=__doc__)
    parser.add_argument(
        "--uri", default=None, help="MLflow tracking URI (default: sqlite:///runs/mlflow.db)"
    )
    parser.add_argument("--experiment", default="causalkit")
    parser.add_argument("--sweep", default=None, help="parent run id (default: the latest sweep)")
    parser.add_argument("--out", default="runs/report", help="directory for CSV and plot")
    args = parser.parse_args(argv)
    try:
        from causalkit.tracking import default_uri

        uri = args.uri or default_uri()
        if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).exists():
            raise ConfigError("--uri", "an existing MLflow store (run an experiment first)", uri)
        tracker = MlflowTracker(TrackingConfig(uri=uri, experiment=args.experiment))
        sweep = args.sweep or latest_sweep(tracker)
        table = sweep_table(tracker, sweep)
    except CausalkitError as exc:
        print(f"causalkit.report: error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out) / sweep
    out.mkdir(parents=True, exist_ok=True)
    name = tracker.client.get_run(sweep).info.run_name or sweep
    print(f"{name} ({sweep}): {len(table)} cells")
    text = render(table)
    print(text)
    (out / "comparison.txt").write_text(text + "\n")
    table.to_csv(out / "comparison.csv", index=False)
    done = table[table["status"] == "FINISHED"]
    png = None
    if len(done):
        import matplotlib.pyplot as plt

        from causalkit.plots import comparison_plot

        fig = comparison_plot(done)
        fig.savefig(out / "comparison.png", dpi=110)
        plt.close(fig)
        png = (out / "comparison.png").read_bytes()
    (out / "report.html").write_text(html_page(table, sweep, name, png))
    tracker.client.log_artifacts(sweep, str(out), artifact_path="report")
    print(
        f"written: {out}/comparison.txt, comparison.csv, report.html"
        + (", comparison.png" if png else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
