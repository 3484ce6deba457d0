"""Datasets held as panel arrays: same unit tables, estimates and errors as their long table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from causalkit.contracts import Dataset, PanelArrays, Roles
from causalkit.errors import DataError
from causalkit.panel import unit_table
from causalkit.registry import default_registry
from causalkit.testing import check_dgp, check_panel_arrays
from causalkit_plugins.dgps.contaminated_holdout import ContaminatedHoldout

ROLES = Roles(
    unit="id", time="t", treatment="d", assignment="z", outcome="y", covariates=("x1", "x2")
)


def _panel(n: int = 40, seed: int = 0, **override: np.ndarray) -> PanelArrays:
    rng = np.random.default_rng(seed)
    z = (rng.random(n) < 0.5).astype(np.int64)
    d = np.column_stack([np.zeros(n, np.int64), np.zeros(n, np.int64), z])
    cols = {
        "x1": rng.standard_normal(n),
        "x2": rng.integers(0, 3, n).astype(float),
        "z": z,
        "d": d,
        "y": rng.standard_normal((n, 3)),
    }
    cols.update(override)
    return PanelArrays(
        "id", "t", np.array([f"u{i}" for i in range(n)], dtype=object), np.array([1, 2, 3]), cols
    )


def _long_frame(p: PanelArrays) -> pd.DataFrame:
    """The long table written out row by row (independent of PanelArrays.to_frame)."""
    rows = []
    for i, u in enumerate(p.units):
        for k, t in enumerate(p.periods):
            row = {"id": u, "t": t}
            for name, v in p.columns.items():
                row[name] = v[i, k] if v.ndim == 2 else v[i]
            rows.append(row)
    return pd.DataFrame(rows)


def test_to_frame_is_the_long_table() -> None:
    p = _panel()
    got, want = p.to_frame(), _long_frame(p)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    assert Dataset.from_panel(p, ROLES).columns == list(want.columns)


def test_contaminated_holdout_frame_unchanged_and_lazy() -> None:
    check_dgp(ContaminatedHoldout)
    sim = ContaminatedHoldout().simulate(np.random.default_rng(3), None)
    assert sim.dataset._frame is None  # nothing built yet
    frame = sim.dataset.frame
    assert len(frame) == 2 * 2000 and list(frame["user_id"][:4]) == [
        "u00000",
        "u00000",
        "u00001",
        "u00001",
    ]
    assert (frame.loc[frame["week"] == 0, ["saw_ad", "converted"]] == 0).all().all()


@pytest.mark.parametrize("estimator", ["naive", "itt", "microsynth"])
def test_estimates_equal_with_and_without_panel_arrays(estimator: str) -> None:
    sim = ContaminatedHoldout().simulate(np.random.default_rng(11), None)
    cls = default_registry().get("estimator", estimator)
    lazy = sim.dataset
    a = cls(cls.Params()).fit(lazy, np.random.default_rng(0))
    assert lazy._frame is None, "the estimator built the long table it did not need"
    b = cls(cls.Params()).fit(Dataset(lazy.frame, lazy.roles), np.random.default_rng(0))
    assert a.estimate == b.estimate
    assert a.diagnostics == b.diagnostics


def test_unit_tables_agree_for_both_groupings() -> None:
    check_panel_arrays(Dataset.from_panel(_panel(), ROLES))


def _errors(p: PanelArrays, role: str = "treatment") -> tuple[str, str]:
    out = []
    for data in (Dataset.from_panel(p, ROLES), Dataset(p.to_frame(), ROLES)):
        with pytest.raises(DataError) as exc:
            unit_table(data, group_role=role)  # type: ignore[arg-type]
        out.append(str(exc.value))
    return out[0], out[1]


@pytest.mark.parametrize(
    "override",
    [
        {"x1": np.r_[np.nan, np.zeros(39)]},
        {"z": np.r_[2, np.zeros(39, np.int64)]},
        {"y": np.r_[[[np.nan, 0.0, 0.0]], np.zeros((39, 3))]},
        {"x2": np.column_stack([np.zeros(40), np.zeros(40), np.r_[1.0, np.zeros(39)]])},
        {
            "d": np.column_stack(
                [np.zeros(40), np.r_[1, np.zeros(39)], np.r_[1, 1, np.zeros(38)]]
            ).astype(np.int64)
        },
        {"z": np.zeros(40, np.int64), "d": np.zeros((40, 3), np.int64)},
    ],
    ids=[
        "nan covariate",
        "non-binary assignment",
        "nan outcome",
        "time-varying covariate",
        "staggered onset",
        "nobody treated",
    ],
)
def test_bad_panels_give_the_table_errors(override: dict[str, np.ndarray]) -> None:
    role = "assignment" if "z" in override and "d" not in override else "treatment"
    got, want = _errors(_panel(**override), role)
    assert got == want


def test_with_roles_keeps_the_arrays() -> None:
    data = Dataset.from_panel(_panel(), ROLES)
    other = data.with_roles(ROLES.model_copy(update={"covariates": ("x1",)}))
    assert other.panel is data.panel and unit_table(other).X.shape == (40, 1)


@pytest.mark.parametrize("seed", range(4))
def test_bernoulli_equals_numpys_binomial_stream(seed: int) -> None:
    """Same values as rng.binomial(1, p) from the same stream, and the stream left in the same state."""
    from causalkit_plugins.dgps.draws import bernoulli

    p = np.random.default_rng(100 + seed).random(50_000)
    p[:6] = [0.5, np.nextafter(0.5, 1), np.nextafter(0.5, 0), 1e-300, np.nextafter(1, 0), 0.25]
    with_edges = np.r_[p[:100], 0.0, 1.0, p[100:200]]
    for probs, size in ((p, None), (with_edges, None), (0.4, 3000), (0.5, 3000), (0.7, 3000)):
        a, b = np.random.default_rng(seed), np.random.default_rng(seed)
        got = bernoulli(a, probs, size)
        want = b.binomial(1, probs, size) == 1
        assert got.dtype == bool and np.array_equal(got, want)
        assert a.random() == b.random()


@pytest.mark.parametrize("role", ["treatment", "assignment"])
def test_sorted_long_table_reshape_equals_the_general_one(role: str) -> None:
    """The core reshape's sorted-layout path (views) and its factorised path give the same table."""
    frame = _long_frame(_panel(n=60, seed=4))
    shuffled = frame.sample(frac=1.0, random_state=2)
    a = unit_table(Dataset(frame, ROLES), group_role=role)  # type: ignore[arg-type]
    b = unit_table(Dataset(shuffled, ROLES), group_role=role)  # type: ignore[arg-type]
    assert np.shares_memory(a.y_post, frame["y"].to_numpy())  # the sorted path: no scatter
    order = pd.Index(b.units).get_indexer(a.units)  # units come in order of first appearance
    for name in ("units", "group", "treatment", "assignment", "X", "y_pre", "y_post"):
        np.testing.assert_array_equal(
            np.asarray(getattr(a, name)), np.asarray(getattr(b, name))[order], err_msg=name
        )
    for name in ("pre_periods", "post_periods"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    varying = frame.assign(x1=frame["x1"] + np.arange(len(frame)) % 2)
    with pytest.raises(DataError, match="time-invariant"):
        unit_table(Dataset(varying, ROLES), group_role=role)  # type: ignore[arg-type]
