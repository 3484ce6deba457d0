"""``python -m causalkit.ui``: the MLflow UI on causalkit's store, opened at the latest sweep's runs.

It starts ``mlflow server`` on the store ``python -m causalkit`` writes (``runs/mlflow.db``
under the working directory, or ``$MLFLOW_TRACKING_URI``, or ``--backend-store``), with the
artifacts folder beside a local store, and prints the address of the runs table of the
experiment of the latest sweep (of the latest run, when there is no sweep)::

    http://127.0.0.1:5000/#/experiments/1/runs?workflowType=machine_learning

MLflow 3's UI opens an experiment on its GenAI pages unless the address names the
``machine_learning`` workflow (the experiment's ``mlflow.experimentKind`` tag is not
enough), so the address carries it. A store that is missing or damaged, or a port in use,
is one line on stderr and exit code 2; Ctrl-C stops the server (exit code 130, 143 for
SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from causalkit.errors import ConfigError
from causalkit.redact import uri_credentials

__all__ = ["main", "runs_url", "latest_experiment"]

_PROG = "causalkit.ui"
_START_SECONDS = 120.0


def runs_url(base: str, experiment_id: str) -> str:
    """Return the address of an experiment's runs table (MLflow's "Model training" view)."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def _store_uri(backend_store: str | None) -> str:
    from causalkit.tracking import default_uri

    return backend_store or os.environ.get("MLFLOW_TRACKING_URI") or default_uri()


def _local_db(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def _check_store(uri: str) -> None:
    """Refuse a local store that does not exist yet or is damaged, in one line."""
    db = _local_db(uri)
    if db is None:
        return
    if not db.is_file():
        raise ConfigError(
            "--backend-store",
            "an MLflow store written by python -m causalkit (run it first, or name the store)",
            f"{uri} (no such file)",
        )
    from causalkit.store import check_sqlite_store

    check_sqlite_store(db)


def latest_experiment(uri: str) -> str:
    """Return the id of the experiment of the latest sweep in the store (else of the latest run).

    Raises
    ------
    ConfigError
        When the store holds no run yet.
    """
    from mlflow.tracking import MlflowClient

    from causalkit.tracking import SWEEP_TAG

    client = MlflowClient(tracking_uri=uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    for filter_string in (f"tags.`{SWEEP_TAG}` = '1'", ""):
        runs = client.search_runs(
            experiments, filter_string, max_results=1, order_by=["attributes.start_time DESC"]
        )
        if runs:
            return str(runs[0].info.experiment_id)
    raise ConfigError(
        "--backend-store", "a store with runs (run python -m causalkit first)", f"{uri} (no runs)"
    )


def _check_port(host: str, port: int) -> None:
    """Refuse a port another program listens on (or that cannot be bound) before starting."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server: TIME_WAIT is free
        try:
            s.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                "--port",
                "a free port (pick another with --port)",
                f"{port} on {host} ({exc.strerror})",
            ) from None


def _server_command(uri: str, host: str, port: int) -> list[str]:
    command = [sys.executable, "-m", "mlflow", "server", "--host", host, "--port", str(port)]
    command += ["--workers", "1", "--backend-store-uri", uri]
    db = _local_db(uri)
    if db is not None:  # causalkit's experiments keep their artifacts beside the store
        command += ["--default-artifact-root", (db.parent / "artifacts").resolve().as_uri()]
    return command


def _server_env() -> dict[str, str]:
    """Return the server's environment: no GenAI job runners (eight processes) unless asked for."""
    return {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}


def _last_line(log: IO[str]) -> str:
    log.seek(0)
    lines = [ln.strip() for ln in log.read().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no output"


def _wait_until_up(proc: subprocess.Popen[Any], base: str, log: IO[str]) -> None:
    deadline = time.monotonic() + _START_SECONDS
    while True:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{base}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited ({proc.returncode}): {_last_line(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"mlflow server did not answer within {_START_SECONDS:.0f} s")
        time.sleep(0.25)


def _stop(proc: subprocess.Popen[Any]) -> None:
    """Stop the server and its workers (its own process group)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=f"python -m {_PROG}",
        description="Start the MLflow UI on causalkit's store and print the address of the "
        "latest sweep's runs table.",
    )
    parser.add_argument("--port", type=int, default=5000, help="port to listen on (default 5000)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--backend-store",
        default=None,
        metavar="URI",
        help="the MLflow store (default: $MLFLOW_TRACKING_URI, else runs/mlflow.db here)",
    )
    return parser.parse_args(list(argv))


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signum)


def main(argv: Sequence[str] | None = None) -> None:
    """Run ``python -m causalkit.ui [--port N] [--host H] [--backend-store URI]`` until Ctrl-C."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    uri = _store_uri(args.backend_store)
    shown_host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
    base = f"http://{shown_host}:{args.port}"
    try:
        if not 0 < args.port < 65536:
            raise ConfigError("--port", "a port number from 1 to 65535", args.port)
        _check_store(uri)
        _check_port(args.host, args.port)
        experiment = latest_experiment(uri)
    except ConfigError as exc:
        print(f"{_PROG}: error: {uri_credentials(str(exc))}", file=sys.stderr)
        sys.exit(2)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(
        signal.SIGINT, signal.default_int_handler
    )  # also when started with SIGINT ignored
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(
            _server_command(uri, args.host, args.port),
            env=_server_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches this process only; it stops the server
        )
        try:
            _wait_until_up(proc, base, log)
            shown = uri_credentials(uri)
            print(f"MLflow UI on {shown}; the latest sweep's runs (Ctrl-C to stop):", flush=True)
            print(runs_url(base, experiment), flush=True)
            proc.wait()
            print(f"{_PROG}: error: mlflow server exited: {_last_line(log)}", file=sys.stderr)
            sys.exit(1)
        except KeyboardInterrupt as exc:
            for sig in (
                signal.SIGINT,
                signal.SIGTERM,
            ):  # a second Ctrl-C does not cut the stop short
                signal.signal(sig, signal.SIG_IGN)
            _stop(proc)
            print(f"{_PROG}: stopped the MLflow UI", file=sys.stderr)
            sys.exit(128 + (exc.args[0] if exc.args else signal.SIGINT))
        except RuntimeError as exc:
            _stop(proc)
            print(f"{_PROG}: error: {exc}", file=sys.stderr)
            sys.exit(1)
        finally:
            _stop(proc)


if __name__ == "__main__":
    main()
