"""Single-machine fast path: parquet read column-wise into per-unit arrays, and a chunked dual solve on them."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from causalkit.contracts import Dataset, Estimand, Fit, Params, Roles
from causalkit.errors import ConfigError, DataError, EstimationError
from causalkit.panel import unit_table
from causalkit_plugins.data.files import check_columns
from causalkit_plugins.estimators.microsynth.aggregates import (
    Moments,
    dual_sums,
    merge_sums,
)
from causalkit_plugins.estimators.microsynth.dual import solve_simplex_dual
from causalkit_plugins.estimators.microsynth.params import MicroSynthParams
from causalkit_plugins.estimators.microsynth.pass_newton import (
    Oracle,
    PassSolution,
    att_and_tables,
    solve_by_passes,
    standardisation,
)
from causalkit_plugins.estimators.microsynth.unit_arrays import (
    UnitArrays,
    read_unit_arrays,
    split_units,
)

__all__ = [
    "UnitArrays",
    "read_unit_arrays",
    "unit_arrays",
    "fit_columnar",
    "fit_scaled",
    "ParquetUnitsSource",
    "LAZY_ATTR",
]

#: ``frame.attrs`` key of a lazy dataset: the parquet path the estimator reads itself.
LAZY_ATTR = "causalkit.parquet"
_CHUNK = 1 << 18


def unit_arrays(data: Dataset, dtype: Literal["float64", "float32"] = "float64") -> UnitArrays:
    """Per-unit arrays of a dataset: read from parquet when it is lazy, else via :func:`unit_table`."""
    lazy = data.frame.attrs.get(LAZY_ATTR)
    if lazy is not None:
        return read_unit_arrays(lazy, data.roles, dtype)
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


def fit_columnar(data: Dataset, p: MicroSynthParams, rng: np.random.Generator) -> Fit:
    """Simplex MicroSynth on per-unit arrays with chunked passes (``backend="columnar"``).

    Same estimator as the in-memory backend (same dual iteration, see
    :func:`~causalkit_plugins.estimators.microsynth.pass_newton.solve_by_passes`), with memory
    near the size of :math:`X`: no standardised copy, no active-row copy. The bootstrap refit
    turns resampled indices into case weights (counts), so no resampled copy is made either.
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
    att, tables, diag, warnings = att_and_tables(
        sol, mom, mean, sd, z.covariates, z.post_periods, p.balance_tol
    )
    mu_hat = sol.mu

    def refit(idx: np.ndarray) -> float:
        counts = np.bincount(idx, minlength=z.n).astype(np.float64)
        s = solve_by_passes(
            local_oracle(z, None, None, counts), mu_hat, tol=p.tol, max_iter=p.max_iter
        )
        if not s.converged[0]:
            raise EstimationError("microsynth: bootstrap dual did not converge")
        sm = {k: v[0] for k, v in s.sums.items()}
        return float(np.mean(sm["ty"] / sm["tn"] - sm["wy"] / sm["g"][-1]))

    return Fit(
        estimand=Estimand.ATT,
        estimate=att,
        n=z.n,
        strata=z.group.astype(np.int64),
        refit=refit,
        diagnostics={**diag, "passes": sol.passes + 1, "backend": "columnar"},
        tables=tables,
        warnings=warnings,
    )


class ParquetUnitsParams(Params):
    """Where the parquet panel is, its roles, the covariate precision, and whether to defer reading."""

    path: str | None = Field(None, description="parquet file or dataset directory")
    roles: Roles = Field(default_factory=Roles)
    dtype: Literal["float64", "float32"] = Field(
        "float64", description="covariate precision in memory"
    )
    lazy: bool = Field(
        False,
        description="read nothing now; estimator=microsynth reads the file itself "
        "(backend=columnar or spark)",
    )


class ParquetUnitsSource:
    """A parquet panel reduced to one row per unit while reading (``data=parquet_units``).

    Only the role columns are read, in record batches (:func:`read_unit_arrays`). The table
    handed on has one row per unit: unit, treatment (ever treated), outcome (mean over the post
    periods) and the covariates, with roles for a cross-section, so any estimator can use it.
    With ``lazy=true`` nothing is read here: the dataset is an empty frame carrying the path,
    for ``estimator=microsynth estimator.backend=columnar|spark`` only (which keep the
    per-period gaps).
    """

    name: ClassVar[str] = "parquet_units"
    Params: ClassVar[type[Params]] = ParquetUnitsParams

    def __init__(self, params: ParquetUnitsParams | None = None) -> None:
        self.params = params or ParquetUnitsParams()

    def load(self) -> Dataset:
        import pyarrow.dataset as ds

        p = self.params
        if p.path is None:
            raise DataError("data.path", "a parquet file or directory", "nothing")
        path = Path(p.path).expanduser()
        if not path.exists():
            raise DataError("data.path", "an existing parquet file or directory", str(path))
        names = [str(n) for n in ds.dataset(path, format="parquet").schema.names]
        check_columns(names, p.roles.columns(), p.roles, str(path))
        if p.lazy:
            frame = pd.DataFrame({c: pd.Series(dtype=float) for c in p.roles.columns()})
            frame.attrs[LAZY_ATTR] = str(path)
            return Dataset(frame, p.roles)
        arr = read_unit_arrays(path, p.roles, p.dtype)
        unit = p.roles.unit or "unit"
        treat, out = p.roles.treatment, p.roles.outcome
        assert treat is not None and out is not None
        g = arr.group

        def unit_order(c_part: np.ndarray, t_part: np.ndarray) -> np.ndarray:
            full = np.empty(arr.n, dtype=np.result_type(c_part, t_part))
            full[~g], full[g] = c_part, t_part
            return full

        cols: dict[str, np.ndarray] = {
            unit: np.arange(arr.n),
            treat: g.astype(np.int8),
            out: unit_order(arr.Yc.mean(axis=1), arr.Yt.mean(axis=1)),
        }
        cols.update(
            {c: unit_order(arr.Xc[:, j], arr.Xt[:, j]) for j, c in enumerate(arr.covariates)}
        )
        roles = Roles(unit=unit, treatment=treat, outcome=out, covariates=arr.covariates)
        return Dataset(pd.DataFrame(cols, copy=False), roles)


def fit_scaled(data: Dataset, p: MicroSynthParams, rng: np.random.Generator) -> Fit:
    """Entry point of ``backend=columnar|spark``; rejects options these backends do not implement."""
    unsupported = {
        "weight_method": p.weight_method != "simplex" or p.propensity_mode,
        "estimand": p.estimand != "att",
        "outcome_lag_periods": bool(p.outcome_lag_periods),
        "match_outcomes": bool(p.match_outcomes),
        "band_reps": p.band_reps > 0,
    }
    bad = [k for k, v in unsupported.items() if v]
    if bad:
        raise ConfigError(
            f"estimator.{bad[0]}",
            f"its default with backend={p.backend} (simplex, att only)",
            str(getattr(p, bad[0])),
        )
    if p.backend == "spark":
        from causalkit_plugins.estimators.microsynth.spark_backend import fit_spark

        return fit_spark(data, p, rng)
    return fit_columnar(data, p, rng)
