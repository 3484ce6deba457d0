"""Stores that must not break or leak: atomic creation, damaged stores named, failing writes in one line.

Issue 16, findings 4-6. Read-only stores and full disks are simulated in the child process,
since tests may run as root (for whom file modes do not block writes): SQLite itself refuses
the writes (``PRAGMA query_only`` for a read-only store, ``PRAGMA max_page_count`` for a full
one), copying artifacts into ``runs/artifacts`` raises ``ENOSPC`` and making a folder under
a read-only ``runs/`` raises ``EACCES``.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from causalkit.config import TrackingConfig
from causalkit.errors import ConfigError
from causalkit.store import cache_dir, seed_sqlite_store
from causalkit.tracking import MlflowTracker

SIMULATE = textwrap.dedent(
    """
    import errno, os, shutil, sys
    mode = os.environ["CK_SIMULATE"]
    if mode == "full":
        real = shutil.copyfile

        def copyfile(src, dst, *args, **kwargs):
            if "/runs/artifacts/" in str(dst):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
            return real(src, dst, *args, **kwargs)

        shutil.copyfile = copyfile
    if mode == "runs-readonly":
        import pathlib
        real_mkdir = pathlib.Path.mkdir

        def mkdir(self, *args, **kwargs):
            if os.path.abspath(self).startswith(os.path.abspath("runs")):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
            return real_mkdir(self, *args, **kwargs)

        pathlib.Path.mkdir = mkdir
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "connect")
    def _refuse(con, record):
        if mode == "readonly":
            con.execute("PRAGMA query_only = 1")
        elif mode == "full":
            pages = con.execute("PRAGMA page_count").fetchone()[0]
            con.execute(f"PRAGMA max_page_count = {pages}")

    from causalkit.cli import main
    main(sys.argv[1:])
    """
)


def _cli(cwd: Path, *args: str, simulate: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    if simulate:
        env["CK_SIMULATE"] = simulate
        cmd = [sys.executable, "-c", SIMULATE, *args]
    else:
        cmd = [sys.executable, "-m", "causalkit", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _one_line(p: subprocess.CompletedProcess, code: int = 2) -> str:
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == code and "Traceback" not in p.stderr, p.stderr
    assert len(lines) == 1 and lines[0].startswith("causalkit: error: "), p.stderr
    return lines[0]


def _statuses(db: Path) -> list[str]:
    con = sqlite3.connect(db)
    try:
        return [s for (s,) in con.execute("select status from runs")]
    finally:
        con.close()


def _store(tmp_path: Path) -> Path:
    """A store with one finished cell in ``tmp_path/runs``."""
    assert _cli(tmp_path, "estimator=itt", "mc.reps=5").returncode == 0
    return tmp_path / "runs" / "mlflow.db"


# -- finding 4: creation ------------------------------------------------------------------------


@pytest.fixture
def no_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No usable template cache: its folder would be inside a regular file."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("CAUSALKIT_CACHE_DIR", str(blocker / "cache"))


def test_without_a_cache_the_store_is_built_aside_by_mlflows_migrations(
    tmp_path: Path, no_cache: None
) -> None:
    from mlflow.tracking import MlflowClient

    db = tmp_path / "store.db"
    assert seed_sqlite_store(db) is True and db.exists()
    assert not list(tmp_path.glob(".*"))
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    assert [e.name for e in client.search_experiments()] == ["Default"]


def test_concurrent_first_runs_without_a_cache_all_succeed(tmp_path: Path, no_cache: None) -> None:
    """Six first runs at once, no usable template cache: one store, built aside, six runs."""
    db = tmp_path / "runs" / "mlflow.db"
    code = textwrap.dedent(
        f"""
        from pathlib import Path
        from causalkit.config import TrackingConfig
        from causalkit.tracking import MlflowTracker
        t = MlflowTracker(TrackingConfig(uri="sqlite:///{db}"), Path({str(tmp_path)!r}))
        t.end_run(t.start_run("r", {{}}, {{}}))
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    results = [(p.wait(timeout=600), p.stderr.read() if p.stderr else "") for p in procs]
    assert [rc for rc, _ in results] == [0] * 6, [err for _, err in results]
    assert not any("Traceback" in err for _, err in results)
    assert _statuses(db) == ["FINISHED"] * 6
    assert not list(db.parent.glob(".*"))  # no temporary store left beside it


def test_damaged_template_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The template is a cache: garbled, it is made again and the new store works."""
    from mlflow.version import VERSION

    monkeypatch.setenv("CAUSALKIT_CACHE_DIR", str(tmp_path / "cache"))
    template = cache_dir() / f"mlflow-{VERSION}.db"
    template.parent.mkdir(parents=True)
    template.write_bytes(b"SQLite format 3\x00" + os.urandom(8192))
    db = tmp_path / "runs" / "mlflow.db"
    tracker = MlflowTracker(TrackingConfig(uri=f"sqlite:///{db}"), tmp_path)
    tracker.end_run(tracker.start_run("r", {}, {}))
    assert _statuses(db) == ["FINISHED"]
    assert sqlite3.connect(template).execute("PRAGMA quick_check").fetchone() == ("ok",)


def _half_built(db: Path) -> None:
    seed_sqlite_store(db)
    con = sqlite3.connect(db)
    con.execute("create table _alembic_tmp_experiments (experiment_id integer)")
    con.commit()
    con.close()


def _garble(db: Path) -> None:
    seed_sqlite_store(db)
    data = bytearray(db.read_bytes())
    data[4096:12288] = os.urandom(8192)  # pages after the header: the schema and tables
    db.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda db: db.write_bytes(b""), "empty (0 bytes)"),
        (lambda db: db.write_bytes(os.urandom(4096)), "not an SQLite database"),
        (_garble, "damaged"),
        (_half_built, "half-built (table _alembic_tmp_experiments"),
    ],
    ids=["zero-byte", "random-bytes", "garbled-pages", "half-built"],
)
def test_broken_store_is_named_never_reinitialised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make, needle: str
) -> None:
    monkeypatch.setenv("CAUSALKIT_CACHE_DIR", str(tmp_path / "cache"))
    db = tmp_path / "runs" / "mlflow.db"
    db.parent.mkdir()
    make(db)
    before = db.read_bytes()
    with pytest.raises(ConfigError) as info:
        MlflowTracker(TrackingConfig(uri=f"sqlite:///{db}"), tmp_path).experiment_id()
    message = str(info.value)
    assert needle in message and str(db) in message and "move the file aside" in message
    assert "\n" not in message
    assert db.read_bytes() == before  # the history, if any, is left for the user


def test_zero_byte_store_cli_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "mlflow.db").write_bytes(b"")
    line = _one_line(_cli(tmp_path, "estimator=itt", "mc.reps=5"))
    assert "runs/mlflow.db: empty (0 bytes)" in line and "delete it" in line
    assert (tmp_path / "runs" / "mlflow.db").stat().st_size == 0


# -- finding 4: read-only and full stores -----------------------------------------------------------


def test_read_only_store_folder_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store (or its folder) the user cannot write is refused before any work, by name."""
    db = tmp_path / "runs" / "mlflow.db"
    db.parent.mkdir()
    seed_sqlite_store(db)
    real = os.access
    for path in (db, db.parent):
        monkeypatch.setattr(
            os, "access", lambda p, mode, _p=path: False if Path(p) == _p else real(p, mode)
        )
        with pytest.raises(ConfigError, match="read-only") as info:
            MlflowTracker(TrackingConfig(uri=f"sqlite:///{db}"), tmp_path)
        assert f"{path} (read-only)" in str(info.value)


@pytest.mark.parametrize(
    ("tracking", "needle"),
    [
        (("tracking=none", "hydra.run.dir=runs/hydra/one"), "Permission denied: 'runs/hydra/"),
        (("tracking=mlflow",), "runs/mlflow.db"),
    ],
    ids=["none-with-hydra-folder", "mlflow"],
)
def test_read_only_runs_folder_is_one_line(
    tmp_path: Path, tracking: tuple[str, ...], needle: str
) -> None:
    """The store, or Hydra's run folder placed under runs/ (tracking=none alone writes nothing)."""
    line = _one_line(
        _cli(tmp_path, "estimator=itt", "mc.reps=5", *tracking, simulate="runs-readonly")
    )
    assert needle in line and "Permission denied" in line


@pytest.mark.parametrize("sweep", [False, True], ids=["single", "sweep"])
def test_store_refusing_every_write_is_one_line(tmp_path: Path, sweep: bool) -> None:
    db = _store(tmp_path)
    args = ["-m", "estimator=itt", "mc.reps=6,7"] if sweep else ["estimator=itt", "mc.reps=6"]
    line = _one_line(_cli(tmp_path, *args, simulate="readonly"))
    assert "readonly database" in line
    assert _statuses(db) == ["FINISHED"]  # nothing opened, nothing left RUNNING


def test_full_disk_single_run_is_one_line_and_failed(tmp_path: Path) -> None:
    db = _store(tmp_path)
    line = _one_line(_cli(tmp_path, "estimator=itt", "mc.reps=6", simulate="full"))
    assert "No space left on device" in line
    assert sorted(_statuses(db)) == ["FAILED", "FINISHED"]


def test_full_disk_sweep_fails_and_its_parent_is_closed(tmp_path: Path) -> None:
    db = _store(tmp_path)
    p = _cli(tmp_path, "-m", "estimator=itt", "mc.reps=6,7", simulate="full")
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr
    assert all(ln.startswith("causalkit: ") for ln in p.stderr.splitlines() if ln.strip())
    assert "disk is full" in p.stderr or "No space left on device" in p.stderr
    assert "RUNNING" not in _statuses(db)


# -- finding 5: unreachable server --------------------------------------------------------------


def test_unreachable_server_fails_in_seconds(tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(ConfigError, match="Connection refused") as info:
        MlflowTracker(TrackingConfig(uri="http://user:secret@127.0.0.1:9/"), tmp_path)
    assert time.monotonic() - start < 10
    assert "secret" not in str(info.value) and "127.0.0.1:9" in str(info.value)

    from causalkit.report import main as report

    start = time.monotonic()
    assert report(["--uri", "http://127.0.0.1:9/", "--out", str(tmp_path / "r")]) == 2
    assert time.monotonic() - start < 10


# -- finding 6: a copied project folder writes into itself ---------------------------------------


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_copied_project_writes_into_the_copy(tmp_path: Path) -> None:
    original, copy = tmp_path / "original", tmp_path / "copy"
    original.mkdir()
    assert _cli(original, "estimator=itt", "mc.reps=5").returncode == 0
    shutil.copytree(original, copy)
    before = _tree(original)
    assert _cli(copy, "estimator=itt", "mc.reps=6").returncode == 0
    # the earlier cell is read back from the copy's own files
    assert "already finished" in _cli(copy, "estimator=itt", "mc.reps=5").stdout
    assert _tree(original) == before  # not a byte written into the original
    con = sqlite3.connect(copy / "runs" / "mlflow.db")
    uris = [u for (u,) in con.execute("select artifact_uri from runs")]
    con.close()
    assert len(uris) == 2
    assert all(u.startswith((copy / "runs" / "artifacts").as_uri() + "/") for u in uris)
