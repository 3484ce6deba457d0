"""Many machines writing runs: a submitit sweep against an MLflow tracking server on PostgreSQL.

The real thing on loopback (fixtures in ``conftest.py``): a fresh PostgreSQL cluster, ``mlflow
server`` with it as backend store, and an 8-cell sweep launched by Hydra's ``submitit_local``
launcher, each cell a job in its own process writing to the server. The sweep's parent run
exists before any job starts; the 8 children end FINISHED with their metrics (as the server
and the database itself both say); the jobs ran at the same time. The same command again
reads every cell back from the server instead of running it, and ``python -m
causalkit.report --uri`` builds the sweep's table from the server.
"""

from __future__ import annotations

import re
import subprocess
from datetime import datetime
from pathlib import Path

import pandas as pd
import psycopg2
import pytest
from mlflow.tracking import MlflowClient

from causalkit.testing import run_cli

pytestmark = pytest.mark.cli

CELLS = {f"estimator={e} · seed={s}" for e in ("naive", "itt") for s in (1, 2, 3, 4)}
SWEEP = [
    "-m",
    "hydra/launcher=submitit_local",
    "hydra.launcher.timeout_min=5",  # a hung job is killed; each cell takes seconds
    "estimator=naive,itt",
    "mc.seed=1,2,3,4",
    "mc.reps=20",
    "inference=analytic",
]
METRICS = ("bias", "bias_mcse", "emp_se", "mean_se", "rmse", "coverage", "ci_width", "n_failed")
_STAMP = re.compile(r"submitit INFO \((\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\) - (.*)")


def _run(cwd: Path, module: str, *args: str) -> subprocess.CompletedProcess[str]:
    proc = run_cli(cwd, *args, module=module, timeout=300)
    assert proc.returncode == 0, f"{module} exit {proc.returncode}: {proc.stderr[-3000:]}"
    return proc


def _jobs(sweep_dir: Path) -> list[tuple[datetime, datetime, str]]:
    """Each submitit job of a sweep: (started, completed, its output), from its log."""
    jobs = []
    for log in sorted((sweep_dir / ".submitit").glob("*/*_0_log.out")):
        text = log.read_text()
        stamps = {
            msg: datetime.strptime(t, "%Y-%m-%d %H:%M:%S,%f") for t, msg in _STAMP.findall(text)
        }
        started = next(t for m, t in stamps.items() if m.startswith("Starting with JobEnvironment"))
        jobs.append((started, stamps["Job completed successfully"], text))
    return jobs


def _database_runs(pg) -> dict[str, int]:
    """Runs per status, read from PostgreSQL itself (the server's backend store)."""
    conn = psycopg2.connect(
        host="127.0.0.1", port=pg.port, user=pg.user, password=pg.password, dbname=pg.database
    )
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT status, count(*) FROM runs WHERE lifecycle_stage = 'active' GROUP BY 1"
            )
            return dict(cur.fetchall())
    finally:
        conn.close()


def test_submitit_sweep_on_postgres_server_finishes_every_cell_and_resumes(
    pg, mlflow_url, tmp_path
):
    work = tmp_path / "work"
    work.mkdir()
    _run(work, "causalkit", *SWEEP, f"tracking.uri={mlflow_url}")

    client = MlflowClient(tracking_uri=mlflow_url)
    exp_id = client.get_experiment_by_name("causalkit").experiment_id
    runs = client.search_runs([exp_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("causalkit.sweep") == "1"]
    assert len(parents) == 1
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 9 and len(children) == 8
    assert {r.info.run_name for r in children} == CELLS
    assert [r.info.status for r in runs] == ["FINISHED"] * 9
    assert parent.data.tags["causalkit.failed_cells"] == "0"
    for child in children:
        assert set(METRICS) <= set(child.data.metrics), child.info.run_name
        assert child.data.metrics["reps"] == 20 and child.data.metrics["n_failed"] == 0
    # The parent run exists before any cell's run; each cell ran in a process of its own.
    assert parent.info.start_time <= min(r.info.start_time for r in children)
    pids = {r.data.tags["causalkit.pid"] for r in children}
    assert len(pids) == 8 and parent.data.tags["causalkit.pid"] not in pids
    assert _database_runs(pg) == {"FINISHED": 9}

    # submitit's jobs folder is inside the sweep's folder, one job per cell, all alive at once.
    (first_dir,) = sorted(work.glob("runs/hydra/multirun/*/*"))
    jobs = _jobs(first_dir)
    assert len(jobs) == 8
    assert max(started for started, _, _ in jobs) < min(done for _, done, _ in jobs)

    # The same command again: every cell is read back from the server, none runs again.
    _run(work, "causalkit", *SWEEP, f"tracking.uri={mlflow_url}")
    second_dir = max(work.glob("runs/hydra/multirun/*/*"))
    assert second_dir != first_dir
    read_back = [
        re.search(r"already finished in MLflow run (\w+)", out) for _, _, out in _jobs(second_dir)
    ]
    assert {m.group(1) for m in read_back if m} == {r.info.run_id for r in children}
    after = client.search_runs([exp_id], max_results=1000)
    new = [r for r in after if r.info.run_id not in {x.info.run_id for x in runs}]
    # The new parent, and under it one light run per reused cell pointing at the run that did the
    # work (issue 20, item 2: the UI tree matches the report); no cell computed again.
    (new_parent,) = [r for r in new if r.data.tags.get("causalkit.sweep") == "1"]
    reused = [r for r in new if r is not new_parent]
    assert len(reused) == 8
    assert {r.data.tags.get("mlflow.parentRunId") for r in reused} == {new_parent.info.run_id}
    assert {r.data.tags.get("causalkit.reused_from") for r in reused} == {
        r.info.run_id for r in children
    }
    assert [r.info.status for r in after] == ["FINISHED"] * 18
    stands_for = {v for k, v in new_parent.data.tags.items() if k.startswith("causalkit.cell.")}
    assert stands_for == {r.info.run_id for r in reused}
    assert _database_runs(pg) == {"FINISHED": 18}

    # The report reads the latest sweep (the resumed one) from the server.
    out = tmp_path / "report"
    shown = _run(work, "causalkit.report", "--uri", mlflow_url, "--out", str(out)).stdout
    assert f"({new_parent.info.run_id}): 8 cells" in shown
    table = pd.read_csv(out / new_parent.info.run_id / "comparison.csv").set_index("cell")
    assert set(table.index) == CELLS and set(table["status"]) == {"FINISHED"}
    for child in children:
        for metric in ("bias", "rmse", "coverage"):
            assert table.loc[child.info.run_name, metric] == pytest.approx(
                child.data.metrics[metric], rel=1e-12
            )
