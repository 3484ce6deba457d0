"""Fixtures: a throwaway PostgreSQL cluster and an ``mlflow server`` on it, on loopback only.

PostgreSQL's own tools start the cluster: ``initdb`` and ``pg_ctl``, found on ``PATH`` or
under Debian's ``/usr/lib/postgresql/<version>/bin``. They refuse to run as root, so as root
they run as the ``postgres`` user (``runuser -u postgres --``); the cluster's folder is a fresh
temporary directory owned by whoever runs them. The server listens on ``127.0.0.1`` at a free
port, its unix socket stays in that folder, and a role with a password owns the database.
Both are stopped, and their folders removed, when the test ends, passed or failed.

Without ``initdb``/``pg_ctl`` (or, as root, without the ``postgres`` user) the tests that need
them are skipped, unless ``CAUSALKIT_REQUIRE_POSTGRES=1`` (set by ``.ci/run``, which installs
Debian's ``postgresql``), where that is a failure.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from glob import glob
from pathlib import Path
from typing import Any

import pytest

PG_USER = "postgres"  # who runs initdb/pg_ctl when the tests run as root
START_SECONDS = 120


def find_pg_bin() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: on ``PATH``, else Debian's newest version."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    versions = sorted(
        glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in Path(p).parts[-3].split(".")],
    )
    return Path(versions[-1]).parent if versions else None


def _as_pg_user() -> list[str]:
    return ["runuser", "-u", PG_USER, "--"] if os.geteuid() == 0 else []


@dataclass(frozen=True)
class Postgres:
    """A running cluster: ``uri`` is the SQLAlchemy URI MLflow's backend store takes."""

    bin: Path
    root: Path
    port: int
    user: str
    password: str
    database: str

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def uri(self) -> str:
        return (
            f"postgresql+psycopg2://{self.user}:{self.password}@127.0.0.1:{self.port}/"
            f"{self.database}"
        )

    def run(self, tool: str, *args: str) -> None:
        """Run one of PostgreSQL's tools as the cluster's owner; its output joins the error."""
        proc = subprocess.run(
            [*_as_pg_user(), str(self.bin / tool), *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=START_SECONDS,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{tool} failed ({proc.returncode}): {proc.stdout}{proc.stderr}")

    def psql(self, sql: str) -> None:
        """Run SQL as the superuser over the cluster's unix socket."""
        socket_dir = ["-h", str(self.root), "-p", str(self.port)]
        self.run(
            "psql", *socket_dir, "-U", PG_USER, "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql
        )


@contextlib.contextmanager
def postgres(
    bin_dir: Path, port: int, database: str = "mlflow", user: str = "causalkit"
) -> Iterator[Postgres]:
    """Start a fresh cluster on ``port`` with ``database`` owned by ``user``; stop it, remove its folder."""
    root = Path(tempfile.mkdtemp(prefix="causalkit-pg-"))
    if os.geteuid() == 0:
        owner = pwd.getpwnam(PG_USER)
        os.chown(root, owner.pw_uid, owner.pw_gid)
    pg = Postgres(bin_dir, root, port, user, secrets.token_hex(12), database)
    started = False
    try:
        # trust over the socket for the superuser; a password for TCP connections
        initdb = ["-D", str(pg.data), "-U", PG_USER, "--auth-local=trust"]
        pg.run("initdb", *initdb, "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C")
        options = f"-c listen_addresses=127.0.0.1 -p {pg.port} -k {root} -c fsync=off"
        started = True
        log = str(root / "postgres.log")
        pg.run("pg_ctl", "-D", str(pg.data), "-l", log, "-o", options, "-w", "start")
        pg.psql(f"CREATE ROLE {user} LOGIN PASSWORD '{pg.password}'")
        pg.psql(f"CREATE DATABASE {database} OWNER {user}")
        yield pg
    except BaseException:
        _stop(pg, started, strict=False)  # the error in flight is the one to see
        raise
    _stop(pg, started, strict=True)


def _stop(pg: Postgres, started: bool, strict: bool) -> None:
    """``pg_ctl stop -m fast`` (when it was started), then remove the cluster's folder."""
    try:
        if started:
            pg.run("pg_ctl", "-D", str(pg.data), "-m", "fast", "-w", "stop")
    except (RuntimeError, subprocess.TimeoutExpired):
        if strict:
            raise
    finally:
        shutil.rmtree(pg.root, ignore_errors=True)


def _postgres_or_skip() -> Path:
    bin_dir = find_pg_bin()
    missing = None
    if bin_dir is None:
        missing = "PostgreSQL's initdb and pg_ctl (apt-get install postgresql)"
    elif os.geteuid() == 0:
        try:
            pwd.getpwnam(PG_USER)
        except KeyError:
            missing = f"the {PG_USER!r} user to run initdb as (root may not)"
        if shutil.which("runuser") is None:
            missing = "runuser (util-linux) to run initdb as the postgres user"
    if missing is not None:
        if os.environ.get("CAUSALKIT_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"needs {missing}")
        pytest.skip(f"needs {missing}")
    assert bin_dir is not None
    return bin_dir


@pytest.fixture
def pg(free_port: Callable[[], int]) -> Iterator[Postgres]:
    """A fresh PostgreSQL cluster on 127.0.0.1 with database ``mlflow`` owned by ``causalkit``."""
    with postgres(_postgres_or_skip(), free_port()) as running:
        yield running


@pytest.fixture
def mlflow_url(pg: Postgres, mlflow_server: Any, tmp_path: Path) -> Iterator[str]:
    """``mlflow server`` on ``pg`` (artifacts in ``tmp_path/artifacts``), as its URL."""
    store = ["--backend-store-uri", pg.uri, "--artifacts-destination", str(tmp_path / "artifacts")]
    with mlflow_server(store, tmp_path / "mlflow_server.log") as url:
        yield url
