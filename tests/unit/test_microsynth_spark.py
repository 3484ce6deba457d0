"""Spark backend: agreement with the in-memory fit, pass count, Poisson bootstrap, clear errors."""

from __future__ import annotations

import builtins

import numpy as np
import pytest

from causalkit.contracts import Dataset
from causalkit.errors import ConfigError
from causalkit_plugins.estimators.microsynth import spark_backend
from causalkit_plugins.estimators.microsynth.aggregates import poisson_weights
from causalkit_plugins.estimators.microsynth.columnar import local_oracle, unit_arrays
from causalkit_plugins.estimators.microsynth.estimator import MicroSynth
from causalkit_plugins.estimators.microsynth.params import MicroSynthParams
from causalkit_plugins.estimators.microsynth.pass_newton import solve_by_passes

from .test_microsynth_columnar import ROLES, panel


def test_missing_pyspark_is_one_line_config_error(monkeypatch) -> None:
    real = builtins.__import__

    def no_pyspark(name, *a, **k):
        if name.startswith("pyspark"):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_pyspark)
    with pytest.raises(ConfigError, match=r"pyspark installed") as e:
        spark_backend.spark_session()
    assert "\n" not in str(e.value)


def test_missing_java_is_one_line_config_error(monkeypatch) -> None:
    pytest.importorskip("pyspark", reason="pyspark not installed (pip install -e '.[spark]')")
    from pyspark.sql import SparkSession

    monkeypatch.setattr(SparkSession, "getActiveSession", classmethod(lambda cls: None))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(spark_backend.shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match="Java runtime"):
        spark_backend.spark_session()


@pytest.fixture(scope="module")
def spark():
    pytest.importorskip("pyspark", reason="pyspark not installed (pip install -e '.[spark]')")
    session = spark_backend.spark_session("local[2]")
    yield session
    session.stop()


def test_spark_equals_memory_and_counts_passes(spark) -> None:
    data = Dataset(panel(n=2000, seed=3), ROLES)
    a = MicroSynth(MicroSynthParams()).fit(data, np.random.default_rng(0))
    b = MicroSynth(MicroSynthParams(backend="spark")).fit(data, np.random.default_rng(0))
    assert abs(a.estimate - b.estimate) < 1e-10
    assert np.allclose(
        a.tables["gaps"].set_index("period").loc[[1, 2], "gap"], b.tables["gaps"]["gap"], atol=1e-10
    )
    assert b.diagnostics["converged"] and b.diagnostics["solve_passes"] <= 8
    assert b.diagnostics["passes"] == b.diagnostics["solve_passes"] + 1
    assert abs(a.diagnostics["max_weight"] - b.diagnostics["max_weight"]) < 1e-12


def test_poisson_bootstrap_equals_local_weighted_solves(spark) -> None:
    """Replicate ATTs on Spark equal in-process solves with the same hashed Poisson counts."""
    data = Dataset(panel(n=1500, seed=4), ROLES)
    p = MicroSynthParams(backend="spark")
    fit = MicroSynth(p).fit(data, np.random.default_rng(0))
    rs = fit.resampler
    assert rs is not None and rs.replicates is not None
    reps = rs.replicates(np.random.default_rng(5), 4)
    assert reps.shape == (4, fit.k) and np.isfinite(reps).all()
    again = rs.replicates(np.random.default_rng(5), 4)
    np.testing.assert_array_equal(reps, again)  # every draw from the run's Generator
    units = spark_backend.spark_units(spark.createDataFrame(data.frame), ROLES)
    mom = spark_backend.tree_pass(
        units,
        lambda k, g, X, Y, b: spark_backend.chunk_moments(X, g, Y, 0),
        spark_backend.merge_moments,
    )
    mean, sd = spark_backend.standardisation(mom, units.covariates)
    draws, _ = spark_backend.poisson_bootstrap(units, mean, sd, 1 / mom.n[0], np.zeros(5), p, 11, 3)
    arr = unit_arrays(data)
    keys = np.unique(data.frame["unit"])  # integer unit ids are the keys, in unit order
    for r in range(3):
        c = poisson_weights(keys, 11, np.array([r]))[:, 0]
        s = solve_by_passes(
            local_oracle(arr, mean, sd, c), np.zeros((1, 5)), tol=1e-11, max_iter=50
        )
        sm = {k: v[0] for k, v in s.sums.items()}
        assert np.allclose(sm["ty"] / sm["tn"] - sm["wy"] / sm["g"][-1], draws[r], atol=1e-10)


def test_bootstrap_inference_uses_spark_replicates(spark) -> None:
    """inference=bootstrap on the Spark backend: Poisson replicates, SE close to the in-memory one."""
    from causalkit_plugins.inference.bootstrap import Bootstrap, BootstrapParams

    data = Dataset(panel(n=2000, seed=5), ROLES)
    fit = MicroSynth(MicroSynthParams(backend="spark")).fit(data, np.random.default_rng(0))
    rs = fit.resampler
    assert (
        rs is not None and rs.refit is None and rs.refit_batch is None and rs.replicates is not None
    )
    out = Bootstrap(BootstrapParams(n_boot=60)).infer(fit, np.random.default_rng(1))
    mem = MicroSynth(MicroSynthParams()).fit(data, np.random.default_rng(0))
    ref = Bootstrap(BootstrapParams(n_boot=200)).infer(mem, np.random.default_rng(1))
    assert out.diagnostics["n_failed"] == 0
    # Poisson vs stratified multinomial resampling, 60 vs 200 draws: SEs agree within 35%
    assert np.all(np.abs(out.se / ref.se - 1) < 0.35)
    assert (out.ci_lower < fit.estimates).all() and (fit.estimates < out.ci_upper).all()
