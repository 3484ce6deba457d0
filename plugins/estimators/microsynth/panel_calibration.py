r"""Linear calibration with weights bounded below by zero: R microsynth's default panel weights.

R microsynth (``get.w.sub``) calls ``survey::calibrate(design, formula, population,
calfun = "linear", bounds = c(0, Inf), epsilon = cal.epsilon, maxit, force = TRUE)`` on the
control units, starting from the base weight :math:`d = n_T/n_C` on every control. survey's
``grake`` then runs Newton steps on the calibration multipliers :math:`\eta`:

.. math::
    g_j = 1 + F(x_j^\top\eta),\quad F(u) = \max(u, -1),\qquad
    T = \sum_j d\,F'(x_j^\top\eta)\,x_j x_j^\top,\qquad
    \eta \leftarrow \eta + T^{+}\bigl(h - \textstyle\sum_j d\,g_j x_j\bigr),

with :math:`T^{+}` the Moore-Penrose inverse (MASS::ginv, tolerance
:math:`256\,\epsilon_{mach}`), and stops as soon as every constraint's relative misfit
:math:`|h_k - \sum_j w_j x_{jk}| / (1 + |h_k|)` is below ``epsilon`` (1e-4 in microsynth).
The weights are :math:`w_j = d\,g_j \ge 0`. At convergence they are the minimum-norm
non-negative weights meeting the constraints (linear calibration minimises
:math:`\sum_j (w_j - d)^2/d`, which equals :math:`\|w\|^2/d` + const once
:math:`\sum_j w_j = n_T`); the early stop at relative misfit 1e-4 is part of R's
published numbers and is reproduced exactly here.

References
----------
Deville, J.-C. & Särndal, C.-E. (1992). Calibration estimators in survey sampling. *JASA* 87.
Lumley, T. survey: analysis of complex survey samples, R package (``grake``, ``calibrate``).
Robbins, M.W. & Davenport, S. (2021). microsynth. *J. Stat. Softw.* 97(2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CalibrationResult", "calibrate_linear", "independent_columns"]

_SOMETHRESHOLD = 20.0  # survey's pre-scaling threshold for designs started without weights


@dataclass(frozen=True)
class CalibrationResult:
    """Calibrated control weights and how the Newton iteration ended."""

    w: np.ndarray
    iterations: int
    converged: bool
    max_rel_misfit: float


def independent_columns(M: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """Indices of the columns kept when dependent ones are dropped left to right.

    Mirrors microsynth's ``find.sing`` (row-reduction of the diagonally scaled Gram matrix):
    a column is dropped when it is (numerically) a combination of the columns kept before
    it. All-zero columns are dropped too.
    """
    from scipy import linalg

    G = M.T @ M
    d = np.sqrt(np.diag(G))
    keep: list[int] = []
    chol = np.zeros((G.shape[0], G.shape[0]))  # Cholesky factor of the kept columns' scaled Gram
    for j in range(G.shape[0]):
        if d[j] == 0:
            continue
        k = len(keep)
        b = G[keep, j] / (d[keep] * d[j]) if k else np.empty(0)
        c = linalg.solve_triangular(chol[:k, :k], b, lower=True) if k else b
        resid = 1.0 - c @ c
        if resid > tol:
            chol[k, :k] = c
            chol[k, k] = np.sqrt(resid)
            keep.append(j)
    return np.asarray(keep, dtype=np.int64)


def calibrate_linear(
    Mc: np.ndarray, targets: np.ndarray, base: float | np.ndarray, epsilon: float, maxit: int
) -> CalibrationResult:
    r"""survey's ``grake`` with ``calfun="linear"``, ``bounds=c(0, Inf)``.

    Parameters
    ----------
    Mc : ndarray, shape (n_C, k)
        Control constraint matrix (intercept column first).
    targets : ndarray, shape (k,)
        Treated totals :math:`h`.
    base : float or ndarray, shape (n_C,)
        Base (design) weights :math:`d` (microsynth: the constant :math:`n_T/n_C`; with
        sampling weights one per control).
    epsilon, maxit : float, int
        Stopping rule of ``grake``.

    Returns
    -------
    CalibrationResult
        ``converged`` is False when ``maxit`` was reached (R's ``force=TRUE`` still returns
        the weights; the caller decides).
    """

    Mc = np.asarray(Mc, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    ww = np.broadcast_to(np.asarray(base, dtype=np.float64), Mc.shape[:1]).copy()
    sample_total = ww @ Mc
    zero = (sample_total == 0) & (targets == 0) & ~Mc.any(axis=0)
    if zero.any():  # survey drops columns where sample and population are both zero
        Mc, targets, sample_total = Mc[:, ~zero], targets[~zero], sample_total[~zero]
    scale = 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        scales = targets / sample_total
    if np.all(np.isfinite(scales)) and scales.min() > _SOMETHRESHOLD:
        scale = float(scales.mean())
        ww = ww * scale
        sample_total = sample_total * scale
    eta = np.zeros(Mc.shape[1])
    xeta = Mc @ eta
    rcond = 256 * np.finfo(np.float64).eps
    denom = 1.0 + np.abs(targets)
    iterations, converged = 0, False
    rel = np.abs(targets - sample_total) / denom
    while iterations < maxit:
        iterations += 1
        active = xeta > -1.0
        Ma = Mc[active]
        T = (Ma * ww[active, None]).T @ Ma
        misfit = targets - sample_total - (ww * np.maximum(xeta, -1.0)) @ Mc
        eta = eta + np.linalg.pinv(T, rcond=rcond, hermitian=True) @ misfit
        xeta = Mc @ eta
        rel = np.abs(targets - sample_total - (ww * np.maximum(xeta, -1.0)) @ Mc) / denom
        if np.all(rel < epsilon):
            converged = True
            break
    g = 1.0 + np.maximum(xeta, -1.0)
    return CalibrationResult(ww * g, iterations, converged, float(rel.max()))
