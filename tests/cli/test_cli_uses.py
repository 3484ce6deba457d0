"""The six uses of the core issue, run as a user runs them (subprocess, fresh directory)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

import causalkit as ck

pytestmark = pytest.mark.cli

ROLES = [
    "data.roles.unit=user_id",
    "data.roles.time=week",
    "data.roles.treatment=saw_ad",
    "data.roles.outcome=converted",
    "data.roles.covariates=[age,device]",
]


def run(cwd: Path, *args: str, module: str = "causalkit") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True, timeout=900
    )


def client(cwd: Path) -> tuple[MlflowClient, str]:
    c = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'runs' / 'mlflow.db'}")
    return c, c.get_experiment_by_name("causalkit").experiment_id


def artifacts(c: MlflowClient, run_id: str) -> set[str]:
    return {a.path for a in c.list_artifacts(run_id)}


def test_default_experiment_prints_and_logs(workdir):
    p = run(workdir)
    assert p.returncode == 0, p.stderr
    for needle in (
        "estimand              ATT",
        "truth (ATT)",
        "max_abs_smd_before",
        "max_abs_smd_after",
        "ess",
        "max_weight",
        "feasible",
        "95% CI",
    ):
        assert needle in p.stdout
    c, exp = client(workdir)
    (r,) = c.search_runs([exp])
    assert r.info.status == "FINISHED"
    assert {
        "estimate",
        "se",
        "ci_lower",
        "ci_upper",
        "p_value",
        "truth",
        "max_abs_smd_after",
        "ess",
    } <= set(r.data.metrics)
    assert r.data.metrics["max_abs_smd_after"] < 1e-8
    assert set(r.data.params) == {"config_hash"}
    assert (
        r.data.tags["causalkit.estimator"] == "microsynth"
        and r.data.tags["causalkit.dgp"] == "contaminated_holdout"
    )
    assert {"config.yaml", "replications.parquet", "love_plot.png", "balance.csv"} <= artifacts(
        c, r.info.run_id
    )


def test_monte_carlo_cell(workdir):
    p = run(workdir, "estimator=itt", "mc.reps=30")
    assert p.returncode == 0, p.stderr
    assert "bias" in p.stdout and "coverage" in p.stdout
    c, exp = client(workdir)
    (r,) = c.search_runs([exp])
    expected = {
        "mean_estimate",
        "bias",
        "bias_mcse",
        "emp_se",
        "mean_se",
        "rmse",
        "coverage",
        "coverage_mcse",
        "ci_width",
        "n_failed",
        "reps",
        "seconds",
    }
    assert expected <= set(r.data.metrics)
    assert r.data.metrics["reps"] == 30 and r.data.metrics["n_failed"] == 0
    assert r.data.params == {
        "estimator": "itt",
        "mc.reps": "30",
        "config_hash": r.data.tags["causalkit.config_hash"],
    }
    assert r.info.run_name == "itt · 30 reps"


def test_sweep_parent_children_and_report(workdir):
    p = run(
        workdir,
        "-m",
        "estimator=naive,itt,microsynth",
        "mc.reps=8",
        "inference.n_boot=50",
        "estimator.tol=1e-11",
    )
    # inference.n_boot only exists for bootstrap: naive/itt default to analytic -> preflight must reject
    assert p.returncode == 2 and "inference.n_boot" in p.stderr and "Traceback" not in p.stderr
    p = run(workdir, "-m", "estimator=naive,itt,microsynth", "mc.reps=8")
    assert p.returncode == 0, p.stderr
    c, exp = client(workdir)
    runs = c.search_runs([exp])
    parents = [r for r in runs if r.data.tags.get("causalkit.sweep") == "1"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert sorted(r.data.tags["causalkit.estimator"] for r in children) == [
        "itt",
        "microsynth",
        "naive",
    ]
    assert all(r.info.status == "FINISHED" for r in runs)
    rep = run(workdir, module="causalkit.report")
    assert rep.returncode == 0, rep.stderr
    assert "bias ± MCSE" in rep.stdout and "estimator=microsynth" in rep.stdout
    out = workdir / "runs" / "report" / parents[0].info.run_id
    assert (out / "comparison.csv").exists() and (out / "comparison.png").exists()
    table = pd.read_csv(out / "comparison.csv")
    assert len(table) == 3 and table["reps"].eq(8).all()


def test_own_csv_and_parquet_panel(workdir):
    sim = ck.simulate("contaminated_holdout", seed=5)
    sim.dataset.frame.to_csv(workdir / "panel.csv", index=False)
    sim.dataset.frame.to_parquet(workdir / "panel.parquet")
    for kind, name in (("csv", "panel.csv"), ("parquet", "panel.parquet")):
        p = run(
            workdir,
            f"data={kind}",
            f"data.path={name}",
            *ROLES,
            "dgp=none",
            "estimator=microsynth",
            "inference=bootstrap",
            "inference.n_boot=50",
        )
        assert p.returncode == 0, p.stderr
        assert "truth" not in p.stdout and "max_abs_smd_after" in p.stdout
    c, exp = client(workdir)
    runs = c.search_runs([exp])
    assert len(runs) == 2 and all(
        r.info.status == "FINISHED" and "truth" not in r.data.metrics for r in runs
    )
    # the same answer as the Python API on the same data
    res = ck.fit(
        sim.dataset.frame,
        estimator="microsynth",
        unit="user_id",
        time="week",
        treatment="saw_ad",
        outcome="converted",
        covariates=["age", "device"],
        inference="none",
    )
    assert runs[0].data.metrics["estimate"] == pytest.approx(res.estimate, rel=1e-12)


def test_bad_input_exit_2_one_line_no_traceback(workdir):
    for args in (
        ["estimator.weight_methd=x"],
        ["estimator=nope"],
        ["mc.reps=-3"],
        ["data=csv", "data.path=missing.csv", "dgp=none", *ROLES],
    ):
        p = run(workdir, "tracking=none", *args)
        assert p.returncode == 2, (args, p.stderr)
        lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
        assert (
            len(lines) == 1
            and lines[0].startswith("causalkit: error: ")
            and "Traceback" not in p.stderr
        )


def test_failing_cell_is_failed_and_the_sweep_goes_on(workdir):
    frame = ck.simulate("contaminated_holdout", seed=1).dataset.frame.assign(const=1.0)
    frame.to_csv(workdir / "panel.csv", index=False)
    roles = [*ROLES[:-1], "data.roles.covariates=[age,const]"]
    p = run(
        workdir,
        "-m",
        "estimator=naive,microsynth",
        "data=csv",
        "data.path=panel.csv",
        *roles,
        "dgp=none",
        "inference=none",
    )
    assert p.returncode == 1 and "1 of 2 cells FAILED" in p.stderr
    c, exp = client(workdir)
    runs = {r.data.tags.get("causalkit.estimator"): r for r in c.search_runs([exp])}
    assert runs["naive"].info.status == "FINISHED"
    assert runs["microsynth"].info.status == "FAILED"
    assert "constant" in runs["microsynth"].data.tags["causalkit.error"]
    assert not [r for r in c.search_runs([exp]) if r.info.status == "RUNNING"]


def test_plugins_listing(workdir):
    p = run(workdir, module="causalkit.plugins")
    assert p.returncode == 0 and "microsynth" in p.stdout and "balance_tol = 1e-08" in p.stdout
    assert np.all([k in p.stdout for k in ("data:", "dgp:", "estimator:", "inference:")])
