"""Columnar backend and parquet_units source agree with the in-memory MicroSynth simplex fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from causalkit.contracts import Dataset, LazySource, Roles
from causalkit.errors import DataError
from causalkit_plugins.data.files import ParquetUnitsParams, ParquetUnitsSource
from causalkit_plugins.estimators.microsynth.estimator import MicroSynth
from causalkit_plugins.estimators.microsynth.params import MicroSynthParams

COVS = tuple(f"x{j}" for j in range(4))
ROLES = Roles(unit="unit", time="time", treatment="d", outcome="y", covariates=COVS)


def panel(n: int = 3000, T: int = 3, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, len(COVS))) * [1, 2, 3, 4] + 10
    g = rng.random(n) < 0.4 / (1 + np.exp(-(X[:, 0] - 10)))
    t = np.tile(np.arange(T), n)
    cols = {c: np.repeat(X[:, j], T) for j, c in enumerate(COVS)}
    cols.update(unit=np.repeat(np.arange(n), T), time=t, d=(np.repeat(g, T) & (t >= 1)).astype(int))
    cols["y"] = 0.3 * cols["x0"] + cols["d"] + rng.standard_normal(n * T)
    return pd.DataFrame(cols)


def fit(data: Dataset, **kw: object):
    return MicroSynth(MicroSynthParams(**kw)).fit(data, np.random.default_rng(0))


def test_columnar_equals_memory_on_a_long_panel() -> None:
    data = Dataset(panel(), ROLES)
    a, b = fit(data), fit(data, backend="columnar")
    assert abs(a.estimate - b.estimate) < 1e-10
    assert a.names == b.names == ("ATT", "ATT@1", "ATT@2")
    assert np.allclose(a.estimates, b.estimates, atol=1e-10)
    assert np.allclose(
        a.tables["gaps"].set_index("period").loc[[1, 2], "gap"], b.tables["gaps"]["gap"], atol=1e-10
    )
    assert abs(a.diagnostics["ess"] - b.diagnostics["ess"]) < 1e-6 * a.diagnostics["ess"]
    assert np.allclose(
        a.tables["balance"]["smd_before"], b.tables["balance"]["smd_before"], atol=1e-12
    )
    assert b.diagnostics["converged"] and b.diagnostics["passes"] <= 9
    idx = np.random.default_rng(1).integers(0, 3000, 3000)
    ra, rb = a.resampler, b.resampler
    assert ra is not None and rb is not None and ra.refit is not None and rb.refit is not None
    assert rb.strata is not None and (rb.strata == ra.strata).all()
    assert np.allclose(
        ra.refit(idx), rb.refit(idx), atol=1e-10
    )  # counts as case weights == resampled rows


def test_parquet_lazy_and_eager_sources_match_memory(tmp_path) -> None:
    frame = panel(seed=2)
    frame.iloc[: len(frame) // 2].to_parquet(tmp_path / "a.parquet")
    frame.iloc[len(frame) // 2 :].to_parquet(tmp_path / "b.parquet")
    ref = fit(Dataset(frame, ROLES)).estimate
    lazy = ParquetUnitsSource(ParquetUnitsParams(path=str(tmp_path), roles=ROLES, lazy=True)).load()
    assert isinstance(lazy.source, LazySource) and lazy.source.path == str(tmp_path)
    assert set(ROLES.columns()) <= set(lazy.columns)
    assert abs(fit(lazy, backend="columnar").estimate - ref) < 1e-10
    with pytest.raises(DataError, match="data.lazy: expected a table in memory"):
        fit(lazy)  # the memory backend (like any other estimator) needs the table
    eager = ParquetUnitsSource(ParquetUnitsParams(path=str(tmp_path), roles=ROLES)).load()
    assert len(eager.frame) == 3000 and eager.roles.time is None
    assert abs(fit(eager).estimate - ref) < 1e-10  # mean of per-period gaps == gap of the post mean
    f32 = fit(lazy, backend="columnar", dtype="float32")
    assert abs(f32.estimate - ref) < 1e-4  # float32 covariates: a different (rounded) problem


def test_columnar_rejects_bad_panels(tmp_path) -> None:
    frame = panel(n=200)
    frame.loc[1, "x1"] += 1.0
    frame.to_parquet(tmp_path / "p.parquet")
    lazy = ParquetUnitsSource(
        ParquetUnitsParams(path=str(tmp_path / "p.parquet"), roles=ROLES, lazy=True)
    ).load()
    with pytest.raises(DataError, match="time-invariant"):
        fit(lazy, backend="columnar")


def test_reader_any_row_order_and_row_group_boundaries(tmp_path) -> None:
    """Shuffled rows (factorised layout) and small row groups (sorted layout, units split across
    groups) give the in-memory answer; a covariate changing within a unit whose rows straddle a
    row-group boundary is still caught."""
    frame = panel(n=900, seed=6)
    ref = fit(Dataset(frame, ROLES)).estimate
    frame.sample(frac=1.0, random_state=0).to_parquet(
        tmp_path / "shuffled.parquet", row_group_size=301
    )
    frame.to_parquet(tmp_path / "sorted.parquet", row_group_size=250)  # 250 = 83 units + 1 row
    for name in ("shuffled", "sorted"):
        lazy = ParquetUnitsSource(
            ParquetUnitsParams(path=str(tmp_path / f"{name}.parquet"), roles=ROLES, lazy=True)
        ).load()
        assert abs(fit(lazy, backend="columnar").estimate - ref) < 1e-10, name
    bad = frame.copy()
    bad.loc[250, "x2"] += 1.0  # row 250 starts the second group; its unit began in the first
    bad.to_parquet(tmp_path / "bad.parquet", row_group_size=250)
    lazy = ParquetUnitsSource(
        ParquetUnitsParams(path=str(tmp_path / "bad.parquet"), roles=ROLES, lazy=True)
    ).load()
    with pytest.raises(DataError, match="time-invariant"):
        fit(lazy, backend="columnar")
