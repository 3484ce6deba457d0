"""A long panel's treatment is an exposure indicator: a group indicator is refused on every path.

A treatment column that is 1 in every period of the treated units (the group, not the
exposure) used to put the onset at the first period and average the pre-periods into the
"post" effect. It now fails with one line saying what the column must hold, whether the
unit table is built from an unsorted long table, a sorted one (the fast path) or panel
arrays, and for every estimator that reads it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from causalkit.contracts import Dataset, PanelArrays, Roles
from causalkit.errors import DataError
from causalkit.panel import single_onset, unit_table
from causalkit.registry import default_registry
from causalkit_plugins.dgps.contaminated_holdout import ContaminatedHoldout

ROLES = Roles(unit="id", time="t", treatment="d", assignment="z", outcome="y", covariates=("x",))
EXPECTED = "roles.treatment: expected 1 only in exposed periods"


def _panel(n: int = 60, T: int = 4, t0: int = 2, seed: int = 0) -> pd.DataFrame:
    """Sorted long panel: group ``g`` exposed from period ``t0``; the effect is 1 after it."""
    rng = np.random.default_rng(seed)
    g = np.arange(n) < n // 3
    x = rng.standard_normal(n)
    post = np.arange(T) >= t0
    exposure = g[:, None] & post[None, :]
    y = x[:, None] + rng.standard_normal((n, T)) + 1.0 * exposure
    return pd.DataFrame(
        {
            "id": np.repeat(np.arange(n), T),
            "t": np.tile(np.arange(T) + 2020, n),
            "d": exposure.ravel().astype(np.int64),
            "z": np.repeat(g, T).astype(np.int64),
            "y": y.ravel(),
            "x": np.repeat(x, T),
        }
    )


def _as_group(frame: pd.DataFrame) -> pd.DataFrame:
    """The same panel with the treatment column holding the group (1 in every period)."""
    return frame.assign(d=frame["z"])


def _arrays(frame: pd.DataFrame) -> PanelArrays:
    T = frame["t"].nunique()
    n = len(frame) // T
    cols = {c: frame[c].to_numpy().reshape(n, T) for c in ("d", "z", "y")}
    return PanelArrays(
        "id",
        "t",
        frame["id"].to_numpy()[::T],
        np.sort(frame["t"].unique()),
        {"x": frame["x"].to_numpy()[::T], **cols},
    )


@pytest.mark.parametrize("layout", ["sorted", "shuffled", "arrays"])
def test_group_indicator_as_treatment_is_refused_on_every_path(layout: str) -> None:
    bad = _as_group(_panel())
    if layout == "sorted":
        data = Dataset(bad, ROLES)
    elif layout == "shuffled":
        data = Dataset(bad.sample(frac=1.0, random_state=1), ROLES)
    else:
        data = Dataset.from_panel(_arrays(bad), ROLES)
    with pytest.raises(DataError, match=EXPECTED) as info:
        unit_table(data)
    msg = str(info.value)
    assert "\n" not in msg and "G * (time >= t0)" in msg and "4 periods" in msg


@pytest.mark.parametrize("estimator", ["naive", "itt", "microsynth"])
def test_every_panel_estimator_refuses_a_group_indicator(estimator: str) -> None:
    cls = default_registry().get("estimator", estimator)
    with pytest.raises(DataError, match=EXPECTED):
        cls(cls.Params()).fit(Dataset(_as_group(_panel()), ROLES), np.random.default_rng(0))


def test_exposure_built_from_the_group_recovers_the_post_effect() -> None:
    frame = _panel(n=3000, seed=4)
    table = unit_table(Dataset(frame, ROLES))
    assert list(table.pre_periods) == [2020, 2021] and list(table.post_periods) == [2022, 2023]
    # The documented repair: treatment = G * (time >= t0), from the group column.
    fixed = _as_group(frame).assign(d=lambda f: f["z"] * (f["t"] >= 2022))
    again = unit_table(Dataset(fixed, ROLES))
    np.testing.assert_array_equal(again.y_post, table.y_post)
    naive = default_registry().get("estimator", "naive")
    est = naive(naive.Params()).fit(Dataset(fixed, ROLES), np.random.default_rng(0)).estimate
    assert abs(est - 1.0) < 0.15  # the post effect; the group coding would give about 0.5


def test_itt_without_treatment_needs_an_exposure_column() -> None:
    roles = ROLES.model_copy(update={"treatment": None})
    with pytest.raises(DataError, match="roles.assignment: expected 1 only in exposed periods"):
        unit_table(Dataset(_panel(), roles), group_role="assignment")


def test_constant_assignment_beside_an_exposure_treatment_is_fine() -> None:
    sim = ContaminatedHoldout().simulate(np.random.default_rng(2), None)
    table = unit_table(sim.dataset, group_role="assignment")
    assert table.pre_periods.size == 1 and table.post_periods.size == 1


def test_one_period_and_cross_sections_are_unaffected() -> None:
    one = _panel(T=1, t0=0)
    table = unit_table(Dataset(one, ROLES))
    assert table.pre_periods.size == 0 and table.post_periods.size == 1
    on = np.array([[True], [False]])
    assert single_onset(on, np.array([7]), "treatment") == 0
