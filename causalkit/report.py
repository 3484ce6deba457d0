"""``python -m causalkit.report``: the comparison table and plot of a sweep, read back from MLflow."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from causalkit.config import TrackingConfig
from causalkit.errors import CausalkitError, ConfigError
from causalkit.report_common_draws import (
    COMMON_COLUMNS,
    common_draws,
    common_draws_section,
    common_draws_tables,
    render_common_draws,
)
from causalkit.report_figures import NESTED_LOOP_MEASURES, simulation_figures
from causalkit.report_page import html_page
from causalkit.report_runs import NOT_RUN, CellFiles, latest_sweep
from causalkit.report_table import COLUMNS, design_factors, plan_outcome, render, sweep_table
from causalkit.tracking import MlflowTracker

__all__ = [
    "CellFiles",
    "html_page",
    "sweep_table",
    "latest_sweep",
    "main",
    "common_draws",
    "common_draws_tables",
    "render_common_draws",
    "COLUMNS",
    "COMMON_COLUMNS",
    "NESTED_LOOP_MEASURES",
    "NOT_RUN",
    "design_factors",
    "plan_outcome",
    "render",
]


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
        common = common_draws_section(tracker, sweep, out, args.reference, files)
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
    written = simulation_figures(tracker, done, out, files)
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
