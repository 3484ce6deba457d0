"""Local SQLite MLflow stores: made atomically from a cached schema template, checked when opened.

MLflow creates a SQLite store by running every Alembic migration since its first schema
(~2 s here, more than a whole small Monte Carlo cell). The schema only depends on the MLflow
version, so the first store a machine creates with a given MLflow version is also kept,
empty, as a template (``<cache>/mlflow-<version>.db``); every later new store is a copy of
it. The template is made by MLflow's own initialisation (``_initialize_tables``: the
initial tables plus all migrations), never by hand-written DDL, and holds no experiment:
MLflow adds its default experiment when it first opens the copy, exactly as on a fresh
store. Without a usable cache the store is initialised the same way, in place of the copy.

A store is never built where it is used: it is made in a temporary file in its own folder
and linked into place whole, under a lock on that folder, so concurrent first runs wait for
one complete store and a kill or a full disk leaves no half-built one. An existing store
that is empty, not an SQLite database, damaged or half-built (an interrupted migration) is
refused in one line; it is never initialised again over its history. A damaged template is
only a cache: it is made again.

The cache folder is ``$CAUSALKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/causalkit``, else
``~/.cache/causalkit``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

from causalkit.errors import ConfigError

__all__ = ["cache_dir", "check_sqlite_store", "rehome_artifacts", "seed_sqlite_store"]

_log = logging.getLogger(__name__)
_SQLITE_HEADER = b"SQLite format 3\x00"
_MOVE_ASIDE = "an intact MLflow store (move the file aside or delete it to start a new store)"


def cache_dir() -> Path:
    """Where causalkit keeps machine-wide caches (the store template)."""
    env = os.environ.get("CAUSALKIT_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "causalkit"


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``folder`` (no lock where ``fcntl`` is missing)."""
    try:
        import fcntl
    except ImportError:  # Windows: the link into place below still keeps one store
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _connect(path: Path) -> sqlite3.Connection:
    """Open an existing SQLite file without ever creating one (read-only if the file is)."""
    return sqlite3.connect(f"file:{quote(str(path))}?mode=rw", uri=True, timeout=30)


def _problem(path: Path, head: str | None) -> str | None:
    """Say what is wrong with the store file ``path`` (``None`` when it is a complete store).

    ``head`` is the schema revision a complete store of this MLflow version has, when known.
    """
    if path.stat().st_size == 0:
        return "empty (0 bytes)"
    with path.open("rb") as f:
        if f.read(len(_SQLITE_HEADER)) != _SQLITE_HEADER:
            return "not an SQLite database (garbled or another kind of file)"
    try:
        con = _connect(path)
        try:
            check = con.execute("PRAGMA quick_check").fetchone()
            if not check or check[0] != "ok":
                return f"damaged (SQLite integrity check: {check[0] if check else 'no answer'})"
            tables = {row[0] for row in con.execute("select name from sqlite_master")}
            leftover = sorted(t for t in tables if t.startswith("_alembic_tmp_"))
            if leftover:
                return f"half-built (table {leftover[0]} left by an interrupted creation)"
            if not {"alembic_version", "experiments", "runs"} <= tables:
                return "half-built or not an MLflow store (MLflow's tables are missing)"
            version = con.execute("select version_num from alembic_version").fetchone()
            experiments = con.execute("select count(*) from experiments").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):
            return None  # another process is writing it: it is a working database
        return f"unreadable (SQLite: {exc})"
    except sqlite3.DatabaseError as exc:
        return f"damaged (SQLite: {exc})"
    if version is None or (head is not None and version[0] != head and experiments == 0):
        # MLflow adds its default experiment once all migrations ran: none, and an older
        # schema, is a creation that stopped part-way (an old store has its experiments).
        return "half-built (its creation stopped part-way through the schema migrations)"
    return None


def _build(path: Path) -> None:
    """Initialise a new store in ``path`` as MLflow does (its tables and every migration)."""
    import sqlalchemy
    from mlflow.store.db.utils import _initialize_tables

    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    try:
        _initialize_tables(engine)
    finally:
        engine.dispose()


def _make_aside(
    dest: Path, fill: Callable[[Path], object], place: Callable[[Path, Path], object]
) -> None:
    """Fill a temporary file beside ``dest``, then ``place`` it there (the temporary never stays)."""
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
    try:
        fill(tmp)
        place(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _template() -> Path | None:
    """Return the intact empty-store template of this MLflow version (made when missing or damaged)."""
    from mlflow.version import VERSION

    path = cache_dir() / f"mlflow-{VERSION}.db"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path.parent):
            if path.is_file() and _problem(path, None) is None:
                return path
            if path.exists():
                _log.warning("rebuilding the damaged MLflow store template %s", path)
            _make_aside(path, _build, os.replace)
        return path
    except Exception as exc:  # no writable cache, other MLflow internals: build in place of copying
        _log.debug("MLflow store template not used: %s", exc)
        return None


def _head(template: Path | None) -> str | None:
    """Return the schema revision a complete store of the installed MLflow version has."""
    if template is not None:
        con = _connect(template)
        try:
            return str(con.execute("select version_num from alembic_version").fetchone()[0])
        finally:
            con.close()
    try:
        from mlflow.store.db.utils import _get_latest_schema_revision

        return str(_get_latest_schema_revision())
    except Exception:  # MLflow internals moved: the other checks still apply
        return None


_intact: set[tuple[int, int]] = set()  # (device, inode) of stores this process found intact


def check_sqlite_store(db_path: Path) -> None:
    """Refuse, in one line, a store file that is empty, garbled, damaged or half-built.

    The full check (SQLite's ``quick_check``, the schema) runs once per process and file.

    Raises
    ------
    ConfigError
        Naming the file, what is wrong with it and what to do.
    """
    try:
        stat = db_path.stat()
        if (stat.st_dev, stat.st_ino) in _intact and stat.st_size > 0:
            return
        problem = _problem(db_path, _head(_template()))
    except OSError as exc:
        raise ConfigError(
            "tracking.uri", "a readable MLflow store", f"{db_path} ({exc.strerror})"
        ) from None
    if problem is not None:
        raise ConfigError("tracking.uri", _MOVE_ASIDE, f"{db_path}: {problem}")
    _intact.add((stat.st_dev, stat.st_ino))


def seed_sqlite_store(db_path: Path) -> bool:
    """Create the SQLite store ``db_path`` when it does not exist yet, atomically.

    The store is a copy of the cached template (or, without a usable cache, initialised by
    MLflow's own migrations) made in a temporary file beside it and linked into place; the
    folder is locked meanwhile, so concurrent callers wait and then find the complete store.

    Returns
    -------
    bool
        ``True`` when this call created the store, ``False`` when it existed already.

    Raises
    ------
    ConfigError
        When the store cannot be written in its folder (read-only, disk full), in one line.
    """
    if db_path.exists():
        return False
    try:
        with _locked(db_path.parent):
            if db_path.exists():
                return False  # another process made it while this one waited
            template = _template()
            fill = _build if template is None else partial(shutil.copyfile, template)
            _make_aside(db_path, fill, os.link)  # a link never replaces an existing store
    except OSError as exc:
        raise ConfigError(
            "tracking.uri",
            "a writable folder for a new MLflow store",
            f"{db_path} ({exc.strerror or exc})",
        ) from None
    except Exception as exc:  # SQLite full or read-only while initialising
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            "tracking.uri", "a writable folder for a new MLflow store", f"{db_path} ({first})"
        ) from None
    return True


def rehome_artifacts(db_path: Path, artifacts: Path) -> int:
    """Point the artifacts of a moved or copied store at its own folder; return the rows changed.

    causalkit's experiments keep their artifacts in the ``artifacts`` folder beside the store.
    A store copied with its folder still names the original's: an experiment whose location
    is another ``.../artifacts`` folder is pointed here, with the artifact URIs of its runs,
    unless some run's files exist there and not at the same relative path here (then it is
    not a copy of this folder). Other locations are left alone.
    """
    if not artifacts.is_dir():
        return 0
    new = artifacts.resolve().as_uri()
    con = _connect(db_path)
    try:
        changed = 0
        for exp_id, old in con.execute(
            "select experiment_id, artifact_location from experiments"
        ).fetchall():
            base = str(old or "").rstrip("/")
            if not base.startswith("file:") or not base.endswith("/artifacts") or base == new:
                continue
            uris = [
                str(u)
                for (u,) in con.execute(
                    "select artifact_uri from runs where experiment_id = ?", (exp_id,)
                )
            ]
            if not all(u.startswith(base + "/") for u in uris):
                continue
            rel = [unquote(u[len(base) + 1 :]) for u in uris]
            origin = Path(unquote(urlparse(base).path))
            if any((origin / r).exists() and not (artifacts / r).exists() for r in rel):
                continue  # not a copy of this folder: some of its files are only there
            with con:
                changed += con.execute(
                    "update runs set artifact_uri = ? || substr(artifact_uri, ?) "
                    "where experiment_id = ?",
                    (new, len(base) + 1, exp_id),
                ).rowcount
                changed += con.execute(
                    "update experiments set artifact_location = ? where experiment_id = ?",
                    (new, exp_id),
                ).rowcount
        return changed
    finally:
        con.close()
