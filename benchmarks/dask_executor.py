"""Sweeps on a 2-worker Dask local cluster vs ``mc.executor=local mc.n_jobs=2`` vs one process.

Usage::

    python benchmarks/dask_executor.py [--rounds R] [--workers W] [--itt-cells C] [--itt-reps N]
                                       [--aipw-cells C] [--aipw-reps N] [--aipw-n N]

Two studies, each run from the shell as a user runs it (``python -m causalkit -m ...
tracking=none``, a fresh interpreter per command; the three modes in a rotating order each
round):

* many small cells: ``--itt-cells`` (40) cells of ``itt`` on ``contaminated_holdout``
  (``mc.seed`` swept) × ``--itt-reps`` (100) replications, ~1 ms of work each;
* few heavy cells: ``--aipw-cells`` (4) cells of cross-fitted ``aipw`` with ``gbm`` propensity
  and outcome models on ``selection_on_observables`` (``dgp.n=--aipw-n``) × ``--aipw-reps``
  (200) replications.

Modes: ``mc.executor=dask mc.n_jobs=W`` (a local cluster of W single-threaded workers, the
cells submitted together); ``mc.n_jobs=W`` (loky processes, cells one after another);
``mc.n_jobs=1``. Printed per study: the median wall-clock seconds of each mode over the
rounds, the speed-up over one process, the efficiency (speed-up / W) and, for the small
cells, the overhead per replication ``(W * t_mode - t_one) / replications`` (worker-seconds
a replication costs beyond its work). The figures quoted in ``benchmarks/README.md`` are the
printed medians.

A third study, ``driver``, measures what the driver pays per chunk (submit, receive, the
checkpoint file, bookkeeping): in a fresh interpreter per round, one ``itt`` cell of
``--driver-reps`` (2,000) replications on the W-worker local cluster with a checkpoint, in
chunks of 1 and of 20; the per-chunk cost is the difference of the two times over the
difference of the numbers of chunks (the work is the same). It bounds how many workers one
driver can feed: ``chunk size × seconds per replication / per-chunk cost``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time


def _study(name: str, args: argparse.Namespace) -> tuple[list[str], int]:
    if name == "itt":
        seeds = ",".join(str(s) for s in range(1, args.itt_cells + 1))
        return (
            ["estimator=itt", "dgp=contaminated_holdout", f"mc.seed={seeds}"]
            + [f"mc.reps={args.itt_reps}"],
            args.itt_cells * args.itt_reps,
        )
    seeds = ",".join(str(s) for s in range(1, args.aipw_cells + 1))
    return (
        ["estimator=aipw", "dgp=selection_on_observables", f"dgp.n={args.aipw_n}"]
        + ["estimator.propensity_model=gbm", "estimator.outcome_model=gbm"]
        + [f"mc.seed={seeds}", f"mc.reps={args.aipw_reps}"],
        args.aipw_cells * args.aipw_reps,
    )


def _modes(workers: int) -> dict[str, list[str]]:
    return {
        "dask": ["mc.executor=dask", f"mc.n_jobs={workers}"],
        "local": [f"mc.n_jobs={workers}"],
        "one": ["mc.n_jobs=1"],
    }


def _time(overrides: list[str]) -> float:
    with tempfile.TemporaryDirectory() as cwd:
        t = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "causalkit", "-m", "tracking=none", *overrides],
            cwd=cwd,
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - t
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(overrides)} failed:\n{out.stderr[-3000:]}")
    return seconds


def _driver_round(workers: int, reps: int) -> None:
    """One driver round in this (fresh) process; prints one JSON line."""
    from pathlib import Path

    from causalkit.checkpoint import Checkpoint
    from causalkit.cli import compose
    from causalkit.config import validate
    from causalkit.executors import DaskExecutor
    from causalkit.montecarlo import run_cell
    from causalkit.registry import default_registry
    from causalkit.session import Session

    cfg = validate(
        compose(
            ["tracking=none", "estimator=itt", "dgp=contaminated_holdout", f"mc.reps={reps}"]
            + ["mc.executor=dask", f"mc.n_jobs={workers}"]
        )
    )
    session = Session(default_registry())
    out: dict[str, float] = {}
    with DaskExecutor(cfg.mc, session.registry) as ex, tempfile.TemporaryDirectory() as tmp:
        run_cell(cfg, session, executor=ex)  # warm the workers (imports, data)
        for i, size in enumerate((20, 1, 20, 1)):
            ex.chunk_size = lambda todo, size=size: size  # type: ignore[method-assign]
            ckpt = Checkpoint.for_cell(Path(tmp) / str(i), "bench")
            t = time.perf_counter()
            run_cell(cfg, session, checkpoint=ckpt, executor=ex)
            out[f"{size}"] = min(out.get(f"{size}", float("inf")), time.perf_counter() - t)
    per_chunk = (out["1"] - out["20"]) / (reps - reps / 20)
    print(
        json.dumps(
            {"seconds_chunk1": out["1"], "seconds_chunk20": out["20"], "per_chunk": per_chunk}
        )
    )


def _driver(args: argparse.Namespace) -> None:
    costs = []
    for r in range(args.rounds):
        out = subprocess.run(
            [sys.executable, __file__, "--driver-round", "--workers", str(args.workers)]
            + ["--driver-reps", str(args.driver_reps)],
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            raise SystemExit(out.stderr[-3000:])
        line = json.loads(out.stdout.strip().splitlines()[-1])
        print(json.dumps({"study": "driver", "round": r, **line}))
        costs.append(line["per_chunk"])
    print(
        f"\ndriver: median per-chunk cost over {args.rounds} rounds "
        f"{statistics.median(costs) * 1e3:.2f} ms ({args.workers} workers, {args.driver_reps} replications)",
        flush=True,
    )


def main() -> None:
    """Run the rounds and print one JSON line per measurement, then the summary."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--itt-cells", type=int, default=40)
    p.add_argument("--itt-reps", type=int, default=100)
    p.add_argument("--aipw-cells", type=int, default=4)
    p.add_argument("--aipw-reps", type=int, default=200)
    p.add_argument("--aipw-n", type=int, default=500)
    p.add_argument("--driver-reps", type=int, default=2000)
    p.add_argument("--studies", default="itt,aipw,driver")
    p.add_argument("--driver-round", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.driver_round:
        _driver_round(args.workers, args.driver_reps)
        return
    modes = _modes(args.workers)
    for study in args.studies.split(","):
        if study == "driver":
            _driver(args)
            continue
        overrides, reps = _study(study, args)
        times: dict[str, list[float]] = {m: [] for m in modes}
        order = list(modes)
        for r in range(args.rounds):
            for mode in order[r % 3 :] + order[: r % 3]:
                seconds = _time(overrides + modes[mode])
                times[mode].append(seconds)
                print(json.dumps({"study": study, "round": r, "mode": mode, "seconds": seconds}))
        med = {m: statistics.median(v) for m, v in times.items()}
        print(f"\n{study}: {reps} replications; median wall-clock over {args.rounds} rounds")
        for mode in modes:
            speedup = med["one"] / med[mode]
            line = (
                f"  {mode:5s} {med[mode]:8.1f} s  speed-up {speedup:4.2f}x  "
                f"efficiency {speedup / (1 if mode == 'one' else args.workers):4.2f}"
            )
            if study == "itt" and mode != "one":
                overhead = (args.workers * med[mode] - med["one"]) / reps * 1e3
                line += f"  overhead {overhead:5.2f} ms/replication"
            print(line)
        print(
            f"  dask vs local n_jobs={args.workers}: {med['local'] / med['dask']:.2f}x", flush=True
        )


if __name__ == "__main__":
    main()
