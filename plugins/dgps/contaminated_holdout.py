"""Randomised ad holdout whose holdout arm is contaminated by a bidder selecting on covariates."""

from __future__ import annotations

import functools
from typing import ClassVar

import numpy as np
from pydantic import Field, model_validator

from causalkit.contracts import Dataset, Estimand, PanelArrays, Params, Roles, Simulated, Truth
from causalkit_plugins.dgps.draws import bernoulli

__all__ = ["RANDOMISED_600", "ContaminatedHoldout", "ContaminatedHoldoutParams"]

RANDOMISED_600 = ("dgp.n_contaminated=0", "dgp.n_users=600", "dgp.n_exposed=300")
"""Overrides of a randomised 300-vs-300 holdout without contamination: the coverage world that
the difference in means (naive) and MicroSynth's paired bootstrap share, each with its own
estimand."""

COVARIATES = ("age", "device", "gender", "country_tier", "prior_engagement")


class OutcomeCoefficients(Params):
    """Log-odds coefficients of baseline (control) conversion."""

    intercept: float = -1.5
    age: float = 0.30
    prior_engagement: float = 0.60
    device: float = 0.20
    gender: float = -0.10
    country_tier: float = 0.20


class ContaminationCoefficients(Params):
    """Coefficients of the contamination score expit(.) over holdout users."""

    prior_engagement: float = 0.8
    age: float = 0.5
    country_tier: float = 0.4


class ContaminatedHoldoutParams(Params):
    """Parameters of the contaminated-holdout world (defaults: the MicroSynth document)."""

    n_users: int = Field(2000, ge=10)
    n_exposed: int = Field(1200, ge=1, description="users randomly assigned to the exposed arm")
    n_contaminated: int = Field(300, ge=0, description="holdout users who see the ad anyway")
    lift: float = Field(
        0.05, ge=-1, le=1, description="true additive lift in conversion probability"
    )
    p_device: float = Field(0.4, gt=0, lt=1)
    p_gender: float = Field(0.5, gt=0, lt=1)
    outcome: OutcomeCoefficients = Field(default_factory=OutcomeCoefficients)
    contamination: ContaminationCoefficients = Field(default_factory=ContaminationCoefficients)

    @model_validator(mode="after")
    def _sizes(self) -> ContaminatedHoldoutParams:
        if self.n_exposed >= self.n_users:
            raise ValueError(
                f"n_exposed must be below n_users={self.n_users}, got {self.n_exposed}"
            )
        if self.n_contaminated > self.n_users - self.n_exposed:
            raise ValueError(
                f"n_contaminated must be at most the holdout size {self.n_users - self.n_exposed}, "
                f"got {self.n_contaminated}"
            )
        return self


@functools.lru_cache(maxsize=4)
def _user_ids(n: int) -> np.ndarray:
    """User ids ``u00000, u00001, ...``: the same in every draw, so built once (read-only)."""
    ids = np.char.add("u", np.char.zfill(np.arange(n).astype(str), 5)).astype(object)
    ids.setflags(write=False)
    return ids


class ContaminatedHoldout:
    r"""Contaminated randomised holdout (MicroSynth document, "Simulation Study").

    Covariates: ``age, prior_engagement, country_tier`` ~ N(0, 1), ``device`` ~ Bern(0.4),
    ``gender`` ~ Bern(0.5). Control conversion
    :math:`p_0 = \operatorname{expit}(\beta_0 + x^\top\beta)` and treated
    :math:`p_1 = \min(p_0 + \delta, 1)`; :math:`Y(0) \sim \text{Bern}(p_0)`,
    :math:`Y(1) \sim \text{Bern}(p_1)` independently. ``n_exposed`` users are assigned to the
    exposed arm by a random permutation; ``n_contaminated`` holdout users are drawn without
    replacement with probability :math:`\propto \operatorname{expit}(0.8\,\text{eng} +
    0.5\,\text{age} + 0.4\,\text{tier})` and see the ad anyway. Output is a two-week long
    panel: week 0 (no exposure, outcome 0) and week 1 (observed outcome and exposure),
    handed over as panel arrays (the long table is built when read).

    Truth: the lift of exposure :math:`\delta` is the study's target (ATT = ATE = δ; the
    clip at 1 binds with probability below 1e-4 at the defaults). The ITT truth is
    :math:`\delta (1 - n_{contam}/n_{holdout})`.

    References
    ----------
    Robbins, M.W. & Davenport, S. (2021). microsynth. *J. Stat. Softw.* 97(2).
    """

    name: ClassVar[str] = "contaminated_holdout"
    Params: ClassVar[type[Params]] = ContaminatedHoldoutParams
    needs_base: ClassVar[bool] = False

    def __init__(self, params: ContaminatedHoldoutParams | None = None) -> None:
        self.params = params or ContaminatedHoldoutParams()

    def simulate(self, rng: np.random.Generator, base: Dataset | None = None) -> Simulated:
        from scipy.special import expit

        p = self.params
        n = p.n_users
        age = rng.standard_normal(n)
        eng = rng.standard_normal(n)
        device = bernoulli(rng, p.p_device, n).astype(float)
        gender = bernoulli(rng, p.p_gender, n).astype(float)
        tier = rng.standard_normal(n)
        b = p.outcome
        p0 = expit(
            b.intercept
            + b.age * age
            + b.prior_engagement * eng
            + b.device * device
            + b.gender * gender
            + b.country_tier * tier
        )
        p1 = np.clip(p0 + p.lift, 0.0, 1.0)
        y0 = bernoulli(rng, p0)
        y1 = bernoulli(rng, p1)

        assigned = np.zeros(n, dtype=bool)
        assigned[rng.permutation(n)[: p.n_exposed]] = True
        holdout = np.flatnonzero(~assigned)
        c = p.contamination
        score = expit(
            c.prior_engagement * eng[holdout]
            + c.age * age[holdout]
            + c.country_tier * tier[holdout]
        )
        picked = rng.choice(
            holdout.size, size=p.n_contaminated, replace=False, p=score / score.sum()
        )
        saw = assigned.copy()
        saw[holdout[picked]] = True
        y = np.where(saw, y1, y0).astype(np.int64)

        zeros = np.zeros(n, np.int64)
        panel = PanelArrays(
            unit="user_id",
            time="week",
            units=_user_ids(n),
            periods=np.array([0, 1]),
            columns={
                "age": age,
                "device": device,
                "gender": gender,
                "country_tier": tier,
                "prior_engagement": eng,
                "assigned_exposed": assigned.astype(np.int64),
                "saw_ad": np.column_stack([zeros, saw.astype(np.int64)]),
                "converted": np.column_stack([zeros, y]),
            },
        )
        roles = Roles(
            unit="user_id",
            time="week",
            treatment="saw_ad",
            assignment="assigned_exposed",
            outcome="converted",
            covariates=COVARIATES,
        )
        holdout_share = p.n_contaminated / (n - p.n_exposed)
        truth = Truth(
            values={
                "ATT": p.lift,
                "ATE": p.lift,
                "ITT": p.lift * (1 - holdout_share),
                "CACE": p.lift,
            },
            target=Estimand.ATT,
        )
        return Simulated(dataset=Dataset.from_panel(panel, roles), truth=truth)
