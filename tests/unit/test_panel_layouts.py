"""The long-to-unit reshape in every row order: same unit table, same fit, same errors.

Rows sorted by period then unit (weekly exports appended) are read as views of the frame's
columns, like rows sorted by unit then period; any other order factorises the unit ids once
and gathers each column once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from causalkit.contracts import Dataset, Roles
from causalkit.errors import DataError
from causalkit.panel import period_blocks, unit_table
from causalkit_plugins.estimators.microsynth.estimator import MicroSynth, MicroSynthParams
from causalkit_plugins.estimators.microsynth.simplex import _gather

ROLES = Roles(
    unit="id", time="t", treatment="d", assignment="z", outcome="y", covariates=("x1", "x2")
)
TABLE = ("units", "group", "treatment", "assignment", "X", "y_pre", "y_post")


def _by_unit(n: int = 300, seed: int = 0, ids: str = "int") -> pd.DataFrame:
    """A three-period long table sorted by unit, then period; exposure from period 3."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.standard_normal(n), rng.integers(0, 4, n).astype(float)
    z = rng.random(n) < 1 / (1 + np.exp(-x1))
    unit = rng.permutation(10 * n)[:n] if ids == "int" else np.array([f"u{i}" for i in range(n)])
    return pd.DataFrame(
        {
            "id": np.repeat(unit, 3),
            "t": np.tile([2021, 2022, 2023], n),
            "x1": np.repeat(x1, 3),
            "x2": np.repeat(x2, 3),
            "z": np.repeat(z.astype(np.int64), 3),
            "d": (np.repeat(z, 3) & (np.tile([0, 0, 1], n) == 1)).astype(np.int64),
            "y": rng.standard_normal(3 * n) + np.repeat(x1, 3),
        }
    )


def _by_period(frame: pd.DataFrame) -> pd.DataFrame:
    """The same rows, period-major, units in the same order within every period."""
    return frame.iloc[np.arange(len(frame)).reshape(-1, 3).T.ravel()].reset_index(drop=True)


def _same_table(a: object, b: object) -> None:
    for name in TABLE:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in ("pre_periods", "post_periods"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@pytest.mark.parametrize("ids", ["int", "str"])
def test_period_major_rows_are_read_as_views_and_give_the_same_table(ids: str) -> None:
    frame = _by_unit(ids=ids)
    weekly = _by_period(frame)
    assert period_blocks(weekly["id"].to_numpy(), weekly["t"].to_numpy()) is not None
    a, b = unit_table(Dataset(frame, ROLES)), unit_table(Dataset(weekly, ROLES))
    _same_table(a, b)
    assert np.shares_memory(b.y_post, weekly["y"].to_numpy())  # no scatter, no gather
    assert b.X.flags.f_contiguous


def test_any_other_order_gives_the_same_table_in_first_appearance_order() -> None:
    frame = _by_unit()
    weekly = _by_period(frame)
    # Period blocks whose unit order differs: not the period-major layout, factorised.
    n = len(frame) // 3
    swap = np.r_[np.arange(n), n + np.roll(np.arange(n), 1), 2 * n + np.arange(n)]
    for other in (weekly.iloc[swap], frame.sample(frac=1.0, random_state=3)):
        assert period_blocks(other["id"].to_numpy(), other["t"].to_numpy()) is None
        b = unit_table(Dataset(other.reset_index(drop=True), ROLES))
        a = unit_table(Dataset(frame, ROLES))
        order = pd.Index(b.units).get_indexer(a.units)
        for name in TABLE:
            np.testing.assert_array_equal(
                np.asarray(getattr(a, name)), np.asarray(getattr(b, name))[order], err_msg=name
            )


def test_fit_is_the_same_in_every_row_order() -> None:
    frame = _by_unit(n=2000, seed=1)
    roles = ROLES.model_copy(update={"assignment": None})
    fits = [
        MicroSynth(MicroSynthParams()).fit(Dataset(f, roles), np.random.default_rng(0))
        for f in (frame, _by_period(frame), frame.sample(frac=1.0, random_state=5))
    ]
    assert fits[0].diagnostics["converged"] and fits[0].diagnostics["max_abs_smd_after"] < 1e-8
    assert fits[1].estimate == fits[0].estimate  # same units in the same order: same bits
    np.testing.assert_allclose(fits[2].estimate, fits[0].estimate, rtol=1e-12)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.assign(x1=f["x1"].where(f.index != 7)), "no missing values in 'x1'"),
        (lambda f: f.assign(x2=f["x2"] + (f.index == len(f) - 1)), "time-invariant"),
        (lambda f: f.assign(y=f["y"].where(f.index != 5)), "no missing values in 'y'"),
        (lambda f: f.assign(z=f["z"] * 2), "binary 0/1"),
    ],
    ids=["nan covariate", "varying covariate", "nan outcome", "non-binary flag"],
)
def test_period_major_errors_are_the_table_errors(change, message: str) -> None:
    weekly = change(_by_period(_by_unit()))
    shuffled = weekly.sample(frac=1.0, random_state=1).reset_index(drop=True)
    errors = []
    for f in (weekly, shuffled):
        with pytest.raises(DataError, match=message) as err:
            unit_table(Dataset(f, ROLES), group_role="assignment")
        errors.append(str(err.value))
    assert errors[0] == errors[1]


def test_period_major_duplicates_and_gaps_are_refused() -> None:
    weekly = _by_period(_by_unit())
    n = len(weekly) // 3
    dup = weekly.assign(id=np.where(weekly.index == n + 1, weekly["id"].iloc[n], weekly["id"]))
    with pytest.raises(DataError, match="duplicated"):
        unit_table(Dataset(dup, ROLES))
    with pytest.raises(DataError, match="balanced panel"):
        unit_table(Dataset(weekly.drop(index=[n + 4]).reset_index(drop=True), ROLES))


def test_gather_of_a_column_major_block_equals_the_row_gather() -> None:
    rng = np.random.default_rng(0)
    block = rng.standard_normal((5000, 4))
    idx = np.flatnonzero(rng.random(5000) < 0.3)
    want = block[idx]
    for b in (block, np.asfortranarray(block)):
        out = np.empty((idx.size, 4), order="F")
        _gather(b, idx, out)
        np.testing.assert_array_equal(out, want)


def test_parquet_reader_codes_period_major_rows_by_position(tmp_path, monkeypatch) -> None:
    """The streaming reader takes period-major rows without hashing unit ids: same arrays."""
    from causalkit_plugins.estimators.microsynth import unit_arrays

    frame = _by_unit(n=500, seed=2)
    roles = ROLES.model_copy(update={"assignment": None})
    frame.to_parquet(tmp_path / "by_unit.parquet", row_group_size=200)
    weekly = _by_period(frame)
    weekly.to_parquet(tmp_path / "weekly.parquet", row_group_size=170)
    want = unit_arrays.read_unit_arrays(tmp_path / "by_unit.parquet", roles)

    def no_hashing(*args: object, **kwargs: object) -> None:
        raise AssertionError("factorised")

    monkeypatch.setattr(unit_arrays.pd, "factorize", no_hashing)
    got = unit_arrays.read_unit_arrays(tmp_path / "weekly.parquet", roles)
    for name in ("Xc", "Xt", "Yc", "Yt", "group", "post_periods"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    weekly.assign(x1=weekly["x1"] + (weekly.index == 1200)).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(DataError, match="time-invariant"):
        unit_arrays.read_unit_arrays(tmp_path / "bad.parquet", roles)
