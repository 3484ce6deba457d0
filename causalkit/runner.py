"""Run one validated cell with tracking: the MLflow run opens, results are logged, status is final."""

from __future__ import annotations

import signal
from collections.abc import Callable, Mapping
from pathlib import Path

from causalkit.checkpoint import Checkpoint
from causalkit.config import RunConfig
from causalkit.errors import EstimationError
from causalkit.montecarlo import run_cell
from causalkit.results import CellResult
from causalkit.session import Session, default_session

__all__ = ["execute", "run_name", "install_sigterm_handler"]


def run_name(cfg: RunConfig, axes: Mapping[str, str]) -> str:
    """Name a run after its sweep axes (or the estimator when there are none)."""
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


def execute(
    cfg: RunConfig,
    axes: Mapping[str, str] | None = None,
    session: Session | None = None,
    start_dir: Path | None = None,
    *,
    parent_run_id: str | None = None,
    notice: Callable[[str], object] | None = None,
) -> CellResult:
    """Run a cell; with tracking, log it as one MLflow run (a child of the sweep's parent run).

    Parameters
    ----------
    cfg : RunConfig
        The validated cell.
    axes : mapping of str to str, optional
        The cell's overrides (its sweep axes): the run's name and parameters.
    session : Session, optional
        Registry, draw cache and thread policy of the run (default
        :func:`~causalkit.session.default_session`).
    start_dir : Path, optional
        Where ``runs/`` lives (default: the working directory).
    parent_run_id : str, optional
        The sweep's parent MLflow run (state of this run, not configuration).
    notice : callable, optional
        Told, in one line, when a finished cell is read back instead of run.

    Returns
    -------
    CellResult
        The cell's result: run now, or read back from the store when this cell (same config
        hash and replications) already finished, so that running a cell twice returns equal
        results. ``mc.resume=false`` forces a fresh run.

    Notes
    -----
    The run ends FINISHED, FAILED (with the error as tag ``causalkit.error``) or KILLED; an
    exception is re-raised after the run is closed. A cell whose every replication failed is
    FAILED and raises :class:`EstimationError` with the first error. Runs of this cell left
    RUNNING by a dead process are marked KILLED; a Monte Carlo cell reuses its checkpointed
    replications.
    """
    session = session if session is not None else default_session()
    axes = dict(axes or {})
    if cfg.tracking.backend == "none":
        outcome = run_cell(cfg, session, _progress_printer())
        if outcome.failed:
            raise EstimationError(outcome.errors[0])
        return outcome

    from causalkit.tracking import MlflowTracker, cell_tags

    tracker = MlflowTracker(cfg.tracking, start_dir)
    previous = tracker.find_finished(cfg)  # also marks this cell's dead runs KILLED
    if cfg.mc.resume and previous is not None:
        result = tracker.read_back(previous, cfg)
        if notice is not None:
            notice(
                f"cell {previous.info.run_name!r} already finished in MLflow run {previous.info.run_id} "
                f"(config hash {cfg.cell_hash}); skipped, its result read back. "
                "Pass mc.resume=false to run it again."
            )
        return result
    checkpoint = None
    if cfg.mc.reps > 1:
        checkpoint = Checkpoint.for_cell(tracker.start_dir, cfg.cell_hash)
        if not cfg.mc.resume:
            checkpoint.clear()
    params = {k: v for k, v in axes.items() if not k.startswith("tracking.")}
    params["config_hash"] = cfg.cell_hash
    run_id = tracker.start_run(run_name(cfg, axes), params, cell_tags(cfg), parent_run_id)
    try:
        outcome = run_cell(cfg, session, _progress_printer(), checkpoint)
        tracker.log_outcome(
            run_id, cfg, outcome, session.registry.get("estimator", cfg.estimator.name)
        )
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
