"""Single-machine fast path: parquet read column-wise into per-unit arrays, and a chunked dual solve on them."""

from __future__ import annotations

from typing import Literal

import numpy as np

from causalkit.contracts import Dataset, Fit, Resampler
from causalkit.errors import DataError, EstimationError
from causalkit.panel import unit_table
from causalkit_plugins.estimators.microsynth.aggregates import (
    Moments,
    dual_sums,
    merge_sums,
)
from causalkit_plugins.estimators.microsynth.dual import solve_simplex_dual
from causalkit_plugins.estimators.microsynth.estimands import effect_names, effects
from causalkit_plugins.estimators.microsynth.params import MicroSynthParams
from causalkit_plugins.estimators.microsynth.pass_newton import (
    Oracle,
    PassSolution,
    gaps_and_tables,
    solve_by_passes,
    standardisation,
)
from causalkit_plugins.estimators.microsynth.unit_arrays import (
    UnitArrays,
    read_unit_arrays,
    split_units,
)

__all__ = ["UnitArrays", "read_unit_arrays", "unit_arrays", "fit_columnar"]

_CHUNK = 1 << 18


def unit_arrays(data: Dataset, dtype: Literal["float64", "float32"] = "float64") -> UnitArrays:
    """Per-unit arrays of a dataset: streamed from its lazy parquet source, else via :func:`unit_table`."""
    if data.source is not None:
        return read_unit_arrays(data.source.path, data.roles, dtype)
    table = unit_table(data, group_role="treatment", who="microsynth")
    return split_units(
        table.X, table.group, table.y_post, table.covariates, table.post_periods, dtype
    )


def _column_moments(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and centred sum of squares of each column (two-pass per column, float64)."""
    d = M.shape[1]
    mean, m2 = np.zeros(d), np.zeros(d)
    for j in range(d):
        col = M[:, j].astype(np.float64, copy=False)
        mean[j] = col.mean() if col.size else 0.0
        dev = col - mean[j]
        m2[j] = dev @ dev
    return mean, m2


def local_moments(arr: UnitArrays) -> Moments:
    """Group moments of the covariates, column by column; NaNs are counted as bad units."""
    (m0, s0), (m1, s1) = _column_moments(arr.Xc), _column_moments(arr.Xt)
    ysum = np.vstack([arr.Yc.sum(axis=0), arr.Yt.sum(axis=0)])
    bad = 0
    if not (np.isfinite(m0).all() and np.isfinite(m1).all() and np.isfinite(ysum).all()):
        bad = sum(
            int((np.isnan(M).any(axis=1) | np.isnan(Y).any(axis=1)).sum())
            for M, Y in ((arr.Xc, arr.Yc), (arr.Xt, arr.Yt))
        )
    n = np.array([arr.Xc.shape[0], arr.Xt.shape[0]], dtype=np.float64)
    return Moments(n, np.vstack([m0, m1]), np.vstack([s0, s1]), ysum, bad)


def _standardised(M: np.ndarray, mean: np.ndarray, sd: np.ndarray, inplace: bool) -> np.ndarray:
    """:math:`(x - \bar x)/s` column by column, in place when ``M`` is float64 and ``inplace``."""
    Z = M if inplace and M.dtype == np.float64 else np.empty(M.shape, order="F")
    for j in range(M.shape[1]):
        np.subtract(M[:, j], mean[j], out=Z[:, j])
        Z[:, j] /= sd[j]
    return Z


def local_oracle(
    arr: UnitArrays,
    mean: np.ndarray | None,
    sd: np.ndarray | None,
    counts: np.ndarray | None = None,
) -> Oracle:
    """Chunked in-process oracle; ``counts`` are case weights in unit order (one weighting) or ``None``.

    ``mean``/``sd`` standardise each chunk on the fly; ``None`` when the blocks are already
    standardised float64 (the fit's own arrays), so chunks are used as they are.
    """
    u = 1.0 / float(arr.Xc.shape[0])
    cc = None if counts is None else counts[~arr.group]
    ct = None if counts is None else counts[arr.group]
    blocks = ((arr.Xc, arr.Yc, cc, False), (arr.Xt, arr.Yt, ct, True))

    def oracle(mus: np.ndarray, reps: np.ndarray) -> dict[str, np.ndarray]:
        total: dict[str, np.ndarray] | None = None
        for M, Y, c, treated in blocks:
            for s in range(0, M.shape[0], _CHUNK):
                sl = slice(s, s + _CHUNK)
                Z = M[sl] if mean is None or sd is None else (M[sl].astype(np.float64) - mean) / sd
                g = np.full(Z.shape[0], treated)
                part = dual_sums(Z, g, Y[sl], None if c is None else c[sl, None], mus, u)
                total = part if total is None else merge_sums(total, part)
        assert total is not None
        return total

    return oracle


def fit_columnar(data: Dataset, p: MicroSynthParams) -> Fit:
    """Simplex MicroSynth (ATT) on per-unit arrays with chunked passes (``backend="columnar"``).

    Same estimator and estimates vector as the in-memory backend (same dual iteration, see
    :func:`~causalkit_plugins.estimators.microsynth.pass_newton.solve_by_passes`), with memory
    near the size of :math:`X`: no standardised copy, no active-row copy. The resampling
    refit turns resampled indices into case weights (counts), so no resampled copy is made
    either; strata are the treated/control groups.
    """
    arr = unit_arrays(data, p.dtype)
    if not arr.covariates:
        raise DataError("roles.covariates", "at least one covariate to balance", "none")
    mom = local_moments(arr)
    mean, sd = standardisation(mom, arr.covariates)
    # The Newton iterations run on the standardised control matrix with BLAS (dual.py), and the
    # aggregates the result needs are read off the weights in memory: no extra data pass.
    # ``arr`` is this fit's own copy, so float64 controls are standardised in place.
    Zc = _standardised(arr.Xc, mean, sd, inplace=True)
    Zt = _standardised(arr.Xt, mean, sd, inplace=True)
    z = UnitArrays(Zc, Zt, arr.Yc, arr.Yt, arr.group, arr.covariates, arr.post_periods)
    del arr
    fast = solve_simplex_dual(Zc, (mom.mean[1] - mean) / sd, tol=p.tol, max_iter=p.max_iter)
    w = fast.w
    d = len(z.covariates)
    wz2 = np.array([(w * Zc[:, j]) @ Zc[:, j] for j in range(d)])
    sums = {
        "g": np.append(w @ Zc, w.sum())[None, :],
        "wz2": wz2[None, :],
        "wy": (w @ z.Yc)[None, :],
        "wmax": np.array([w.max()]),
        "f2": np.array([w @ w]),
        "tn": np.array([float(Zt.shape[0])]),
        "ty": z.Yt.sum(axis=0)[None, :],
    }
    sol = PassSolution(
        mu=fast.mu[None, :],
        b=np.append((mom.mean[1] - mean) / sd, 1.0)[None, :],
        sums=sums,
        iterations=np.array([fast.iterations]),
        converged=np.array([fast.converged]),
        residual=np.array([fast.residual]),
        passes=0,
    )
    gaps, tables, diag, warnings = gaps_and_tables(
        sol, mom, mean, sd, z.covariates, z.post_periods, p.balance_tol
    )
    mu_hat = sol.mu
    post = np.ones(gaps.size, dtype=bool)

    def refit(idx: np.ndarray) -> np.ndarray:
        counts = np.bincount(idx, minlength=z.n).astype(np.float64)
        s = solve_by_passes(
            local_oracle(z, None, None, counts), mu_hat, tol=p.tol, max_iter=p.max_iter
        )
        if not s.converged[0]:
            raise EstimationError("microsynth: bootstrap dual did not converge")
        sm = {k: v[0] for k, v in s.sums.items()}
        return effects(sm["ty"] / sm["tn"] - sm["wy"] / sm["g"][-1], 1.0, post)

    return Fit(
        p.estimand,
        effects(gaps, 1.0, post),
        z.n,
        names=effect_names(p.estimand, z.post_periods),
        resampler=Resampler(z.n, strata=z.group.astype(np.int64), refit=refit),
        diagnostics={**diag, "passes": sol.passes + 1, "backend": "columnar"},
        tables=tables,
        warnings=warnings,
    )
