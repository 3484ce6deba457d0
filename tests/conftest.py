"""Shared fixtures: a small contaminated-holdout panel, an isolated working directory, a loopback MLflow server."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from causalkit_plugins.dgps.contaminated_holdout import ContaminatedHoldout


@pytest.fixture(scope="session", autouse=True)
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The plugin-listing cache of this test session lives in a temporary directory, not in
    the user's ``~/.cache`` (subprocesses inherit it)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CAUSALKIT_CACHE_DIR", str(tmp_path_factory.mktemp("causalkit-cache")))
        yield


@pytest.fixture
def holdout_panel():
    """One draw of the default contaminated-holdout DGP (seed 42, the document's demo draw)."""
    return ContaminatedHoldout().simulate(np.random.default_rng(42), None)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run in a fresh directory so runs/mlflow.db is private to the test."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def free_port() -> Callable[[], int]:
    """``free_port()``: a TCP port nobody listens on at 127.0.0.1 now."""
    return _free_port


@contextlib.contextmanager
def _mlflow_server(store: list[str], log: Path) -> Iterator[str]:
    port = _free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [*command, "--workers", "1", *store],
            cwd=log.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its workers are stopped with it
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def mlflow_server() -> Callable[[list[str], Path], contextlib.AbstractContextManager[str]]:
    """``with mlflow_server(store_args, log) as url``: ``mlflow server`` on a free 127.0.0.1 port.

    ``store_args`` are its store options (``--backend-store-uri ...``); it runs in the log's
    folder, answers ``/health`` before the block starts and is stopped (its process group)
    when the block ends.
    """
    return _mlflow_server
