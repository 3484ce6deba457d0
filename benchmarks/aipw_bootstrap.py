"""AIPW bootstrap refits: the per-draw path (sklearn pipelines) vs the batched GLM path; ratio printed.

Usage::

    python benchmarks/aipw_bootstrap.py [--rounds R] [--slow-draws S] [--n-boot B]

The data are the coverage matrix's ``aipw / bootstrap`` world ``both_models_right``
(``selection_on_observables``, n=500, ``x1_sq=0``, ATE) at the estimator's defaults (5
folds, ``logit`` propensity, ``linear`` outcomes, scaled covariates). Each round is a fresh
interpreter that fits once and draws ``--n-boot`` resamples from one Generator exactly as
``inference=bootstrap`` does; it times the per-draw ``Resampler.refit`` on the first
``--slow-draws`` of them (it takes ~100x longer) and ``Resampler.refit_batch`` on all of
them, 32 at a time, both with one BLAS thread as ``mc`` runs replications, alternating which
goes first. It prints per-draw times, their ratio (the figure: the median over rounds), the
largest relative difference of the batched draws from the per-draw ones (lbfgs's tol 1e-4
in the default ``logit``), and the bootstrap time per replication (``--n-boot`` draws).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings

import numpy as np


def _round(n_boot: int, slow_draws: int, batched_first: bool) -> None:
    """One round in this (fresh) process: fit, draw, time both paths; one JSON line."""
    from causalkit.session import blas_threads
    from causalkit_plugins.dgps.selection_on_observables import (
        SelectionOnObservables,
        SelectionOnObservablesParams,
    )
    from causalkit_plugins.estimators.aipw.estimator import AIPW
    from causalkit_plugins.inference.bootstrap import REFIT_BATCH, resample_indices

    warnings.simplefilter("ignore", FutureWarning)  # sklearn's penalty=None deprecation
    world = SelectionOnObservablesParams(n=500, outcome={"x1_sq": 0})
    sim = SelectionOnObservables(world).simulate(np.random.default_rng(20261130))
    with blas_threads(1):
        t = time.perf_counter()
        fit = AIPW().fit(sim.dataset, np.random.default_rng(1))
        t_fit = time.perf_counter() - t
        rs = fit.resampler
        assert rs is not None and rs.refit is not None and rs.refit_batch is not None
        rng = np.random.default_rng(2)
        idxs = [resample_indices(rng, rs.strata, rs.n) for _ in range(n_boot)]

        def slow() -> tuple[float, np.ndarray]:
            assert rs.refit is not None
            t = time.perf_counter()
            out = np.array([rs.refit(i) for i in idxs[:slow_draws]])
            return time.perf_counter() - t, out

        def fast() -> tuple[float, np.ndarray]:
            assert rs.refit_batch is not None
            t = time.perf_counter()
            out = np.concatenate(
                [rs.refit_batch(idxs[s : s + REFIT_BATCH]) for s in range(0, n_boot, REFIT_BATCH)]
            )
            return time.perf_counter() - t, out

        if batched_first:
            (t_fast, d_fast), (t_slow, d_slow) = fast(), slow()
        else:
            (t_slow, d_slow), (t_fast, d_fast) = slow(), fast()
    rel = np.abs(d_fast[:slow_draws] / d_slow - 1).max()
    print(
        json.dumps(
            {
                "fit": t_fit,
                "slow_per_draw": t_slow / slow_draws,
                "fast_per_draw": t_fast / n_boot,
                "fast_total": t_fast,
                "rel_diff": float(rel),
                "se_fast": float(d_fast[:, 0].std(ddof=1)),
                "batched_first": batched_first,
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=5, help="fresh-interpreter rounds")
    ap.add_argument("--slow-draws", type=int, default=48, help="draws timed on the per-draw path")
    ap.add_argument("--n-boot", type=int, default=500, help="draws timed on the batched path")
    ap.add_argument("--round", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--batched-first", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.round:
        _round(a.n_boot, a.slow_draws, a.batched_first)
        return
    print(
        f"[aipw bootstrap] both_models_right world, n=500, 5 folds, logit + linear; per-draw path on "
        f"{a.slow_draws} draws, batched on {a.n_boot}; one BLAS thread; {a.rounds} fresh interpreters"
    )
    ratios, per_rep = [], []
    for i in range(a.rounds):
        cmd = [
            sys.executable,
            __file__,
            "--round",
            f"--n-boot={a.n_boot}",
            f"--slow-draws={a.slow_draws}",
        ] + (["--batched-first"] if i % 2 else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-3000:])
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        ratios.append(r["slow_per_draw"] / r["fast_per_draw"])
        per_rep.append(r["fast_total"])
        order = "batched first" if r["batched_first"] else "per-draw first"
        print(
            f"  round {i + 1} ({order:14s}): per-draw {1e3 * r['slow_per_draw']:7.2f} ms/draw, "
            f"batched {1e3 * r['fast_per_draw']:5.3f} ms/draw -> {ratios[-1]:6.1f}x; "
            f"{a.n_boot} batched draws {r['fast_total']:.3f} s (fit {r['fit']:.3f} s); "
            f"max rel. diff {r['rel_diff']:.1e}; bootstrap SE {r['se_fast']:.5f}"
        )
    print(
        f"  speed ratio per-draw/batched: median {float(np.median(ratios)):.1f}x "
        f"(min {min(ratios):.1f}x, max {max(ratios):.1f}x); bootstrap time per replication "
        f"({a.n_boot} draws): median {float(np.median(per_rep)):.3f} s"
    )


if __name__ == "__main__":
    main()
