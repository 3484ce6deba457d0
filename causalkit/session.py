"""The session a run executes in: the plugin registry, the draw cache and the thread policy, passed explicitly."""

from __future__ import annotations

import functools
import sys
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from causalkit.drawcache import DrawCache
from causalkit.registry import Registry, default_registry

__all__ = ["Session", "default_session", "blas_threads"]


@functools.lru_cache(maxsize=1)
def _controller(n_modules: int) -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def blas_threads(limit: int | None) -> AbstractContextManager[Any]:
    """``threadpool_limits(limits=limit)`` without rescanning the process's libraries every time.

    The scan (~5 ms, more than a small replication) is redone only after new modules were
    imported, since a new native library comes with a module. ``None`` leaves the pools alone.
    """
    if limit is None:
        return nullcontext()
    return _controller(len(sys.modules)).limit(limits=limit)


@dataclass(frozen=True)
class Session:
    """What every replication of a run shares, created once and handed to every worker.

    Replications (in this process or in ``mc.n_jobs`` worker processes) use exactly these
    plugins and this policy; nothing falls back to a process-wide default further down.

    Parameters
    ----------
    registry : Registry
        The plugins the run's config names.
    draws : DrawCache
        Simulated datasets shared by cells with common random numbers. A worker process
        receives an empty cache of the same budget (a cache never changes a result).
    blas_threads : int or None
        BLAS/OpenMP threads inside a replication (default 1: replications are the unit of
        parallelism); ``None`` leaves the thread pools as they are.
    """

    registry: Registry
    draws: DrawCache = field(default_factory=DrawCache, compare=False)
    blas_threads: int | None = 1

    def threads(self) -> AbstractContextManager[Any]:
        """Return the thread policy as a context manager (wrap each chunk of replications in it)."""
        return blas_threads(self.blas_threads)


@functools.cache
def default_session() -> Session:
    """Return the session of calls that pass none: :func:`~causalkit.registry.default_registry`, one draw cache.

    A cached constructor (one per process), so cells run one after another from a notebook
    share their common-random-number draws. Pass ``Session(registry)`` for an isolated one;
    results never depend on which session's cache served a draw.
    """
    return Session(default_registry())
