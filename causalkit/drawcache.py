"""Simulated datasets kept for the other cells of a study that uses common random numbers.

With ``mc.common_random_numbers`` every cell of a study (every estimator and inference)
analyses the same draw for replication ``r``: the draw depends only on the data/DGP config
and the seed (:attr:`causalkit.config.RunConfig.draw_hash`). Cells run one after another in
one process (a sweep, or ``causalkit.api.run`` calls from a notebook) then simulate each
draw once: this bounded LRU cache, held by the run's :class:`~causalkit.session.Session`,
hands the next cell the very same object.

Only draws held as panel arrays are kept, and their arrays are made read-only first, so an
estimator that tried to modify its input in place fails loudly instead of changing the data
of the next cell. Results never depend on the cache: a miss simulates the identical draw
from the identical seed.
"""

from __future__ import annotations

from collections import OrderedDict

from causalkit.contracts import Simulated

__all__ = ["DrawCache"]


class DrawCache:
    """Least-recently-used simulated datasets, at most ``max_bytes`` of arrays.

    Parameters
    ----------
    max_bytes : int
        Budget for the arrays of the kept draws (default 256 MiB).
    """

    def __init__(self, max_bytes: int = 256 * 2**20) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, int], tuple[Simulated, int]] = OrderedDict()
        self._bytes = 0

    def get(self, key: tuple[str, int]) -> Simulated | None:
        """Return the kept draw ``key`` (draw hash, replication), or ``None``."""
        hit = self._items.get(key)
        if hit is None:
            return None
        self._items.move_to_end(key)
        return hit[0]

    def put(self, key: tuple[str, int], sim: Simulated) -> None:
        """Keep ``sim`` when it is held as panel arrays and fits the budget."""
        panel = sim.dataset.panel
        if panel is None or key in self._items:
            return
        size = sum(v.nbytes for v in panel.columns.values()) + getattr(panel.units, "nbytes", 0)
        if size > self.max_bytes:
            return
        for v in panel.columns.values():
            v.setflags(write=False)
        self._items[key] = (sim, size)
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, (_, freed) = self._items.popitem(last=False)
            self._bytes -= freed

    def clear(self) -> None:
        """Forget every kept draw."""
        self._items.clear()
        self._bytes = 0

    def __len__(self) -> int:
        """Return the number of kept draws."""
        return len(self._items)

    def __reduce__(self) -> tuple[type[DrawCache], tuple[int]]:
        """Sent to a worker process empty (same budget): arrays are not shipped, a miss redraws them."""
        return (DrawCache, (self.max_bytes,))
