"""Issue 20, item 10, from the shell: what a new user sees (each command 2-4 s of CPU)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from causalkit.testing import run_cli


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(cwd, *args, timeout=120, unset=("MLFLOW_TRACKING_URI",))


def _one_line_exit_2(p: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert len(lines) == 1 and lines[0].startswith("causalkit: error: "), p.stderr
    return lines[0]


def test_psm_run_without_tracking_prints_plainly_and_writes_nothing(tmp_path: Path) -> None:
    p = _cli(
        tmp_path,
        "estimator=psm",
        "estimator.se=ai2006",
        "dgp=selection_on_observables",
        "dgp.n=300",
        "tracking=none",
    )
    assert p.returncode == 0, p.stderr
    assert list(tmp_path.iterdir()) == []  # no runs/hydra, no .hydra, no causalkit.log
    out = p.stdout
    assert "estimand              ATT (average effect on the treated)" in out
    assert "  ps_estimation_ignored_in_se  yes" in out
    assert "for the ATT this SE can be too small or too large" in out
    assert "mean_treated_after" in out and "e+0" not in out.split("balance (SMD")[1]
    assert "CausalkitWarning" not in p.stderr  # the command line prints them once, in the summary


def test_sweep_without_tracking_writes_nothing_and_logs_only_the_axes(tmp_path: Path) -> None:
    p = _cli(tmp_path, "-m", "estimator=naive,itt", "tracking=none")
    assert p.returncode == 0, p.stderr
    assert list(tmp_path.iterdir()) == []  # no multirun.yaml, no per-job folders
    hydra = [ln for ln in (p.stdout + p.stderr).splitlines() if "[HYDRA]" in ln]
    assert [ln.split("] ", 1)[1].strip() for ln in hydra] == [
        "Launching 2 jobs locally",
        "#0 : estimator=naive tracking=none",
        "#1 : estimator=itt tracking=none",
    ]


def test_covariates_without_brackets_say_to_write_brackets(tmp_path: Path) -> None:
    line = _one_line_exit_2(_cli(tmp_path, "data=csv", "data.roles.covariates=x1,x2"))
    assert "data.roles.covariates=[x1,x2]" in line and "Ambiguous" not in line


def test_an_excel_workbook_given_as_csv_is_named(tmp_path: Path) -> None:
    name = "sales.xlsx"  # a renamed workbook (sales.csv) is a unit test
    (tmp_path / name).write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    line = _one_line_exit_2(
        _cli(
            tmp_path,
            "data=csv",
            f"data.path={name}",
            "data.roles.outcome=y",
            "data.roles.treatment=d",
            "estimator=naive",
            "dgp=none",
            "tracking=none",
        )
    )
    assert "looks like an Excel workbook" in line and "save the workbook as CSV or parquet" in line
    assert "utf-8" not in line.lower()
