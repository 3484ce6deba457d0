"""Minimum-variance simplex balancing weights through a semismooth Newton method on the dual."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from causalkit_plugins.estimators.microsynth.hull import separating_direction

__all__ = ["CHORD_CONTRACTION", "DualSolution", "solve_simplex_dual", "weighted_gram"]

_ARMIJO = 1e-4
_MIN_STEP = 1e-10
CHORD_CONTRACTION = 0.1
"""A chord (fixed-matrix) step is kept while it cuts the residual at least by this factor."""
_INCREMENTAL = (
    0.25  # update the Hessian by rank-k corrections when fewer rows than this share change
)


@dataclass(frozen=True)
class DualSolution:
    """Weights and solver state.

    Attributes
    ----------
    w : ndarray, shape (n_C,)
        Non-negative weights (per distinct control row) with :math:`\\sum_j c_j w_j = 1`.
    mu : ndarray, shape (d + 1,)
        Dual variables (covariate multipliers, then the sum-to-one multiplier).
    iterations : int
        Newton steps taken.
    converged : bool
        Whether the balance residual reached ``tol``.
    residual : float
        Final max-abs residual :math:`\\|A^\\top \\mathrm{diag}(c) w - b\\|_\\infty` (standardised units).
    hull_feasible : bool or None
        ``False`` when a separating hyperplane proves the target lies outside the convex hull
        of the control rows, ``True`` when a linear program proved it inside (after a
        stall), ``None`` when not checked (converged fits are feasible by construction).
    message : str
        One line on how the solve ended.
    hessian : ndarray, shape (d + 1, d + 1)
        The last generalised Hessian, reusable as a fixed Newton matrix (chord steps) for
        nearby problems such as bootstrap resamples.
    """

    w: np.ndarray
    mu: np.ndarray
    iterations: int
    converged: bool
    residual: float
    hull_feasible: bool | None
    message: str
    hessian: np.ndarray


def _syrk(M: np.ndarray) -> np.ndarray:
    """:math:`M^\top M` by BLAS ``dsyrk`` without copying a C- or F-ordered ``M`` (faster than ``M.T @ M``)."""
    from scipy.linalg.blas import dsyrk

    if M.shape[0] == 0:
        return np.zeros((M.shape[1], M.shape[1]))
    if M.flags.f_contiguous:  # column-major M: A^T A with trans=1, no copy
        U = dsyrk(1.0, M, trans=1)
    else:
        U = dsyrk(1.0, np.asfortranarray(M.T), trans=0)
    lower = _lower(U.shape[0])
    U[lower] = U.T[lower]  # dsyrk fills the upper triangle: mirror it
    return U


@functools.lru_cache(maxsize=16)
def _lower(p: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the strict lower triangle of a ``p x p`` matrix."""
    return np.tril_indices(p, -1)


def weighted_gram(X0: np.ndarray, rows: np.ndarray, c: np.ndarray | None) -> np.ndarray:
    """Gram matrix of ``[X0, 1]`` over ``rows`` (bool mask or indices), weighted by ``c``."""
    every = rows.dtype == bool and bool(rows.all())
    Xa = X0 if every else X0[rows]
    d = X0.shape[1]
    H = np.empty((d + 1, d + 1))
    if c is None:
        H[:d, :d] = _syrk(Xa)
        s = Xa.sum(axis=0)
        H[d, d] = Xa.shape[0]
    else:
        ca = c if every else c[rows]
        H[:d, :d] = _syrk(Xa * np.sqrt(ca)[:, None])
        s = ca @ Xa
        H[d, d] = ca.sum()
    H[:d, d] = s
    H[d, :d] = s
    return H


def _inverse(H: np.ndarray) -> np.ndarray:
    """Inverse of the slightly regularised Newton matrix (Cholesky; pseudo-inverse if not PD).

    Factored once per matrix, so chord steps with a fixed matrix cost one small mat-vec.
    """
    from scipy.linalg.lapack import dpotrf, dpotrs

    p = H.shape[0]
    Hr = H.copy()
    Hr.flat[:: p + 1] += 1e-12 * (1.0 + np.trace(H) / p)
    # LAPACK directly (as scipy's cho_factor/cho_solve call it, without their checks: this
    # runs once per Newton step); a failed or non-finite factor falls back as they would.
    factor, info = dpotrf(Hr, lower=0, clean=0)
    if info == 0 and np.isfinite(factor).all():
        inv, info = dpotrs(factor, _eye(p), lower=0)
        if info == 0:
            return inv
    return np.linalg.pinv(Hr)


@functools.lru_cache(maxsize=16)
def _eye(p: int) -> np.ndarray:
    """A read-only identity (right-hand side of the inverse's solve; ``dpotrs`` copies it)."""
    out = np.eye(p)
    out.flags.writeable = False
    return out


def solve_simplex_dual(
    X0: np.ndarray,
    target: np.ndarray,
    *,
    counts: np.ndarray | None = None,
    tol: float = 1e-11,
    max_iter: int = 50,
    mu0: np.ndarray | None = None,
    hessian: np.ndarray | None = None,
    check_hull: bool = True,
) -> DualSolution:
    r"""Solve the MicroSynth simplex QP through its (d+1)-dimensional dual.

    The primal, over control rows :math:`j` with frequency weights :math:`c_j` (all one
    unless ``counts`` is given, e.g. bootstrap multiplicities, with :math:`m = \sum_j c_j`), is

    .. math::
        \min_w \tfrac12\sum_j c_j (w_j - m^{-1})^2 \quad\text{s.t.}\quad
        \sum_j c_j w_j x_j = \bar x_1,\ \sum_j c_j w_j = 1,\ w \ge 0 ,

    which is the problem on the materialised resample (duplicated rows get equal weights by
    strict convexity). With :math:`a_j = (x_j, 1)` and :math:`b = (\bar x_1, 1)` the KKT
    conditions give :math:`w_j(\mu) = (m^{-1} + a_j^\top\mu)_+` and the dual is the
    once-differentiable convex problem
    :math:`\min_\mu F(\mu) = \tfrac12\sum_j c_j w_j(\mu)^2 - b^\top\mu` whose gradient
    :math:`\sum_j c_j w_j a_j - b` is exactly the balance residual. Its generalised Hessian
    is the weighted Gram matrix of the active rows :math:`S = \{j: w_j > 0\}`. Semismooth
    Newton steps with Armijo backtracking converge locally quadratically (Qi & Sun 1993).
    The Hessian is updated by rank-k corrections when few rows enter or leave :math:`S`,
    so a step costs two passes over the data. With ``hessian`` given (a nearby problem's
    Hessian, e.g. the full-sample fit for a bootstrap resample) steps are chord steps with
    that fixed matrix until progress slows, then exact.

    If :math:`\bar x_1` lies outside the convex hull of the control rows the dual is
    unbounded below (a direction :math:`\delta` with :math:`a_j^\top\delta \le 0` for all
    :math:`j` and :math:`b^\top\delta > 0` exists, Farkas' lemma). A coordinate outside the
    controls' range is caught before iterating; otherwise, when Newton stalls,
    :func:`~causalkit_plugins.estimators.microsynth.hull.separating_direction` decides by a
    linear program and the solution is returned with ``converged=False``,
    ``hull_feasible=False`` and the reason in ``message``. A target the linear program proves
    inside the hull keeps iterating (up to ``max_iter`` steps) without the stall test: near
    the boundary the residual can plateau for a few steps before the active set settles
    (contaminated-holdout draws with 60 controls for 5 covariates converged two steps after
    the stall test had given up and flagged them infeasible). A warm-started solve (``mu0``)
    that stalls without a separating hyperplane is repeated from a cold start
    (near the boundary, bootstrap resamples started from the full-sample duals stalled
    where a cold start converged in 7 steps).

    Parameters
    ----------
    X0 : ndarray, shape (n_C, d)
        Control covariates (ideally standardised).
    target : ndarray, shape (d,)
        Treated covariate mean :math:`\bar x_1`.
    counts : ndarray, shape (n_C,), optional
        Non-negative frequency weights of the control rows.
    tol : float
        Convergence tolerance on the max-abs residual.
    max_iter : int
        Maximum Newton steps.
    mu0 : ndarray, optional
        Warm start.
    hessian : ndarray, optional
        Fixed Newton matrix for chord steps (with ``mu0``).
    check_hull : bool
        Check the controls' range first and decide feasibility by linear programming when
        the iteration fails (off for bootstrap refits, which only need `converged`).

    References
    ----------
    Qi, L. & Sun, J. (1993). A nonsmooth version of Newton's method. *Math. Programming* 58.
    Lin, S. et al. (2023). Balancing approach for causal inference at scale. *KDD '23*.
    """
    X0 = np.asarray(X0, dtype=np.float64)
    n, d = X0.shape
    c = None if counts is None else np.asarray(counts, dtype=np.float64)
    m = float(n if c is None else c.sum())
    u = 1.0 / m
    b = np.empty(d + 1)
    b[:d], b[d] = target, 1.0
    mu = np.zeros(d + 1) if mu0 is None else np.array(mu0, dtype=np.float64)

    # A target coordinate outside the controls' range is infeasible: cheap certificate.
    present = slice(None) if c is None else c > 0
    if check_hull:
        bt = b[:d]
        lo, hi = X0[present].min(axis=0), X0[present].max(axis=0)
        outside = (bt < lo) | (bt > hi)
        if outside.any():
            k = int(np.flatnonzero(outside)[0])
            msg = (
                f"treated mean of covariate {k} ({b[k]:.4g}) is outside the controls' range "
                f"[{lo[k]:.4g}, {hi[k]:.4g}]: outside the convex hull"
            )
            w = np.full(n, 1.0 / m)
            return DualSolution(
                w,
                mu,
                0,
                False,
                float(np.max(np.abs(bt - X0[present].mean(axis=0)))),
                False,
                msg,
                np.eye(d + 1),
            )

    def value(mu_: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        w_ = X0 @ mu_[:d]
        w_ += u + mu_[d]
        np.maximum(w_, 0.0, out=w_)
        cw_ = w_ if c is None else w_ * c
        return w_, cw_, 0.5 * float(cw_ @ w_) - float(b @ mu_)

    def gradient(cw_: np.ndarray) -> np.ndarray:
        out = np.empty(d + 1)
        out[:d] = cw_ @ X0
        out[d] = cw_.sum()
        return out - b

    w, cw, f = value(mu)
    g = gradient(cw)
    res = float(np.abs(g).max())
    active = w > 0
    chord = hessian is not None
    H = np.array(hessian, dtype=np.float64) if chord else weighted_gram(X0, active, c)
    full = H if (not chord and bool(active.all())) else None
    H_inv, H_used = None, None
    history = [res]
    it = 0
    stalled = False
    hull: bool | None = None
    while res > tol and it < max_iter:
        it += 1
        if H_used is not H:
            H_inv, H_used = _inverse(H), H
        step = -(H_inv @ g)
        slope = float(g @ step)
        if slope >= 0:  # not a descent direction: fall back to steepest descent
            step, slope = -g, -float(g @ g)
        t = 1.0
        while True:
            cand = mu + t * step
            w_new, cw_new, f_new = value(cand)
            g_try = None
            if f_new <= f + _ARMIJO * t * slope:
                break
            # Near the optimum F changes below its rounding error; the residual decides.
            g_try = gradient(cw_new)
            if float(np.abs(g_try).max()) <= (1 - _ARMIJO * t) * res or t < _MIN_STEP:
                break
            t *= 0.5
        if t < _MIN_STEP and f_new > f:
            if chord:  # the borrowed matrix gave no descent from here: exact steps instead
                chord = False
                H = weighted_gram(X0, active, c)
                continue
            stalled = True
            break
        mu, w, cw, f = cand, w_new, cw_new, f_new
        g = gradient(cw) if g_try is None else g_try
        res_new = float(np.abs(g).max())
        new_active = w > 0
        if chord and res_new > CHORD_CONTRACTION * res:
            chord = False  # the borrowed matrix no longer contracts fast: go exact
            H = weighted_gram(X0, new_active, c)
        elif not chord:
            changed = new_active ^ active
            k = int(changed.sum())
            n_in = int(new_active.sum())
            if k and k < _INCREMENTAL * min(n_in, n - n_in + 1):
                added = np.flatnonzero(changed & new_active)
                removed = np.flatnonzero(changed & active)
                H = H + weighted_gram(X0, added, c) - weighted_gram(X0, removed, c)
            elif k and n - n_in < n_in:  # few inactive rows: subtract them from the full Gram
                if full is None:
                    full = weighted_gram(X0, np.ones(n, dtype=bool), c)
                H = full - weighted_gram(X0, ~new_active, c)
            elif k:
                H = weighted_gram(X0, new_active, c)
        active = new_active
        res = res_new
        history.append(res)
        # An unbounded dual shows as a residual that stops shrinking. A target near the hull's
        # boundary can stall the same way for a few steps: with the hull checked, a stall is
        # believed only when the linear program finds a separating hyperplane; a target
        # proven inside keeps its Newton steps (the dual is then bounded below).
        if hull is None and it >= 8 and res > 0.5 * history[-4]:
            if check_hull:
                hull = separating_direction(X0, b[:d], c, start_rows=np.flatnonzero(active)) is None
                if hull:
                    continue
            stalled = True
            break

    converged = res <= tol
    if stalled and mu0 is not None and hull is not False:
        # A warm start far from this problem's optimum (e.g. a resample near the hull's
        # boundary started from the full-sample duals) can stall where a cold start does not.
        return solve_simplex_dual(
            X0, target, counts=counts, tol=tol, max_iter=max_iter, check_hull=check_hull
        )
    if converged:
        msg = f"converged in {it} Newton steps (residual {res:.1e})"
    elif check_hull:
        if hull is None:
            direction = separating_direction(X0, b[:d], c, start_rows=np.flatnonzero(active))
            hull = direction is None
        if hull:
            msg = (
                f"not converged after {it} steps (residual {res:.1e}); the target is inside the "
                "convex hull but on or near its boundary (ill-conditioned)"
            )
        else:
            msg = (
                f"the treated mean lies outside the convex hull of the controls (separating "
                f"hyperplane found after {it} Newton steps; residual {res:.1e})"
            )
    else:
        msg = f"not converged after {it} steps (residual {res:.1e}{', stalled' if stalled else ''})"
    total = float(cw.sum())
    if total > 0:
        w = w / total
    return DualSolution(
        w=w,
        mu=mu,
        iterations=it,
        converged=converged,
        residual=res,
        hull_feasible=hull,
        message=msg,
        hessian=H,
    )
