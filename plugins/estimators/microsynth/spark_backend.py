"""Spark backend of simplex MicroSynth: one tree-aggregated pass over the units per dual iteration.

The (d+1)-dimensional dual needs only sums over units (Lin et al. 2023), so each pass maps
every partition to numpy partial sums (``mapInArrow``) and combines them with ``treeReduce``.
Weights never leave the executors: ATT, balance, ESS and the maximum weight are aggregates of
the last pass. Poisson(1) bootstrap counts are a hash of (seed, replication, unit key), so
replications reuse the cached unit table and run together in the same passes; the fit offers
them as :attr:`~causalkit.contracts.Resampler.replicates`, seeded from the run's Generator, and
``inference=bootstrap`` turns them into SEs and CIs.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import sys
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from causalkit.contracts import Dataset, DiagnosticValue, Fit, Resampler, Roles
from causalkit.errors import ConfigError, DataError
from causalkit_plugins.estimators.microsynth.aggregates import (
    chunk_moments,
    dual_sums,
    merge_moments,
    merge_sums,
    poisson_weights,
)
from causalkit_plugins.estimators.microsynth.estimands import effect_names, effects
from causalkit_plugins.estimators.microsynth.params import MicroSynthParams
from causalkit_plugins.estimators.microsynth.pass_newton import (
    Oracle,
    gaps_and_tables,
    replicate_gaps,
    solve_by_passes,
    standardisation,
)

__all__ = [
    "spark_session",
    "SparkUnits",
    "spark_units",
    "fit_spark",
    "fit_spark_units",
    "poisson_bootstrap",
    "MAX_REPLICATES",
]

A = TypeVar("A")


def spark_session(master: str = "local[2]") -> Any:
    """The active SparkSession, or a new one on ``master``; a one-line error without pyspark or Java.

    Local sessions bind the driver to 127.0.0.1 and disable the UI. An existing session is
    reused as it is (its master wins).
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError(
            "estimator.backend",
            'pyspark installed for backend=spark (pip install -e ".[spark]")',
            "no module pyspark",
        ) from None
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    java_home = os.environ.get("JAVA_HOME")
    if (
        not (java_home and (Path(java_home) / "bin" / "java").exists())
        and shutil.which("java") is None
    ):
        raise ConfigError(
            "estimator.backend",
            "a Java runtime (17 or 21) on PATH or in JAVA_HOME for backend=spark",
            "no java executable",
        )
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(master).appName("causalkit-microsynth")
    if master.startswith("local"):
        builder = (
            builder.config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.ui.showConsoleProgress", "false")
        )
    return builder.config("spark.sql.execution.arrow.maxRecordsPerBatch", "200000").getOrCreate()


@dataclass(frozen=True)
class SparkUnits:
    """A cached Spark DataFrame with one row per unit: ``_key``, ``_g``, ``_x0..``, ``_y0..``, ``_bad``."""

    frame: Any
    covariates: tuple[str, ...]
    post_periods: np.ndarray


def spark_units(source: Any, roles: Roles) -> SparkUnits:
    r"""Reduce a Spark DataFrame (long panel or one row per unit) to the cached unit table.

    For a long panel: one onset (the first period any unit is treated; several onsets are an
    error), post periods from it on, per unit the ever-treated flag, the first value of each
    covariate and the outcome in each post period. ``_bad`` flags units with missing periods,
    duplicates, nulls or covariates that vary within the unit (counted in the first pass).
    The key of the Poisson weights is the unit id when it is an integer, else ``xxhash64(id)``.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F
    from pyspark.sql.types import IntegralType

    missing = [c for c in roles.columns() if c not in source.columns]
    if missing:
        raise DataError("roles", "columns of the Spark table", ", ".join(missing))
    if roles.treatment is None or roles.outcome is None or not roles.covariates:
        raise DataError("roles", "treatment, outcome and at least one covariate", "fewer")
    covs, treat, y = (
        tuple(roles.covariates),
        F.col(roles.treatment).cast("int"),
        F.col(roles.outcome),
    )
    unit = roles.unit
    if unit is not None and isinstance(source.schema[unit].dataType, IntegralType):
        key = F.col(unit).cast("long")
    else:
        key = F.xxhash64(F.col(unit)) if unit is not None else F.monotonically_increasing_id()
    if roles.time is None:
        nulls = sum(
            (F.col(c).isNull().cast("int") for c in (*covs, roles.outcome, roles.treatment)),
            F.lit(0),
        )
        bad = (nulls > 0) | ~treat.isin(0, 1)
        units = source.select(
            key.alias("_key"),
            treat.alias("_g"),
            *[F.col(c).cast("double").alias(f"_x{j}") for j, c in enumerate(covs)],
            y.cast("double").alias("_y0"),
            bad.cast("int").alias("_bad"),
        )
        post = np.array([0])
    else:
        if unit is None:
            raise DataError("roles.unit", "a unit column when roles.time is set", "nothing")
        time = roles.time
        times = sorted(r[0] for r in source.select(time).distinct().collect())
        onsets = [
            r[0]
            for r in source.where(treat == 1)
            .groupBy(unit)
            .agg(F.min(time).alias("t0"))
            .select("t0")
            .distinct()
            .limit(6)
            .collect()
        ]
        if not onsets:
            raise DataError("roles.treatment", "at least one treated unit", "none")
        if len(onsets) > 1:
            raise DataError(
                "roles.treatment",
                "a single treatment onset (no staggered adoption)",
                f"{len(onsets)}{'+' if len(onsets) > 5 else ''} onsets",
            )
        post = np.array([t for t in times if t >= onsets[0]])
        aggs = [
            F.max(treat).alias("_g"),
            F.count(F.lit(1)).alias("_rows"),
            F.countDistinct(time).alias("_times"),
            F.sum((~treat.isin(0, 1)).cast("int")).alias("_nonbin"),
        ]
        for j, c in enumerate(covs):
            aggs += [
                F.first(c).alias(f"_x{j}"),
                (F.max(c) != F.min(c)).alias(f"_v{j}"),
                (F.count(c) < F.count(F.lit(1))).alias(f"_n{j}"),
            ]
        aggs += [F.max(F.when(F.col(time) == t, y)).alias(f"_y{k}") for k, t in enumerate(post)]
        units = source.groupBy(unit).agg(*aggs)
        flags = [F.col(f"_v{j}") | F.col(f"_n{j}") for j in range(len(covs))]
        flags += [F.col(f"_y{k}").isNull() for k in range(len(post))]
        bad = (
            (F.col("_rows") != len(times))
            | (F.col("_times") != len(times))
            | (F.col("_nonbin") > 0)
        )
        for f in flags:
            bad = bad | f
        units = units.select(
            key.alias("_key"),
            F.col("_g"),
            *[F.col(f"_x{j}").cast("double") for j in range(len(covs))],
            *[F.col(f"_y{k}").cast("double") for k in range(len(post))],
            bad.cast("int").alias("_bad"),
        )
    parts = max(1, source.sparkSession.sparkContext.defaultParallelism)
    units = units.coalesce(parts).persist(StorageLevel.MEMORY_AND_DISK)
    return SparkUnits(units, covs, post)


def _arrays(batch: Any, d: int, T: int) -> tuple[np.ndarray, ...]:
    def cols(names):
        return np.column_stack([batch.column(c).to_numpy(zero_copy_only=False) for c in names])

    X = cols([f"_x{j}" for j in range(d)]).astype(np.float64)
    Y = cols([f"_y{k}" for k in range(T)]).astype(np.float64)
    key = batch.column("_key").to_numpy(zero_copy_only=False)
    g = batch.column("_g").to_numpy(zero_copy_only=False).astype(bool)
    bad = batch.column("_bad").to_numpy(zero_copy_only=False)
    return key, g, X, Y, bad


def tree_pass(units: SparkUnits, kernel: Callable[..., A], merge: Callable[[A, A], A]) -> A:
    """One pass: ``kernel(key, g, X, Y, bad)`` on each Arrow batch, merged in the partition, then ``treeReduce``."""
    d, T = len(units.covariates), len(units.post_periods)

    def per_partition(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        acc = None
        for batch in batches:
            if batch.num_rows:
                part = kernel(*_arrays(batch, d, T))
                acc = part if acc is None else merge(acc, part)
        if acc is not None:
            yield pa.RecordBatch.from_pydict({"blob": [pickle.dumps(acc)]})

    rdd = units.frame.mapInArrow(per_partition, "blob binary").rdd.map(
        lambda row: pickle.loads(row[0])
    )
    return rdd.treeReduce(merge, depth=2)


def _oracle(
    units: SparkUnits,
    mean: np.ndarray,
    sd: np.ndarray,
    u: float,
    seed: int | None,
    counter: list[int],
) -> Oracle:
    """Dual sums at candidate points; with ``seed`` the units carry Poisson counts of replications ``reps``."""

    def oracle(mus: np.ndarray, reps: np.ndarray) -> dict[str, np.ndarray]:
        def kernel(
            key: np.ndarray, g: np.ndarray, X: np.ndarray, Y: np.ndarray, bad: np.ndarray
        ) -> dict:
            c = None if seed is None else poisson_weights(key, seed, reps)
            return dual_sums((X - mean) / sd, g, Y, c, mus, u)

        counter[0] += 1
        return tree_pass(units, kernel, merge_sums)

    return oracle


#: Replications per seed: ``poisson_weights`` mixes ``seed * 2**20 + r``, so r < 2**20.
MAX_REPLICATES = 1 << 20


def poisson_bootstrap(
    units: SparkUnits,
    mean: np.ndarray,
    sd: np.ndarray,
    u: float,
    mu_hat: np.ndarray,
    p: MicroSynthParams,
    seed: int,
    n_boot: int,
) -> tuple[np.ndarray, int]:
    r"""Poisson(1) bootstrap of the per-period gaps: all replications solved together, warm-started at :math:`\hat\mu`.

    Replication :math:`r` solves the weighted dual with case weights :math:`c_{jr}` (see
    :func:`aggregates.poisson_weights` with ``seed``): :math:`F_r(\mu)=\tfrac12\sum_j
    c_{jr}(u+a_j^\top\mu)_+^2 - b_r^\top\mu`, :math:`b_r` the :math:`c`-weighted treated
    mean. Covariates keep the full-sample standardisation. Returns the replicates' per-period
    gaps, shape ``(n_boot, T)`` (NaN rows where not converged), and the number of passes.
    """
    if not 0 < n_boot <= MAX_REPLICATES:
        raise ValueError(f"poisson_bootstrap: 1..{MAX_REPLICATES} replications, got {n_boot}")
    counter = [0]
    sol = solve_by_passes(
        _oracle(units, mean, sd, u, seed, counter),
        np.tile(mu_hat, (n_boot, 1)),
        tol=p.tol,
        max_iter=p.max_iter,
    )
    return replicate_gaps(sol), counter[0]


def fit_spark_units(units: SparkUnits, p: MicroSynthParams) -> Fit:
    """Fit on a prepared unit table: one moments pass, then the dual passes.

    The fit's ``replicates(rng, B)`` draws one seed of the Poisson weights from ``rng`` and
    solves the B replications together (:func:`poisson_bootstrap`); it returns their estimates
    vectors, shape ``(B, k)``, NaN rows where a replication did not converge.
    """
    mom = tree_pass(
        units, lambda key, g, X, Y, bad: chunk_moments(X, g, Y, int(bad.sum())), merge_moments
    )
    mean, sd = standardisation(mom, units.covariates)
    u = 1.0 / float(mom.n[0])
    counter = [0]
    d = len(units.covariates)
    sol = solve_by_passes(
        _oracle(units, mean, sd, u, None, counter),
        np.zeros((1, d + 1)),
        tol=p.tol,
        max_iter=p.max_iter,
    )
    gaps, tables, diag, warnings = gaps_and_tables(
        sol, mom, mean, sd, units.covariates, units.post_periods, p.balance_tol
    )
    extra: dict[str, DiagnosticValue] = {
        "passes": 1 + counter[0],
        "solve_passes": counter[0],
        "backend": "spark",
    }
    mu_hat = sol.mu[0]
    post = np.ones(gaps.size, dtype=bool)

    def replicates(rng: np.random.Generator, n_boot: int) -> np.ndarray:
        seed = int(rng.integers(0, 1 << 44))  # seed << 20 stays within 64 bits
        per = poisson_bootstrap(units, mean, sd, u, mu_hat, p, seed, n_boot)[0]
        return effects(per, 1.0, post)

    n = int(mom.n.sum())
    return Fit(
        p.estimand,
        effects(gaps, 1.0, post),
        n,
        names=effect_names(p.estimand, units.post_periods),
        resampler=Resampler(n, replicates=replicates),
        diagnostics={**diag, **extra},
        tables=tables,
        warnings=warnings,
    )


def fit_spark(data: Dataset, p: MicroSynthParams) -> Fit:
    """``backend=spark``: a lazy parquet source is read by Spark; a pandas table is handed to Spark as is.

    The fit offers no resampling refit (resampled indices would need the units on the
    driver) but Poisson-bootstrap replicates drawn on the executors, on the unit table that
    stays cached until the fit is garbage-collected.
    """
    spark = spark_session(p.master)
    source = (
        spark.read.parquet(data.source.path)
        if data.source is not None
        else spark.createDataFrame(data.frame[data.roles.columns()])
    )
    units = spark_units(source, data.roles)
    try:
        fit = fit_spark_units(units, p)
    except BaseException:
        units.frame.unpersist()
        raise
    # The replicates run after the fit, on the cached unit table: released with the fit.
    weakref.finalize(fit, _unpersist, units.frame)
    return fit


def _unpersist(frame: Any) -> None:
    """Release a cached unit table (quietly: the session may be gone at interpreter exit)."""
    with contextlib.suppress(Exception):
        frame.unpersist()
