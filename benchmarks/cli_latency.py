"""Command-line latency: what a command costs beyond ``python -c "import numpy, pandas"``.

Each round runs every command in a fresh interpreter, in a fresh directory, and times it from
the shell's point of view (process start to exit):

- the baseline ``python -c "import numpy, pandas"``;
- ``python -m causalkit.plugins`` and ``python -m causalkit --help`` (target: under 1 s). The
  listing is timed twice per round with a fresh cache directory: the first listing after an
  install or an edit builds the listing from every plugin's code and caches it
  (:mod:`causalkit.plugin_cache`), the next ones read it;
- single runs with ``tracking=none`` (the README's default run, and ``estimator=itt``). Their
  computation is timed in a second fresh interpreter that first imports every module the
  command imported (listed by a first run), then times the command in process; the target
  is wall <= baseline + computation + 1.5 s, i.e. at most 1.5 s of start-up beyond numpy
  and pandas.

Prints the median over the rounds (min-max in brackets), the ratio against the baseline and
whether each target is met. Usage: ``python benchmarks/cli_latency.py [rounds]`` (default 5).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

RUNS = {
    "run (default: microsynth, bootstrap)": ["tracking=none"],
    "run (estimator=itt)": ["tracking=none", "estimator=itt"],
}

# Lists the modules a command imports (run in a child interpreter; argv follows).
_LIST = """
import contextlib, io, json, sys
from causalkit import cli
with contextlib.redirect_stdout(io.StringIO()):
    cli.main(sys.argv[1:])
print(json.dumps(sorted(m for m in sys.modules if '.__main__' not in m and m != '__main__')))
"""

# Imports the given modules, then times the command in process (the computation).
_TIMED = """
import contextlib, importlib, io, json, sys, time
for m in json.loads(sys.argv[1]):
    with contextlib.suppress(Exception):
        importlib.import_module(m)
from causalkit import cli
t0 = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()):
    cli.main(sys.argv[2:])
print(time.perf_counter() - t0)
"""


CPU: dict[str, list[float]] = {}
"""CPU seconds (user + system) of each command's process, by command: on a loaded machine a
steadier figure than the wall clock for single-threaded start-up."""


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _wall(args: list[str], cwd: str, key: str) -> float:
    env = {**os.environ, "CAUSALKIT_CACHE_DIR": os.path.join(cwd, "cache")}
    c0, t0 = _cpu(), time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=cwd, check=True, capture_output=True, env=env)
    wall = time.perf_counter() - t0
    CPU.setdefault(key, []).append(_cpu() - c0)
    return wall


def _computation(argv: list[str], cwd: str) -> float:
    listed = subprocess.run(
        [sys.executable, "-c", _LIST, *argv], cwd=cwd, check=True, capture_output=True, text=True
    )
    modules = listed.stdout.strip().splitlines()[-1]
    timed = subprocess.run(
        [sys.executable, "-c", _TIMED, modules, *argv],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    )
    return float(timed.stdout.strip().splitlines()[-1])


def _show(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f} s ({min(xs):.2f}-{max(xs):.2f})"


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    times: dict[str, list[float]] = {}
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            round_ = {
                "baseline": _wall(["-c", "import numpy, pandas"], tmp, "baseline"),
                "plugins first": _wall(["-m", "causalkit.plugins"], tmp, "plugins first"),
                "plugins": _wall(["-m", "causalkit.plugins"], tmp, "plugins"),
                "help": _wall(["-m", "causalkit", "--help"], tmp, "help"),
            }
            for name, argv in RUNS.items():
                round_[name] = _wall(["-m", "causalkit", *argv], tmp, name)
                round_[f"{name} computation"] = _computation(argv, tmp)
        for k, v in round_.items():
            times.setdefault(k, []).append(v)
    base = statistics.median(times["baseline"])
    cpu = {k: statistics.median(v) for k, v in CPU.items()}
    print(
        f'{rounds} rounds, medians. baseline `python -c "import numpy, pandas"`: '
        f"{_show(times['baseline'])}, CPU {cpu['baseline']:.2f} s"
    )
    for key, label in (
        ("plugins first", "python -m causalkit.plugins (first listing: builds the cache)"),
        ("plugins", "python -m causalkit.plugins (cached)"),
        ("help", "python -m causalkit --help"),
    ):
        t = statistics.median(times[key])
        met = "met" if t < 1.0 else "NOT met"
        print(
            f"{label}: {_show(times[key])}, {t / base:.2f}x baseline; target < 1 s {met}; "
            f"CPU {cpu[key]:.2f} s, {cpu[key] / cpu['baseline']:.2f}x the baseline's"
        )
    for name, argv in RUNS.items():
        wall, comp = statistics.median(times[name]), statistics.median(times[f"{name} computation"])
        extra = wall - base - comp
        met = "met" if extra <= 1.5 else "NOT met"
        print(
            f"python -m causalkit {' '.join(argv)} [{name}]: wall {_show(times[name])}, "
            f"computation {_show(times[f'{name} computation'])}, {wall / base:.2f}x baseline; "
            f"start-up beyond numpy+pandas {extra:+.2f} s, target <= 1.5 s {met}; "
            f"CPU {cpu[name]:.2f} s, {cpu[name] / cpu['baseline']:.2f}x the baseline's"
        )
    print(json.dumps({k: [round(x, 3) for x in v] for k, v in times.items()}))
    print("CPU", json.dumps({k: [round(x, 3) for x in v] for k, v in CPU.items()}))


if __name__ == "__main__":
    main()
