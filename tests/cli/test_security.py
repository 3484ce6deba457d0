"""Security hygiene (issue 16, findings 9 and 10, and ``hydra.job.chdir``), tried as a hostile user would.

Overrides that would hand Hydra code to run or files to write are refused in one line before
anything runs; errors name a file and its problem, never its contents; values taken from the
environment and URI credentials never reach the store, its artifacts or the printed error.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import causalkit as ck
from causalkit import cli
from causalkit.composition import check_composed, compose, compose_node, hydra_on_conf
from causalkit.config import validate
from causalkit.errors import ConfigError

pytestmark = pytest.mark.cli

TINY = ["tracking=none", "estimator=itt"]


def _main_fails(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run the command line in process; return its one error line (exit code 2)."""
    with pytest.raises(SystemExit) as info:
        cli.main(list(argv))
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert info.value.code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("causalkit: error: ")
    return lines[0]


# --------------------------------------------------------------------------------------------
# Finding 9: hydra.* overrides reach Hydra
# --------------------------------------------------------------------------------------------


def test_a_callback_override_cannot_truncate_a_file(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "causalkit",
            *TINY,
            "+hydra.callbacks.x._target_=builtins.open",
            f"+hydra.callbacks.x.file={victim}",
            "+hydra.callbacks.x.mode=w",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1 and "_target_" in lines[0], p.stderr
    assert victim.read_text() == "keep me"
    assert not (tmp_path / "runs").exists()  # refused before anything ran


REFUSED = {
    "logging handler writes a file": (
        [
            "hydra.job_logging.handlers.file.filename={victim}",
            "+hydra.job_logging.handlers.file.mode=w",
        ],
        "hydra.job_logging",
    ),
    "hydra logging handler": (
        ["+hydra.hydra_logging.handlers.x.class=logging.FileHandler"],
        "hydra.hydra_logging",
    ),
    "callback moved in by a package": (["+estimator@hydra.callbacks.x=itt"], "hydra.callbacks"),
    "whole hydra.job node": (["hydra.job={{chdir:false}}"], "single keys under hydra.job"),
    "environment of the workers": (["+hydra.job.env_set.LD_PRELOAD={victim}"], "hydra.job.env_set"),
    "configs from another folder": (["hydra.searchpath=[file://{tmp}]"], "hydra.searchpath"),
    "a _target_ in the app config": (["+estimator._target_=os.system"], "no _target_"),
    "a _target_ inside a value": (["+mc.x={{_target_:os.system}}"], "no _target_"),
}


@pytest.mark.parametrize("case", list(REFUSED), ids=list(REFUSED))
def test_overrides_that_run_code_or_write_files_are_one_line(
    workdir: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    victim = workdir / "victim.txt"
    victim.write_text("keep me")
    items, needle = REFUSED[case]
    argv = [i.format(victim=victim, tmp=workdir) for i in items]
    line = _main_fails(capsys, *TINY, *argv)
    assert needle in line
    assert victim.read_text() == "keep me" and not (workdir / "runs").exists()


def test_group_choices_of_hydra_stay_allowed(workdir: Path) -> None:
    plan = cli.preflight(
        [
            "-m",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "hydra/job_logging=disabled",
            *TINY,
        ]
    )
    assert len(plan.cells) == 1
    plan = cli.preflight(["hydra/hydra_logging=disabled", "hydra.run.dir=out", *TINY])
    assert plan.cells[0].estimator.name == "itt"


def test_a_composed_config_with_callbacks_is_refused_however_they_came() -> None:
    """The second line of defence: what composition produced, not what was typed."""
    with hydra_on_conf():
        cfg = compose_node(["+hydra.callbacks.x.foo=1", "hydra.mode=RUN"], hydra_node=True)
        with pytest.raises(ConfigError, match="hydra.callbacks"):
            check_composed(cfg)
        cfg = compose_node(["+data.nested._target_=os.system", "hydra.mode=RUN"], hydra_node=True)
        with pytest.raises(ConfigError, match=r"data\.nested\._target_: expected no _target_"):
            check_composed(cfg)
        check_composed(compose_node(["hydra/launcher=joblib", "hydra.mode=RUN"], hydra_node=True))


# --------------------------------------------------------------------------------------------
# Finding 6 (in part): hydra.job.chdir=true gave every cell its own store
# --------------------------------------------------------------------------------------------


def test_chdir_is_refused(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _main_fails(capsys, *TINY, "hydra.job.chdir=true")
    assert "hydra.job.chdir: expected false" in line
    assert not (workdir / "runs").exists()


# --------------------------------------------------------------------------------------------
# Finding 10: secrets leak
# --------------------------------------------------------------------------------------------


def _files_holding(folder: Path, secret: str) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_the_environment_is_not_printed_nor_stored_when_named_as_data(tmp_path: Path) -> None:
    secret = "ck-env-sentinel-5f2e9a"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "causalkit",
            "data=csv",
            "data.path=/proc/self/environ",
            "data.roles.treatment=t",
            "data.roles.outcome=y",
            "dgp=none",
            "estimator=naive",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "CK_SENTINEL": secret, "MLFLOW_TRACKING_URI": ""},
    )
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1 and "/proc/self/environ" in lines[0], p.stderr
    assert secret not in p.stderr + p.stdout
    from mlflow.tracking import MlflowClient

    c = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    (run,) = c.search_runs([c.get_experiment_by_name("causalkit").experiment_id])
    assert run.info.status == "FAILED" and "/proc/self/environ" in run.data.tags["causalkit.error"]
    assert _files_holding(tmp_path / "runs", secret) == []


def test_no_line_of_a_file_is_echoed(workdir: Path) -> None:
    (workdir / "notes.txt").write_text("TOP-SECRET-HEADER;x\nsecond-line,private\n")
    common = ["tracking=none", "dgp=none", "estimator=naive", "data.roles.treatment=t"]
    with pytest.raises(ck.CausalkitError) as info:
        ck.run(["data=csv", "data.path=notes.txt", "data.roles.outcome=y", *common])
    msg = str(info.value)
    assert "notes.txt" in msg and "1 there" in msg and "TOP-SECRET" not in msg
    (workdir / "latin.csv").write_bytes("na\xefve-SECRET,y\n1,2\n".encode("latin-1"))
    with pytest.raises(ck.CausalkitError) as info:
        ck.run(["data=csv", "data.path=latin.csv", "data.roles.outcome=y", *common])
    msg = str(info.value)
    assert "latin.csv" in msg and "SECRET" not in msg and "\n" not in msg


def test_environment_values_never_reach_the_store(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "hunter2-do-not-log"
    monkeypatch.setenv("CK_TEST_SECRET", secret)
    monkeypatch.setenv("CK_TEST_DATA", str(workdir / f"{secret}.csv"))
    frame = ck.simulate("selection_on_observables", seed=1, n=200).dataset.frame
    frame.to_csv(workdir / f"{secret}.csv", index=False)
    common = [
        "data=csv",
        "data.roles.treatment=treat",
        "data.roles.outcome=y",
        "dgp=none",
        "estimator=naive",
    ]
    ck.run(
        [
            *common,
            "data.path=${oc.env:CK_TEST_DATA}",
            "tracking.run_name=run-${oc.env:CK_TEST_SECRET}",
        ]
    )
    with pytest.raises(ck.CausalkitError):
        ck.run([*common, "data.path=/nonexistent/${oc.env:CK_TEST_SECRET}.csv"])
    from mlflow.tracking import MlflowClient

    c = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'runs' / 'mlflow.db'}")
    runs = c.search_runs([c.get_experiment_by_name("causalkit").experiment_id])
    by_status = {r.info.status: r for r in runs}
    assert set(by_status) == {"FINISHED", "FAILED"}
    assert by_status["FINISHED"].info.run_name == "run-${oc.env:CK_TEST_SECRET}"
    assert "${oc.env:CK_TEST_SECRET}" in by_status["FAILED"].data.tags["causalkit.error"]
    logged = Path(
        c.download_artifacts(by_status["FINISHED"].info.run_id, "config.yaml")
    ).read_text()
    assert "path: ${oc.env:CK_TEST_DATA}" in logged
    assert _files_holding(workdir / "runs", secret) == []


@pytest.fixture
def html_server() -> Iterator[int]:
    """A server that answers every request with a page (not MLflow): the client fails at once."""

    class Page(http.server.BaseHTTPRequestHandler):
        def _page(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<!DOCTYPE html><html></html>")

        do_GET = do_POST = _page

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_tracking_uri_credentials_are_masked(
    workdir: Path, html_server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    uri = f"http://alice:pw-secret-42@127.0.0.1:{html_server}/?token=tok-secret-42"
    with pytest.raises(ConfigError) as info:
        ck.run(["estimator=itt", f'tracking.uri="{uri}"'])
    msg = str(info.value)
    assert msg.startswith("tracking.uri") and "alice:***@127.0.0.1" in msg and "token=***" in msg
    assert "secret-42" not in msg
    cfg = validate(compose(["estimator=itt", f'tracking.uri="{uri}"']))
    assert "secret-42" not in str(cfg.logged_dict())  # the config.yaml artifact


def test_hydra_run_folders_do_not_record_uri_credentials(tmp_path: Path) -> None:
    """Hydra writes the overrides and the config into runs/hydra; the cell keeps the real URI."""
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "causalkit",
            "-m",
            *TINY,
            "mc.seed=1,2",
            'tracking.uri="postgresql://bob:pw-secret-7@db.example/mlflow"',
            "hydra.sweep.dir=runs/hydra/sweep",  # placed: tracking=none alone writes nothing
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    assert len(list((tmp_path / "runs" / "hydra").rglob("overrides.yaml"))) == 2
    assert _files_holding(tmp_path / "runs", "pw-secret-7") == []
