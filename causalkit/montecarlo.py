"""Seeds, the replication loop (serial or in worker processes) and Monte Carlo metrics with MCSEs."""

from __future__ import annotations

import functools
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from causalkit.checkpoint import Checkpoint
from causalkit.config import RunConfig
from causalkit.contracts import Dataset, DiagnosticValue, Simulated
from causalkit.errors import CausalkitError, Interrupted
from causalkit.executors import DaskExecutor, Executor, open_executor
from causalkit.inputs import checked_fit
from causalkit.performance import summarise, wilson_interval
from causalkit.planning import Plan
from causalkit.progress import quiet
from causalkit.registry import Registry
from causalkit.results import CellResult, EffectResult, build_result
from causalkit.session import Session, blas_threads, default_session

__all__ = [
    "replication_seed",
    "replication_stream",
    "run_replication",
    "run_cell",
    "refusal",
    "summarise",
    "wilson_interval",
    "cell_result",
    "one_blas_thread",
    "exit_with_parent",
]

_MASK32 = (1 << 32) - 1


@functools.lru_cache(maxsize=64)
def _entropy(seed: int, cell_hash: str) -> tuple[int, ...]:
    h = int(cell_hash, 16)
    words = [seed & _MASK32, seed >> 32]
    while h:
        words.append(h & _MASK32)
        h >>= 32
    return tuple(words)


def replication_seed(seed: int, cell_hash: str, r: int) -> np.random.SeedSequence:
    """Seed of replication ``r``: child ``r`` of ``SeedSequence([seed, *hash words])``.

    Independent of the number of replications, of the worker that runs it and of the order
    of cells in a sweep; replications 0..R-1 of a longer run equal those of a shorter one.
    """
    return np.random.SeedSequence(entropy=_entropy(seed, cell_hash), spawn_key=(r,))


def replication_stream(seed: int, cell_hash: str, r: int, k: int) -> np.random.Generator:
    """Return the generator of stream ``k`` of replication ``r``: ``replication_seed(seed, cell_hash, r).spawn(k + 1)[k]``.

    Built directly from its spawn key ``(r, k)`` (what ``spawn`` does), without seeding the
    parent and its other children first; the same numbers, at a third of the cost.
    """
    ss = np.random.SeedSequence(entropy=_entropy(seed, cell_hash), spawn_key=(r, k))
    return np.random.Generator(np.random.PCG64(ss))


def _load_base(cfg: RunConfig, registry: Registry) -> Dataset | None:
    return cfg.data.build(registry).load()


def run_replication(cfg: RunConfig, r: int, base: Dataset | None, session: Session) -> EffectResult:
    """Simulate (or pass through) the data, fit, infer, and attach the truth.

    Every plugin comes from ``session.registry``: the registry the run was given.
    """
    registry = session.registry
    seed, cell = cfg.mc.seed, cfg.seed_hash
    sim = _simulate(cfg, r, base, session)
    estimator = cfg.estimator.build(registry)
    fit = checked_fit(estimator, sim.dataset, replication_stream(seed, cell, r, 1))
    outcome = cfg.inference.build(registry).infer(fit, replication_stream(seed, cell, r, 2))
    truth = sim.truth.for_estimand(fit.estimand, cfg.target)
    return build_result(cfg.estimator.name, fit, outcome, truth, sim.dataset.roles)


def _simulate(cfg: RunConfig, r: int, base: Dataset | None, session: Session) -> Simulated:
    """Replication ``r``'s draw (stream 0); with common random numbers seeded by the draw hash and shared."""
    dgp = cfg.dgp.build(session.registry)
    if not cfg.mc.common_random_numbers:
        return dgp.simulate(replication_stream(cfg.mc.seed, cfg.seed_hash, r, 0), base)
    key = (cfg.draw_hash, r)
    sim = session.draws.get(key)
    if sim is None:
        ss = replication_seed(cfg.mc.seed, cfg.draw_hash, r)
        sim = dgp.simulate(np.random.Generator(np.random.PCG64(ss)), base)
        session.draws.put(key, sim)
    return sim


@dataclass(frozen=True)
class _Row:
    r: int
    values: dict[str, DiagnosticValue | None]
    error: str | None


def one_blas_thread() -> Any:
    """One BLAS thread (:func:`causalkit.session.blas_threads` with 1), cheap to enter repeatedly.

    For plugins whose many small BLAS calls (e.g. bootstrap refits) only lose from thread
    hand-offs.
    """
    return blas_threads(1)


REFUSED = "inference.refused"
"""Row key of a replication whose inference withheld the headline's SE, CI and p-value (the
inference plugins' failure policy, e.g. too many failed bootstrap resamples)."""


def refusal(res: EffectResult) -> str | None:
    """Why the inference of ``res`` refused to report uncertainty for the headline, or ``None``.

    A refusal is declared by the inference (diagnostic ``refused``) and leaves the headline's
    SE NaN; its first warning says why.
    """
    if res.diagnostics.get(REFUSED) is not True or math.isfinite(res.se):
        return None
    why = [w for w in res.warnings if f"{res.inference}:" in w]
    return f"InferenceRefused: {why[0] if why else res.inference + ': no SE reported'}"


def _row(cfg: RunConfig, r: int, base: Dataset | None, session: Session) -> _Row:
    """One replication as a row; call inside ``session.threads()`` and ``quiet()`` (per chunk).

    A replication that raised keeps only its error; one whose inference refused (:func:`refusal`)
    keeps its values (the estimate is there) and the reason as its error, so it is counted as
    failed like one that raised.
    """
    try:
        res = run_replication(cfg, r, base, session)
    except CausalkitError as exc:
        return _Row(r, {}, f"{type(exc).__name__}: {exc}")
    except (ArithmeticError, ValueError, np.linalg.LinAlgError) as exc:
        return _Row(r, {}, f"{type(exc).__name__}: {exc}")
    return _Row(r, res.to_row(), refusal(res))


def _chunk_rows(
    cfg: RunConfig, rs: Sequence[int], base: Dataset | None, session: Session
) -> list[_Row]:
    """Replications ``rs`` in this process (the parent or a worker that was sent ``session``)."""
    with session.threads(), quiet():
        return [_row(cfg, r, base, session) for r in rs]


_WATCHED: list[int] = []


def exit_with_parent(parent: int | None = None, interval: float = 0.5) -> None:
    """Make this worker process exit as soon as its parent dies (kill -9 included).

    A daemon thread, started once per process, polls :func:`os.getppid`: when the parent
    dies the worker is re-parented and the pid changes, and the thread ends the process with
    ``os._exit``. Without it, worker pools outlive a killed parent until their idle timeout.
    It is the pool's initializer (:func:`run_cell`), so an idle worker exits too.

    Parameters
    ----------
    parent : int, optional
        The parent's pid as the parent saw it (default: :func:`os.getppid` now); a worker
        that starts after its parent died exits at once.
    interval : float
        Seconds between checks. A replication holding the GIL in one long C call delays the
        exit until the call returns.
    """
    if _WATCHED:
        return
    parent = os.getppid() if parent is None else parent
    _WATCHED.append(parent)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="causalkit-exit-with-parent", daemon=True).start()


def run_cell(
    cfg: RunConfig,
    session: Session | None = None,
    progress: Callable[[int, int], None] | None = None,
    checkpoint: Checkpoint | None = None,
    executor: Executor | None = None,
    resumed: Callable[[int, int], None] | None = None,
) -> CellResult:
    """Run every replication of a cell and summarise.

    With one replication the full :class:`EffectResult` is kept (and errors propagate to the
    caller). With several, each replication runs in isolation (``mc.n_jobs`` worker processes,
    each sent ``session``: its registry, an empty draw cache, its thread policy; or tasks on a
    Dask cluster with ``mc.executor=dask``, :mod:`causalkit.executors`); a failing replication
    is recorded with its error and counted, and results are bit-identical whatever the
    executor, the number of workers and the chunking. With a ``checkpoint``, finished
    replications are saved chunk by chunk as they arrive and reused when the cell is run
    again (``resumed`` is told how many, and of how many). ``session`` defaults to
    :func:`~causalkit.session.default_session`; ``executor`` (left open) to a new one for
    ``cfg.mc``, closed on return. Ctrl-C or SIGTERM raises :class:`~causalkit.errors.Interrupted`
    with the replications done and checkpointed.

    With ``mc.target_mcse`` the replications run in batches from ``mc.reps`` until every
    target is met or ``mc.max_reps`` (:class:`causalkit.planning.Plan`); the boundaries
    depend only on the rows before them, so where the cell stops is the same for any
    number of workers and after a resume. ``progress`` is then told the cap as the total
    until the cell stops.
    """
    session = session if session is not None else default_session()
    t0 = time.perf_counter()
    reps = cfg.mc.reps
    if reps == 1:
        try:
            base = _load_base(cfg, session.registry)
            with session.threads():
                res = run_replication(cfg, 0, base, session)
        except KeyboardInterrupt as exc:
            raise Interrupted.of(exc).counted(0, 1, None) from None
        seconds = time.perf_counter() - t0
        return _summarise_rows(cfg, [_Row(0, res.to_row(), None)], seconds, single=res)

    plan = Plan.of(cfg.mc)
    cap = reps if plan is None else plan.max_reps
    done: dict[int, _Row] = {}
    saved = 0  # replications in the checkpoint
    if checkpoint is not None:
        done = {
            r: _Row(r, values, error) for r, (values, error) in checkpoint.load().items() if r < cap
        }
        saved = len(done)
        if saved and resumed is not None:
            resumed(saved, cap)
    try:
        with open_executor(cfg, session, executor) as pool:
            # A cluster's workers load the cell's data themselves: the driver never ships it.
            base = None if isinstance(pool, DaskExecutor) else _load_base(cfg, session.registry)
            boundary: int | None = reps
            while boundary is not None:
                reps = boundary
                todo = [r for r in range(reps) if r not in done]
                for new in pool.run(_chunk_rows, _load_base, cfg, base, session, todo):
                    done.update({row.r: row for row in new})
                    if checkpoint is not None and checkpoint.save(
                        (row.r, row.values, row.error) for row in new
                    ):
                        saved += len(new)
                    if progress is not None:
                        progress(len(done), cap)
                boundary = None if plan is None else plan.next_boundary(reps, _metrics(done, reps))
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM, or a Dask executor stopped
        kept = saved if checkpoint is not None else None
        raise Interrupted.of(exc).counted(len(done), cap, kept) from None
    if plan is not None and progress is not None:
        progress(reps, reps)
    rows = [done[r] for r in range(reps)]
    seconds = time.perf_counter() - t0
    return _summarise_rows(cfg, rows, seconds)


def _table(rows: Sequence[_Row]) -> pd.DataFrame:
    return pd.DataFrame([{"replication": row.r, **row.values, "error": row.error} for row in rows])


def _metrics(done: dict[int, _Row], reps: int) -> dict[str, float]:
    """Return the metrics of replications ``0..reps-1`` (a planned cell's boundary)."""
    return _cell_metrics(_table([done[r] for r in range(reps)]))[0]


def _summarise_rows(
    cfg: RunConfig, rows: list[_Row], seconds: float, single: EffectResult | None = None
) -> CellResult:
    return cell_result(cfg, _table(rows), seconds, single)


def cell_result(
    cfg: RunConfig, table: pd.DataFrame, seconds: float, single: EffectResult | None = None
) -> CellResult:
    """Summarise a cell's replications table into its result (also how a finished cell is read back).

    Parameters
    ----------
    cfg : RunConfig
        The cell.
    table : DataFrame
        One row per replication (:meth:`EffectResult.to_row` plus ``replication``); failed
        replications carry their ``error`` (those whose inference refused keep their values).
        ``n_failed`` counts them and every metric is computed from the others
        (see :func:`summarise`).
    seconds : float
        Wall-clock time of the cell.
    single : EffectResult, optional
        The full result of a one-replication cell.
    """
    metrics, errors, first, truth = _cell_metrics(table)
    metrics["seconds"] = float(seconds)
    plan = Plan.of(cfg.mc)
    if plan is not None:
        metrics.update(plan.report(metrics))
    return CellResult(
        config=cfg,
        estimator=cfg.estimator.name,
        inference=str(first["inference"]) if first is not None else cfg.inference.name,
        estimand=str(first["estimand"]) if first is not None else "?",
        truth_estimand=(
            str(first["truth_estimand"]) if first is not None and truth is not None else None
        ),
        truth=truth,
        level=float(first["level"]) if first is not None else 0.95,
        metrics=metrics,
        replications=table,
        errors=errors,
        seconds=seconds,
        single=single,
    )


def _cell_metrics(
    table: pd.DataFrame,
) -> tuple[dict[str, float], tuple[str, ...], pd.Series | None, float | None]:
    """Summarise a replications table: metrics (with ``n_failed`` and ``reps``), errors, first success, truth.

    Replications that report different truths (a sample estimand) are each judged against
    their own; the truth returned is then their mean.
    """
    failed = (
        table["error"].notna().to_numpy() if "error" in table else np.zeros(len(table), dtype=bool)
    )
    ok = table[~failed]
    errors = tuple(
        f"replication {r}: {e}"
        for r, e in zip(table["replication"][failed], table["error"][failed], strict=True)
    )
    first = ok.iloc[0] if len(ok) else None
    truth = None
    truths: float | np.ndarray | None = None
    if first is not None and first.get("truth") is not None and not pd.isna(first.get("truth")):
        truth = float(first["truth"])
        truths = truth
        each = ok["truth"].to_numpy(dtype=float)
        if np.isfinite(each).all() and not (each == truth).all():
            truths, truth = each, float(each.mean())  # a sample estimand: one truth per draw
    col = (lambda name: ok[name].to_numpy(dtype=float)) if len(ok) else (lambda name: np.empty(0))
    metrics = summarise(col("estimate"), col("se"), col("ci_lower"), col("ci_upper"), truths)
    metrics["n_failed"] = float(len(errors))
    metrics["reps"] = float(len(table))
    return metrics, errors, first, truth
