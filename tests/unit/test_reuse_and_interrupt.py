"""A cell run again shows its stored result, says so, and stands under the current sweep; Ctrl-C is one line.

In process (cheap): the signals themselves, sent to ``python -m causalkit``, are in
tests/cli/test_worker_exit.py.
"""

from __future__ import annotations

import pandas as pd
import pytest

from causalkit.cli import compose
from causalkit.config import validate
from causalkit.errors import Interrupted
from causalkit.report import sweep_table
from causalkit.results import CausalkitWarning
from causalkit.runner import execute
from causalkit.tracking import REUSED_TAG, SWEEP_TAG, MlflowTracker

CELL = ["estimator=itt", "mc.reps=40"]


def _sweep(tracker: MlflowTracker) -> str:
    return tracker.start_run("sweep", {}, {SWEEP_TAG: "1", "causalkit.cells": "1"})


def _children(tracker: MlflowTracker, parent: str) -> list:
    return tracker.client.search_runs(
        [tracker.experiment_id()], f"tags.mlflow.parentRunId = '{parent}'"
    )


def test_a_reused_cell_stands_under_the_current_sweep_and_is_counted_once(tmp_path):
    cfg = validate(compose(CELL))
    tracker = MlflowTracker(cfg.tracking, tmp_path)
    axes = {"estimator": "itt"}
    first_sweep, notes = _sweep(tracker), []
    fresh = execute(cfg, axes, start_dir=tmp_path, parent_run_id=first_sweep, sweep_cell=0)
    (original,) = _children(tracker, first_sweep)

    second_sweep = _sweep(tracker)
    again = execute(
        cfg, axes, start_dir=tmp_path, parent_run_id=second_sweep, sweep_cell=0, notice=notes.append
    )
    assert again == fresh
    (note,) = notes
    assert f"already finished in MLflow run {original.info.run_id}" in note
    assert "reused" in note and "mc.resume=false" in note
    (light,) = _children(tracker, second_sweep)  # the UI's tree holds the cell ...
    assert light.info.status == "FINISHED"
    assert light.data.tags[REUSED_TAG] == original.info.run_id
    assert light.data.metrics == original.data.metrics
    assert "causalkit.identity" not in light.data.tags  # ... never read back itself
    table = sweep_table(tracker, second_sweep)  # ... and the report shows it once, as that run
    assert list(table["run_id"]) == [light.info.run_id]
    assert table["bias"].iloc[0] == fresh.metrics["bias"]
    with tracker.run_artifacts(light) as fetch:  # its files are the original's
        stored = pd.read_parquet(fetch("replications.parquet"))
    pd.testing.assert_frame_equal(stored, fresh.replications)

    with pytest.warns(CausalkitWarning, match=f"run {original.info.run_id} .*mc.resume=false"):
        assert execute(cfg, axes, start_dir=tmp_path) == fresh  # Python: a warning says it
    finished = tracker.client.search_runs(
        [tracker.experiment_id()], "tags.`causalkit.identity` != ''"
    )
    assert [r.info.run_id for r in finished] == [original.info.run_id]  # computed once


def test_an_interrupted_cell_is_killed_with_its_counts_and_resumes(tmp_path):
    cfg = validate(compose(CELL))
    reference = execute(validate(compose([*CELL, "tracking=none"])))

    def ctrl_c(done: int, total: int) -> None:
        raise KeyboardInterrupt  # arrives after the first chunk of 20 is checkpointed

    with pytest.raises(Interrupted) as stopped:
        execute(cfg, start_dir=tmp_path, progress=ctrl_c)
    line = (
        "interrupted after 20 of 40 replications; 20 checkpointed; rerun the same command to resume"
    )
    assert str(stopped.value) == line and stopped.value.exit_code == 130
    tracker = MlflowTracker(cfg.tracking, tmp_path)
    (killed,) = tracker.client.search_runs([tracker.experiment_id()])
    assert killed.info.status == "KILLED" and killed.data.tags["causalkit.error"] == line
    assert not killed.data.metrics  # nothing partial logged as if final

    notes: list[str] = []
    resumed = execute(cfg, start_dir=tmp_path, notice=notes.append)
    assert notes == ["resuming: 20 of 40 replications read from the checkpoint"]
    same = pd.Series(dict(resumed.metrics)).drop("seconds")
    assert same.equals(pd.Series(dict(reference.metrics)).drop("seconds"))  # bit-identical


@pytest.mark.parametrize(
    ("stopped", "line"),
    [
        (
            Interrupted(15, 0, 1, None),
            "interrupted after 0 of 1 replications; nothing checkpointed",
        ),
        (
            Interrupted(2, 7, 400, 0),
            "7 of 400 replications; 0 checkpointed; rerun the same command to start again",
        ),
        (
            Interrupted(2, 120, 400, 100).in_sweep(1, 3),
            "with 1 of 3 cells finished and the running cell after 120 of 400",
        ),
        (
            Interrupted(15).in_sweep(0, 2),
            "interrupted with 0 of 2 cells finished; rerun the same command",
        ),
    ],
)
def test_interruption_lines(stopped, line):
    assert line in str(stopped) and "\n" not in str(stopped)
    assert stopped.exit_code in (130, 143)


def test_open_cells_closed_after_an_interrupted_sweep_give_no_count_they_do_not_know(tmp_path):
    """A cell left RUNNING by a stopped worker without a checkpoint is KILLED without a count."""
    cfg = validate(compose(CELL))
    tracker = MlflowTracker(cfg.tracking, tmp_path)
    parent = _sweep(tracker)
    tracker.start_run("cell", {}, {"causalkit.reps": "40"}, parent)  # no identity: no checkpoint
    tracker.close_interrupted(parent, 2)
    (run,) = _children(tracker, parent)
    assert run.info.status == "KILLED"
    assert run.data.tags["causalkit.error"] == str(Interrupted(2))
    assert "replications" not in run.data.tags["causalkit.error"]
