"""``mc.target_mcse`` from the command line: the same command stops at the same replications,
the plan is reported in MLflow, and a bad plan is one line with exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from .test_cli_uses import client as _client
from .test_cli_uses import run as _cmd

pytestmark = pytest.mark.cli

PLANNED = (
    "estimator=itt",
    "mc.reps=20",
    "mc.target_mcse.emp_se=0.004",
    "mc.target_mcse.coverage=0.03",
    "mc.max_reps=400",
)


def test_the_same_command_stops_at_the_same_replications_and_reports_the_plan(tmp_path):
    first = _cmd(tmp_path, *PLANNED)
    assert first.returncode == 0, first.stderr
    assert "every target met at" in first.stdout
    again = _cmd(tmp_path, *PLANNED)
    assert again.returncode == 0, again.stderr
    assert "already finished" in again.stdout  # same identity (plan included): read back
    client, exp = _client(tmp_path)
    (run,) = client.search_runs([exp])
    m, tags = run.data.metrics, run.data.tags
    assert 20 < m["reps"] < 400 and m["targets_met"] == 1.0 and m["reps_capped"] == 0.0
    assert m["achieved_mcse.coverage"] <= m["target_mcse.coverage"] == 0.03
    assert m["achieved_mcse.emp_se"] <= m["target_mcse.emp_se"] == 0.004
    assert '"max_reps":400' in tags["causalkit.plan"]
    assert f"replications              {int(m['reps'])} (0 failed)" in again.stdout
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    other = _cmd(fresh, *PLANNED, "tracking=none")
    assert f"replications              {int(m['reps'])} (0 failed)" in other.stdout


CATTANEO = str(Path(__file__).parents[1] / "data" / "cattaneo2.csv.gz")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["mc.target_mcse.bias=0", "mc.max_reps=100"],
            "mc.target_mcse.bias: expected greater than 0",
        ),
        (
            ["mc.target_mcse.mean_se=0.01", "mc.max_reps=100"],
            "mc.target_mcse.mean_se: expected one of the keys bias, coverage, emp_se, rmse",
        ),
        (
            ["mc.target_mcse.bias=0.01", "mc.reps=200", "mc.max_reps=100"],
            "mc.max_reps: expected at least mc.reps (200), got 100",
        ),
        (
            ["data=csv", f"data.path={CATTANEO}", "dgp=none"]
            + ["mc.target_mcse.bias=0.01", "mc.max_reps=500"],
            "mc.target_mcse: expected no targets for a real analysis",
        ),
    ],
)
def test_a_bad_plan_is_one_line_and_exit_2(tmp_path, overrides, message):
    out = _cmd(tmp_path, "estimator=itt", "tracking=none", *overrides)
    assert out.returncode == 2
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "Traceback" not in out.stderr
