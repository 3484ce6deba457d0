"""Claims of other hosts: a RUNNING run without a recent heartbeat is dead, one with it is live."""

from __future__ import annotations

import time
from pathlib import Path

from causalkit.config import TrackingConfig
from causalkit.tracking import HEARTBEAT_TAG, STALE_AFTER, MlflowTracker


def _tracker(tmp_path: Path) -> MlflowTracker:
    return MlflowTracker(TrackingConfig(uri=f"sqlite:///{tmp_path / 'mlflow.db'}"), tmp_path)


def _claim(tracker: MlflowTracker, identity: str, beat: float | None) -> str:
    tags = {"causalkit.identity": identity, "causalkit.host": "node-elsewhere"}
    run_id = tracker.start_run("cell", {}, tags)
    extra = {"causalkit.host": "node-elsewhere"}  # start_run tags this host: now another's
    if beat is not None:
        extra[HEARTBEAT_TAG] = f"{beat:.0f}"
    tracker.set_tags(run_id, extra)
    return run_id


def test_other_hosts_claims_live_while_they_beat_and_die_without(tmp_path):
    tracker = _tracker(tmp_path)
    now = time.time()
    live = _claim(tracker, "abc", now - 10)
    stale = _claim(tracker, "abc", now - STALE_AFTER - 60)
    runs = {r.info.run_id for r in tracker.cell_runs("abc")}
    assert live in runs and stale not in runs
    killed = tracker.client.get_run(stale)
    assert killed.info.status == "KILLED"
    assert "no heartbeat from process" in killed.data.tags["causalkit.error"]
    assert "node-elsewhere" in killed.data.tags["causalkit.error"]
    assert tracker.client.get_run(live).info.status == "RUNNING"


def test_heartbeat_tags_the_run_while_the_block_runs(tmp_path):
    tracker = _tracker(tmp_path)
    run_id = tracker.start_run("cell", {}, {"causalkit.identity": "xyz"})
    before = time.time()
    with tracker.heartbeat(run_id, every=0.05):
        deadline = time.time() + 30
        while time.time() < deadline:
            beat = tracker.client.get_run(run_id).data.tags.get(HEARTBEAT_TAG)
            if beat is not None:
                break
            time.sleep(0.05)
    assert beat is not None and float(beat) >= before - 1
