"""Nearest-neighbour matchers: sorted search on a 1-D score, k-d trees on covariates, greedy without replacement."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from causalkit.errors import EstimationError

__all__ = ["MatchSpec", "Pairs", "PAIR_BUDGET", "match_with_replacement", "match_greedy"]

_SQRT_EPS = float(np.sqrt(np.finfo(np.float64).eps))
PAIR_BUDGET = 20_000_000
"""Matched pairs kept with ties, at most ``max(PAIR_BUDGET, 4 k n_focal)`` (~16 bytes a pair).

More means that most of the pool ties (scores equal up to rounding, e.g. a separated score
model), and keeping every tie would take memory quadratic in the sample: refused instead.
"""


@dataclass(frozen=True)
class MatchSpec:
    """How to match.

    Attributes
    ----------
    k : int
        Matches per unit.
    ties : bool
        Keep every pool unit at the k-th distance (weights split), as R ``Matching``.
    tol : float
        Two distances (standardised units) within ``max(tol, sqrt(eps) |x|)`` are tied, ``x``
        the focal unit's coordinates (``Matching``'s ``distance.tolerance``, never below the
        resolution of ``x``). Not applied to squared distances, so the tie radius stays
        small when the k-th distance is near zero in large samples. Ties that would make more
        than :data:`PAIR_BUDGET` pairs are refused.
    caliper : float or None
        Largest allowed absolute difference in every column of the standardised variables.
    """

    k: int
    ties: bool
    tol: float
    caliper: float | None


@dataclass(frozen=True)
class Pairs:
    """Matched pairs in local indices: focal row ``focal[r]`` is matched to pool row ``pool[r]``."""

    focal: np.ndarray
    pool: np.ndarray

    @staticmethod
    def empty() -> Pairs:
        return Pairs(np.empty(0, np.int64), np.empty(0, np.int64))


def _expand(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``(i, j)`` for ``j`` in ``range(lo[i], hi[i])``, vectorised."""
    counts = np.maximum(hi - lo, 0)
    rows = np.repeat(np.arange(lo.shape[0]), counts)
    start = np.cumsum(counts) - counts
    offs = np.arange(int(counts.sum())) - np.repeat(start, counts)
    return rows, lo[rows] + offs


def _tie_radius(spec: MatchSpec, size: np.ndarray) -> np.ndarray:
    """Tie tolerance per focal unit: ``tol``, and never below sqrt(eps) relative to its coordinates.

    A coordinate of size ``|x|`` is known to about ``eps |x|``, so distances that equal up
    to ``sqrt(eps) |x|`` are ties whatever ``tol`` is; on standardised scores (``|x|`` a few
    units) with the default ``tol = sqrt(eps)`` the two coincide up to the factor ``|x|``.
    """
    return np.maximum(spec.tol, _SQRT_EPS * size)


def _check_budget(n_pairs: int, n_focal: int, spec: MatchSpec) -> None:
    """Refuse ties that would take memory quadratic in the sample (see :data:`PAIR_BUDGET`)."""
    budget = max(PAIR_BUDGET, 4 * spec.k * n_focal)
    if n_pairs > budget:
        raise EstimationError(
            f"psm: keeping every tie would make {n_pairs:,} matched pairs for {n_focal:,} units "
            f"(more than {budget:,}): most scores are equal up to rounding (a separated score "
            "model or a single treated unit?): check the overlap of the arms' scores"
        )


def _knn_1d(xf: np.ndarray, xp: np.ndarray, spec: MatchSpec) -> Pairs:
    """k nearest on a line by binary search: O((n_f + n_p) log n_p), no distance matrix.

    The k-th distance comes from the 2k sorted neighbours around each insertion point; with
    ties every pool value within :math:`d_k + tol` is a match (a contiguous run of
    the sorted pool), else the k nearest. Focal units are processed in sorted order (the
    binary searches then walk the pool monotonically, which is several times faster).
    """
    fo = np.argsort(xf, kind="stable")
    xf = xf[fo]
    order = np.argsort(xp, kind="stable")
    v = xp[order]
    m, k = v.shape[0], spec.k
    pos = np.searchsorted(v, xf)
    win = pos[:, None] + np.arange(-k, k)[None, :]
    valid = (win >= 0) & (win < m)
    dist = np.where(valid, np.abs(xf[:, None] - v[np.clip(win, 0, m - 1)]), np.inf)
    kk = min(k, m)
    if spec.ties:
        dk = np.partition(dist, kk - 1, axis=1)[:, kk - 1]
        thr = dk + _tie_radius(spec, np.abs(xf))
        if spec.caliper is not None:
            thr = np.minimum(thr, spec.caliper)
        lo = np.searchsorted(v, xf - thr, side="left")
        hi = np.searchsorted(v, xf + thr, side="right")
        _check_budget(int(np.maximum(hi - lo, 0).sum()), xf.shape[0], spec)
        rows, cols = _expand(lo, hi)
        keep = np.abs(xf[rows] - v[cols]) <= thr[rows]
        return Pairs(fo[rows[keep]], order[cols[keep]])
    near = np.argsort(dist, axis=1, kind="stable")[:, :kk]
    d_near = np.take_along_axis(dist, near, axis=1)
    ok = np.isfinite(d_near)
    if spec.caliper is not None:
        ok &= d_near <= spec.caliper
    rows = np.repeat(np.arange(xf.shape[0]), kk).reshape(-1, kk)
    cols = np.take_along_axis(win, near, axis=1)
    return Pairs(fo[rows[ok]], order[cols[ok]])


def _within_caliper(Sf: np.ndarray, Sp: np.ndarray, pairs: Pairs, caliper: float | None) -> Pairs:
    if caliper is None or pairs.focal.size == 0:
        return pairs
    ok = np.all(np.abs(Sf[pairs.focal] - Sp[pairs.pool]) <= caliper, axis=1)
    return Pairs(pairs.focal[ok], pairs.pool[ok])


def _knn_tree(Qf: np.ndarray, Qp: np.ndarray, spec: MatchSpec) -> Pairs:
    """k nearest in Euclidean ``Q`` space with a k-d tree; ties found by a ball query."""
    from scipy.spatial import cKDTree

    tree = cKDTree(Qp)
    m = Qp.shape[0]
    kk = min(spec.k, m)
    extra = 1 if spec.ties and m > kk else 0
    dist, idx = tree.query(Qf, k=kk + extra)
    dist = dist.reshape(Qf.shape[0], -1)
    idx = idx.reshape(Qf.shape[0], -1)
    rows = np.repeat(np.arange(Qf.shape[0]), kk).reshape(-1, kk)
    if not extra:
        return Pairs(rows.ravel(), idx[:, :kk].ravel())
    dk = dist[:, kk - 1]
    thr = dk + _tie_radius(spec, np.linalg.norm(Qf, axis=1))
    tied = dist[:, kk] <= thr
    plain = ~tied
    f = [rows[plain].ravel()]
    p = [idx[plain, :kk].ravel()]
    if tied.any():
        t_rows = np.flatnonzero(tied)
        n_tied = tree.query_ball_point(Qf[t_rows], r=thr[t_rows], return_length=True)
        _check_budget(int(np.sum(n_tied)) + kk * int(plain.sum()), Qf.shape[0], spec)
        balls = tree.query_ball_point(Qf[t_rows], r=thr[t_rows])
        lens = np.fromiter((len(b) for b in balls), dtype=np.int64, count=len(balls))
        f.append(np.repeat(t_rows, lens))
        p.append(np.fromiter((j for b in balls for j in b), dtype=np.int64, count=int(lens.sum())))
    return Pairs(np.concatenate(f), np.concatenate(p))


def match_with_replacement(
    Qf: np.ndarray, Qp: np.ndarray, Sf: np.ndarray, Sp: np.ndarray, spec: MatchSpec
) -> Pairs:
    """k nearest pool units of every focal unit, with replacement.

    ``Q`` are coordinates whose Euclidean distance is the matching metric; ``S`` the
    per-column standardised variables the caliper applies to (the same for one column).
    """
    if Qp.shape[0] == 0 or Qf.shape[0] == 0:
        return Pairs.empty()
    if Qf.shape[1] == 1 and Sf.shape[1] == 1:
        return _knn_1d(Qf[:, 0], Qp[:, 0], spec)
    return _within_caliper(Sf, Sp, _knn_tree(Qf, Qp, spec), spec.caliper)


class _Available:
    """Nearest still-unused pool position to the left/right of a sorted index (union-find)."""

    def __init__(self, m: int) -> None:
        self.right = np.arange(m + 1)  # right[i]: smallest free j >= i (m = none)
        self.left = np.arange(m + 1)  # left[i + 1]: largest free j <= i (0 = none)

    @staticmethod
    def _find(parent: np.ndarray, i: int) -> int:
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return int(root)

    def nearest(self, pos: int) -> tuple[int, int]:
        """Free positions ``(l, r)`` with ``l < pos <= r``; -1 / m when there is none."""
        return self._find(self.left, pos) - 1, self._find(self.right, pos)

    def take(self, j: int) -> None:
        self.right[j] = j + 1
        self.left[j + 1] = j


def _greedy_1d(xf: np.ndarray, xp: np.ndarray, spec: MatchSpec, order: np.ndarray) -> Pairs:
    srt = np.argsort(xp, kind="stable")
    v = xp[srt]
    m = v.shape[0]
    pos = np.searchsorted(v, xf)
    free = _Available(m)
    cal = np.inf if spec.caliper is None else spec.caliper
    f_out: list[int] = []
    p_out: list[int] = []
    used = 0
    for _ in range(spec.k):
        for i in order:
            if used == m:
                break
            x = xf[i]
            lo, hi = free.nearest(int(pos[i]))
            dl = x - v[lo] if lo >= 0 else np.inf
            dr = v[hi] - x if hi < m else np.inf
            j, dj = (lo, dl) if dl <= dr else (hi, dr)
            if dj <= cal:
                free.take(j)
                used += 1
                f_out.append(int(i))
                p_out.append(int(srt[j]))
    return Pairs(np.asarray(f_out, np.int64), np.asarray(p_out, np.int64))


def _greedy_tree(
    Qf: np.ndarray,
    Qp: np.ndarray,
    Sf: np.ndarray,
    Sp: np.ndarray,
    spec: MatchSpec,
    order: np.ndarray,
) -> Pairs:
    from scipy.spatial import cKDTree

    tree = cKDTree(Qp)
    m = Qp.shape[0]
    taken = np.zeros(m, dtype=bool)
    cal = spec.caliper
    f_out: list[int] = []
    p_out: list[int] = []
    for _ in range(spec.k):
        for i in order:
            if len(p_out) == m:
                break
            kq = min(m, 8)
            while True:
                _, idx = tree.query(Qf[i], k=kq)
                idx = np.atleast_1d(idx)
                cand = idx[~taken[idx]]
                if cal is not None and cand.size:
                    cand = cand[np.all(np.abs(Sp[cand] - Sf[i]) <= cal, axis=1)]
                if cand.size or kq == m:
                    break
                kq = min(m, 4 * kq)
            if cand.size:
                taken[cand[0]] = True
                f_out.append(int(i))
                p_out.append(int(cand[0]))
    return Pairs(np.asarray(f_out, np.int64), np.asarray(p_out, np.int64))


def match_greedy(
    Qf: np.ndarray,
    Qp: np.ndarray,
    Sf: np.ndarray,
    Sp: np.ndarray,
    spec: MatchSpec,
    order: np.ndarray,
) -> Pairs:
    """Greedy nearest-neighbour matching without replacement (MatchIt's ``method="nearest"``).

    Focal units take, in ``order``, the nearest unused pool unit (within the caliper); with
    ``k > 1`` every focal unit gets its first match before any gets a second. Ties are
    broken by position (no ties kept: a pool unit is used once).
    """
    if Qp.shape[0] == 0 or Qf.shape[0] == 0:
        return Pairs.empty()
    if Qf.shape[1] == 1 and Sf.shape[1] == 1:
        return _greedy_1d(Qf[:, 0], Qp[:, 0], spec, order)
    return _greedy_tree(Qf, Qp, Sf, Sp, spec, order)
