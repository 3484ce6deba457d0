"""The explicit session: replications use the registry they were given; ``ck.run`` always returns the result."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pandas as pd
import pytest

import causalkit as ck
from causalkit.cli import compose
from causalkit.config import validate
from causalkit.montecarlo import run_replication
from causalkit.registry import Registry, default_registry
from causalkit.session import Session, default_session


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_fresh_registry_serves_every_replication(n_jobs: int) -> None:
    """The bug: replications fell back to the process's default registry and all failed."""
    fresh = Registry().load_entry_points()
    assert fresh is not default_registry()
    res = ck.run(
        ["estimator=itt", "mc.reps=3", "tracking=none", f"mc.n_jobs={n_jobs}"], registry=fresh
    )
    assert res.metrics["n_failed"] == 0 and res.errors == () and len(res.replications) == 3
    assert np.isfinite(res.replications["estimate"]).all()


def test_replications_use_the_sessions_registry_only() -> None:
    cfg = validate(compose(["estimator=itt", "tracking=none"]))
    with pytest.raises(ck.CausalkitError, match=r"dgp: expected one of \(none\)"):
        run_replication(
            cfg, 0, None, Session(Registry())
        )  # an empty registry: no fallback to the default
    res = run_replication(cfg, 0, None, Session(default_registry()))
    assert math.isfinite(res.estimate)


def test_session_travels_to_workers_without_its_draws() -> None:
    session = Session(default_registry(), blas_threads=2)
    cfg = validate(
        compose(["estimator=itt", "mc.reps=2", "mc.common_random_numbers=true", "tracking=none"])
    )
    ck.run(
        ["estimator=itt", "mc.reps=2", "mc.common_random_numbers=true", "tracking=none"],
        session=session,
    )
    assert len(session.draws) == 2 and session.draws.get((cfg.draw_hash, 0)) is not None
    sent = pickle.loads(pickle.dumps(session))
    assert (
        len(sent.draws) == 0 and sent.draws.max_bytes == session.draws.max_bytes
    )  # arrays are not shipped
    assert sent.blas_threads == 2 and sent.registry.names("estimator") == session.registry.names(
        "estimator"
    )


def test_defaults_are_cached_constructors_not_state_to_reset() -> None:
    assert default_registry() is default_registry()
    assert (
        default_session() is default_session() and default_session().registry is default_registry()
    )
    with pytest.raises(ck.ConfigError, match="registry"):
        ck.run(["tracking=none"], registry=Registry(), session=Session(default_registry()))


def _same(a: ck.CellResult, b: ck.CellResult) -> None:
    """Equal cell results: metrics (NaN = NaN), summary, replications, errors, and the single result."""
    assert a.to_dict().keys() == b.to_dict().keys()
    for key, value in a.to_dict().items():
        other = b.to_dict()[key]
        assert value == other or (
            isinstance(value, float) and math.isnan(value) and math.isnan(other)
        ), key
    assert (a.errors, a.seconds, a.level, a.truth, a.truth_estimand) == (
        b.errors,
        b.seconds,
        b.level,
        b.truth,
        b.truth_estimand,
    )
    pd.testing.assert_frame_equal(a.replications, b.replications, check_exact=True)
    assert str(a.summary()) == str(b.summary())
    assert (a.single is None) == (b.single is None)
    if a.single is not None and b.single is not None:
        x, y = a.single, b.single
        assert (x.names, x.joint, x.warnings, x.truth, x.truth_estimand, x.n) == (
            y.names,
            y.joint,
            y.warnings,
            y.truth,
            y.truth_estimand,
            y.n,
        )
        assert dict(x.diagnostics) == dict(y.diagnostics)
        pd.testing.assert_frame_equal(x.effects, y.effects, check_exact=True)
        assert list(x.tables) == list(y.tables)
        for name in x.tables:
            pd.testing.assert_frame_equal(x.tables[name], y.tables[name], check_exact=True)


@pytest.mark.parametrize(
    "overrides",
    [
        ["estimator=itt", "mc.reps=4"],
        ["estimator=microsynth", "inference=bootstrap", "inference.n_boot=50"],
        ["estimator=itt"],
    ],
    ids=["monte-carlo", "single-with-tables", "single"],
)
def test_run_twice_returns_equal_results(workdir, overrides: list[str]) -> None:
    """The second call reads the finished cell back from the MLflow store (no SkippedCell)."""
    from mlflow.tracking import MlflowClient

    first = ck.run(overrides)
    second = ck.run(overrides)
    assert isinstance(second, ck.CellResult)
    _same(first, second)
    c = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'runs' / 'mlflow.db'}")
    assert (
        len(c.search_runs([c.get_experiment_by_name("causalkit").experiment_id])) == 1
    )  # run once
    fresh = ck.run([*overrides, "mc.resume=false"])
    assert fresh.replications["estimate"].equals(first.replications["estimate"])
