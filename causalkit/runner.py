"""Run one validated cell with tracking: the MLflow run opens, results are logged, status is final."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from causalkit.checkpoint import Checkpoint
from causalkit.config import RunConfig
from causalkit.errors import EstimationError
from causalkit.executors import Executor, open_executor
from causalkit.montecarlo import run_cell
from causalkit.results import CellResult
from causalkit.session import Session, default_session

__all__ = ["execute", "run_name", "install_sigterm_handler", "SWEEP_CELL_TAG"]

SWEEP_CELL_TAG = "causalkit.cell"
"""Prefix of a sweep parent run's tags ``causalkit.cell.<number>``: the run standing for each cell."""


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
    sweep_cell: int | None = None,
    notice: Callable[[str], object] | None = None,
    executor: Executor | None = None,
    progress: Callable[[int, int], None] | None = None,
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
    sweep_cell : int, optional
        The cell's number in the sweep: the parent run's tag ``causalkit.cell.<number>``
        names the run that stands for the cell (its own, or the earlier one it read back).
    notice : callable, optional
        Told, in one line, when a finished cell is read back instead of run.
    executor : LocalExecutor or DaskExecutor, optional
        Where the replications run (left open; a sweep's cells share one); default a new
        one for ``cfg.mc`` (:func:`causalkit.executors.open_executor`), closed at the end.
    progress : callable, optional
        Told ``(replications done, total)`` per chunk (default: a bar on a terminal).

    Returns
    -------
    CellResult
        The cell's result: run now, or read back from the store when this cell (same
        identity, :func:`causalkit.identity.cell_identity`, and replications) already
        finished, so that running a cell twice returns equal results while an edited input
        file or code change runs it again. ``mc.resume=false`` forces a fresh run.

    Notes
    -----
    The run ends FINISHED, FAILED (with the error as tag ``causalkit.error``) or KILLED; an
    exception is re-raised after the run is closed. A cell whose every replication failed is
    FAILED and raises :class:`EstimationError` with the first error. Runs of this cell left
    RUNNING by a dead process are marked KILLED; a Monte Carlo cell reuses its checkpointed
    replications (same identity) and removes its checkpoint when it completes. The run is
    created before any work, as the cell's claim: an identical cell started meanwhile waits
    for it and reads its result back instead of writing a second copy.
    """
    session = session if session is not None else default_session()
    axes = dict(axes or {})
    progress = progress if progress is not None else _progress_printer()
    if cfg.tracking.backend == "none":
        outcome = run_cell(cfg, session, progress, executor=executor)
        if outcome.failed:
            raise EstimationError(outcome.errors[0])
        return outcome

    from causalkit.identity import cell_identity
    from causalkit.tracking import MlflowTracker, cell_tags

    tracker = MlflowTracker(cfg.tracking, start_dir)
    identity = cell_identity(cfg, session.registry)

    def stand_for(run_id: str) -> None:  # the run the sweep's report shows for this cell
        if parent_run_id and sweep_cell is not None:
            tracker.set_tags(parent_run_id, {f"{SWEEP_CELL_TAG}.{sweep_cell}": run_id})

    def reuse(previous: Any) -> CellResult | None:
        try:
            result = tracker.read_back(previous, cfg)
        except Exception as exc:  # e.g. its artifacts were removed: run the cell again
            if notice is not None:
                notice(
                    f"cell's earlier run {previous.info.run_id} unreadable ({exc}); running it again"
                )
            return None
        stand_for(previous.info.run_id)
        if notice is not None:
            notice(
                f"cell {previous.info.run_name!r} already finished in MLflow run {previous.info.run_id} "
                f"(config hash {cfg.cell_hash}, identity {identity.key}); skipped, its result read back. "
                "Pass mc.resume=false to run it again."
            )
        return result

    if cfg.mc.resume:
        previous = tracker.find_finished(cfg, identity.key)  # also marks its dead runs KILLED
        result = reuse(previous) if previous is not None else None
        if result is not None:
            return result
    checkpoint = None
    if cfg.mc.reps > 1:
        checkpoint = Checkpoint.for_cell(tracker.start_dir, identity.key)
        if not cfg.mc.resume:
            checkpoint.clear()
    params = {k: v for k, v in axes.items() if not k.startswith("tracking.")}
    params["config_hash"] = cfg.cell_hash
    # The run is the cell's claim: an identical cell started later waits for it (_await_claims).
    tags = cell_tags(cfg, identity)
    local = cfg.mc.reps > 1 and executor is None and cfg.mc.executor == "local"
    if local:  # known before any work: no extra write
        tags |= executor_tags("local", cfg.mc.n_jobs)
    run_id = tracker.start_run(run_name(cfg, axes), params, tags, parent_run_id)
    try:
        stand_for(run_id)
        if cfg.mc.resume:
            previous = _await_claims(tracker, cfg, identity.key, run_id, notice)
            result = reuse(previous) if previous is not None else None
            if result is not None:
                tracker.client.delete_run(run_id)  # no second copy of a finished cell
                return result
        with open_executor(cfg, session, executor) as pool, tracker.heartbeat(run_id):
            if cfg.mc.reps > 1 and not local:
                tracker.set_tags(run_id, executor_tags(pool.name, pool.workers))
            outcome = run_cell(cfg, session, progress, checkpoint, pool)
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
        if checkpoint is not None:
            checkpoint.clear()
        raise EstimationError(outcome.errors[0])
    tracker.end_run(run_id, "FINISHED")
    if checkpoint is not None:
        checkpoint.clear()
    return outcome


def executor_tags(executor: str, workers: int) -> dict[str, str]:
    """Return the tags recording where a cell's replications ran: executor and number of workers."""
    return {"causalkit.executor": executor, "causalkit.workers": str(workers)}


def _await_claims(
    tracker: Any,
    cfg: RunConfig,
    identity: str,
    run_id: str,
    notice: Callable[[str], object] | None,
    poll: float = 0.5,
) -> Any | None:
    """Wait while an identical cell (same identity and replications) claimed earlier is RUNNING.

    Returns the cell's FINISHED run once there is one (the earlier claim finished, or one
    finished between this cell's first look and its claim), else ``None`` when this claim is
    the earliest live one and runs the cell. Claims are ordered by start time, then run id.
    One search per poll (:meth:`~causalkit.tracking.MlflowTracker.cell_runs`), which also
    marks dead claims KILLED (a dead process on this host, no heartbeat from another), so a
    killed run never blocks the cell.
    """
    told = False
    while True:
        runs = tracker.cell_runs(identity)
        finished = tracker.finished(runs, cfg)
        if finished is not None:
            return finished
        reps = str(cfg.mc.reps)
        running = [
            r
            for r in runs
            if r.info.status == "RUNNING" and r.data.tags.get("causalkit.reps") == reps
        ]
        order = {r.info.run_id: (r.info.start_time, r.info.run_id) for r in running}
        mine = order.get(run_id)
        earlier = [r for r in running if mine is not None and order[r.info.run_id] < mine]
        if not earlier:
            return None
        if not told and notice is not None:
            first = earlier[0]
            notice(
                f"an identical cell is running in MLflow run {first.info.run_id} "
                f"(pid {first.data.tags.get('causalkit.pid')}); waiting to read its result back"
            )
            told = True
        time.sleep(poll)
