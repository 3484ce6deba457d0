"""Many simplex duals in lockstep: chord Newton steps for a batch of resamples, BLAS-3 per pass."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from causalkit_plugins.estimators.microsynth.dual import CHORD_CONTRACTION, _inverse

__all__ = ["BatchDesign", "BatchSolution", "solve_simplex_dual_batch"]

_BLOCK = 1 << 16  # elements of a (problems x rows) block: ~0.5 MB, stays in a core's L2


@dataclass(frozen=True)
class BatchDesign:
    """Column-major ``[X0, 1, V]``: control covariates, the intercept, and values to average.

    Built once per fit. One pass over it gives, for every problem in a batch, the dual value,
    the gradient (from ``[X0, 1]``) and the weighted sums of ``V`` (e.g. outcomes).

    Attributes
    ----------
    A : ndarray, shape (n_C, d + 1 + q), Fortran order
    d : int
        Number of covariates.
    """

    A: np.ndarray
    d: int

    @classmethod
    def build(cls, X0: np.ndarray, values: np.ndarray | None = None) -> BatchDesign:
        """Stack ``X0`` (n_C x d), a column of ones and ``values`` (n_C x q) column-major."""
        n, d = X0.shape
        q = 0 if values is None else values.shape[1]
        A = np.empty((n, d + 1 + q), order="F")
        A[:, :d] = X0
        A[:, d] = 1.0
        if values is not None:
            A[:, d + 1 :] = values
        return cls(A, d)


@dataclass(frozen=True)
class BatchSolution:
    """Solver state per problem (row ``i`` is problem ``i``).

    Attributes
    ----------
    mu : ndarray, shape (k, d + 1)
        Dual variables at the last accepted step.
    converged : ndarray of bool, shape (k,)
        Residual reached ``tol`` with chord steps. ``False`` also when a chord step stopped
        contracting, stalled, or ``max_iter`` ran out: such problems need
        :func:`~causalkit_plugins.estimators.microsynth.dual.solve_simplex_dual`.
    iterations : ndarray of int, shape (k,)
    residual : ndarray, shape (k,)
        Max-abs balance residual (standardised units).
    moments : ndarray, shape (k, q)
        :math:`\\sum_j c_j w_j v_j` with normalised weights (:math:`\\sum_j c_j w_j = 1`): the
        synthetic-control means of the design's values; meaningful where ``converged``.
    """

    mu: np.ndarray
    converged: np.ndarray
    iterations: np.ndarray
    residual: np.ndarray
    moments: np.ndarray


def _sums(A: np.ndarray, d: int, MU: np.ndarray, C: np.ndarray, u: np.ndarray) -> np.ndarray:
    """:math:`A^\\top (c \\odot w)` (p x k) for problems ``MU`` (d+1 x k), counts ``C`` (k x n).

    :math:`w_j = (u + a_j^\\top\\mu)_+` with offsets ``u`` (k,). Rows go in blocks so the
    k x rows intermediates stay in cache while ``A`` is read once for all problems.
    """
    n, p = A.shape
    k = MU.shape[1]
    MUt = np.array(MU.T)
    MUt[:, d] += u  # the intercept column of A carries the offset
    S = np.zeros((p, k))
    rows = max(256, _BLOCK // max(k, 1))
    for r0 in range(0, n, rows):
        Ab = A[r0 : r0 + rows]
        W = MUt @ Ab[:, : d + 1].T  # k x rows
        np.maximum(W, 0.0, out=W)
        np.multiply(W, C[:, r0 : r0 + rows], out=W)
        S += Ab.T @ W.T
    return S


def _sums_common(A: np.ndarray, d: int, mu: np.ndarray, C: np.ndarray, u: float) -> np.ndarray:
    """:func:`_sums` when every problem sits at the same ``mu`` and offset: one product."""
    w = A[:, : d + 1] @ mu
    w += u
    np.maximum(w, 0.0, out=w)
    return (C @ (A * w[:, None])).T


def solve_simplex_dual_batch(
    design: BatchDesign,
    targets: np.ndarray,
    counts: np.ndarray,
    *,
    mu0: np.ndarray,
    hessian: np.ndarray,
    tol: float = 1e-11,
    max_iter: int = 50,
) -> BatchSolution:
    r"""Solve ``k`` simplex duals sharing the controls, by quasi-Newton steps in lockstep.

    Problem :math:`i` is the dual of
    :func:`~causalkit_plugins.estimators.microsynth.dual.solve_simplex_dual` with target
    :math:`\bar x_1^{(i)}` and frequency weights :math:`c^{(i)}` (bootstrap multiplicities):
    :math:`\min_\mu F_i(\mu) = \tfrac12\sum_j c^{(i)}_j (m_i^{-1} + a_j^\top\mu)_+^2 - b_i^\top\mu`
    with gradient :math:`g_i(\mu) = \sum_j c^{(i)}_j w_j a_j - b_i` (the balance residual).
    All start at ``mu0`` with the inverse of ``hessian`` (the full-sample generalised
    Hessian, factored once) as the inverse-Jacobian estimate :math:`K_i`, and step
    :math:`\mu_i \leftarrow \mu_i - K_i g_i`. After each step :math:`K_i` gets Broyden's
    ("good") rank-one secant update :math:`K \leftarrow K + (s - Ky)s^\top K / (s^\top K y)`
    with :math:`s` the step and :math:`y` the gradient change, so the linear contraction of the
    fixed chord matrix (about :math:`\sqrt{d/n}` per step) becomes superlinear
    (Broyden 1965; Dennis & Moré 1977). Each step is one pass over the controls for the whole
    batch: :math:`W = (u + \mu^\top A^\top)_+` and :math:`A^\top (C \odot W)` are matrix
    products, so the control matrix is read once per step for all problems instead of twice per
    problem and step.

    A problem leaves the batch converged once its max-abs residual is at most ``tol``. A
    step is accepted only if it cuts the residual by the factor ``CHORD_CONTRACTION`` (the same test
    under which the one-at-a-time solver keeps its chord steps); otherwise, and at
    ``max_iter``, the problem leaves unconverged and the caller re-solves it with
    ``solve_simplex_dual`` (which backtracks and switches to exact Newton steps). Since the
    primal weights are unique (strictly convex objective), both solvers agree to the
    tolerance.

    Parameters
    ----------
    design : BatchDesign
        ``[X0, 1, V]`` of the controls.
    targets : ndarray, shape (k, d)
        Treated covariate means per problem.
    counts : ndarray, shape (k, n_C)
        Frequency weights per problem (each with a positive sum).
    mu0 : ndarray, shape (d + 1,)
        Common warm start.
    hessian : ndarray, shape (d + 1, d + 1)
        Initial Newton matrix.
    tol, max_iter : float, int
        As in ``solve_simplex_dual``.

    References
    ----------
    Broyden, C. G. (1965). A class of methods for solving nonlinear simultaneous equations.
    *Math. Comp.* 19.
    Dennis, J. E. & Moré, J. J. (1977). Quasi-Newton methods, motivation and theory.
    *SIAM Review* 19.
    """
    A, d = design.A, design.d
    k = targets.shape[0]
    C = np.ascontiguousarray(counts, dtype=np.float64)
    u = 1.0 / C.sum(axis=1)
    Bt = np.column_stack([np.asarray(targets, dtype=np.float64), np.ones(k)]).T  # (d+1) x k
    mu0 = np.asarray(mu0, dtype=np.float64)
    MU = np.repeat(mu0[:, None], k, axis=1)
    K = np.repeat(_inverse(np.asarray(hessian, dtype=np.float64))[None], k, axis=0)

    out_mu = np.empty((k, d + 1))
    out_conv = np.zeros(k, dtype=bool)
    out_it = np.zeros(k, dtype=np.int64)
    out_res = np.full(k, np.inf)
    out_mom = np.full((k, A.shape[1] - d - 1), np.nan)

    common = bool(np.all(u == u[0]))
    S = _sums_common(A, d, mu0, C, float(u[0])) if common else _sums(A, d, MU, C, u)
    G = S[: d + 1] - Bt
    res = np.max(np.abs(G), axis=0)
    fail = np.zeros(k, dtype=bool)
    live = np.arange(k)
    it = 0
    while True:
        done = res <= tol
        leave = done | fail if it < max_iter else np.ones(live.size, dtype=bool)
        if leave.any():
            gone, conv = live[leave], done[leave]
            out_mu[gone] = MU[:, leave].T
            out_conv[gone] = conv
            out_it[gone] = it
            out_res[gone] = res[leave]
            out_mom[gone[conv]] = (S[d + 1 :, leave & done] / S[d, leave & done]).T
            keep = ~leave
            live, MU, G, res, S, K = (
                live[keep],
                MU[:, keep],
                G[:, keep],
                res[keep],
                S[:, keep],
                K[keep],
            )
            C, u, Bt = C[keep], u[keep], Bt[:, keep]
        if live.size == 0:
            break
        it += 1
        step = -np.einsum("kij,jk->ik", K, G)
        S_new = _sums(A, d, MU + step, C, u)
        G_new = S_new[: d + 1] - Bt
        res_new = np.max(np.abs(G_new), axis=0)
        ok = (res_new <= tol) | (res_new <= CHORD_CONTRACTION * res)
        fail = ~ok
        # Broyden's good update of the inverse Jacobian estimate, per problem.
        s, y = step.T, (G_new - G).T
        Ky = np.einsum("kij,kj->ki", K, y)
        sK = np.einsum("ki,kij->kj", s, K)
        den = np.einsum("ki,ki->k", s, Ky)
        safe = np.abs(den) > 1e-12 * np.linalg.norm(s, axis=1) * np.linalg.norm(Ky, axis=1)
        den = np.where(safe, den, 1.0)
        K = K + np.where(safe, 1.0, 0.0)[:, None, None] * np.einsum(
            "ki,kj->kij", (s - Ky) / den[:, None], sK
        )
        MU = np.where(ok, MU + step, MU)
        S = np.where(ok, S_new, S)
        G = np.where(ok, G_new, G)
        res = np.where(ok, res_new, res)
    return BatchSolution(out_mu, out_conv, out_it, out_res, out_mom)
