"""The simulation figures of a sweep's report: measure forest, nested-loop and zip plots."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from causalkit.report_runs import CellFiles
from causalkit.report_table import design_factors

if TYPE_CHECKING:
    from causalkit.tracking import MlflowTracker

__all__ = ["NESTED_LOOP_MEASURES", "simulation_figures"]


NESTED_LOOP_MEASURES = ("bias", "rmse", "coverage")
"""Measures drawn as nested-loop plots when a sweep varies design factors."""


def simulation_figures(
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
