"""Per-chunk partial sums of the MicroSynth simplex dual, mergeable across chunks, partitions and machines."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Moments",
    "chunk_moments",
    "merge_moments",
    "dual_sums",
    "merge_sums",
    "reduce_sums",
    "poisson_weights",
    "MAX_KEYS",
]

#: Keys of :func:`dual_sums` merged by maximum; every other key is summed.
MAX_KEYS = frozenset({"wmax"})


@dataclass(frozen=True)
class Moments:
    """Count, mean and centred sum of squares per group (0 = control, 1 = treated).

    ``mean``/``m2`` have shape (2, d); ``ysum`` has shape (2, T) (outcome sums per post period);
    ``bad`` counts rows with a missing value or a failed panel check.
    """

    n: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    ysum: np.ndarray
    bad: int


def chunk_moments(X: np.ndarray, g: np.ndarray, Y: np.ndarray, bad: int = 0) -> Moments:
    """Moments of one chunk (two-pass within the chunk, so no cancellation)."""
    d, T = X.shape[1], Y.shape[1]
    n = np.zeros(2)
    mean = np.zeros((2, d))
    m2 = np.zeros((2, d))
    ysum = np.zeros((2, T))
    for k, mask in enumerate((~g, g)):
        Xk = np.asarray(X[mask], dtype=np.float64)
        n[k] = Xk.shape[0]
        if n[k]:
            mean[k] = Xk.mean(axis=0)
            m2[k] = ((Xk - mean[k]) ** 2).sum(axis=0)
            ysum[k] = np.asarray(Y[mask], dtype=np.float64).sum(axis=0)
    bad += int(np.isnan(X).any(axis=1).sum() + np.isnan(Y).any(axis=1).sum())
    return Moments(n, mean, m2, ysum, bad)


def merge_moments(a: Moments, b: Moments) -> Moments:
    r"""Chan, Golub & LeVeque's pairwise update: :math:`M_2 = M_{2a} + M_{2b} + \delta^2 n_a n_b / n`."""
    n = a.n + b.n
    safe = np.where(n > 0, n, 1.0)[:, None]
    delta = b.mean - a.mean
    mean = a.mean + delta * (b.n[:, None] / safe)
    m2 = a.m2 + b.m2 + delta**2 * (a.n * b.n)[:, None] / safe
    return Moments(n, mean, m2, a.ysum + b.ysum, a.bad + b.bad)


def dual_sums(
    Z: np.ndarray,
    g: np.ndarray,
    Y: np.ndarray,
    c: np.ndarray | None,
    mus: np.ndarray,
    u: float,
) -> dict[str, np.ndarray]:
    r"""Partial sums of the dual at candidate points, for R weightings of the units.

    For control rows :math:`a_j = (z_j, 1)`, case weight :math:`c_{jr}` and candidate
    :math:`\mu_{rk}`, with :math:`w_{jrk} = (u + a_j^\top \mu_{rk})_+`:

    - ``f2[r,k]`` :math:`=\sum_j c_{jr} w_{jrk}^2` (so :math:`F = \tfrac12 f_2 - b^\top\mu`),
    - ``g[r,k]`` :math:`=\sum_j c_{jr} w_{jrk} a_j` (the gradient before subtracting :math:`b`),
    - ``h[r,k]`` :math:`=\sum_{j: w_{jrk}>0} c_{jr} a_j a_j^\top` (generalised Hessian),
    - ``wy``, ``wz2``, ``wmax``: :math:`\sum c w y_t`, :math:`\sum c w z^2`, :math:`\max w`
      (ATT and balance after weighting come from the same pass);
    - treated sums ``tn``, ``tz``, ``ty``: :math:`\sum c`, :math:`\sum c z`, :math:`\sum c y_t`.

    Candidates along one line differ in few active rows, so each ``h[r,k]`` is the Gram of the
    first candidate's active rows plus a correction over the rows whose status differs: the
    cost is one Gram per weighting, not one per candidate.

    Parameters
    ----------
    Z : ndarray, shape (m, d)
        Standardised covariates of the chunk (float64).
    g : ndarray of bool, shape (m,)
        Treated flag.
    Y : ndarray, shape (m, T)
        Post-period outcomes.
    c : ndarray, shape (m, R), or None
        Case weights (bootstrap counts); ``None`` means one weighting of ones.
    mus : ndarray, shape (R, K, d + 1)
        Candidate dual points.
    u : float
        Centre of the weights, :math:`1/n_C`.
    """
    R, K, p = mus.shape
    d = p - 1
    Zc, Yc = Z[~g], np.asarray(Y[~g], dtype=np.float64)
    Zt, Yt = Z[g], np.asarray(Y[g], dtype=np.float64)
    cc = np.ones((Zc.shape[0], R)) if c is None else c[~g]
    ct = np.ones((Zt.shape[0], R)) if c is None else c[g]
    lam = mus[:, :, :d].reshape(R * K, d)
    V = (Zc @ lam.T).reshape(-1, R, K) + (u + mus[:, :, d])[None]
    W = np.maximum(V, 0.0)
    CW = cc[:, :, None] * W
    CWf = CW.reshape(-1, R * K)
    out: dict[str, np.ndarray] = {
        "f2": np.einsum("mrk,mrk->rk", CW, W),
        "wy": (CWf.T @ Yc).reshape(R, K, -1),
        "wz2": (CWf.T @ Zc**2).reshape(R, K, d),
        "wmax": np.where(cc[:, :, None] > 0, W, 0.0).max(axis=0, initial=0.0),
        "tn": ct.sum(axis=0),
        "tz": ct.T @ Zt,
        "ty": ct.T @ Yt,
    }
    grad = np.empty((R, K, p))
    grad[:, :, :d] = (CWf.T @ Zc).reshape(R, K, d)
    grad[:, :, d] = CW.sum(axis=0)
    out["g"] = grad
    A = np.hstack([Zc, np.ones((Zc.shape[0], 1))])
    H = np.empty((R, K, p, p))
    for r in range(R):
        act0 = W[:, r, 0] > 0
        H[r, 0] = (A * (cc[:, r] * act0)[:, None]).T @ A
        for k in range(1, K):
            flip = (W[:, r, k] > 0) != act0
            Ad = A[flip]
            sign = np.where(act0[flip], -1.0, 1.0) * cc[flip, r]
            H[r, k] = H[r, 0] + (Ad * sign[:, None]).T @ Ad
    out["h"] = H
    return out


def merge_sums(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Combine two partial results (sum, or max for :data:`MAX_KEYS`)."""
    return {k: (np.maximum(a[k], b[k]) if k in MAX_KEYS else a[k] + b[k]) for k in a}


def reduce_sums(parts: Iterable[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Fold an iterable of partial results."""
    total: dict[str, np.ndarray] | None = None
    for part in parts:
        total = part if total is None else merge_sums(total, part)
    if total is None:
        raise ValueError("no partial sums to reduce")
    return total


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (Steele, Lea & Flood 2014): a bijective 64-bit mixer."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


_POISSON1_CDF = np.cumsum(np.exp(-1.0) / np.cumprod(np.r_[1.0, np.arange(1.0, 25.0)]))


def poisson_weights(keys: np.ndarray, seed: int, reps: np.ndarray) -> np.ndarray:
    r"""Poisson(1) bootstrap counts, a pure function of (seed, replication, unit key).

    :math:`c_{jr} = F^{-1}_{\text{Pois}(1)}(U_{jr})` with
    :math:`U_{jr} = \text{splitmix64}(\text{key}_j \oplus \text{splitmix64}(s \cdot 2^{20} + r)) / 2^{64}`,
    a counter-based generator: any machine computes any unit's count without state, so a
    replication needs no resampled copy of the data (Hanley & MacGibbon 2006; Chamandy et al. 2012).

    Parameters
    ----------
    keys : ndarray of int64, shape (m,)
        Stable unit keys (integer ids, or a hash of non-integer ids).
    seed : int
        Bootstrap seed.
    reps : ndarray of int, shape (R,)
        Replication numbers.

    Returns
    -------
    ndarray, shape (m, R)
        Counts as float64.
    """
    k = np.asarray(keys).astype(np.int64).view(np.uint64)
    stream = _splitmix64((np.uint64(seed) << np.uint64(20)) + np.asarray(reps, dtype=np.uint64))
    h = _splitmix64(k[:, None] ^ stream[None, :])
    unif = (h >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return np.searchsorted(_POISSON1_CDF, unif, side="right").astype(np.float64)
