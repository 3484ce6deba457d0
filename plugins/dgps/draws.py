"""Fast draws for simulators that keep numpy's random streams."""

from __future__ import annotations

import numpy as np

__all__ = ["bernoulli"]


def bernoulli(
    rng: np.random.Generator, p: float | np.ndarray, size: int | None = None
) -> np.ndarray:
    r"""Bernoulli(:math:`p`) draws as bool, equal to ``rng.binomial(1, p, size) == 1`` bit for bit.

    numpy draws a binomial with :math:`n p < 30` by inversion from one uniform :math:`U` per
    draw: :math:`X = 1\{U > 1 - p\}` when :math:`p \le 1/2`, else :math:`X = 1 - 1\{U > p\}`
    (it inverts :math:`1 - p`). Comparing ``rng.random`` with those thresholds gives the same
    values from the same stream ~20x faster for an array of probabilities. Probabilities of
    exactly 0 or 1 consume no uniform in numpy, so arrays holding them go through
    ``rng.binomial`` itself.
    """
    if size is not None and np.ndim(p) == 0 and 0 < float(p) < 1:  # one probability: one comparison
        q = float(p)
        u = rng.random(size)
        return u > 1 - q if q <= 0.5 else u <= q
    p_arr = np.asarray(p, dtype=np.float64)
    if size is not None:
        p_arr = np.broadcast_to(p_arr, (size,))
    if not np.all((p_arr > 0) & (p_arr < 1)):
        return rng.binomial(1, p_arr).astype(bool)
    u = rng.random(p_arr.shape)
    return np.where(p_arr <= 0.5, u > 1 - p_arr, u <= p_arr)
