"""Where a cell's replications run: this process, ``mc.n_jobs`` loky processes, or a Dask cluster.

An executor turns a list of replication indices into chunks of rows, yielded as they finish;
the caller (:class:`causalkit.montecarlo.run_cell`) is the only one that checkpoints and logs
them. Every replication draws from its own seed (:func:`causalkit.montecarlo.replication_seed`),
so which process runs it and how the indices are chunked never changes a result.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

import numpy as np

from causalkit.config import MCConfig, RunConfig
from causalkit.contracts import Dataset
from causalkit.errors import CausalkitError, ConfigError
from causalkit.registry import KINDS, Registry
from causalkit.session import Session

__all__ = [
    "ClusterError",
    "LocalExecutor",
    "DaskExecutor",
    "Executor",
    "open_executor",
    "code_modules",
]

R = TypeVar("R")
ChunkFn = Callable[[RunConfig, Sequence[int], "Dataset | None", Session], list[R]]
LoadFn = Callable[[RunConfig, Registry], "Dataset | None"]


class ClusterError(CausalkitError):
    """The Dask cluster cannot run the study (unreachable, mismatched code, lost work).

    One message argument, so it travels back from a worker intact.
    """


class LocalExecutor:
    """Replications in this process (``n_jobs=1``) or in ``n_jobs`` loky worker processes.

    Parameters
    ----------
    n_jobs : int
        Worker processes (``mc.n_jobs``); the pool opens on first use and each worker exits
        with this process (:func:`causalkit.montecarlo.exit_with_parent`).
    """

    name = "local"

    def __init__(self, n_jobs: int) -> None:
        self.n_jobs = n_jobs
        self.chunk = max(20, 8 * n_jobs)
        self._pool: Any = None

    @property
    def workers(self) -> int:
        """Return the number of worker processes."""
        return self.n_jobs

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.__exit__(None, None, None)
            self._pool = None

    def _parallel(self) -> Any:
        if self._pool is None:
            from joblib import Parallel, parallel_config

            with parallel_config("loky", initializer=_pool_worker, initargs=(os.getpid(),)):
                self._pool = Parallel(n_jobs=self.n_jobs)
            self._pool.__enter__()
        return self._pool

    def run(
        self,
        fn: ChunkFn[R],
        load: LoadFn,
        cfg: RunConfig,
        base: Dataset | None,
        session: Session,
        todo: Sequence[int],
    ) -> Iterator[list[R]]:
        """Yield the rows of ``todo`` in chunks of ``max(20, 8 n_jobs)``, each split over the workers."""
        for start in range(0, len(todo), self.chunk):
            batch = [int(r) for r in todo[start : start + self.chunk]]
            if self.n_jobs == 1:
                yield fn(cfg, batch, base, session)
                continue
            from joblib import delayed

            parts = self._parallel()(
                delayed(fn)(cfg, [int(r) for r in part], base, session)
                for part in np.array_split(np.asarray(batch), min(len(batch), self.n_jobs))
            )
            yield [row for part in parts for row in part]


def _pool_worker(parent: int) -> None:
    """Start a replication worker: it exits with its parent and leaves Ctrl-C to it.

    The parent stops the pool on Ctrl-C and reports once; the workers of a terminal's
    process group, which get the SIGINT too, stay quiet (a Dask worker would otherwise
    print its event loop's traceback).
    """
    import signal

    from causalkit.montecarlo import exit_with_parent

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent(parent)


def _cluster_worker(parent: int) -> None:
    """Start a local Dask cluster's worker as a pool's (:func:`_pool_worker`), and silent.

    The driver reports every failure in one line; the worker's own log lines (a heartbeat
    to the scheduler closing under it as the driver stops) would only break that line.
    """
    import logging

    _pool_worker(parent)
    for name in ("distributed", "distributed.nanny"):  # silence_logs set the nanny's own
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _local_worker_plugin(parent: int) -> Any:
    """Return a Dask worker plugin running :func:`_cluster_worker` on every worker, restarted ones too."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class LocalWorker(WorkerPlugin):
        def setup(self, worker: Any) -> None:
            _cluster_worker(parent)

    return LocalWorker()


def code_modules(registry: Registry) -> tuple[str, ...]:
    """Return the top-level packages whose code a replication runs: causalkit and every plugin's."""
    tops = {"causalkit"}
    for kind in KINDS:
        for name in registry.names(kind):
            tops.add(registry.get(kind, name).__module__.split(".")[0])
    return tuple(sorted(tops))


def _fingerprint(modules: tuple[str, ...]) -> dict[str, str]:
    import importlib

    from causalkit.identity import code_fingerprint

    for top in modules:
        try:
            importlib.import_module(top)
        except ImportError:
            pass  # reported as "unknown" source: a mismatch
    return code_fingerprint(modules)


def _mismatch(worker: str, theirs: dict[str, str], ours: dict[str, str]) -> str | None:
    diff = [
        f"{k}: {theirs.get(k, 'missing')} (driver {v})"
        for k, v in ours.items()
        if theirs.get(k) != v
    ]
    if not diff:
        return None
    return (
        f"mc.executor=dask: worker {worker} runs other code than the driver ({'; '.join(diff)}); "
        "install the same causalkit and plugins on every worker"
    )


_BASES: dict[str, Dataset | None] = {}
"""Per worker process: the base data of the last cell it ran (loaded there, never shipped)."""


def _remote_chunk(
    fn: ChunkFn[R],
    load: LoadFn,
    cfg: RunConfig,
    rs: list[int],
    session: Session,
    code: dict[str, str],
    watch_pid: int | None,
) -> list[R]:
    """One task on a Dask worker: check its code, load the cell's base data once, run ``rs``."""
    if watch_pid is not None:
        from causalkit.montecarlo import exit_with_parent

        exit_with_parent(watch_pid)
    why = _mismatch(_worker_name(), _fingerprint(tuple(code)), code)
    if why is not None:
        raise ClusterError(why)
    key = f"{cfg.data.name}:{cfg.data.as_dict()}"
    if key not in _BASES:
        _BASES.clear()
        _BASES[key] = load(cfg, session.registry)
    return fn(cfg, rs, _BASES[key], session)


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


class DaskExecutor:
    """Replications as tasks on a Dask cluster: ``mc.address``'s scheduler, or a local one.

    Each task is (cell, chunk of replication indices): the worker receives the validated
    cell and the session, loads the cell's base data itself and returns the rows. Tasks of
    a worker that dies are rerun elsewhere by Dask's scheduler (same rows: the seeds belong
    to the replications). The driver submits every chunk of a cell at once, so the cells of
    a sweep run concurrently (:func:`causalkit.launch.launch`) keep every worker busy.

    Parameters
    ----------
    mc : MCConfig
        ``mc.address`` (empty: start a local cluster of ``mc.n_jobs`` single-threaded worker
        processes on 127.0.0.1, no dashboard, ending with this process).
    registry : Registry
        The session's plugins: the code every worker must run too.

    Notes
    -----
    Workers run one thread and, by Dask's default ``distributed.nanny.pre-spawn-environ``,
    one BLAS/OpenMP thread; every chunk also runs inside the session's thread policy.
    """

    name = "dask"

    def __init__(self, mc: MCConfig, registry: Registry) -> None:
        self.address, self.n_jobs = mc.address, mc.n_jobs
        self.code = _fingerprint(code_modules(registry))
        self._client: Any = None
        self._cluster: Any = None
        self._lock = threading.Lock()
        self._log_level: int | None = None  # distributed's, while a local cluster quiets it
        self.stopping = threading.Event()

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def client(self) -> Any:
        """Return the Dask client, connecting (or starting the local cluster) on first use."""
        with self._lock:
            if self._client is None:
                self._client = self._connect()
        return self._client

    def _connect(self) -> Any:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError(
                "mc.executor",
                "dask installed for dask (pip install -e '.[cluster]')",
                "dask",
            ) from None
        if self.address:
            try:
                client = Client(self.address, timeout="10s", set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise ConfigError(
                    "mc.address", "a reachable Dask scheduler (tcp://HOST:8786)", self.address
                ) from exc
        else:
            self._quiet_scheduler_logs()
            with warnings.catch_warnings():  # its HTTP endpoint moves off a busy port 8787: fine
                warnings.filterwarnings("ignore", "Port .* is already in use", UserWarning)
                self._cluster = LocalCluster(
                    n_workers=self.n_jobs,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
            client = Client(self._cluster, set_as_default=False)
        try:
            client.wait_for_workers(1, timeout=60)
            self._check(client)
        except BaseException:
            client.close()
            self._close_cluster()
            raise
        return client

    def _check(self, client: Any) -> None:
        found = client.run(_fingerprint, tuple(self.code))
        for worker, theirs in sorted(found.items()):
            why = _mismatch(worker, theirs, self.code)
            if why is not None:
                raise ClusterError(why)
        if self._cluster is not None:  # local workers end with this process, kill -9 included
            client.register_plugin(_local_worker_plugin(os.getpid()), name="causalkit-local")

    @property
    def workers(self) -> int:
        """Return the number of workers the scheduler knows now."""
        return len(self.client.nthreads())  # asks the scheduler (its cached info may lag)

    def chunk_size(self, todo: int) -> int:
        """Return replications per task: about four tasks per worker, between 1 and 50."""
        return max(1, min(50, math.ceil(todo / (4 * max(1, self.workers)))))

    def run(
        self,
        fn: ChunkFn[R],
        load: LoadFn,
        cfg: RunConfig,
        base: Dataset | None,
        session: Session,
        todo: Sequence[int],
    ) -> Iterator[list[R]]:
        """Submit every chunk of ``todo`` and yield each chunk's rows as it finishes.

        ``base`` is not sent: workers load the cell's data themselves. :meth:`stop` (another
        thread, e.g. on Ctrl-C) makes this raise :class:`KeyboardInterrupt` within half a
        second and cancels the chunks still queued.
        """
        import queue

        client = self.client
        size = self.chunk_size(len(todo))
        watch = os.getpid() if self._cluster is not None else None
        arrived: queue.SimpleQueue[Any] = queue.SimpleQueue()
        pending = set()
        for i in range(0, len(todo), size):
            rs = [int(r) for r in todo[i : i + size]]
            future = client.submit(
                _remote_chunk, fn, load, cfg, rs, session, self.code, watch, pure=False
            )
            future.add_done_callback(arrived.put)
            pending.add(future)
        try:
            while pending:
                if self.stopping.is_set():
                    raise KeyboardInterrupt("interrupted")
                try:
                    finished = [arrived.get(timeout=0.5)]
                except queue.Empty:
                    continue
                while not arrived.empty():  # one round trip fetches every finished chunk
                    finished.append(arrived.get())
                pending.difference_update(finished)
                yield from self._results(client, finished)
        finally:
            if pending:
                client.cancel(list(pending))

    @staticmethod
    def _results(client: Any, futures: list[Any]) -> list[Any]:
        try:
            return list(client.gather(futures))
        except CausalkitError:
            raise
        except Exception as exc:  # e.g. KilledWorker: the task killed its workers three times
            raise ClusterError(
                "mc.executor=dask: a chunk of replications failed on the cluster "
                f"({type(exc).__name__}: {exc})"
            ) from exc

    def stop(self) -> None:
        """Make every :meth:`run` in progress raise :class:`KeyboardInterrupt`."""
        self.stopping.set()

    def _quiet_scheduler_logs(self) -> None:
        """Keep the local scheduler's INFO lines off the run's output while the cluster lives.

        The scheduler runs in this process and logs under ``distributed.*`` (whose levels
        follow ``distributed``'s); warnings and errors still show, and :meth:`_close_cluster`
        restores the level.
        """
        logger = logging.getLogger("distributed")
        if self._log_level is None:
            self._log_level = logger.level
        logger.setLevel(logging.WARNING)

    def _close_cluster(self) -> None:
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None
        if self._log_level is not None:
            logging.getLogger("distributed").setLevel(self._log_level)
            self._log_level = None

    def close(self) -> None:
        """Close the client and the local cluster this executor started."""
        if self._client is not None:
            self._client.close()
            self._client = None
        self._close_cluster()


Executor = LocalExecutor | DaskExecutor


def open_executor(
    cfg: RunConfig, session: Session, given: Executor | None = None
) -> AbstractContextManager[Executor]:
    """Return ``given`` (left open), or a new executor for ``cfg.mc`` closed on exit."""
    if given is not None:
        return nullcontext(given)
    if cfg.mc.executor == "dask":
        return DaskExecutor(cfg.mc, session.registry)
    return LocalExecutor(cfg.mc.n_jobs)
