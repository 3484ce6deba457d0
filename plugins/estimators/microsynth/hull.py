"""Is a target inside the convex hull of many points? A Farkas certificate by constraint generation."""

from __future__ import annotations

import numpy as np

__all__ = ["separating_direction"]


def separating_direction(
    X0: np.ndarray,
    target: np.ndarray,
    counts: np.ndarray | None = None,
    start_rows: np.ndarray | None = None,
    *,
    value_tol: float = 1e-7,
    row_tol: float = 1e-9,
    batch: int = 2000,
    max_rounds: int = 100,
) -> np.ndarray | None:
    r"""A hyperplane separating ``target`` from the rows of ``X0``, or ``None`` when inside.

    By Farkas' lemma, :math:`\{w \ge 0: X_0^\top w = \bar x, \mathbf 1^\top w = 1\}` is empty
    if and only if some :math:`\delta = (\lambda, \nu)` has
    :math:`x_j^\top\lambda + \nu \le 0` for every row and :math:`\bar x^\top\lambda + \nu > 0`.
    The linear program

    .. math::
        \max_{\delta \in [-1, 1]^{d+1}}\ \bar x^\top\lambda + \nu
        \quad\text{s.t.}\quad x_j^\top\lambda + \nu \le 0,\ j \in W,

    is solved (HiGHS) over a working set :math:`W` of rows, started from ``start_rows`` and
    each coordinate's extreme rows; rows that violate the returned :math:`\delta` are added
    (the ``batch`` worst) until none does (cutting planes). An optimum of zero on a subset
    proves feasibility on the full set (a relaxation), so every round ends in a proof.

    Parameters
    ----------
    X0 : ndarray, shape (n, d)
        Points (control covariates).
    target : ndarray, shape (d,)
        The point to locate.
    counts : ndarray, optional
        Rows with zero count are ignored.
    start_rows : ndarray of int, optional
        Rows to start the working set with (e.g. the active set of a stalled dual).
    value_tol, row_tol : float
        A certificate needs :math:`b^\top\delta > ` ``value_tol`` and
        :math:`\max_j a_j^\top\delta \le` ``row_tol``.
    batch : int
        Rows added per round.
    max_rounds : int
        Cutting-plane rounds before giving up (returns ``None``: not proven outside).

    Returns
    -------
    ndarray of shape (d + 1,) or None
        The separating direction :math:`(\lambda, \nu)`, or ``None`` when ``target`` is in the hull.
    """
    from scipy.optimize import linprog

    X0 = np.asarray(X0, dtype=np.float64)
    n, d = X0.shape
    rows = np.arange(n) if counts is None else np.flatnonzero(np.asarray(counts) > 0)
    Xr = X0[rows]
    seed = [np.argmin(Xr, axis=0), np.argmax(Xr, axis=0)]
    if start_rows is not None and counts is not None:
        start_rows = np.searchsorted(rows, np.intersect1d(start_rows, rows))
    if start_rows is not None:
        seed.append(np.asarray(start_rows, dtype=np.int64)[:batch])
    working = np.unique(np.concatenate(seed))
    b = np.append(np.asarray(target, dtype=np.float64), 1.0)
    for _ in range(max_rounds):
        A = np.column_stack([Xr[working], np.ones(working.size)])
        out = linprog(
            -b, A_ub=A, b_ub=np.zeros(working.size), bounds=[(-1.0, 1.0)] * (d + 1), method="highs"
        )
        if out.status != 0 or -out.fun <= value_tol:
            return None
        delta = out.x
        slack = Xr @ delta[:d] + delta[d]
        bad = np.flatnonzero(slack > row_tol)
        if bad.size == 0:
            return delta
        worst = bad[np.argsort(slack[bad])[::-1][:batch]]
        working = np.union1d(working, worst)
    return None
