"""Clustered inference from the command line (``data.roles.cluster=<col>``) and from Python."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import causalkit as ck
from causalkit.testing import run_cli

pytestmark = pytest.mark.cli

ROLES = (
    "data.roles.outcome=y",
    "data.roles.treatment=treat",
    "data.roles.covariates=[x1,x2]",
)


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(cwd, "tracking=none", "dgp=none", *args, timeout=300)


def _se(stdout: str) -> float:
    (line,) = [ln for ln in stdout.splitlines() if ln.startswith("std. error")]
    return float(line.split()[-1])


def pupils_csv(workdir):
    """600 pupils in 60 schools (the clustered world), written to ``pupils.csv``; the frame."""
    sim = ck.simulate(
        "selection_on_observables",
        seed=3,
        n=600,
        cluster={"n_clusters": 60, "icc": 0.5, "x_icc": 0.6},
    )
    frame = sim.dataset.frame.rename(columns={"cluster": "school"})
    frame.to_csv(workdir / "pupils.csv", index=False)
    return frame


def test_cluster_role_from_the_cli_equals_python(workdir):
    frame = pupils_csv(workdir)
    base = ("data=csv", "data.path=pupils.csv", *ROLES, "estimator=ols")
    clustered = _run(workdir, *base, "data.roles.cluster=school")
    assert clustered.returncode == 0, clustered.stderr
    assert "n_clusters" in clustered.stdout
    plain = _run(workdir, *base)
    assert plain.returncode == 0, plain.stderr
    res = ck.fit(
        frame, "ols", outcome="y", treatment="treat", covariates=["x1", "x2"], cluster="school"
    )
    assert _se(clustered.stdout) == pytest.approx(res.to_dict()["se"], abs=1e-4)  # 4 digits shown
    assert _se(clustered.stdout) > 1.2 * _se(plain.stdout)

    frame.assign(school=1).to_csv(workdir / "one.csv", index=False)
    one = _run(workdir, "data=csv", "data.path=one.csv", *ROLES, "estimator=naive",
               "data.roles.cluster=school")  # fmt: skip
    lines = one.stderr.strip().splitlines()
    assert one.returncode == 2 and len(lines) == 1 and "Traceback" not in one.stderr
    assert lines[0].startswith("causalkit: error: roles.cluster: expected at least two clusters")
