"""``mc.executor=dask``: bit-identical to the local executor, surviving dead workers and a dead driver.

Every cluster here binds 127.0.0.1 and is closed by the test (or, for a killed driver, exits
with it).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from distributed import Client
from mlflow.tracking import MlflowClient

from causalkit.cli import compose
from causalkit.config import validate
from causalkit.executors import ClusterError, DaskExecutor
from causalkit.identity import cell_identity
from causalkit.montecarlo import run_cell
from causalkit.registry import default_registry
from causalkit.session import Session
from causalkit.testing import run_cli as _cli

from .test_worker_exit import (
    _alive,
    _children,
    _interrupted_cell,
    _killed_alone,
    _outliving,
    _runs,
)

pytestmark = pytest.mark.cli

ITT = ["estimator=itt", "dgp=contaminated_holdout"]


def _cfg(*overrides: str):
    return validate(compose(["tracking=none", *ITT, *overrides]))


def _same(a, b) -> None:
    """Equal replications tables and metrics, to the bit (timings aside)."""
    pd.testing.assert_frame_equal(a.replications, b.replications, check_exact=True)
    ma = {k: v for k, v in a.metrics.items() if k != "seconds"}
    mb = {k: v for k, v in b.metrics.items() if k != "seconds"}
    assert json.dumps(ma, sort_keys=True) == json.dumps(mb, sort_keys=True)


@pytest.fixture(scope="module")
def session():
    return Session(default_registry())


@pytest.fixture(scope="module")
def executor(session):
    cfg = _cfg("mc.reps=2", "mc.executor=dask", "mc.n_jobs=2")
    with DaskExecutor(cfg.mc, session.registry) as ex:
        yield ex


def test_bit_identical_to_local_for_any_chunking(session, executor, monkeypatch):
    local = run_cell(_cfg("mc.reps=90"), session)
    assert executor.workers == 2
    for size in (1, 7, 50):
        monkeypatch.setattr(executor, "chunk_size", lambda todo, size=size: size)
        remote = run_cell(_cfg("mc.reps=90", "mc.executor=dask"), session, executor=executor)
        _same(local, remote)


def test_a_planned_cell_stops_where_the_local_one_stops(session, executor):
    """``mc.target_mcse`` batches: the boundaries depend only on the rows, not on the executor."""
    plan = ["mc.target_mcse.coverage=0.012", "mc.max_reps=3000"]
    local = run_cell(_cfg(*plan), session)
    remote = run_cell(_cfg(*plan, "mc.executor=dask"), session, executor=executor)
    assert 100 < local.metrics["reps"] < 3000  # it stopped on the target, past the first batch
    _same(local, remote)


def test_a_worker_killed_mid_cell_changes_nothing(session, executor):
    cfg = _cfg("mc.reps=1500", "mc.executor=dask")
    local = run_cell(_cfg("mc.reps=1500"), session)
    pids = executor.client.run(os.getpid)
    killed: list[int] = []

    def kill_one(done: int, total: int) -> None:
        if not killed and done < total:
            victim = sorted(pids.values())[0]
            os.kill(victim, signal.SIGKILL)
            killed.append(done)

    remote = run_cell(cfg, session, progress=kill_one, executor=executor)
    assert killed and killed[0] < 1500, "no worker was killed mid-cell"
    _same(local, remote)
    executor.client.wait_for_workers(2, timeout=60)  # the nanny restarted it


def test_a_worker_running_other_code_is_refused(session):
    cfg = _cfg("mc.reps=2", "mc.executor=dask", "mc.n_jobs=1")
    ex = DaskExecutor(cfg.mc, session.registry)
    ex.code = {**ex.code, "causalkit": "causalkit==0.0.1 0123456789abcdef"}
    with ex, pytest.raises(ClusterError) as err:
        _ = ex.client
    message = str(err.value)
    assert "\n" not in message
    assert (
        "causalkit==0.0.1 0123456789abcdef" in message and "install the same causalkit" in message
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sweep_metrics(cwd: Path) -> dict[str, dict[str, float]]:
    """Metrics of the latest sweep's children by config hash, with the executor tags."""
    client = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'runs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("causalkit").experiment_id
    parents = client.search_runs(
        [exp], "tags.`causalkit.sweep` = '1'", order_by=["start_time DESC"]
    )
    children = client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{parents[0].info.run_id}'")
    out = {}
    for run in children:
        assert run.info.status == "FINISHED"
        metrics = {k: v for k, v in run.data.metrics.items() if k != "seconds"}
        metrics["workers"] = float(run.data.tags.get("causalkit.workers", "nan"))
        out[run.data.params["config_hash"] + run.data.tags.get("causalkit.executor", "?")] = metrics
    return out


SWEEP = ["-m", "estimator=naive,itt", "mc.seed=1,2,3", "mc.reps=40"]


def test_cli_sweep_on_a_hand_started_scheduler_equals_the_local_sweep(tmp_path):
    """``dask scheduler`` and ``dask worker --nthreads 1`` as the README starts them."""
    port = _free_port()
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    started = [
        subprocess.Popen(
            ["dask", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    ]
    try:
        for _ in range(2):
            started.append(
                subprocess.Popen(
                    ["dask", "worker", f"tcp://127.0.0.1:{port}", "--nthreads", "1"]
                    + ["--host", "127.0.0.1", "--no-dashboard"],
                    cwd=tmp_path,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                    env=env,
                )
            )
        with Client(f"tcp://127.0.0.1:{port}", timeout="60s") as c:
            c.wait_for_workers(2, timeout=60)
        (tmp_path / "dask").mkdir()
        (tmp_path / "local").mkdir()
        out = _cli(
            tmp_path / "dask", *SWEEP, "mc.executor=dask", f"mc.address=tcp://127.0.0.1:{port}"
        )
        assert out.returncode == 0, out.stderr[-2000:]
        ref = _cli(tmp_path / "local", *SWEEP, "mc.n_jobs=2")
        assert ref.returncode == 0, ref.stderr[-2000:]
    finally:
        for proc in reversed(started):
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in started:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    dask_runs, local_runs = _sweep_metrics(tmp_path / "dask"), _sweep_metrics(tmp_path / "local")
    assert len(dask_runs) == len(local_runs) == 6
    for key, metrics in dask_runs.items():
        assert key.endswith("dask") and metrics.pop("workers") == 2
        theirs = local_runs[key[: -len("dask")] + "local"]
        assert theirs.pop("workers") == 2
        assert metrics == theirs


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killed_driver_resumes_from_checkpoints_and_leaves_no_workers(tmp_path):
    args = [*ITT, "mc.reps=3000", "mc.executor=dask", "mc.n_jobs=2"]
    ckpt = tmp_path / "runs" / "checkpoints"
    ckpt = ckpt / cell_identity(validate(compose(args)), default_registry()).key
    proc = subprocess.Popen(
        [sys.executable, "-m", "causalkit", *args],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    done, workers = 0, set()
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        workers |= _children(proc.pid)
        done = sum(
            json.loads(f.read_bytes().partition(b"\n")[0])["rows"] for f in ckpt.glob("*.ckpt")
        )
        if done >= 100:
            break
        time.sleep(0.05)
    assert proc.poll() is None and done >= 100, "the cell finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    alive = _outliving(workers, 20)
    assert workers and not alive, f"workers {alive} outlived the killed driver"
    again = _cli(tmp_path, *args)
    assert again.returncode == 0, again.stderr[-2000:]
    resumed = [r for r in _runs(tmp_path) if r.info.status == "FINISHED"]
    assert len(resumed) == 1
    fresh = run_cell(_cfg("mc.reps=3000", "mc.n_jobs=1"))
    got = {k: v for k, v in resumed[0].data.metrics.items() if k != "seconds"}
    want = {k: float(v) for k, v in fresh.metrics.items() if k in got}
    assert got == want


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["mc.address=tcp://127.0.0.1:1"], "mc.address: expected empty unless mc.executor=dask"),
        (["mc.executor=dask", "mc.address=nonsense"], "mc.address: expected a Dask scheduler"),
        (
            ["mc.executor=dask", "mc.reps=5", "mc.address=tcp://127.0.0.1:1"],
            "mc.address: expected a reachable Dask scheduler",
        ),
        (
            ["-m", "hydra/launcher=joblib", "mc.seed=1,2", "mc.reps=5", "mc.executor=dask"],
            "hydra/launcher: expected the basic launcher with mc.executor=dask",
        ),
    ],
    ids=["address-without-dask", "malformed-address", "unreachable", "joblib-launcher"],
)
def test_cluster_mistakes_are_one_line_errors(tmp_path, args, expected):
    out = _cli(tmp_path, *ITT, "tracking=none", *args, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.strip().count("\n") == 0 and expected in out.stderr, out.stderr[-2000:]


def _left_in(cwd: Path) -> list[int]:
    """Processes still running in ``cwd`` (a local cluster's workers start in the driver's).

    Python's multiprocessing resource tracker is not counted: it ends by itself once the
    driver's end of its pipe closes (within about 0.1 s of the driver's exit).
    """
    left = []
    for entry in Path("/proc").iterdir():
        try:
            if (
                entry.name.isdigit()
                and (entry / "cwd").resolve() == cwd
                and _alive(int(entry.name))
                and b"resource_tracker" not in (entry / "cmdline").read_bytes()
            ):
                left.append(int(entry.name))
        except OSError:  # exited meanwhile
            pass
    return left


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_on_a_local_cluster_is_one_line_leaves_no_workers_and_resumes(tmp_path):
    """A terminal's Ctrl-C reaches the driver and its workers: the driver alone answers."""
    args = [*ITT, "mc.reps=600", "mc.executor=dask", "mc.n_jobs=2"]  # 12 chunks of 50
    saved, message = _interrupted_cell(tmp_path, args, signal.SIGINT, group=True, reps=600)
    assert saved >= 50
    assert not _left_in(tmp_path.resolve()), "the local cluster outlived the driver"
    _killed_alone(tmp_path, message)

    again = _cli(tmp_path, *args, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"resuming: {saved} of 600 replications read from the checkpoint" in again.stdout
    assert "distributed." not in again.stdout  # the local scheduler's INFO lines stay quiet
    (resumed,) = [r for r in _runs(tmp_path) if r.info.status == "FINISHED"]
    fresh = run_cell(_cfg("mc.reps=600"))  # in this process, never interrupted
    got = {k: v for k, v in resumed.data.metrics.items() if k != "seconds"}
    assert got == {k: float(v) for k, v in fresh.metrics.items() if k in got}
    assert got["reps"] == 600
