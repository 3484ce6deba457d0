"""Per-unit inputs of simplex MicroSynth: the core unit table plus lagged outcomes as balance columns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from causalkit.contracts import Dataset
from causalkit.errors import ConfigError
from causalkit.panel import UnitTable, unit_table

__all__ = ["SimplexInputs", "simplex_inputs"]


@dataclass(frozen=True)
class SimplexInputs:
    """The unit table plus the balance columns built from pre-period outcomes.

    Attributes
    ----------
    table : UnitTable
        One row per unit.
    lags : ndarray, shape (n, k)
        Pre-period outcomes balanced as extra covariates, named ``"<outcome>@<period>"``.
    lag_names : tuple of str
        Their names.
    """

    table: UnitTable
    lags: np.ndarray
    lag_names: tuple[str, ...]


def _pre_outcomes(
    data: Dataset, group_role: Literal["treatment", "assignment"], who: str, outcome: str
) -> np.ndarray:
    """Pre-period outcome matrix of column ``outcome`` (units in the table's order)."""
    roles = data.roles.model_copy(update={"outcome": outcome, "covariates": ()})
    return unit_table(data.with_roles(roles), group_role=group_role, who=who).y_pre


def simplex_inputs(
    data: Dataset,
    group_role: Literal["treatment", "assignment"],
    lag_periods: Sequence[int | float | str],
    match_outcomes: Sequence[str],
    who: str = "microsynth",
) -> SimplexInputs:
    """Unit table and lagged-outcome balance columns.

    ``lag_periods`` are pre-period labels; the outcomes ``match_outcomes`` (default: the
    outcome role) at those periods become balance constraints, jointly for all outcomes
    (``match_outcomes`` without ``lag_periods`` is rejected by the parameter model).
    """
    table = unit_table(data, group_role=group_role, who=who)
    if not lag_periods:
        return SimplexInputs(table, np.empty((table.n, 0)), ())
    pre = list(table.pre_periods)
    pos = []
    for p in lag_periods:
        hits = [i for i, q in enumerate(pre) if q == p]
        if not hits:
            raise ConfigError(
                "estimator.outcome_lag_periods", f"pre-period labels (one of {pre[:8]})", repr(p)
            )
        pos.append(hits[0])
    assert data.roles.outcome is not None  # unit_table required it
    outcomes = list(match_outcomes) or [data.roles.outcome]
    missing = [o for o in outcomes if o not in data.columns]
    if missing:
        raise ConfigError(
            "estimator.match_outcomes", "columns of the table", ", ".join(map(repr, missing))
        )
    cols, names = [], []
    for o in outcomes:
        y_pre = table.y_pre if o == data.roles.outcome else _pre_outcomes(data, group_role, who, o)
        for p, i in zip(lag_periods, pos, strict=True):
            cols.append(y_pre[:, i])
            names.append(f"{o}@{p}")
    return SimplexInputs(table, np.column_stack(cols), tuple(names))
