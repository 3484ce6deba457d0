"""A sweep's report and exit code are about its own cells; identical cells never run twice."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import causalkit as ck

from .test_cli_uses import client as _client
from .test_cli_uses import run as _run

pytestmark = pytest.mark.cli

ROLES = [
    "data.roles.unit=user_id",
    "data.roles.time=week",
    "data.roles.treatment=saw_ad",
    "data.roles.assignment=assigned_exposed",
    "data.roles.outcome=converted",
]


def _report_rows(cwd: Path, first: str = "estimator=") -> tuple[str, list[str]]:
    p = _run(cwd, module="causalkit.report")
    assert p.returncode == 0, p.stderr
    return p.stdout, [ln for ln in p.stdout.splitlines() if ln.startswith(first)]


def _cell(row: str) -> str:
    return row.split()[0].split(",")[0]


def test_cells_differing_in_reps_are_two_cells_of_their_own_sweep(tmp_path):
    p = _run(tmp_path, "-m", "estimator=itt", "mc.reps=30,60")
    assert p.returncode == 0, p.stderr
    out, rows = _report_rows(tmp_path, "reps=")
    assert ": 2 cells" in out
    assert [r.split()[0] for r in rows] == ["reps=30", "reps=60"]  # named by what varies
    assert [int(r.split()[-3]) for r in rows] == [30, 60]  # each cell with its own reps
    c, exp = _client(tmp_path)
    sweep = next(r for r in c.search_runs([exp]) if r.data.tags.get("causalkit.sweep") == "1")
    children = {
        r.info.run_id
        for r in c.search_runs([exp])
        if r.data.tags.get("mlflow.parentRunId") == sweep.info.run_id
    }
    shown = {v for k, v in sweep.data.tags.items() if k.startswith("causalkit.cell.")}
    assert shown == children and len(children) == 2


def test_a_cell_failing_on_changed_data_fails_the_sweep(tmp_path):
    frame = ck.simulate("contaminated_holdout", seed=1).dataset.frame
    frame.to_csv(tmp_path / "d.csv", index=False)
    sweep = ["-m", "estimator=naive,itt", "data=csv", "data.path=d.csv", "dgp=none", *ROLES]
    first = _run(tmp_path, *sweep)
    assert first.returncode == 0, first.stderr
    frame.assign(assigned_exposed=1).to_csv(tmp_path / "d.csv", index=False)  # itt: no control arm
    again = _run(tmp_path, *sweep)
    assert again.returncode == 1, again.stdout + again.stderr
    assert "1 of 2 cells FAILED" in again.stderr
    assert "already finished" not in again.stdout  # the edited file is not the finished cell's
    out, rows = _report_rows(tmp_path)
    status = {_cell(r): r.split()[1] for r in rows}
    assert status == {"estimator=naive": "FINISHED", "estimator=itt": "FAILED"}, out


def test_identical_cells_started_together_finish_once(tmp_path):
    cell = ["estimator=itt", "mc.reps=40", "inference=bootstrap", "inference.n_boot=1500"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "causalkit", *cell],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    assert sum("already finished" in out for out, _ in outs) == 1  # one ran, one waited for it
    c, exp = _client(tmp_path)
    runs = c.search_runs([exp])
    assert [r.info.status for r in runs] == ["FINISHED"]  # one copy, no claim left behind
    tails = [out.split("replications")[-1] for out, _ in outs]
    assert tails[0] == tails[1]
