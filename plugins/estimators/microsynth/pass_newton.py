"""Semismooth Newton on the simplex dual with one data pass per iteration, and the Fit built from its aggregates.

Shared by the single-machine columnar backend (a chunk loop) and the Spark backend (a tree
aggregation over partitions): both supply an *oracle* that maps candidate dual points to the
partial sums of :func:`~causalkit_plugins.estimators.microsynth.aggregates.dual_sums`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from causalkit.balance import BALANCE_COLUMNS, balance_block, balance_message
from causalkit.contracts import DiagnosticValue
from causalkit.errors import DataError
from causalkit_plugins.estimators.microsynth.aggregates import Moments

__all__ = [
    "Oracle",
    "PassSolution",
    "solve_by_passes",
    "standardisation",
    "gaps_and_tables",
    "replicate_gaps",
]

#: ``oracle(mus, reps)``: candidate points (R, K, d+1) for replications ``reps`` -> summed partials.
Oracle = Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]]

_EXTRA = ("f2", "g", "wy", "wz2", "wmax")


@dataclass(frozen=True)
class PassSolution:
    """Dual solutions of R weightings and the aggregates at each accepted point.

    ``sums`` holds, per replication, ``f2`` (R,), ``g`` (R, d+1), ``wy`` (R, T), ``wz2`` (R, d),
    ``wmax`` (R,) at the final point and the treated sums ``tn`` (R,), ``tz`` (R, d), ``ty`` (R, T).
    """

    mu: np.ndarray
    b: np.ndarray
    sums: dict[str, np.ndarray]
    iterations: np.ndarray
    converged: np.ndarray
    residual: np.ndarray
    passes: int


def _newton_step(H: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, float]:
    from scipy import linalg

    p = H.shape[0]
    H = H.copy()
    H[np.diag_indices(p)] += 1e-12 * (1.0 + np.trace(H) / p)
    try:
        step = -linalg.solve(H, g, assume_a="pos")
    except (linalg.LinAlgError, ValueError):
        step = -np.linalg.lstsq(H, g, rcond=None)[0]
    slope = float(g @ step)
    if slope >= 0:  # not a descent direction: steepest descent
        step = -g
        slope = -float(g @ g)
    return step, slope


def solve_by_passes(
    oracle: Oracle,
    mu0: np.ndarray,
    *,
    tol: float,
    max_iter: int,
    n_candidates: int = 4,
) -> PassSolution:
    r"""Minimise the simplex dual of R weightings, one oracle call (data pass) per Newton step.

    The iteration is that of :func:`~causalkit_plugins.estimators.microsynth.dual.solve_simplex_dual`:
    a semismooth Newton step :math:`s = -(A_S^\top A_S)^{-1}\nabla F` and the Armijo backtracking
    rule on :math:`t \in \{1, \tfrac12, \tfrac14, \dots\}` (accept when
    :math:`F(\mu+ts) \le F(\mu) + 10^{-4} t\, \nabla F^\top s` or the residual falls by the factor
    :math:`1 - 10^{-4}t`). Here the first ``n_candidates`` step lengths are evaluated in the same
    pass, together with the gradient and active-set Gram at each of them, so the accepted point
    already carries what the next step needs: one pass per iteration, plus one for the start.
    A line search that rejects every candidate of a pass continues with the next ones (an extra
    pass, rare). The first pass also returns the treated sums, hence the targets :math:`b_r`.

    Parameters
    ----------
    oracle : Oracle
        Candidate points -> summed partials (see :func:`aggregates.dual_sums`).
    mu0 : ndarray, shape (R, d + 1)
        Starting points (zeros, or the full-sample solution as a bootstrap warm start).
    tol, max_iter : float, int
        As in ``solve_simplex_dual``.
    n_candidates : int
        Step lengths per pass.
    """
    R, p = mu0.shape
    reps = np.arange(R)
    first = oracle(mu0[:, None, :], reps)
    tn = first["tn"]
    b = np.ones((R, p))
    b[:, : p - 1] = first["tz"] / np.where(tn > 0, tn, np.nan)[:, None]
    mu = mu0.copy()
    cur = {k: first[k][:, 0].copy() for k in _EXTRA}
    H = first["h"][:, 0].copy()
    f = 0.5 * cur["f2"] - np.sum(b * mu, axis=1)
    g = cur["g"] - b
    it = np.zeros(R, dtype=np.int64)
    conv = np.max(np.abs(g), axis=1) <= tol
    done = conv | ~np.isfinite(b).all(axis=1)
    passes = 1
    step = np.zeros((R, p))
    slope = np.zeros(R)
    t_start = np.ones(R)
    searching = np.zeros(R, dtype=bool)
    halves = 0.5 ** np.arange(n_candidates)
    while not done.all():
        act = np.flatnonzero(~done)
        for r in act:
            if not searching[r]:
                it[r] += 1
                step[r], slope[r] = _newton_step(H[r], g[r])
                t_start[r] = 1.0
        ts = t_start[act, None] * halves[None, :]
        cands = mu[act, None, :] + ts[:, :, None] * step[act, None, :]
        out = oracle(cands, reps[act])
        passes += 1
        for i, r in enumerate(act):
            fk = 0.5 * out["f2"][i] - cands[i] @ b[r]
            gk = out["g"][i] - b[r]
            gmax = np.max(np.abs(g[r]))
            ok = (
                (fk <= f[r] + 1e-4 * ts[i] * slope[r])
                | (np.max(np.abs(gk), axis=1) <= (1 - 1e-4 * ts[i]) * gmax)
                | (ts[i] < 1e-10)
            )
            if not ok.any():
                searching[r] = True
                t_start[r] = ts[i, -1] * 0.5
                continue
            searching[r] = False
            k = int(np.argmax(ok))
            if ts[i, k] < 1e-10 and fk[k] > f[r]:  # stalled: keep the last point
                done[r] = True
                continue
            mu[r], f[r], g[r], H[r] = cands[i, k], fk[k], gk[k], out["h"][i, k]
            for key in _EXTRA:
                cur[key][r] = out[key][i, k]
            conv[r] = np.max(np.abs(g[r])) <= tol
            done[r] = conv[r] or it[r] >= max_iter
    total = cur["g"][:, p - 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        resid = np.max(
            np.abs(cur["g"][:, : p - 1] / total[:, None] - b[:, : p - 1]), axis=1, initial=0.0
        )
    sums = {**cur, "tn": tn, "tz": first["tz"], "ty": first["ty"]}
    return PassSolution(mu, b, sums, it, conv, resid, passes)


def standardisation(mom: Moments, covariates: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Pooled mean and SD (ddof=0) from the group moments; checks groups, NaNs and constant columns."""
    if mom.bad:
        raise DataError(
            "roles",
            "no missing values in the role columns (and a balanced, time-invariant panel)",
            f"{mom.bad} bad units",
        )
    if mom.n[1] == 0:
        raise DataError("roles.treatment", "at least one treated unit", "none")
    if mom.n[0] == 0:
        raise DataError(
            "roles.treatment", "at least one control unit", "none (every unit is treated)"
        )
    n = mom.n.sum()
    mean = (mom.n[:, None] * mom.mean).sum(axis=0) / n
    m2 = mom.m2.sum(axis=0) + (mom.n[:, None] * (mom.mean - mean) ** 2).sum(axis=0)
    sd = np.sqrt(m2 / n)
    constant = [c for c, s in zip(covariates, sd, strict=True) if not s > 0]
    if constant:
        raise DataError(
            "roles.covariates",
            "covariates that vary across units",
            f"constant {', '.join(constant)}",
        )
    return mean, sd


def replicate_gaps(sol: PassSolution) -> np.ndarray:
    r"""Per-period gaps :math:`\sum c y_t / \sum c - \sum c w y_t / \sum c w` of every weighting, shape (R, T).

    NaN rows where the weighting's dual did not converge (or had no treated unit).
    """
    s = sol.sums
    with np.errstate(invalid="ignore", divide="ignore"):
        per = s["ty"] / s["tn"][:, None] - s["wy"] / s["g"][:, -1:]
    return np.where(sol.converged[:, None], per, np.nan)


def gaps_and_tables(
    sol: PassSolution,
    mom: Moments,
    mean: np.ndarray,
    sd: np.ndarray,
    covariates: tuple[str, ...],
    post_periods: np.ndarray,
    balance_tol: float,
) -> tuple[np.ndarray, dict[str, pd.DataFrame], dict[str, DiagnosticValue], tuple[str, ...]]:
    r"""Per-post-period gaps, balance and gap tables and diagnostics of replication 0, from aggregates.

    With :math:`S = \sum_j w_j` the weights are :math:`w_j/S`; the synthetic outcome is
    :math:`\sum w y_t / S`, the weighted control mean :math:`\bar x + s\,\sum w z / S` and its
    variance :math:`s^2(\sum w z^2/S - (\sum w z/S)^2)`; ESS :math:`= S^2/\sum w^2`; the SMD
    denominators use the unweighted group variances (ddof=1); the table is
    :func:`causalkit.balance.balance_block` of these moments.
    """
    s = {k: v[0] for k, v in sol.sums.items()}
    total = float(s["g"][-1])
    d = len(covariates)
    treated = s["ty"] / s["tn"]
    synthetic = s["wy"] / total
    gaps = treated - synthetic
    n0, n1 = mom.n
    m0, m1 = mom.mean
    v0 = mom.m2[0] / max(n0 - 1, 1)
    v1 = mom.m2[1] / max(n1 - 1, 1)
    zbar = s["g"][:d] / total
    m0w = mean + sd * zbar
    v0w = sd**2 * np.maximum(s["wz2"] / total - zbar**2, 0.0)
    bal = pd.DataFrame(
        balance_block(m1, m1, m0, m0w, v1, v0, v1, v0w),
        columns=list(BALANCE_COLUMNS),
        index=pd.Index(list(covariates), name="covariate"),
    )
    smd_after = float(np.max(np.abs(bal["smd_after"]))) if d else 0.0
    converged = bool(sol.converged[0])
    feasible, msg = balance_message(
        smd_after,
        balance_tol,
        converged,
        "the treated mean may lie outside the convex hull of the controls",
    )
    diag: dict[str, DiagnosticValue] = {
        "n_treated": int(n1),
        "n_control": int(n0),
        "max_abs_smd_before": float(np.max(np.abs(bal["smd_before"]))) if d else 0.0,
        "max_abs_smd_after": smd_after,
        "ess": total**2 / float(s["f2"]),
        "max_weight": float(s["wmax"]) / total,
        "feasible": feasible,
        "feasibility_message": msg,
        "iterations": int(sol.iterations[0]),
        "converged": converged,
        "dual_residual": float(sol.residual[0]),
        "n_periods_post": int(len(post_periods)),
        "n_balance_columns": d,
    }
    tables = {
        "balance": bal,
        "gaps": pd.DataFrame(
            {"period": post_periods, "treated": treated, "synthetic": synthetic, "gap": gaps}
        ),
    }
    warnings = () if feasible else (f"microsynth: {msg}",)
    return gaps, tables, diag, warnings
