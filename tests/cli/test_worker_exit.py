"""Worker processes (``mc.n_jobs``, ``hydra/launcher=joblib``) exit when their parent is killed;
Ctrl-C and SIGTERM end a run in one line, its MLflow run KILLED, and the same command resumes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

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
    alive = _outliving(workers, 15)
    assert not alive, f"workers {alive} outlived their parent"


def _outliving(workers: set[int], seconds: float) -> list[int]:
    """Wait up to ``seconds`` for ``workers`` to exit; SIGKILL and return the ones that did not
    (nothing is left behind when the test then fails)."""
    deadline = time.time() + seconds
    while time.time() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.2)
    alive = [p for p in workers if _alive(p)]
    for p in alive:
        os.kill(p, signal.SIGKILL)
    return alive


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


INTERRUPTIBLE = ["estimator=itt", "mc.reps=100", "inference=bootstrap", "inference.n_boot=300"]
"""About 2-4 s of replications: the first checkpoint (20 of them) comes well before the end."""


def _checkpointed(cwd: Path) -> int:
    """Replications in the checkpoints under ``cwd`` (each file's header counts its rows)."""
    rows = 0
    for f in (cwd / "runs" / "checkpoints").glob("*/*.ckpt"):
        try:
            rows += json.loads(f.read_bytes().partition(b"\n")[0])["rows"]
        except (OSError, ValueError):  # being renamed into place
            pass
    return rows


def _interrupt(cwd: Path, args: list[str], signum: int, group: bool) -> tuple[int, str, str]:
    """Start ``python -m causalkit``, send ``signum`` once its first chunk is checkpointed.

    ``group``: to its process group, as a terminal's Ctrl-C does (its workers get it too).
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "causalkit", *args],
        cwd=cwd,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline and not _checkpointed(cwd):
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    (os.killpg if group else os.kill)(proc.pid, signum)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def _one_line(code: int, out: str, err: str, expected: int, pattern: str) -> re.Match:
    """Check the exit code and that stderr is the one line ``causalkit: <pattern>``; return its match."""
    assert code == expected, err
    (line,) = err.splitlines()
    found = re.fullmatch(f"causalkit: ({pattern})", line)
    assert found, line
    return found


def _interrupted_cell(
    cwd: Path, args: list[str], signum: int, group: bool, reps: int
) -> tuple[int, str]:
    """Interrupt a one-cell command (:func:`_interrupt`); check its line and exit code (128 + signal).

    Returns the replications checkpointed (every one done, fewer than ``reps``) and the line.
    """
    found = _one_line(
        *_interrupt(cwd, args, signum, group),
        128 + signum,
        rf"interrupted after (\d+) of {reps} replications; (\d+) checkpointed; "
        r"rerun the same command to resume",
    )
    saved = int(found[3])
    assert 0 < saved == int(found[2]) < reps
    return saved, found[1]


def _killed_alone(cwd: Path, message: str) -> None:
    """The one MLflow run under ``cwd`` is KILLED with ``message``, nothing partial logged as if final."""
    (run,) = _runs(cwd)
    assert run.info.status == "KILLED" and run.data.tags["causalkit.error"] == message
    assert not run.data.metrics


def _runs(cwd: Path) -> list:
    c = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'runs' / 'mlflow.db'}")
    exp = c.get_experiment_by_name("causalkit")
    assert exp is not None
    return c.search_runs([exp.experiment_id])


def test_sigterm_is_one_line_the_run_killed_and_the_same_command_resumes(tmp_path):
    args = INTERRUPTIBLE
    saved, message = _interrupted_cell(tmp_path, args, signal.SIGTERM, group=False, reps=100)
    assert saved >= 20
    _killed_alone(tmp_path, message)

    again = subprocess.run(
        [sys.executable, "-m", "causalkit", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    assert f"resuming: {saved} of 100 replications read from the checkpoint" in again.stdout
    finished = [r for r in _runs(tmp_path) if r.info.status == "FINISHED"]
    assert len(finished) == 1 and finished[0].data.metrics["reps"] == 100


def test_ctrl_c_ends_a_sweep_in_one_line_with_its_parent_killed(tmp_path):
    # a terminal's Ctrl-C reaches the two workers too: no word from them
    sweep = ["-m", "estimator=naive,itt", *INTERRUPTIBLE[1:], "mc.n_jobs=2"]
    found = _one_line(
        *_interrupt(tmp_path, sweep, signal.SIGINT, group=True),
        130,
        r"interrupted with 0 of 2 cells finished and the running cell after (\d+) "
        r"of 100 replications; (\d+) checkpointed; rerun the same command to resume",
    )
    runs = {r.data.tags.get("causalkit.sweep", "cell"): r for r in _runs(tmp_path)}
    assert set(runs) == {"1", "cell"}  # the parent and the first cell; the second never started
    assert runs["1"].info.status == "KILLED" and runs["1"].data.tags["causalkit.error"] == found[1]
    cell = runs["cell"]
    assert cell.info.status == "KILLED" and not cell.data.metrics
    assert cell.data.tags["causalkit.error"] == (
        f"interrupted after {found[2]} of 100 replications; {found[3]} checkpointed; "
        "rerun the same command to resume"
    )
