"""The design document's full segment analysis on 737,762 simulated impressions, from the CLI.

Runs ``python -m causalkit experiment=position_bias_segments tracking=none`` as a user would and
reports wall time and peak memory (``/usr/bin/time -v`` when available, else resource usage of
the child). Run: ``python benchmarks/segments.py``.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time


def main() -> None:
    cmd = [sys.executable, "-m", "causalkit", "experiment=position_bias_segments", "tracking=none"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print("\n".join(proc.stdout.splitlines()[:10]))
    if proc.returncode:
        print(proc.stderr[-2000:])
    print(f"end to end: {wall:.1f} s, peak memory {peak_mb:.0f} MB, exit {proc.returncode}")


if __name__ == "__main__":
    main()
