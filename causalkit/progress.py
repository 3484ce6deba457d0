"""Progress bars (tqdm) on a terminal, silent otherwise and inside Monte Carlo replications."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

__all__ = ["progress", "quiet", "bar"]

T = TypeVar("T")
_QUIET: ContextVar[bool] = ContextVar("causalkit_progress_quiet", default=False)


def _enabled() -> bool:
    return not _QUIET.get() and sys.stderr.isatty()


def progress(items: Iterable[T], total: int, desc: str) -> Iterable[T]:
    """``items`` wrapped in a tqdm bar on a terminal (bootstraps, permutations, replications)."""
    if not _enabled():
        return items
    from tqdm import tqdm

    return tqdm(items, total=total, desc=desc, leave=False, file=sys.stderr)


def bar(total: int, desc: str):  # noqa: ANN201 - tqdm or None
    """Return a manual tqdm bar (``update(n)``/``close()``) on a terminal, else ``None``."""
    if not _enabled():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr)


@contextmanager
def quiet() -> Iterator[None]:
    """Silence nested bars (a bootstrap inside each of many replications)."""
    token = _QUIET.set(True)
    try:
        yield
    finally:
        _QUIET.reset(token)
