"""The plain-text sweep report keeps every cell name whole."""

from __future__ import annotations

import pandas as pd

from causalkit.report import COLUMNS, render


def test_render_keeps_long_cell_names_apart():
    names = [
        f"experiment=contaminated_holdout,estimator={e},mc.reps=200"
        for e in ("naive", "itt", "microsynth")
    ]
    rows = [{"cell": n, "status": "FINISHED", **{c: 0.5 for c in COLUMNS[3:]}} for n in names]
    text = render(pd.DataFrame(rows))
    lines = text.splitlines()
    assert (
        len(lines) == 4 and len({len(line.split("FINISHED")[0]) for line in lines[1:]}) == 1
    )  # aligned
    for name, line in zip(names, lines[1:], strict=True):
        assert line.startswith(name + " ")


def test_report_columns_are_cell_metrics():
    from causalkit.results import CELL_METRICS

    assert COLUMNS[:3] == ("estimator", "inference", "status")
    assert set(COLUMNS[3:]) <= set(CELL_METRICS) and "coverage_mcse" in COLUMNS


def test_render_shows_how_planned_cells_stopped():
    from causalkit.report import plan_outcome

    assert plan_outcome({"reps": 200.0}) == ""
    assert plan_outcome({"targets_met": 1.0, "reps_capped": 0.0}) == "targets met"
    assert plan_outcome({"targets_met": 0.0, "reps_capped": 1.0}) == "capped"
    assert plan_outcome({"targets_met": 0.0, "reps_capped": 0.0}) == "undefined"
    base = {"status": "FINISHED", **{c: 0.5 for c in COLUMNS[3:]}}
    rows = [
        {"cell": "estimator=itt", **base, "plan": "targets met"},
        {"cell": "estimator=naive", **base, "plan": "capped"},
        {"cell": "estimator=ols", **base, "plan": ""},
    ]
    lines = render(pd.DataFrame(rows)).splitlines()
    assert lines[0].endswith("  plan")
    assert lines[1].endswith("  targets met") and lines[2].endswith("  capped")
    assert lines[3].endswith("  -")
    unplanned = render(pd.DataFrame([{**rows[2]}]))
    assert "plan" not in unplanned.splitlines()[0]
