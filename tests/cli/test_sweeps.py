"""Sweeps that survive real use: resume after SIGKILL, concurrent cells against one fresh store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from causalkit.cli import compose
from causalkit.config import validate
from causalkit.identity import cell_identity
from causalkit.registry import default_registry
from causalkit.testing import run_cli
from causalkit.tracking import REUSED_TAG, SWEEP_TAG

pytestmark = pytest.mark.cli

SWEEP = ["-m", "estimator=naive,itt", "mc.reps=400"]
METRICS = (
    "mean_estimate",
    "bias",
    "bias_mcse",
    "emp_se",
    "mean_se",
    "rmse",
    "coverage",
    "ci_width",
    "n_failed",
    "reps",
)


def _client(cwd: Path) -> tuple[MlflowClient, str]:
    c = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'runs' / 'mlflow.db'}")
    return c, c.get_experiment_by_name("causalkit").experiment_id


def _cmd(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(cwd, *args, timeout=900)


def test_killed_sweep_resumes_to_identical_metrics(tmp_path):
    killed, fresh = tmp_path / "killed", tmp_path / "fresh"
    killed.mkdir()
    fresh.mkdir()
    itt = validate(compose(["estimator=itt", "mc.reps=400"]))
    itt_hash = itt.cell_hash
    ckpts = killed / "runs" / "checkpoints"
    ckpt = ckpts / cell_identity(itt, default_registry()).key
    proc = subprocess.Popen(
        [sys.executable, "-m", "causalkit", *SWEEP],
        cwd=killed,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    done = 0
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        done = sum(  # one file per finished chunk, its header counts the rows
            json.loads(f.read_bytes().partition(b"\n")[0])["rows"] for f in ckpt.glob("*.ckpt")
        )
        if done >= 40:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the sweep finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 40 <= done < 400
    c, exp = _client(killed)
    statuses = Counter(r.info.status for r in c.search_runs([exp]))
    assert statuses["RUNNING"] == 2  # the sweep's parent and the itt cell, left behind by SIGKILL

    again = _cmd(killed, *SWEEP)
    assert again.returncode == 0, again.stderr
    assert "already finished" in again.stdout  # the naive cell is recognised by its identity
    assert again.stdout.count("causalkit Monte Carlo cell") == 2  # its stored result shown too
    runs = c.search_runs([exp])
    (now,) = [r for r in runs if r.data.tags.get(SWEEP_TAG) == "1" and r.info.status == "FINISHED"]
    cells = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == now.info.run_id]
    reused = [r for r in cells if REUSED_TAG in r.data.tags]  # under this sweep in the UI's tree
    assert len(cells) == 2 and len(reused) == 1 and reused[0].info.status == "FINISHED"
    assert not [r for r in runs if r.info.status == "RUNNING"]
    killed_runs = [r for r in runs if r.info.status == "KILLED"]
    assert len(killed_runs) == 2 and all(
        "died" in r.data.tags["causalkit.error"] for r in killed_runs
    )
    itt_runs = [
        r
        for r in runs
        if r.data.tags.get("causalkit.config_hash") == itt_hash and r.info.status == "FINISHED"
    ]
    assert len(itt_runs) == 1
    assert not list(ckpts.iterdir())  # checkpoints are removed when their cell finishes

    ref = _cmd(fresh, *SWEEP)
    assert ref.returncode == 0, ref.stderr
    c2, exp2 = _client(fresh)
    ref_itt = [
        r for r in c2.search_runs([exp2]) if r.data.tags.get("causalkit.config_hash") == itt_hash
    ]
    for m in METRICS:
        assert itt_runs[0].data.metrics[m] == ref_itt[0].data.metrics[m], m  # bit-identical

    report = run_cli(killed, module="causalkit.report", timeout=300)
    assert report.returncode == 0, report.stderr
    rows = [ln for ln in report.stdout.splitlines() if ln.startswith("estimator=")]
    assert len(rows) == 2  # each cell once, the skipped one from the earlier run
    sweep_dir = next((killed / "runs" / "report").iterdir())
    assert (sweep_dir / "report.html").read_text().count("<tr") == 3

    forced = _cmd(killed, *SWEEP[:2], "mc.reps=400", "mc.resume=false")
    assert forced.returncode == 0 and "already finished" not in forced.stdout


def test_eight_concurrent_cells_against_one_fresh_store(tmp_path):
    p = _cmd(
        tmp_path,
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=8",
        "estimator=naive,itt",
        "mc.seed=1,2,3,4",
        "mc.reps=5",
    )
    assert p.returncode == 0, p.stderr
    c, exp = _client(tmp_path)
    runs = c.search_runs([exp])
    parents = [r for r in runs if r.data.tags.get("causalkit.sweep") == "1"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and len(children) == 8
    assert (
        len({r.data.tags["causalkit.config_hash"] for r in children}) == 8
    )  # none lost, none duplicated
    assert all(r.info.status == "FINISHED" for r in runs)
