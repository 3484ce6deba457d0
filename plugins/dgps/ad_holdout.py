"""Randomised ad holdout whose leakage and sales are both driven by latent purchase intent."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
from pydantic import Field

from causalkit.contracts import Dataset, Params, Roles, Simulated, Truth

__all__ = ["AdHoldout", "AdHoldoutParams", "exposure_rate"]


class CovariateModel(Params):
    """An observed covariate: ``mean + on_intent * U + noise_sd * e``."""

    mean: float = 0.0
    on_intent: float = Field(0.0, description="loading on the latent intent U")
    noise_sd: float = Field(1.0, ge=0)


class SalesModel(Params):
    """Baseline sales ``intercept + age * age + income * income + on_intent * U``."""

    intercept: float = 10.0
    age: float = 0.10
    income: float = 0.05
    on_intent: float = Field(
        3.0, description="unobserved confounding: the intent's effect on sales"
    )
    noise_sd: float = Field(1.0, ge=0, description="SD of the period-specific sales noise")


class AdHoldoutParams(Params):
    """Parameters of the contaminated ad-holdout world (defaults: the MicroSynth document)."""

    n_per_arm: int = Field(
        5000, ge=2, description="users assigned to each of the ad and holdout arms"
    )
    delta: float = Field(1.0, description="true per-exposure effect on post-period sales")
    intent_on_exposure: float = Field(1.2, description="how strongly latent intent drives exposure")
    treat_arm_logit: float = Field(3.0, description="baseline exposure log-odds in the ad arm")
    holdout_arm_logit: float = Field(
        -2.2, description="baseline exposure (leakage) log-odds in the holdout arm"
    )
    age: CovariateModel = Field(
        default_factory=lambda: CovariateModel(mean=40.0, on_intent=7.0, noise_sd=5.0)
    )
    income: CovariateModel = Field(
        default_factory=lambda: CovariateModel(mean=55.0, on_intent=9.0, noise_sd=8.0)
    )
    sales: SalesModel = Field(default_factory=SalesModel)
    quadrature_nodes: int = Field(
        80, ge=10, description="Gauss-Hermite nodes for the population exposure rates"
    )


def exposure_rate(arm_logit: float, intent_on_exposure: float, nodes: int = 80) -> float:
    r"""Population exposure rate :math:`E[\operatorname{expit}(a + \gamma U)]`, :math:`U\sim N(0,1)`.

    Gauss-Hermite quadrature (probabilists' weights), exact to ~1e-12 at 80 nodes for the
    smooth logistic-normal integrand.
    """
    from scipy.special import expit

    x, wq = np.polynomial.hermite_e.hermegauss(nodes)
    return float(wq @ expit(arm_logit + intent_on_exposure * x) / np.sqrt(2 * np.pi))


class AdHoldout:
    r"""Contaminated ad holdout with an unobserved confounder (MicroSynth document, "When Balancing Is Not Enough").

    Latent purchase intent :math:`U_i \sim N(0,1)` is never observed. Observed covariates
    are noisy proxies, :math:`\text{age} = 40 + 7U + 5e_1`, :math:`\text{income} = 55 + 9U + 8e_2`.
    Exactly ``n_per_arm`` users are randomised to each arm (:math:`Z_i`). Exposure leaks and
    is selected on intent:

    .. math:: D_i \sim \text{Bern}\bigl(\operatorname{expit}(a_{Z_i} + \gamma U_i)\bigr),
        \quad a_1 = 3,\ a_0 = -2.2,\ \gamma = 1.2 .

    Sales in the pre period (``time`` 0) and post period (``time`` 1) are

    .. math:: b_i = 10 + 0.1\,\text{age}_i + 0.05\,\text{income}_i + 3U_i,\quad
        Y_{i0} = b_i + \varepsilon_{i0},\quad Y_{i1} = b_i + \delta D_i + \varepsilon_{i1},

    with :math:`\varepsilon \sim N(0, 1)`. Every constant is a parameter. Columns: ``user_id``,
    ``time``, ``sales``, ``age``, ``income``, ``assigned``, ``exposed`` and the two
    treatment codings that are 1 only in the post period: ``D_itt`` (assigned arm, the
    ``assignment`` role) and ``D_att`` (actually exposed, the ``treatment`` role).

    Truth (population values): the per-exposure effect is homogeneous, so
    ATT = ATE = CACE = :math:`\delta`; the compliance gap is
    :math:`\pi = E[\operatorname{expit}(a_1+\gamma U)] - E[\operatorname{expit}(a_0+\gamma U)]`
    (Gauss-Hermite), and ITT = :math:`\delta\pi`. ``Truth.target`` is unset: each estimator
    is judged against its own estimand, so the as-treated contrasts (naive, MicroSynth ATT)
    show the selection bias that balancing on age and income cannot remove.

    References
    ----------
    Angrist, J.D., Imbens, G.W. & Rubin, D.B. (1996). Identification of causal effects using
    instrumental variables. *JASA* 91(434).
    """

    name: ClassVar[str] = "ad_holdout"
    Params: ClassVar[type[Params]] = AdHoldoutParams
    needs_base: ClassVar[bool] = False

    def __init__(self, params: AdHoldoutParams | None = None) -> None:
        self.params = params or AdHoldoutParams()

    def simulate(self, rng: np.random.Generator, base: Dataset | None = None) -> Simulated:
        from scipy.special import expit

        p = self.params
        n = 2 * p.n_per_arm
        intent = rng.standard_normal(n)
        age = p.age.mean + p.age.on_intent * intent + p.age.noise_sd * rng.standard_normal(n)
        income = (
            p.income.mean + p.income.on_intent * intent + p.income.noise_sd * rng.standard_normal(n)
        )
        assigned = np.zeros(n, dtype=np.int64)
        assigned[rng.permutation(n)[: p.n_per_arm]] = 1
        logit = (
            np.where(assigned == 1, p.treat_arm_logit, p.holdout_arm_logit)
            + p.intent_on_exposure * intent
        )
        exposed = (rng.random(n) < expit(logit)).astype(np.int64)
        s = p.sales
        baseline = s.intercept + s.age * age + s.income * income + s.on_intent * intent
        sales = baseline[:, None] + s.noise_sd * rng.standard_normal((n, 2))
        sales[:, 1] += p.delta * exposed
        zeros = np.zeros(n, dtype=np.int64)
        frame = pd.DataFrame(
            {
                "user_id": np.repeat(np.arange(n), 2),
                "time": np.tile(np.array([0, 1], dtype=np.int64), n),
                "sales": sales.ravel(),
                "age": np.repeat(age, 2),
                "income": np.repeat(income, 2),
                "assigned": np.repeat(assigned, 2),
                "exposed": np.repeat(exposed, 2),
                "D_itt": np.column_stack([zeros, assigned]).ravel(),
                "D_att": np.column_stack([zeros, exposed]).ravel(),
            }
        )
        roles = Roles(
            unit="user_id",
            time="time",
            treatment="D_att",
            assignment="D_itt",
            outcome="sales",
            covariates=("age", "income"),
        )
        gap = exposure_rate(
            p.treat_arm_logit, p.intent_on_exposure, p.quadrature_nodes
        ) - exposure_rate(p.holdout_arm_logit, p.intent_on_exposure, p.quadrature_nodes)
        truth = Truth(
            values={
                "ATT": p.delta,
                "ATE": p.delta,
                "CACE": p.delta,
                "ITT": p.delta * gap,
                "compliance_gap": gap,
            }
        )
        return Simulated(dataset=Dataset(frame, roles), truth=truth)
