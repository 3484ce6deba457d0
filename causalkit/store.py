"""New SQLite MLflow stores from a cached, MLflow-made schema template.

MLflow creates a SQLite store by running every Alembic migration since its first schema
(~2 s here, more than a whole small Monte Carlo cell). The schema only depends on the MLflow
version, so the first store a machine creates with a given MLflow version is also kept,
empty, as a template (``<cache>/mlflow-<version>.db``); every later new store is a copy of
it. The template is made by MLflow's own initialisation (``_initialize_tables``: the
initial tables plus all migrations), never by hand-written DDL, and holds no experiment:
MLflow adds its default experiment when it first opens the copy, exactly as on a fresh
store. Anything unexpected (no writable cache, a different MLflow layout) falls back to
MLflow's normal creation.

The cache folder is ``$CAUSALKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/causalkit``, else
``~/.cache/causalkit``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import uuid
from pathlib import Path

__all__ = ["cache_dir", "seed_sqlite_store"]

_log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Where causalkit keeps machine-wide caches (the store template)."""
    env = os.environ.get("CAUSALKIT_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "causalkit"


def _template() -> Path:
    """Return the empty-store template of the installed MLflow version, made on first use."""
    from mlflow.version import VERSION

    path = cache_dir() / f"mlflow-{VERSION}.db"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    try:
        import sqlalchemy
        from mlflow.store.db.utils import _initialize_tables

        engine = sqlalchemy.create_engine(f"sqlite:///{tmp}")
        try:
            _initialize_tables(engine)
        finally:
            engine.dispose()
        os.replace(tmp, path)  # atomic: concurrent makers leave one complete template
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return path


def _place(src: Path, dest: Path) -> None:
    """Copy ``src`` to ``dest`` unless ``dest`` appears meanwhile (never clobbers a live store)."""
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}")
    try:
        shutil.copyfile(src, tmp)
        try:
            os.link(tmp, dest)
        except FileExistsError:
            pass  # another process created the store first: use theirs
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def seed_sqlite_store(db_path: Path) -> bool:
    """Create the SQLite store ``db_path`` from the template when it does not exist yet.

    Returns ``True`` when the store was placed from the template, ``False`` when it already
    existed or the template could not be used (MLflow then creates the store itself).
    """
    if db_path.exists():
        return False
    try:
        _place(_template(), db_path)
    except Exception as exc:  # no cache, read-only home, other MLflow internals: MLflow's own path
        _log.debug("MLflow store template not used: %s", exc)
        return False
    return True
