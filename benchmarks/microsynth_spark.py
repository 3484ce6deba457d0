"""Spark backend locally: start-up cost, passes per solve, seconds per pass at n users (default 1M).

Usage: ``python benchmarks/microsynth_spark.py [n]``. Writes a one-row-per-user parquet under a
temp dir, starts ``local[2]``, fits with ``backend=spark`` and the in-memory backend on the same
data, and prints the figures used for the cluster projection in the report.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from causalkit.contracts import Dataset, Roles
from causalkit_plugins.estimators.microsynth import spark_backend
from causalkit_plugins.estimators.microsynth.estimator import MicroSynth
from causalkit_plugins.estimators.microsynth.params import MicroSynthParams

D = 20


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, D)) + np.linspace(0, 2, D)
    g = rng.random(n) < 0.3 / (1 + np.exp(-(X[:, 0] - 0.5 * X[:, 1])))
    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(D)])
    frame["unit"], frame["exposed"] = np.arange(n), g.astype(int)
    frame["y"] = X @ np.linspace(0.5, -0.5, D) + g + rng.standard_normal(n)
    roles = Roles(
        unit="unit", treatment="exposed", outcome="y", covariates=tuple(frame.columns[:D])
    )
    t = time.perf_counter()
    spark = spark_backend.spark_session("local[2]")
    startup = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        frame.to_parquet(Path(tmp) / "u.parquet")
        units = spark_backend.spark_units(spark.read.parquet(tmp), roles)
        t = time.perf_counter()
        units.frame.count()
        cache = time.perf_counter() - t
        t = time.perf_counter()
        fit = spark_backend.fit_spark_units(units, MicroSynthParams(backend="spark"))
        solve = time.perf_counter() - t
    mem = MicroSynth(MicroSynthParams()).fit(Dataset(frame, roles), np.random.default_rng(0))
    passes = fit.diagnostics["passes"]
    print(
        f"n={n:,} d={D}: start-up {startup:.1f} s; read+cache {cache:.1f} s; fit {solve:.1f} s over {passes} passes "
        f"({fit.diagnostics['solve_passes']} dual) = {solve / passes:.2f} s/pass"
    )
    print(f"|ATT spark - ATT memory| = {abs(fit.estimate - mem.estimate):.1e}")
    spark.stop()


if __name__ == "__main__":
    main()
