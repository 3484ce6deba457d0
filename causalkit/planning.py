"""Replications planned from a target Monte Carlo SE: batch boundaries and the stopping rule.

A cell with ``mc.target_mcse`` runs its replications in batches. After each batch (a
*boundary*: replications ``0..B-1`` all done) the MCSEs of the targeted measures are computed
from those rows, exactly as :func:`causalkit.montecarlo.summarise` reports them; the cell stops
when every target is met, when a targeted MCSE is undefined, or at ``mc.max_reps``. Otherwise
the next boundary is the replications the worst MCSE projects (MCSE ∝ 1/√R, with a 5% margin),
kept between 1.1 and 4 times the current one and capped at ``mc.max_reps``.

Each boundary is a function of the rows before it, and replication ``r`` always draws from
its own seed stream, so the boundaries, and where the cell stops, are the same for a given
seed whatever the number of workers, the chunking, or an interruption and resume.

References
----------
Morris, T.P., White, I.R. & Crowther, M.J. (2019). Using simulation studies to evaluate
statistical methods. *Stat. Med.* 38(11), section 5.3 and Table 6.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from causalkit.config import MCConfig

__all__ = [
    "MEASURES",
    "FIRST_BATCH",
    "RULE",
    "Plan",
    "Assessment",
    "checked_mcse",
]

MEASURES: tuple[str, ...] = ("bias", "coverage", "rmse", "emp_se")
"""Measures a target MCSE can be set for (keys of ``mc.target_mcse``)."""

FIRST_BATCH = 100
"""First batch of a planned cell when ``mc.reps`` is left at 1 (at most ``mc.max_reps``)."""

RULE = "projected-1.05/grow-1.1-4/v1"
"""Name of the boundary rule; part of a planned cell's identity (a new rule, a new identity)."""

_MARGIN = 1.05
_MIN_STEP = 10  # each boundary adds at least a tenth
_MAX_GROWTH = 4


def checked_mcse(measure: str, metrics: Mapping[str, float]) -> float:
    r"""Return the MCSE of ``measure`` that a target is checked against.

    ``bias_mcse``, ``rmse_mcse`` and ``emp_se_mcse`` as :func:`causalkit.montecarlo.summarise`
    computes them. For coverage, :math:`\sqrt{\tilde c(1-\tilde c)/R}` with :math:`\hat c`
    clamped to :math:`[1/R, 1-1/R]` (:math:`R` successful replications): ``coverage_mcse``
    itself except at :math:`\hat c \in \{0, 1\}`, where it is 0, which would stop a cell whose
    every interval covered as if its coverage were exact. NaN when undefined.
    """
    if measure != "coverage":
        return float(metrics.get(f"{measure}_mcse", math.nan))
    c = float(metrics.get("coverage", math.nan))
    n = float(metrics.get("reps", 0.0)) - float(metrics.get("n_failed", 0.0))
    if not math.isfinite(c) or n < 2:
        return math.nan
    c = min(max(c, 1 / n), 1 - 1 / n)
    return math.sqrt(c * (1 - c) / n)


@dataclass(frozen=True)
class Assessment:
    """The targets checked at a boundary.

    Attributes
    ----------
    achieved : dict of str to float
        Each targeted measure's :func:`checked_mcse` (NaN when undefined).
    met : bool
        Every target met.
    undefined : tuple of str
        Targeted measures whose MCSE is undefined (no truth, no intervals, too few
        successful replications): more replications cannot meet them.
    """

    achieved: dict[str, float]
    met: bool
    undefined: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    """The validated plan of a cell: targets, first batch and cap.

    Attributes
    ----------
    targets : tuple of (str, float)
        Measure and the MCSE wanted, in :data:`MEASURES` order.
    first : int
        The first boundary (``mc.reps``).
    max_reps : int
        The cap.
    """

    targets: tuple[tuple[str, float], ...]
    first: int
    max_reps: int

    @classmethod
    def of(cls, mc: MCConfig) -> Plan | None:
        """Return the plan of Monte Carlo settings ``mc``, or ``None`` without ``mc.target_mcse``."""
        targets = mc.target_mcse.targets()
        if not targets or mc.max_reps is None:
            return None
        return cls(tuple(targets.items()), mc.reps, mc.max_reps)

    @property
    def key(self) -> str:
        """Canonical text of the plan (with :data:`RULE`): part of the cell's identity."""
        return json.dumps(
            {"targets": dict(self.targets), "first": self.first, "max_reps": self.max_reps}
            | {"rule": RULE},
            sort_keys=True,
            separators=(",", ":"),
        )

    def assess(self, metrics: Mapping[str, float]) -> Assessment:
        """Check every target against the cell's metrics (:func:`checked_mcse`)."""
        achieved = {m: checked_mcse(m, metrics) for m, _ in self.targets}
        undefined = tuple(m for m, v in achieved.items() if math.isnan(v))
        met = not undefined and all(achieved[m] <= t for m, t in self.targets)
        return Assessment(achieved, met, undefined)

    def next_boundary(self, reps: int, metrics: Mapping[str, float]) -> int | None:
        """Return the next boundary after ``reps`` replications, or ``None`` to stop there.

        Stops when every target is met, when one is undefined, or at the cap. Otherwise
        projects the replications the worst target needs, ``1.05 R (MCSE/target)^2``, within
        ``[1.1 R, 4 R]`` (at least one more replication) and at most ``max_reps``.
        """
        found = self.assess(metrics)
        if found.met or found.undefined or reps >= self.max_reps:
            return None
        ratio = max(found.achieved[m] / t for m, t in self.targets)
        projected = math.ceil(_MARGIN * reps * ratio * ratio)
        least = reps + max(1, -(-reps // _MIN_STEP))  # ceil(1.1 R) in integers
        return min(self.max_reps, max(least, min(projected, _MAX_GROWTH * reps)))

    def report(self, metrics: Mapping[str, float]) -> dict[str, float]:
        """Metrics reporting the plan at the cell's final replications.

        ``target_mcse.<measure>`` and ``achieved_mcse.<measure>`` (:func:`checked_mcse`) for
        each target, ``max_reps``, ``targets_met`` (1 or 0) and ``reps_capped`` (1 when the
        cap stopped the cell with a target unmet). With neither, a targeted MCSE was
        undefined (NaN) and the cell stopped at that boundary.
        """
        found = self.assess(metrics)
        out: dict[str, float] = {}
        for m, t in self.targets:
            out[f"target_mcse.{m}"] = t
            out[f"achieved_mcse.{m}"] = found.achieved[m]
        out["max_reps"] = float(self.max_reps)
        out["targets_met"] = float(found.met)
        capped = not found.met and not found.undefined and metrics.get("reps") == self.max_reps
        out["reps_capped"] = float(capped)
        return out
