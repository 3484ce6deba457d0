"""New SQLite MLflow stores copied from the cached template equal stores MLflow creates itself."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from causalkit.store import seed_sqlite_store


def _schema(db: Path) -> tuple[list[tuple[str, str, tuple[str, ...]]], list[tuple]]:
    con = sqlite3.connect(db)
    try:
        # Alembic's batch table rebuilds write constraints in set order, which differs between two
        # stores MLflow itself creates: compare each statement's clauses as a sorted list.
        objects = sorted(
            (
                kind,
                name,
                tuple(
                    sorted(
                        part.strip() for part in re.split(r",\s*\n", sql.strip().removesuffix(")"))
                    )
                ),
            )
            for kind, name, sql in con.execute(
                "select type, name, coalesce(sql, '') from sqlite_master"
            )
        )
        version = con.execute("select version_num from alembic_version").fetchall()
    finally:
        con.close()
    return objects, version


def _use(db: Path) -> tuple[list[str], str]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    exp = client.create_experiment("e")
    run = client.create_run(exp)
    client.log_metric(run.info.run_id, "m", 1.5)
    client.set_terminated(run.info.run_id)
    names = sorted(e.name for e in client.search_experiments())
    return names, client.get_run(run.info.run_id).info.status


def test_template_store_equals_mlflows_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAUSALKIT_CACHE_DIR", str(tmp_path / "cache"))
    ours, theirs = tmp_path / "ours.db", tmp_path / "theirs.db"
    assert seed_sqlite_store(ours) is True
    assert seed_sqlite_store(ours) is False  # exists: left alone
    assert list((tmp_path / "cache").glob("mlflow-*.db"))
    assert not list(tmp_path.glob(".*"))  # no temporary files left
    # the reference: a store MLflow creates on its own (all migrations) and then uses
    assert _use(theirs) == (["Default", "e"], "FINISHED")
    assert _use(ours) == (["Default", "e"], "FINISHED")
    assert _schema(ours) == _schema(theirs)
    second = tmp_path / "second.db"
    assert seed_sqlite_store(second) is True  # from the cached template this time
    assert _schema(second)[0] == _schema(theirs)[0]
