"""The report of a sweep over a design factor: factor columns, zip, nested-loop and forest plots."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from causalkit.simplots import zip_ranks
from causalkit.testing import run_cli


def _run(cwd: Path, module: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(cwd, *args, module=module, timeout=900)


def test_zip_ranks_put_the_misses_on_top() -> None:
    est = np.array([0.1, -0.5, 0.3, 2.5, -0.05])
    se = np.ones(5)
    lo, hi = est - 1.96, est + 1.96
    centile, covers = zip_ranks(est, se, lo, hi, 0.0, 0.95)
    assert centile.tolist() == [40.0, 80.0, 60.0, 100.0, 20.0]  # 100 * rank(|z|) / R
    assert covers.tolist() == [True, True, True, False, True]
    # an interval without a model SE ranks by its half-width over z
    centile2, _ = zip_ranks(est, np.full(5, np.nan), lo, hi, 0.0, 0.95)
    assert centile2.tolist() == centile.tolist()


def test_a_sweep_over_a_factor_reports_it_with_figures(tmp_path: Path) -> None:
    sweep = _run(
        tmp_path, "causalkit", "-m", "estimator=naive,itt", "dgp.lift=0,0.05", "mc.reps=30",
        "mc.common_random_numbers=true",
    )  # fmt: skip
    assert sweep.returncode == 0, sweep.stderr
    report = _run(tmp_path, "causalkit.report", "--reference", "nope")
    lines = report.stderr.strip().splitlines()
    assert report.returncode == 2 and len(lines) == 1 and "Traceback" not in report.stderr
    assert lines[0].startswith("causalkit.report: error: --reference: expected a cell run with")

    report = _run(tmp_path, "causalkit.report")
    assert report.returncode == 0, report.stderr
    out = next((tmp_path / "runs" / "report").iterdir())
    table = pd.read_csv(out / "comparison.csv")
    assert table.columns[:3].tolist() == ["cell", "method", "dgp.lift"]
    assert sorted(table["dgp.lift"].astype(float)) == [0, 0, 0.05, 0.05]
    assert set(table["method"]) == {"naive/analytic", "itt/analytic"}
    assert {"power", "be_coverage", "rel_error_model_se", "mse"} <= set(table.columns)
    header = report.stdout.splitlines()[1]
    assert "dgp.lift" in header  # the factor has a column in the printed table too
    for name in ("measures.png", "nested_loop_bias.png", "nested_loop_coverage.png"):
        assert (out / name).stat().st_size > 10_000, name
    zips = sorted((out / "zip").glob("*.png"))
    assert len(zips) == 4
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 1 + 1 + 3 + 4  # comparison, forest, loops, zips
    assert "World: contaminated_holdout" in html and "lift ∈ {0.0, 0.05}" in html  # the design
    assert ">Coverage (MCSE)<" in html and "How to read this" in html
    # every Monte Carlo cell's run logged its two figures
    for name in ("estimates.png", "intervals.png"):
        assert len(list((tmp_path / "runs" / "artifacts").glob(f"*/artifacts/{name}"))) == 4
    # rel. precision against the naive cell of the same lift, with paired MCSEs, in the text
    assert "% precision ± paired" in report.stdout
