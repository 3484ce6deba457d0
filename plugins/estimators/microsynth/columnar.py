"""Single-machine fast path: parquet read column-wise into per-unit arrays, and a chunked dual solve on them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
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
    chunk_moments,
    dual_sums,
    merge_moments,
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
_BATCH = 1 << 20
_CHUNK = 1 << 18


@dataclass(frozen=True)
class UnitArrays:
    """One row per unit: covariates ``X`` (n, d) in float64 or float32, treated flag, post outcomes (n, T)."""

    X: np.ndarray
    group: np.ndarray
    Y: np.ndarray
    covariates: tuple[str, ...]
    post_periods: np.ndarray

    @property
    def n(self) -> int:
        return int(self.group.shape[0])


def _files(path: Path) -> list[str]:
    import pyarrow.dataset as ds

    return sorted(ds.dataset(path, format="parquet").files)


def _batches(files: list[str], columns: list[str]) -> Iterator[dict[str, np.ndarray]]:
    """Record batches in file order as numpy columns (nulls become NaN)."""
    import pyarrow.parquet as pq

    for f in files:
        for batch in pq.ParquetFile(f).iter_batches(batch_size=_BATCH, columns=columns):
            yield {c: batch.column(c).to_numpy(zero_copy_only=False) for c in columns}


def _binary(v: np.ndarray, role: str) -> np.ndarray:
    if v.dtype != bool and not np.isin(v, (0, 1)).all():
        raise DataError(
            f"roles.{role}", "a binary 0/1 column", f"values {np.unique(v)[:5].tolist()}"
        )
    return v.astype(bool)


def read_unit_arrays(
    path: str | Path, roles: Roles, dtype: Literal["float64", "float32"] = "float64"
) -> UnitArrays:
    r"""Per-unit arrays from a parquet file or directory, reading only the role columns.

    A long panel (roles ``unit`` and ``time``) is read in two streaming passes: the unit and
    time columns first (factorised into integer codes; balance of the panel checked), then the
    treatment, outcome and covariates batch by batch, scattered into the unit grid. Covariates
    are written at a unit's first row and compared at its other rows (time invariance), so
    memory stays near the size of :math:`X` (:math:`n \times d` in ``dtype``) plus the
    :math:`n \times T` outcome grid; no pandas object of the long panel is built. The onset
    rules are those of :func:`causalkit.panel.unit_table` (one onset; periods from it on are post).
    """
    path = Path(path)
    files = _files(path)
    covs = tuple(roles.covariates)
    if roles.treatment is None or roles.outcome is None:
        raise DataError("roles", "treatment and outcome columns", "none")
    ft = np.dtype(dtype)
    cols = [roles.treatment, roles.outcome, *covs]
    if roles.time is None:
        import pyarrow.parquet as pq

        n = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        X = np.empty((n, len(covs)), dtype=ft)
        g = np.empty(n, dtype=bool)
        Y = np.empty((n, 1))
        r0 = 0
        for b in _batches(files, cols):
            r1 = r0 + len(b[roles.outcome])
            g[r0:r1] = _binary(b[roles.treatment], "treatment")
            Y[r0:r1, 0] = b[roles.outcome]
            for j, c in enumerate(covs):
                X[r0:r1, j] = b[c]
            r0 = r1
        return UnitArrays(X, g, Y, covs, np.array([0]))
    if roles.unit is None:
        raise DataError("roles.unit", "a unit column when roles.time is set", "nothing")
    import pyarrow.dataset as ds

    keys = ds.dataset(files, format="parquet").to_table(columns=[roles.unit, roles.time])
    ucode, ulab = pd.factorize(keys.column(roles.unit).to_numpy(), sort=False)
    tcode, tlab = pd.factorize(keys.column(roles.time).to_numpy(), sort=True)
    del keys
    n_u, n_t = len(ulab), len(tlab)
    counts = np.bincount(ucode * n_t + tcode, minlength=n_u * n_t)
    if counts.max() > 1 or counts.min() == 0:
        raise DataError(
            "roles.unit/time",
            "a balanced panel with one row per unit and period",
            f"{int((counts != 1).sum())} (unit, period) cells missing or duplicated",
        )
    del counts
    X = np.empty((n_u, len(covs)), dtype=ft, order="F")  # column scatter/gather stays contiguous
    seen = np.zeros(n_u, dtype=bool)
    D = np.zeros((n_u, n_t), dtype=bool)
    Yg = np.empty((n_u, n_t))
    r0 = 0
    for b in _batches(files, cols):
        r1 = r0 + len(b[roles.outcome])
        u, t = ucode[r0:r1], tcode[r0:r1]
        D[u, t] = _binary(b[roles.treatment], "treatment")
        Yg[u, t] = b[roles.outcome]
        fresh = ~seen[u]
        first_u, first_i = np.unique(u[fresh], return_index=True)
        rows = np.flatnonzero(fresh)[first_i]
        seen[first_u] = True
        # Column by column: no (rows x d) temporary; a unit's first row sets X, later rows must agree.
        for j, c in enumerate(covs):
            col = np.asarray(b[c], dtype=ft)
            X[first_u, j] = col[rows]
            xj = X[u, j]
            differ = xj != col
            if differ.any() and (differ & ~(np.isnan(xj) & np.isnan(col))).any():
                raise DataError(
                    "roles.covariates",
                    f"{c!r} constant within each unit (time-invariant)",
                    "values that vary within a unit",
                )
        r0 = r1
    ever = D.any(axis=1)
    if not ever.any():
        raise DataError("roles.treatment", "at least one treated unit", "none")
    onsets = np.unique(np.where(ever, D.argmax(axis=1), n_t)[ever])
    if onsets.size > 1:
        raise DataError(
            "roles.treatment",
            "a single treatment onset (no staggered adoption)",
            f"{onsets.size} onsets",
        )
    t0 = int(onsets[0])
    return UnitArrays(X, ever, np.ascontiguousarray(Yg[:, t0:]), covs, np.asarray(tlab[t0:]))


def unit_arrays(data: Dataset, dtype: Literal["float64", "float32"] = "float64") -> UnitArrays:
    """Per-unit arrays of a dataset: read from parquet when it is lazy, else via :func:`unit_table`."""
    lazy = data.frame.attrs.get(LAZY_ATTR)
    if lazy is not None:
        return read_unit_arrays(lazy, data.roles, dtype)
    table = unit_table(data, group_role="treatment", who="microsynth")
    return UnitArrays(
        table.X.astype(dtype, copy=False),
        table.group,
        table.y_post,
        table.covariates,
        table.post_periods,
    )


def local_moments(arr: UnitArrays) -> Moments:
    """Group moments of the covariates, in chunks."""
    mom: Moments | None = None
    for s in range(0, arr.n, _CHUNK):
        part = chunk_moments(
            arr.X[s : s + _CHUNK], arr.group[s : s + _CHUNK], arr.Y[s : s + _CHUNK]
        )
        mom = part if mom is None else merge_moments(mom, part)
    assert mom is not None
    return mom


def local_oracle(
    arr: UnitArrays, mean: np.ndarray, sd: np.ndarray, counts: np.ndarray | None = None
) -> Oracle:
    """Chunked in-process oracle; ``counts`` are case weights (one weighting) or ``None``."""
    u = 1.0 / float((~arr.group).sum())

    def oracle(mus: np.ndarray, reps: np.ndarray) -> dict[str, np.ndarray]:
        total: dict[str, np.ndarray] | None = None
        for s in range(0, arr.n, _CHUNK):
            sl = slice(s, s + _CHUNK)
            Z = (arr.X[sl].astype(np.float64) - mean) / sd
            c = None if counts is None else counts[sl, None]
            part = dual_sums(Z, arr.group[sl], arr.Y[sl], c, mus, u)
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
    ctrl = ~arr.group
    Zc = np.empty((int(ctrl.sum()), len(arr.covariates)))
    for j in range(Zc.shape[1]):  # column by column: X may be column-major (columnar read)
        Zc[:, j] = (arr.X[ctrl, j] - mean[j]) / sd[j]
    fast = solve_simplex_dual(Zc, (mom.mean[1] - mean) / sd, tol=p.tol, max_iter=p.max_iter)
    w = fast.w
    d = len(arr.covariates)
    wz2 = np.zeros(d)
    for s0 in range(0, Zc.shape[0], _CHUNK):
        zc = Zc[s0 : s0 + _CHUNK]
        wz2 += w[s0 : s0 + _CHUNK] @ (zc * zc)
    sums = {
        "g": np.append(w @ Zc, w.sum())[None, :],
        "wz2": wz2[None, :],
        "wy": (w @ arr.Y[ctrl])[None, :],
        "wmax": np.array([w.max()]),
        "f2": np.array([w @ w]),
        "tn": np.array([float(arr.group.sum())]),
        "ty": arr.Y[arr.group].sum(axis=0)[None, :],
    }
    del Zc
    sol = PassSolution(mu=fast.mu[None, :], b=np.append((mom.mean[1] - mean) / sd, 1.0)[None, :], sums=sums,
                       iterations=np.array([fast.iterations]), converged=np.array([fast.converged]),
                       residual=np.array([fast.residual]), passes=0)
    att, tables, diag, warnings = att_and_tables(
        sol, mom, mean, sd, arr.covariates, arr.post_periods, p.balance_tol
    )
    mu_hat = sol.mu

    def refit(idx: np.ndarray) -> float:
        counts = np.bincount(idx, minlength=arr.n).astype(np.float64)
        s = solve_by_passes(
            local_oracle(arr, mean, sd, counts), mu_hat, tol=p.tol, max_iter=p.max_iter
        )
        if not s.converged[0]:
            raise EstimationError("microsynth: bootstrap dual did not converge")
        sm = {k: v[0] for k, v in s.sums.items()}
        return float(np.mean(sm["ty"] / sm["tn"] - sm["wy"] / sm["g"][-1]))

    return Fit(
        estimand=Estimand.ATT,
        estimate=att,
        n=arr.n,
        strata=arr.group.astype(np.int64),
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
        cols: dict[str, np.ndarray] = {
            unit: np.arange(arr.n),
            treat: arr.group.astype(np.int8),
            out: arr.Y.mean(axis=1),
        }
        cols.update({c: arr.X[:, j] for j, c in enumerate(arr.covariates)})
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
