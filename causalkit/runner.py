"""Run one validated cell with tracking: the MLflow run opens, results are logged, status is final."""

from __future__ import annotations

import signal
import time
import warnings
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from causalkit.errors import EstimationError, Interrupted

if TYPE_CHECKING:  # the command line imports this module for its signal handler only
    from causalkit.config import RunConfig
    from causalkit.executors import Executor
    from causalkit.results import CellResult
    from causalkit.session import Session

__all__ = [
    "execute",
    "run_name",
    "sweep_name",
    "varying_axes",
    "install_sigterm_handler",
    "SWEEP_CELL_TAG",
]

SWEEP_CELL_TAG = "causalkit.cell"
"""Prefix of a sweep parent run's tags ``causalkit.cell.<number>``: the run standing for each cell."""


def _named(key: str) -> bool:
    """Whether an override may name a run (tracking settings and ``mc.resume`` never do)."""
    return not key.startswith("tracking.") and key != "mc.resume"


def _short_keys(keys: Collection[str]) -> dict[str, str]:
    """Each key's last dotted part (``dgp.n`` -> ``n``), the whole key where parts collide."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (t if last.count(t) == 1 else k) for k, t in zip(keys, last, strict=True)}


def varying_axes(jobs: Sequence[Sequence[str]]) -> dict[str, list[str]]:
    """Return the keys whose values differ between a sweep's jobs, with their values in order.

    ``jobs`` are the jobs' overrides (``key=value``); tracking settings and ``mc.resume``
    are left out.
    """
    values: dict[str, list[str]] = {}
    for job in jobs:
        for item in job:
            key, _, value = item.partition("=")
            seen = values.setdefault(key.lstrip("+~"), [])
            if value not in seen:
                seen.append(value)
    return {k: v for k, v in values.items() if len(v) > 1 and _named(k)}


def run_name(
    cfg: RunConfig, axes: Mapping[str, str], varying: Collection[str] | None = None
) -> str:
    """Name a run for people: ``itt · 200 reps``, ``microsynth on panel.csv``, ``estimator=itt · n=500``.

    Parameters
    ----------
    cfg : RunConfig
        The cell; its ``tracking.run_name``, when set, is the name.
    axes : mapping of str to str
        The cell's overrides (they stay the run's parameters, whatever its name).
    varying : collection of str, optional
        The keys that differ between the cells of its sweep (:func:`varying_axes`): a sweep
        cell is named by its values of these, short. Without them (a single run, or a sweep
        varying nothing that names a run) the name says the estimator and the replications
        of a simulation, or the estimator and the file of a real analysis.
    """
    if cfg.tracking.run_name:
        return cfg.tracking.run_name
    keys = [k for k in axes if k in (varying or ()) and _named(k)]
    if keys:
        short = _short_keys(keys)
        return " · ".join(f"{short[k]}={axes[k]}" for k in keys)
    path = getattr(cfg.data.params, "path", None)
    source = f" on {Path(path).name}" if path else ""
    if cfg.dgp.name == "none":
        return f"{cfg.estimator.name}{source or ' on ' + cfg.data.name}"
    reps = cfg.mc.reps
    return f"{cfg.estimator.name} · {reps:,} rep{'s' if reps != 1 else ''}{source}"


def sweep_name(jobs: Sequence[Sequence[str]]) -> str:
    """Name a sweep's parent run by what varies: ``sweep: estimator ∈ {naive, itt, microsynth}``."""
    axes = varying_axes(jobs)
    short = _short_keys(list(axes))
    shown = " × ".join(f"{short[k]} ∈ {{{', '.join(v)}}}" for k, v in axes.items())
    return f"sweep: {shown}" if shown else "sweep"


def install_sigterm_handler() -> None:
    """Turn SIGINT (Ctrl-C) and SIGTERM into :class:`~causalkit.errors.Interrupted`.

    Open runs are then closed as KILLED with how far they got, never left RUNNING, and the
    command line tells which signal stopped it (exit code 130 or 143).
    """

    def _raise(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, _raise)
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
    varying: Collection[str] | None = None,
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
        Told, in one line, when a finished cell is read back instead of run (default: a
        :class:`~causalkit.results.CausalkitWarning`).
    executor : LocalExecutor or DaskExecutor, optional
        Where the replications run (left open; a sweep's cells share one); default a new
        one for ``cfg.mc`` (:func:`causalkit.executors.open_executor`), closed at the end.
    progress : callable, optional
        Told ``(replications done, total)`` per chunk (default: a bar on a terminal).
    varying : collection of str, optional
        The keys that differ between the cells of its sweep: they name the run (:func:`run_name`).

    Returns
    -------
    CellResult
        The cell's result: run now, or read back from the store when this cell (same
        identity, :func:`causalkit.identity.cell_identity`, and replications) already
        finished, so that running a cell twice returns equal results while an edited input
        file or code change runs it again. ``mc.resume=false`` forces a fresh run.

    Notes
    -----
    The run ends FINISHED, FAILED (with the error as tag ``causalkit.error``) or KILLED (Ctrl-C
    or SIGTERM: :class:`~causalkit.errors.Interrupted`, whose one line, how far the cell got,
    is the tag; no metrics are logged); an exception is re-raised after the run is closed. A
    sweep's cell read back from an earlier run is recorded under the sweep's parent as a light
    run tagged ``causalkit.reused_from`` (:meth:`~causalkit.tracking.MlflowTracker.log_reused`),
    which stands for the cell in the sweep's report. A cell whose every replication failed is
    FAILED and raises :class:`EstimationError` with the first error. Runs of this cell left
    RUNNING by a dead process are marked KILLED; a Monte Carlo cell reuses its checkpointed
    replications (same identity) and removes its checkpoint when it completes. The run is
    created before any work, as the cell's claim: an identical cell started meanwhile waits
    for it and reads its result back instead of writing a second copy.
    """
    from causalkit.checkpoint import Checkpoint
    from causalkit.executors import open_executor
    from causalkit.montecarlo import run_cell
    from causalkit.results import CausalkitWarning
    from causalkit.session import default_session

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

    params = {k: v for k, v in axes.items() if not k.startswith("tracking.")}
    params["config_hash"] = cfg.cell_hash
    name = run_name(cfg, axes, varying)

    def reuse(previous: Any) -> CellResult | None:
        try:
            result = tracker.read_back(previous, cfg)
        except Exception as exc:  # e.g. its artifacts were removed: run the cell again
            if notice is not None:
                notice(
                    f"cell's earlier run {previous.info.run_id} unreadable ({exc}); running it again"
                )
            return None
        source = previous.info.run_id
        if parent_run_id and sweep_cell is not None:  # under this sweep, as in its report
            stand_for(tracker.log_reused(previous, name, params, cell_tags(cfg), parent_run_id))
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(previous.info.end_time / 1000))
        said = (
            f"cell {name!r} already finished in MLflow run {source} on {when}: its stored result "
            "is reused (same config, input files and code); add mc.resume=false to run it afresh"
        )
        if notice is not None:
            notice(said)
        else:  # a notebook shows it
            warnings.warn(said, CausalkitWarning, stacklevel=4)
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

    def resumed(saved: int, total: int) -> None:
        if notice is not None:
            notice(f"resuming: {saved:,} of {total:,} replications read from the checkpoint")

    # The run is the cell's claim: an identical cell started later waits for it (_await_claims).
    tags = cell_tags(cfg, identity)
    local = cfg.mc.reps > 1 and executor is None and cfg.mc.executor == "local"
    if local:  # known before any work: no extra write
        tags |= executor_tags("local", cfg.mc.n_jobs)
    run_id = tracker.start_run(name, params, tags, parent_run_id, claim=True)
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
            outcome = run_cell(cfg, session, progress, checkpoint, pool, resumed)
        tracker.log_outcome(
            run_id, cfg, outcome, session.registry.get("estimator", cfg.estimator.name)
        )
    except KeyboardInterrupt as exc:
        stopped = Interrupted.of(exc)
        tracker.end_run(run_id, "KILLED", error=str(stopped))
        raise stopped from None
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
    the earliest live one and runs the cell. One search per poll
    (:meth:`~causalkit.tracking.MlflowTracker.cell_runs`), which also marks dead claims KILLED
    (a dead process on this host, no heartbeat from another), so a killed run never blocks the
    cell.

    Notes
    -----
    Claims are ordered by :data:`~causalkit.tracking.CLAIM_TAG`, the time each process read
    *after* its run was stored, then by run id; a claim still without it (stored, tag not yet
    written) is waited for. So exactly one of any set of identical claims runs: if claim
    :math:`A` reads its time before :math:`B` does, :math:`A`'s run is stored before :math:`B`
    searches, and :math:`B` waits for :math:`A`'s time and then for :math:`A`. Ordering by
    the run's ``start_time`` instead, read *before* the run is stored, let two processes both
    run when the one with the earlier start time was stored after the other had searched.
    Across hosts this needs clocks that agree to better than the time it takes to store a run.
    """
    from causalkit.tracking import CLAIM_TAG

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
        order = {
            r.info.run_id: (float(r.data.tags.get(CLAIM_TAG, "inf")), r.info.run_id)
            for r in running
        }
        mine = order.get(run_id)
        earlier = [
            r
            for r in running
            if mine is not None
            and r.info.run_id != run_id
            and (CLAIM_TAG not in r.data.tags or order[r.info.run_id] < mine)
        ]
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
