"""Figures and the HTML report, on small in-process tables (issue 20, items 7 and 8)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from causalkit.plots import comparison_plot, gap_plot, love_plot, pyplot, varying_labels
from causalkit.report_page import HOW_TO_READ, design_rows, html_page
from causalkit.results import CELL_METRICS
from causalkit.simplots import MAX_INTERVALS, estimates_plot, intervals_plot, save_cell_figures


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    pyplot().close("all")


def _table(names: list[str]) -> pd.DataFrame:
    rows = []
    for i, name in enumerate(names):
        row = {c: 0.01 * (i + 1) for c in CELL_METRICS}
        row.update(cell=name, status="FINISHED", reps=200.0, n_failed=0.0, coverage=0.94)
        row.update(mean_estimate=0.06 + 0.01 * i, bias=0.01 * i, coverage_lower=0.9)
        row.update(coverage_upper=0.97, estimand="ATE", truth_estimand="ATE", truth=0.06)
        row.update(error="", run_id=f"r{i}")
        rows.append(row)
    return pd.DataFrame(rows)


def _replications(n: int, truth: float | np.ndarray = 0.05, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    est = 0.05 + rng.normal(0, 0.02, n)
    return pd.DataFrame(
        {
            "replication": np.arange(n),
            "estimate": est,
            "se": np.full(n, 0.02),
            "ci_lower": est - 0.0392,
            "ci_upper": est + 0.0392,
            "truth": np.broadcast_to(truth, n).astype(float),
            "error": [None] * n,
        }
    )


def test_varying_labels_drop_what_every_cell_shares():
    names = [f"experiment=holdout,estimator={e},mc.reps=200" for e in ("naive", "itt")]
    assert varying_labels(names) == (
        ["estimator=naive", "estimator=itt"],
        ["experiment=holdout", "mc.reps=200"],
    )
    assert varying_labels(["itt · 200 reps · lift=0", "itt · 200 reps · lift=0.05"]) == (
        ["lift=0", "lift=0.05"],
        ["itt", "200 reps"],
    )
    assert varying_labels(["a"]) == (["a"], [])  # one cell keeps its name


def test_comparison_plot_rows_in_table_order_with_the_truth_and_no_constant_labels():
    names = [f"estimator={e},mc.reps=200" for e in ("naive", "itt", "ols")]
    table = _table(names)
    fig = comparison_plot(table)
    fig.canvas.draw()
    first = fig.axes[0]
    ticks = sorted(first.get_yticklabels(), key=lambda t: -t.get_position()[1])
    assert [t.get_text() for t in ticks] == ["estimator=naive", "estimator=itt", "estimator=ols"]
    assert "mc.reps=200" in fig._suptitle.get_text()
    assert first.get_title() == "mean estimate vs truth"
    truth = next(c for c in first.collections if c.get_label() == "truth")
    expected = (table["mean_estimate"] - table["bias"]).to_numpy()
    assert np.allclose(truth.get_offsets()[:, 0], expected)


def test_gap_plot_shows_levels_with_the_outcome_and_the_onset():
    gaps = pd.DataFrame(
        {
            "period": [1, 2, 3, 4],
            "post": [False, False, True, True],
            "treated": [1.0, 1.1, 1.5, 1.6],
            "synthetic": [1.0, 1.1, 1.2, 1.2],
        }
    ).assign(gap=lambda d: d.treated - d.synthetic)
    ax = gap_plot(gaps, outcome="converted").axes[0]
    assert "Per-period effect" not in ax.get_title() and "synthetic" in ax.get_title()
    assert ax.get_ylabel() == "converted"
    onset = [ln for ln in ax.lines if ln.get_label() == "treatment onset"]
    assert len(onset) == 1 and onset[0].get_xdata()[0] == 1.5  # between periods 2 and 3


def test_love_plot_legend_is_outside_the_axes():
    balance = pd.DataFrame(
        {"smd_before": [0.5, -0.3, 0.2], "smd_after": [0.01, 0.02, -0.05]},
        index=["age", "income", "tenure"],
    )
    fig = love_plot(balance)
    fig.canvas.draw()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1  # no point can sit under it


def test_estimates_plot_marks_truth_and_mean():
    reps = _replications(300)
    ax = estimates_plot(reps, title="itt").axes[0]
    lines = {ln.get_label().split()[0]: ln.get_xdata()[0] for ln in ax.lines}
    assert lines["truth"] == 0.05
    assert lines["mean"] == pytest.approx(reps["estimate"].mean(), abs=1e-12)
    # truths that differ by replication (a sample estimand): each estimate minus its own truth
    sample = _replications(300, truth=np.linspace(0.0, 0.1, 300))
    ax = estimates_plot(sample).axes[0]
    assert "its replication's truth" in ax.get_xlabel()
    assert {ln.get_label().split()[0]: ln.get_xdata()[0] for ln in ax.lines}["truth"] == 0.0


def test_intervals_plot_subsamples_and_colours_by_coverage():
    reps = _replications(1000)
    covers = (reps.ci_lower <= 0.05) & (0.05 <= reps.ci_upper)
    ax = intervals_plot(reps).axes[0]
    segments = {c.get_label(): len(c.get_segments()) for c in ax.collections}
    assert segments == {
        f"covers ({int(covers.sum())})": pytest.approx(MAX_INTERVALS * covers.mean(), abs=3),
        f"misses ({int((~covers).sum())})": pytest.approx(MAX_INTERVALS * (~covers).mean(), abs=3),
    }  # evenly spaced in the order of the estimates: the shares of the full run, within rounding
    assert sum(segments.values()) == MAX_INTERVALS
    assert f"coverage {covers.mean():.3f}" in ax.get_title()


def test_save_cell_figures_writes_both(tmp_path: Path):
    reps = _replications(50)
    reps.loc[3, "error"] = "singular"  # a failed replication is left out
    cell = SimpleNamespace(
        replications=reps,
        estimator="itt",
        inference="analytic",
        estimand="ITT",
        truth_estimand="ATT",
        level=0.95,
    )
    seconds = save_cell_figures(tmp_path, cell)  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["estimates.png", "intervals.png"]
    assert seconds > 0
    failed = SimpleNamespace(**{**vars(cell), "replications": reps.assign(error="x")})
    assert save_cell_figures(tmp_path / "none", failed) == 0.0  # type: ignore[arg-type]


CONFIG = {
    "data": {"name": "synthetic"},
    "dgp": {"name": "contaminated_holdout", "n_users": 2000, "lift": 0.0, "outcome": {"age": 0.3}},
    "estimator": {"name": "naive"},
    "inference": {"name": "analytic", "level": 0.95},
    "mc": {"reps": 200, "seed": 7, "common_random_numbers": True},
}


def test_design_names_the_world_its_parameters_methods_reps_and_seed():
    other = {
        **CONFIG,
        "dgp": {**CONFIG["dgp"], "lift": 0.05},
        "estimator": {"name": "ols", "formula": "y ~ x"},
    }
    rows = dict(design_rows([CONFIG, other]))
    assert rows["World: contaminated_holdout"] == (
        "n_users = 2000 · lift ∈ {0.0, 0.05} · outcome.age = 0.3"
    )
    assert rows["Estimators"] == "naive; ols (formula = y ~ x)"
    assert rows["Inference"] == "analytic (level = 0.95)"
    assert rows["Replications"] == "200 per cell" and rows["Seed"] == "7"
    assert rows["Common random numbers"].startswith("yes")


def test_html_page_has_human_headers_estimand_truth_and_how_to_read():
    table = _table(["itt · 200 reps · lift=0", "naive · 200 reps · lift=0"])
    table.loc[1, ["status", "error"]] = ["FAILED", "replication 3: singular matrix"]
    page = html_page(table, "abc", "sweep: estimator ∈ {itt, naive}", None, (), [CONFIG])
    header = page.split("<thead>")[1].split("</thead>")[0]
    for h in ("Bias (MCSE)", "Coverage (MCSE)", "CI width", "Estimand", "Truth", "Status"):
        assert f">{h}<" in header, h
    assert "_" not in header  # no snake_case column names
    assert "+0.060" in page  # the truth, in the table's decimals
    assert "World: contaminated_holdout" in page and "How to read this" in page
    assert all(f"<dt>{k}</dt>" in page for k, _ in HOW_TO_READ)
    assert "replication 3: singular matrix" in page  # problems are listed, not a wide column


class _FakeTracker:
    """Two common-random-numbers cells whose artifacts are files in a folder; fetches counted."""

    def __init__(self, folder: Path) -> None:
        import yaml

        self.fetched: list[str] = []
        runs = {}
        for i in range(2):
            d = folder / f"r{i}"
            d.mkdir()
            (d / "config.yaml").write_text(yaml.safe_dump(CONFIG))
            _replications(30, seed=i).to_parquet(d / "replications.parquet")
            runs[f"r{i}"] = SimpleNamespace(
                info=SimpleNamespace(run_id=f"r{i}", run_name=f"cell {i}", status="FINISHED"),
                folder=d,
            )
        tags = {"causalkit.cells": "2", "causalkit.cell.0": "r0", "causalkit.cell.1": "r1"}
        runs["sweep"] = SimpleNamespace(data=SimpleNamespace(tags=tags))
        self.client = SimpleNamespace(get_run=runs.__getitem__)

    @contextlib.contextmanager
    def run_artifacts(self, run):
        def fetch(path: str) -> Path:
            from mlflow.exceptions import MlflowException

            self.fetched.append(f"{run.info.run_id}/{path}")
            if not (run.folder / path).exists():  # as MLflow's local artifact repository
                raise MlflowException(f"No such artifact: '{path}'")
            return run.folder / path

        yield fetch


def test_report_reads_each_cells_files_once(tmp_path: Path):
    from causalkit.report import CellFiles, common_draws_tables
    from causalkit.report_figures import simulation_figures

    tracker = _FakeTracker(tmp_path)
    files = CellFiles(tracker)  # type: ignore[arg-type]
    tables = common_draws_tables(tracker, "sweep", files=files)  # type: ignore[arg-type]
    assert len(tables) == 1 and tables[0]["n_common"].tolist() == [30, 30]
    done = _table(["cell 0", "cell 1"])
    written = simulation_figures(tracker, done, tmp_path / "out", files)  # type: ignore[arg-type]
    assert len([w for w in written if w.startswith("zip/")]) == 2
    assert sorted(tracker.fetched) == [
        "r0/config.yaml",
        "r0/replications.parquet",
        "r1/config.yaml",
        "r1/replications.parquet",
    ]


def test_a_run_without_files_reads_as_none(tmp_path: Path):
    from causalkit.report import CellFiles

    tracker = _FakeTracker(tmp_path)
    for name in ("config.yaml", "replications.parquet"):
        (tmp_path / "r0" / name).unlink()  # a cell that failed before writing them
    run = tracker.client.get_run("r0")
    assert CellFiles(tracker).read(run) == (None, None)  # type: ignore[arg-type]
