"""Identical cells started together: exactly one claim runs, whatever the runs' start times say.

The race the clean-clone CI met once (tests/cli/test_stale_results.py): two processes claimed
the same cell, the one whose run was stored *later* carried the *earlier* start time (MLflow
reads it before storing the run), and both ran. Claims are ordered by the time read after
the run is stored (:data:`causalkit.tracking.CLAIM_TAG`); these tests build that interleaving
by hand, deterministically.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

from causalkit.cli import compose
from causalkit.config import RunConfig, validate
from causalkit.runner import _await_claims
from causalkit.tracking import CLAIM_TAG, MlflowTracker

IDENTITY = "cell-abc"


def _setup(tmp_path: Path) -> tuple[RunConfig, MlflowTracker, dict[str, str]]:
    cfg = validate(compose(["estimator=itt", "mc.reps=40"]))
    tracker = MlflowTracker(cfg.tracking, tmp_path)
    tags = {"causalkit.identity": IDENTITY, "causalkit.reps": "40"}
    return cfg, tracker, tags


def _stored_late(tracker: MlflowTracker, tags: dict[str, str], start_time: int) -> str:
    """A live claim of this process, stored now with ``start_time``, its claim time not yet written."""
    own = {**tags, "causalkit.pid": str(os.getpid()), "causalkit.host": socket.gethostname()}
    run = tracker.client.create_run(tracker.experiment_id(), start_time=start_time, tags=own)
    return str(run.info.run_id)


def _wait_in_thread(
    tracker: MlflowTracker, cfg: RunConfig, run_id: str, notes: list[str]
) -> threading.Thread:
    thread = threading.Thread(
        target=lambda: _await_claims(tracker, cfg, IDENTITY, run_id, notes.append, poll=0.02)
    )
    thread.start()
    return thread


def test_a_claim_stored_later_waits_even_with_an_earlier_start_time(tmp_path):
    cfg, tracker, tags = _setup(tmp_path)
    first = tracker.start_run("cell", {}, tags, claim=True)
    start = tracker.client.get_run(first).info.start_time
    # stored after `first` searched alone (and so runs), yet started 5 s before it
    assert _await_claims(tracker, cfg, IDENTITY, first, None) is None
    late = _stored_late(tracker, tags, start - 5000)
    tracker.set_tags(late, {CLAIM_TAG: f"{time.time():.6f}"})
    notes: list[str] = []
    waiting = _wait_in_thread(tracker, cfg, late, notes)
    waiting.join(timeout=1.0)
    assert waiting.is_alive()  # the later claim waits for the one that runs
    assert notes and first in notes[0]
    tracker.end_run(first, "KILLED", error="test")  # the running claim goes away
    waiting.join(timeout=30)
    assert not waiting.is_alive()
    # by start time alone the later claim would have been first and run beside `first`
    assert tracker.client.get_run(late).info.start_time < start


def test_a_claim_without_its_time_yet_is_waited_for(tmp_path):
    cfg, tracker, tags = _setup(tmp_path)
    mine = tracker.start_run("cell", {}, tags, claim=True)
    other = _stored_late(tracker, tags, tracker.client.get_run(mine).info.start_time + 1000)
    notes: list[str] = []
    waiting = _wait_in_thread(tracker, cfg, mine, notes)
    waiting.join(timeout=1.0)
    assert waiting.is_alive()  # `other` may have read an earlier claim time: not yet known
    assert notes and other in notes[0]
    tracker.set_tags(other, {CLAIM_TAG: f"{time.time():.6f}"})  # later than `mine`'s
    waiting.join(timeout=30)
    assert not waiting.is_alive()  # `mine` is first and runs
    assert _await_claims(tracker, cfg, IDENTITY, mine, None) is None


def test_every_cell_claim_carries_its_claim_time_and_other_runs_do_not(tmp_path):
    _, tracker, tags = _setup(tmp_path)
    before = time.time()
    claim = tracker.client.get_run(tracker.start_run("cell", {"a": "1"}, tags, claim=True))
    assert before <= float(claim.data.tags[CLAIM_TAG]) <= time.time()
    assert claim.data.params == {"a": "1"}
    plain = tracker.client.get_run(tracker.start_run("sweep", {}, {}))
    assert CLAIM_TAG not in plain.data.tags
