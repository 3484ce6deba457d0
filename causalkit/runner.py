"""Run one validated cell with tracking: the MLflow run opens, results are logged, status is final."""

from __future__ import annotations

import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from causalkit.checkpoint import Checkpoint
from causalkit.config import RunConfig
from causalkit.errors import EstimationError
from causalkit.montecarlo import CellOutcome, run_cell
from causalkit.registry import Registry, default_registry

__all__ = ["execute", "run_name", "install_sigterm_handler", "SkippedCell"]


def run_name(cfg: RunConfig, axes: Mapping[str, str]) -> str:
    """Runs are named after their sweep axes (or the estimator when there are none)."""
    if cfg.tracking.run_name:
        return cfg.tracking.run_name
    shown = [f"{k}={v}" for k, v in axes.items() if not k.startswith("tracking.")]
    return ",".join(shown) if shown else cfg.estimator.name


def install_sigterm_handler() -> None:
    """Turn SIGTERM into an exception so open runs are closed as KILLED, never left RUNNING."""

    def _raise(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        signal.signal(signal.SIGTERM, _raise)
    except ValueError:  # not in the main thread
        pass


def _progress_printer() -> Callable[[int, int], None] | None:
    from causalkit.progress import bar

    state: dict[str, object] = {}

    def show(done: int, total: int) -> None:
        if "bar" not in state:
            state["bar"] = bar(total, "replications")
        b = state["bar"]
        if b is None:
            return
        b.update(done - b.n)  # type: ignore[attr-defined]
        if done >= total:
            b.close()  # type: ignore[attr-defined]

    return show


@dataclass(frozen=True)
class SkippedCell:
    """A cell that already has a FINISHED run with the same config hash and replications."""

    config: RunConfig
    run_id: str
    run_name: str
    metrics: dict[str, float]

    def summary(self) -> str:
        return (f"cell {self.run_name!r} already finished in MLflow run {self.run_id} "
                f"(config hash {self.config.cell_hash}); skipped. Pass mc.resume=false to run it again.")


def execute(
    cfg: RunConfig,
    axes: Mapping[str, str] | None = None,
    registry: Registry | None = None,
    start_dir: Path | None = None,
) -> CellOutcome | SkippedCell:
    """Run a cell; with tracking, log it as one MLflow run (child of the sweep's parent run).

    The run ends FINISHED, FAILED (with the error as tag ``causalkit.error``) or KILLED; an
    exception is re-raised after the run is closed. A cell whose every replication failed is
    FAILED and raises :class:`EstimationError` with the first error.

    Resumable: runs of this cell left RUNNING by a dead process are marked KILLED; a cell with a
    FINISHED run of the same config hash and replications is skipped (``mc.resume=false``
    forces a fresh run); a Monte Carlo cell reuses its checkpointed replications.
    """
    registry = registry or default_registry()
    axes = dict(axes or {})
    if cfg.tracking.backend == "none":
        outcome = run_cell(cfg, registry, _progress_printer())
        if outcome.failed:
            raise EstimationError(outcome.errors[0])
        return outcome

    from causalkit.tracking import MlflowTracker, cell_tags

    tracker = MlflowTracker(cfg.tracking, start_dir)
    previous = tracker.find_finished(cfg)  # also marks this cell's dead runs KILLED
    if cfg.mc.resume and previous is not None:
        return SkippedCell(cfg, previous.info.run_id, previous.info.run_name, dict(previous.data.metrics))
    checkpoint = None
    if cfg.mc.reps > 1:
        checkpoint = Checkpoint.for_cell(tracker.start_dir, cfg.cell_hash)
        if not cfg.mc.resume:
            checkpoint.clear()
    params = {k: v for k, v in axes.items() if not k.startswith("tracking.")}
    params["config_hash"] = cfg.cell_hash
    run_id = tracker.start_run(run_name(cfg, axes), params, cell_tags(cfg), cfg.tracking.parent_run_id)
    try:
        outcome = run_cell(cfg, registry, _progress_printer(), checkpoint)
        tracker.log_outcome(run_id, cfg, outcome, registry.get("estimator", cfg.estimator.name))
    except KeyboardInterrupt as exc:
        tracker.end_run(run_id, "KILLED", error=f"interrupted: {exc}")
        raise
    except BaseException as exc:
        tracker.end_run(run_id, "FAILED", error=f"{type(exc).__name__}: {exc}")
        raise
    if outcome.failed:
        tracker.end_run(run_id, "FAILED", error=outcome.errors[0])
        raise EstimationError(outcome.errors[0])
    tracker.end_run(run_id, "FINISHED")
    return outcome
