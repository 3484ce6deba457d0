"""Worker processes (``mc.n_jobs``, ``hydra/launcher=joblib``) exit when their parent is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.cli

SLOW = ["estimator=itt", "mc.reps=60", "inference=bootstrap", "inference.n_boot=3000"]


def _children(pid: int) -> set[int]:
    out = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out.add(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"  # a zombie has exited


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize(
    "args",
    [
        ["tracking=none", "mc.n_jobs=2", *SLOW],
        ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "mc.seed=1,2", *SLOW],
    ],
    ids=["mc.n_jobs", "joblib-launcher"],
)
def test_workers_exit_with_a_killed_parent(tmp_path, args):
    parent = subprocess.Popen(
        [sys.executable, "-m", "causalkit", *args],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers: set[int] = set()
    deadline = time.time() + 300
    while time.time() < deadline and parent.poll() is None:
        workers = {p for p in _children(parent.pid) if b"loky" in _cmdline(p)}
        if len(workers) >= 2:
            break
        time.sleep(0.2)
    assert parent.poll() is None and len(workers) >= 2, "no workers seen"
    time.sleep(2)  # the workers are at work
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 15
    while time.time() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.2)
    alive = [p for p in workers if _alive(p)]
    for p in alive:  # leave nothing behind, then fail
        os.kill(p, signal.SIGKILL)
    assert not alive, f"workers {alive} outlived their parent"


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
