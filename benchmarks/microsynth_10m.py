"""10M users x 20 covariates, two periods, from parquet: simplex MicroSynth wall time and peak RSS.

Writes the long panel in chunks under a temp dir (not committed), then fits with
``data=parquet_units lazy=true`` + ``estimator.backend=columnar`` (the CLI path), timing the
read and the solve and sampling the process RSS. Usage: ``python benchmarks/microsynth_10m.py [n] [float64|float32]``.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from causalkit.contracts import Roles
from causalkit_plugins.data.files import ParquetUnitsParams, ParquetUnitsSource
from causalkit_plugins.estimators.microsynth.estimator import MicroSynth
from causalkit_plugins.estimators.microsynth.params import MicroSynthParams

D = 20


def write_panel(path: Path, n: int, chunk: int = 1_000_000, seed: int = 0) -> None:
    """Long panel (unit, time, exposed, y, x0..x19), two periods, one file per chunk of units."""
    rng = np.random.default_rng(seed)
    for i, s in enumerate(range(0, n, chunk)):
        m = min(chunk, n - s)
        X = rng.standard_normal((m, D)) + np.linspace(0, 2, D)
        g = rng.random(m) < 1 / (1 + np.exp(-(X[:, 0] - 0.5 * X[:, 1]))) * 0.3
        y1 = X @ np.linspace(0.5, -0.5, D) + 1.0 * g + rng.standard_normal(m)
        y0 = X @ np.linspace(0.5, -0.5, D) + rng.standard_normal(m)
        cols = {
            "unit": np.repeat(np.arange(s, s + m), 2),
            "time": np.tile([0, 1], m),
            "exposed": np.repeat(g, 2) & np.tile([False, True], m),
            "y": np.column_stack([y0, y1]).ravel(),
        }
        cols.update({f"x{j}": np.repeat(X[:, j], 2) for j in range(D)})
        pq.write_table(pa.table(cols), path / f"part-{i:04d}.parquet", row_group_size=1 << 20)


def rss_sampler(stop: threading.Event, peak: list[float]) -> None:
    while not stop.is_set():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS"):
                    peak[0] = max(peak[0], int(line.split()[1]) / 2**20)
        time.sleep(0.05)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000
    dtype = sys.argv[2] if len(sys.argv) > 2 else "float64"
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        write_panel(Path(tmp), n)
        print(f"wrote {n:,} users x {D} covariates x 2 periods in {time.perf_counter() - t:.1f} s")
        base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        peak = [0.0]
        stop = threading.Event()
        th = threading.Thread(target=rss_sampler, args=(stop, peak), daemon=True)
        th.start()
        t0 = time.perf_counter()
        roles = Roles(
            unit="unit",
            time="time",
            treatment="exposed",
            outcome="y",
            covariates=tuple(f"x{j}" for j in range(D)),
        )
        data = ParquetUnitsSource(ParquetUnitsParams(path=tmp, roles=roles, lazy=True)).load()
        fit = MicroSynth(MicroSynthParams(backend="columnar", dtype=dtype)).fit(
            data, np.random.default_rng(0)
        )
        wall = time.perf_counter() - t0
        stop.set()
        th.join()
    dg = fit.diagnostics
    print(
        f"simplex fit from parquet ({dtype}): {wall:.1f} s wall, peak RSS {peak[0]:.2f} GiB "
        f"(ru_maxrss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB incl. writing; "
        f"before fit {base_rss:.2f} GiB)"
    )
    print(
        f"ATT {fit.estimate:.6f}; converged {dg['converged']}; iterations {dg['iterations']}; passes {dg['passes']}; "
        f"max|SMD| after {dg['max_abs_smd_after']:.1e}; ESS {dg['ess']:.0f}"
    )
    print(
        f"targets: < 30 s -> {'met' if wall < 30 else 'MISSED'}; < 8 GB -> {'met' if peak[0] < 8 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
