"""Simplex MicroSynth vs mlsynth 1.0.0, side by side in one process; ratios printed.

Usage::

    python benchmarks/microsynth_simplex.py [fit] [bootstrap] [study] [--users N] [--boot-users N] [--rounds R]

* ``fit``: simplex fit from a long data frame, 1M users x 20 covariates, two periods, in both
  row orders (period then user, as weekly exports are appended; user then period): wall time
  of ``MicroSynth.fit`` vs ``mlsynth.MicroSynth(...).fit()`` with ``run_inference=False``, each
  round a fresh interpreter that warms both sides up on a small panel (lazy imports off the
  clock) and times each once, alternating which goes first; the median over ``--rounds``
  rounds is the figure. The first round also measures peak traced memory, convergence and
  balance of both.
* ``bootstrap``: fit + paired stratified bootstrap, 500 replications, 100k users x 20
  covariates (our ``bootstrap`` inference plugin vs mlsynth's ``n_bootstrap=500``).
* ``study``: the contaminated-holdout Monte Carlo study (200 replications, naive / ITT /
  MicroSynth without inference, the three on the same draws as in the document): the
  document's own loop with mlsynth vs the same three cells in this process through
  ``causalkit.api.run`` with MLflow logging to a fresh SQLite store (the figure the target is
  about), and our CLI ``python -m causalkit -m experiment=contaminated_holdout
  estimator=naive,itt,microsynth mc.reps=200 inference=none`` from the shell (wall time of
  the whole command, interpreter start-up and imports included). ``--rounds`` fresh
  interpreters (default 5) each time both sides, alternating which goes first; the median
  ratio is the figure.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from causalkit.contracts import Dataset, Roles
from causalkit_plugins.estimators.microsynth.estimator import MicroSynth, MicroSynthParams
from causalkit_plugins.inference.bootstrap import Bootstrap, BootstrapParams


def user_panel(n: int, d: int, seed: int) -> tuple[pd.DataFrame, Roles]:
    """Two-period long panel: exposure selected on covariates, effect 0.5 in the post period."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    beta = np.linspace(0.1, 0.6, d)
    p = 1 / (1 + np.exp(-(0.25 * X[:, : min(d, 5)].sum(axis=1) - 0.8)))
    D = rng.random(n) < p
    base = X @ beta
    y = np.column_stack([base, base + 0.5 * D]) + rng.standard_normal((n, 2))
    cols = {f"x{j}": np.repeat(X[:, j], 2) for j in range(d)}
    frame = pd.DataFrame(
        {
            "user_id": np.repeat(np.arange(n), 2),
            "week": np.tile([0, 1], n),
            **cols,
            "saw_ad": np.column_stack([np.zeros(n, np.int64), D.astype(np.int64)]).ravel(),
            "converted": y.ravel(),
        }
    )
    roles = Roles(
        unit="user_id", time="week", treatment="saw_ad", outcome="converted", covariates=tuple(cols)
    )
    return frame, roles


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    gc.collect()
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def peak_mb(fn: Callable[[], Any]) -> float:
    """Peak traced memory (MB) allocated while ``fn`` runs (numpy and pandas buffers included)."""
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 1e6


def mlsynth_config(frame: pd.DataFrame, roles: Roles, **extra: Any) -> dict[str, Any]:
    return {
        "df": frame,
        "outcome": roles.outcome,
        "treat": roles.treatment,
        "unitid": roles.unit,
        "time": roles.time,
        "covariates": list(roles.covariates),
        "display_graphs": False,
        **extra,
    }


ORDERS = ("period", "user")
"""Row orders of the long frame: period then user (weekly exports appended), user then period."""


def ordered(frame: pd.DataFrame, order: str) -> pd.DataFrame:
    """``frame`` (user then period, as :func:`user_panel` makes it) in row order ``order``."""
    if order == "user":
        return frame
    return frame.sort_values(["week", "user_id"], kind="stable").reset_index(drop=True)


def _fit_round(n: int, d: int, order: str, ours_first: bool, memory: bool) -> None:
    """One fresh-interpreter round of ``fit``: both sides warmed up on a small panel, then timed once."""
    import json

    import mlsynth

    def both(frame: pd.DataFrame, roles: Roles) -> tuple[Callable[[], Any], Callable[[], Any]]:
        data = Dataset(frame, roles)
        cfg = mlsynth_config(frame, roles, run_inference=False)
        return (
            lambda: MicroSynth(MicroSynthParams()).fit(data, np.random.default_rng(0)),
            lambda: mlsynth.MicroSynth(cfg).fit(),
        )

    small, small_roles = user_panel(2000, d, 1)
    for warm in both(ordered(small, order), small_roles):
        warm()  # lazy imports and first-call set-up of either side, off the clock
    frame, roles = user_panel(n, d, 0)
    frame = ordered(frame, order)
    ours_fn, ref_fn = both(frame, roles)
    if ours_first:
        ours, t_ours = timed(ours_fn)
        ref, t_ref = timed(ref_fn)
    else:
        ref, t_ref = timed(ref_fn)
        ours, t_ours = timed(ours_fn)
    out = {
        "ours": t_ours,
        "ref": t_ref,
        "att": [ours.estimate, float(ref.att)],
        "smd": [ours.diagnostics["max_abs_smd_after"], float(np.max(np.abs(ref.design.smd_after)))],
        "converged": [bool(ours.diagnostics["converged"]), bool(ref.design.converged)],
        "iterations": [ours.diagnostics["iterations"], ref.design.n_iterations],
        "frame_mb": frame.memory_usage().sum() / 1e6,
        "load": os.getloadavg()[0],
    }
    if memory:
        out["peak_mb"] = [peak_mb(ours_fn), peak_mb(ref_fn)]
    print(json.dumps(out))


def bench_fit(n: int, d: int, rounds: int) -> None:
    """``rounds`` fresh interpreters per row order, alternating which side goes first; medians."""
    import json

    print(f"[fit] {n:,} users x {d} covariates, two periods, long frame; {rounds} rounds per order")
    for order in ORDERS:
        results = []
        for i in range(rounds):
            cmd = [sys.executable, __file__, "fit-round", f"--users={n}", f"--covariates={d}"]
            cmd += [f"--order={order}"] + (["--ours-first"] if i % 2 else [])
            cmd += ["--memory"] if i == 0 else []
            results.append(json.loads(_run(cmd).stdout.strip().splitlines()[-1]))
        r0 = results[0]
        label = "period then user" if order == "period" else "user then period"
        print(f"  rows {label} (frame {r0['frame_mb']:.0f} MB)")
        for i, r in enumerate(results):
            first = "ours first" if i % 2 else "mlsynth first"
            print(
                f"    round {i + 1} ({first:13s}, load {r['load']:4.1f}): ours {r['ours']:5.2f} s, "
                f"mlsynth {r['ref']:6.2f} s -> {r['ref'] / r['ours']:5.1f}x"
            )
        t_ours = float(np.median([r["ours"] for r in results]))
        t_ref = float(np.median([r["ref"] for r in results]))
        ratios = [r["ref"] / r["ours"] for r in results]
        (m_ours, m_ref) = r0["peak_mb"]
        print(
            f"    ours    median {t_ours:5.2f} s  peak {m_ours:5.0f} MB  ATT {r0['att'][0]:+.6f}  "
            f"max|SMD| {r0['smd'][0]:.1e}  converged {r0['converged'][0]} ({r0['iterations'][0]} Newton steps)"
        )
        print(
            f"    mlsynth median {t_ref:5.2f} s  peak {m_ref:5.0f} MB  ATT {r0['att'][1]:+.6f}  "
            f"max|SMD| {r0['smd'][1]:.1e}  converged {r0['converged'][1]} "
            f"({r0['iterations'][1]} L-BFGS-B iterations)"
        )
        print(
            f"    speed ratio mlsynth/ours: median {float(np.median(ratios)):.1f}x "
            f"(min {min(ratios):.1f}x, max {max(ratios):.1f}x over {rounds} rounds); "
            f"memory ratio {m_ref / m_ours:.1f}x"
        )


def bench_bootstrap(n: int, d: int, reps: int) -> None:
    import mlsynth

    frame, roles = user_panel(n, d, 1)
    data = Dataset(frame, roles)
    est = MicroSynth(MicroSynthParams())
    boot = Bootstrap(BootstrapParams(n_boot=reps))

    def ours_run() -> tuple[Any, Any]:
        fit = est.fit(data, np.random.default_rng(0))
        return fit, boot.infer(fit, np.random.default_rng(1))

    (fit, out), t_ours = timed(ours_run)
    ref, t_ref = timed(
        lambda: mlsynth.MicroSynth(
            mlsynth_config(frame, roles, run_inference=True, n_bootstrap=reps, seed=1)
        ).fit()
    )
    inf = ref.inference_detail
    print(f"[bootstrap] {reps} paired replications, {n:,} users x {d} covariates (fit included)")
    print(
        f"  ours    {t_ours:7.2f} s  SE {out.se[0]:.5f}  CI [{out.ci_lower[0]:+.5f}, {out.ci_upper[0]:+.5f}]  "
        f"converged {out.diagnostics['n_boot']}/{reps}"
    )
    print(
        f"  mlsynth {t_ref:7.2f} s  SE {inf.se:.5f}  CI [{inf.ci[0]:+.5f}, {inf.ci[1]:+.5f}]  "
        f"converged {inf.n_bootstrap}/{reps}"
    )
    print(f"  speed ratio mlsynth/ours {t_ref / t_ours:.1f}x")


def _document_loop(reps: int) -> float:
    """The MicroSynth document's "Simulation Study" loop, verbatim in substance (mlsynth fit per draw)."""
    from mlsynth import MicroSynth as MlMicroSynth
    from scipy.special import expit

    covs = ["age", "device", "gender", "country_tier", "prior_engagement"]

    def simulate_one(rng: np.random.Generator) -> pd.DataFrame:
        n = 2000
        age, eng = rng.standard_normal(n), rng.standard_normal(n)
        device = rng.binomial(1, 0.4, n).astype(float)
        gender = rng.binomial(1, 0.5, n).astype(float)
        tier = rng.standard_normal(n)
        p0 = expit(-1.5 + 0.30 * age + 0.60 * eng + 0.20 * device - 0.10 * gender + 0.20 * tier)
        p1 = np.clip(p0 + 0.05, 0, 1)
        y0, y1 = rng.binomial(1, p0), rng.binomial(1, p1)
        assigned = np.zeros(n, dtype=bool)
        assigned[rng.permutation(n)[:1200]] = True
        hold = np.where(~assigned)[0]
        score = expit(0.8 * eng[hold] + 0.5 * age[hold] + 0.4 * tier[hold])
        pick = rng.choice(len(hold), size=300, replace=False, p=score / score.sum())
        saw = assigned.copy()
        saw[hold[pick]] = True
        y = np.where(saw, y1, y0)
        rows = []
        for i in range(n):
            base = dict(
                user_id=f"u{i:05d}",
                age=age[i],
                device=device[i],
                gender=gender[i],
                country_tier=tier[i],
                prior_engagement=eng[i],
                assigned_exposed=int(assigned[i]),
            )
            rows.append({**base, "week": 0, "converted": 0, "saw_ad": 0})
            rows.append({**base, "week": 1, "converted": int(y[i]), "saw_ad": int(saw[i])})
        return pd.DataFrame(rows)

    t = time.perf_counter()
    rng_mc = np.random.default_rng(7)
    for _ in range(reps):
        df = simulate_one(np.random.default_rng(rng_mc.integers(2**32)))
        post = df[df["week"] == 1]
        g = post.groupby("assigned_exposed")["converted"].mean()
        _ = g[1] - g[0]
        g = post.groupby("saw_ad")["converted"].mean()
        _ = g[1] - g[0]
        _ = (
            MlMicroSynth(
                {
                    "df": df,
                    "outcome": "converted",
                    "treat": "saw_ad",
                    "unitid": "user_id",
                    "time": "week",
                    "covariates": covs,
                    "run_inference": False,
                    "display_graphs": False,
                }
            )
            .fit()
            .att
        )
    return time.perf_counter() - t


STUDY = ["experiment=contaminated_holdout", "inference=none"]
ESTIMATORS = ("naive", "itt", "microsynth")


def _study_in_process(reps: int, tmp: str) -> tuple[float, list[float]]:
    """The three cells through the Python API (``causalkit.api.run``), as from a notebook.

    Timed like the document's loop: every module either side uses is imported before its clock
    starts (:func:`_preimport`); the clock then covers composing each cell, simulating,
    fitting, creating a fresh SQLite store, and every MLflow call of the three runs (params,
    metrics, tags, artifacts, status), first-use set-up of Hydra and MLflow included.
    """
    from causalkit.api import run

    uri = f"sqlite:///{tmp}/mlflow.db"
    t = time.perf_counter()
    cells = []
    for est in ESTIMATORS:
        out = run([*STUDY, f"estimator={est}", f"mc.reps={reps}", f"tracking.uri={uri}"])
        cells.append(out.seconds)
    return time.perf_counter() - t, cells


def _template_ready() -> str:
    """Make sure this machine has the MLflow store template (made once per MLflow version)."""
    from mlflow.version import VERSION

    from causalkit.store import cache_dir, seed_sqlite_store

    if (cache_dir() / f"mlflow-{VERSION}.db").is_file():
        return "store template cached"
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        seed_sqlite_store(Path(tmp) / "first.db")
        return f"store template made now, once for this machine: {time.perf_counter() - t:.2f} s"


def _run(cmd: list[str], cwd: str | None = None) -> subprocess.CompletedProcess:
    """``cmd`` in a subprocess without the caller's ``MLFLOW_TRACKING_URI``; its stderr tail on failure."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return proc


def _preimport(call: str) -> tuple[float, int]:
    """Import here every module a fresh interpreter loads while running ``call`` (two replications).

    Makes "imports before the clock" exact for both sides, whatever each imports lazily (mlsynth
    its solvers, causalkit Hydra, MLflow's store, pyarrow): no computation is warmed up, only
    modules loaded. Returns the seconds spent and the number of modules imported.
    """
    import importlib

    script = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import microsynth_simplex as B; "
        f"{call}; print('@@'); print('\\n'.join(sys.modules))"
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = _run([sys.executable, "-c", script], cwd=tmp)
    names = out.stdout.split("@@\n", 1)[1].split()
    t, n = time.perf_counter(), 0
    for name in names:
        if name in sys.modules or name.startswith("__"):
            continue
        try:
            importlib.import_module(name)
            n += 1
        except Exception:  # private or platform modules that only load as a side effect
            pass
    return time.perf_counter() - t, n


def _study_round(reps: int, ours_first: bool) -> None:
    """One round in this (fresh) process: both sides' modules imported, then both clocks, in the given order."""
    import json

    t_imp_ref, n_ref = _preimport("B._document_loop(2)")
    note = _template_ready()
    t_imp_ours, n_ours = _preimport("import os; B._study_in_process(2, os.getcwd())")

    def ours() -> tuple[float, list[float]]:
        with tempfile.TemporaryDirectory() as tmp:
            cwd = os.getcwd()
            os.chdir(tmp)  # checkpoints under runs/ of the start directory
            try:
                return _study_in_process(reps, tmp)
            finally:
                os.chdir(cwd)

    if ours_first:
        t_api, cells = ours()
        t_ref = _document_loop(reps)
    else:
        t_ref = _document_loop(reps)
        t_api, cells = ours()
    print(
        json.dumps(
            {
                "ref": t_ref,
                "ours": t_api,
                "cells": cells,
                "ours_first": ours_first,
                "note": note,
                "imports": [n_ref, t_imp_ref, n_ours, t_imp_ours],
            }
        )
    )


def bench_study(reps: int, rounds: int) -> None:
    """``rounds`` rounds, each a fresh interpreter running both sides (alternating which goes first).

    The two clocks differ ~30% from run to run on this machine, so a single round can land on
    either side of a ratio; the median over rounds is the figure, every round is printed.
    """
    import json

    results = []
    for i in range(rounds):
        cmd = [sys.executable, __file__, "study-round", f"--study-reps={reps}"] + (
            ["--ours-first"] if i % 2 else []
        )
        proc = _run(cmd)
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "causalkit",
            "-m",
            *STUDY,
            f"estimator={','.join(ESTIMATORS)}",
            f"mc.reps={reps}",
        ]
        t = time.perf_counter()
        proc = _run(cmd, cwd=tmp)
        t_cli = time.perf_counter() - t
        cli_cells = [
            line.split()[-1] for line in proc.stdout.splitlines() if line.startswith("seconds")
        ]
    n_ref, t_imp_ref, n_ours, t_imp_ours = results[0]["imports"]
    print(
        f"[study] contaminated-holdout Monte Carlo, {reps} replications x (naive, itt, microsynth), "
        f"common random numbers ({results[0]['note']})"
    )
    print(
        "  each round: a fresh interpreter imports every module either side loads (mlsynth side "
        f"{n_ref} modules {t_imp_ref:.2f} s, ours {n_ours} more {t_imp_ours:.2f} s), then times the "
        "document's loop with mlsynth and ours in process (causalkit.api.run per cell, fresh MLflow "
        "SQLite store, all logging)"
    )
    ratios = []
    for i, r in enumerate(results):
        ratios.append(r["ref"] / r["ours"])
        order = "ours first" if r["ours_first"] else "mlsynth first"
        print(
            f"  round {i + 1} ({order:13s}): mlsynth {r['ref']:6.2f} s, ours {r['ours']:5.2f} s "
            f"(cells {', '.join(f'{c:.2f}' for c in r['cells'])} s) -> {ratios[-1]:5.1f}x"
        )
    refs = [r["ref"] for r in results]
    print(
        f"  ours    {t_cli:7.2f} s  CLI from the shell (interpreter start, imports, Hydra multirun, MLflow); "
        f"cells: {', '.join(cli_cells)} s"
    )
    print(
        f"  speed ratio mlsynth/ours in process: median {float(np.median(ratios)):.1f}x "
        f"(min {min(ratios):.1f}x, max {max(ratios):.1f}x over {rounds} rounds); "
        f"CLI {float(np.median(refs)) / t_cli:.1f}x (against the median mlsynth loop)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("parts", nargs="*", default=["fit", "bootstrap", "study"])
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--boot-users", type=int, default=100_000)
    ap.add_argument("--covariates", type=int, default=20)
    ap.add_argument("--boot-reps", type=int, default=500)
    ap.add_argument("--study-reps", type=int, default=200)
    ap.add_argument(
        "--rounds", type=int, default=5, help="fit, study: fresh-interpreter rounds (median ratio)"
    )
    ap.add_argument("--ours-first", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--order", choices=ORDERS, default="user", help=argparse.SUPPRESS)
    ap.add_argument("--memory", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.parts == ["fit-round"]:
        _fit_round(a.users, a.covariates, a.order, a.ours_first, a.memory)
        return
    if a.parts == ["study-round"]:
        _study_round(a.study_reps, a.ours_first)
        return
    if "fit" in a.parts:
        bench_fit(a.users, a.covariates, a.rounds)
    if "bootstrap" in a.parts:
        bench_bootstrap(a.boot_users, a.covariates, a.boot_reps)
    if "study" in a.parts:
        bench_study(a.study_reps, a.rounds)


if __name__ == "__main__":
    main()
