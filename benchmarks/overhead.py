"""Share of a sweep's wall time spent outside estimation (Hydra, MLflow, I/O).

Runs ``python -m causalkit -m estimator=itt "mc.seed=range(1,21)" mc.reps=1000`` (20 cells x
1,000 replications of a cheap estimator) in a fresh directory, then compares the wall time with
the sum of the cells' ``seconds`` metric (time inside the replication loop) read back from MLflow.
Target: at most 10% outside estimation. Usage: ``python benchmarks/overhead.py [cells] [reps]``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlflow.tracking import MlflowClient


def main() -> None:
    cells = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "causalkit",
                "-m",
                "estimator=itt",
                f"mc.seed=range(1,{cells + 1})",
                f"mc.reps={reps}",
            ],
            cwd=tmp,
            check=True,
            capture_output=True,
        )
        wall = time.perf_counter() - t0
        client = MlflowClient(tracking_uri=f"sqlite:///{Path(tmp) / 'runs' / 'mlflow.db'}")
        exp = client.get_experiment_by_name("causalkit").experiment_id
        inside = sum(r.data.metrics.get("seconds", 0.0) for r in client.search_runs([exp]))
    print(
        f"{cells} cells x {reps} replications: wall {wall:.1f} s, estimation {inside:.1f} s, "
        f"outside estimation {100 * (1 - inside / wall):.1f}% (target <= 10%)"
    )


if __name__ == "__main__":
    main()
