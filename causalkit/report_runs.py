"""A sweep's cell runs and their files (``config.yaml``, ``replications.parquet``), read back from MLflow."""

from __future__ import annotations

from typing import Any

import pandas as pd

from causalkit.errors import ConfigError
from causalkit.runner import SWEEP_CELL_TAG
from causalkit.tracking import SWEEP_TAG, MlflowTracker

__all__ = ["NOT_RUN", "CellFiles", "cell_runs", "latest_sweep"]


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


def cell_runs(tracker: MlflowTracker, sweep_id: str) -> list[tuple[str, Any]]:
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
