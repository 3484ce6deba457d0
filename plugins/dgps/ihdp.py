"""Hill's (2011) semi-synthetic IHDP worlds: real covariates and treatment, simulated outcomes."""

from __future__ import annotations

from functools import lru_cache
from typing import ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from causalkit.contracts import Dataset, Params, Roles, Simulated, Truth
from causalkit_plugins.dgps.real_covariates import packaged_table

__all__ = ["IHDP", "IHDPParams", "ihdp_sample", "CONTINUOUS", "BINARY"]

CONTINUOUS = ("bw", "b.head", "preterm", "birth.o", "nnhealth", "momage")
"""The six continuous covariates, standardised over the 747 children."""
BINARY = (
    "sex",
    "twin",
    "b.marr",
    "mom.lths",
    "mom.hs",
    "mom.scoll",
    "cig",
    "first",
    "booze",
    "drugs",
    "work.dur",
    "prenatal",
    *(f"site{k}" for k in range(1, 8)),
)
"""The 19 binary covariates (site8 is the reference site)."""

SURFACES = {
    "A": ((0.0, 1.0, 2.0, 3.0, 4.0), (0.5, 0.2, 0.15, 0.1, 0.05)),
    "B": ((0.0, 0.1, 0.2, 0.3, 0.4), (0.6, 0.1, 0.1, 0.1, 0.1)),
}
"""Values of the coefficients and their probabilities (Hill 2011, sec. 4.1)."""


@lru_cache(maxsize=1)
def _sample() -> tuple[np.ndarray, np.ndarray]:
    d = packaged_table("ihdp_hill2011.csv.gz")
    d = d[(d["treat"] == 0) | (d["momwhite"] == 1)]
    x = d[[*CONTINUOUS, *BINARY]].to_numpy(dtype=np.float64)
    c = slice(0, len(CONTINUOUS))
    x[:, c] = (x[:, c] - x[:, c].mean(axis=0)) / x[:, c].std(axis=0)
    return x, d["treat"].to_numpy(dtype=bool)


def ihdp_sample() -> tuple[pd.DataFrame, np.ndarray]:
    """Hill's 747 children: the 25 covariates (continuous ones standardised) and the treatment."""
    x, treat = _sample()
    return pd.DataFrame(x, columns=[*CONTINUOUS, *BINARY]), treat.copy()


class IHDPParams(Params):
    """Parameters of the ``ihdp`` world."""

    surface: Literal["A", "B"] = Field(
        "A", description="A: linear, constant effect 4; B: exponential, heterogeneous, CATT 4"
    )
    coef_seed: int = Field(
        2011, ge=0, description="seed of the world's coefficients beta (drawn once per world)"
    )


class IHDP:
    r"""Hill's (2011) response surfaces A and B on the IHDP covariates (data from EconML 0.17, shipped).

    Covariates and treatment are those of the Infant Health and Development Program as
    Hill (2011, *JCGS* 20(1):217-240, sec. 4) uses them: of the 985 children, the treated
    children of non-white mothers are dropped, leaving 747 (139 treated, 608 controls),
    so that the treated no longer resemble the controls. :math:`X` holds 25 covariates: the
    six continuous ones (``bw b.head preterm birth.o nnhealth momage``) standardised over
    the 747, and 19 binary ones (``sex twin b.marr mom.lths mom.hs mom.scoll cig first
    booze drugs work.dur prenatal`` and seven site indicators ``site1..site7``); no
    intercept column. The treatment is the real one, the same in every replication.

    Outcomes, drawn anew in every replication, independently across units and arms:

    * surface A (linear, constant effect): :math:`Y(0) \sim N(X\beta_A, 1)`,
      :math:`Y(1) \sim N(X\beta_A + 4, 1)`, entries of :math:`\beta_A` drawn from
      (0, 1, 2, 3, 4) with probabilities (.5, .2, .15, .1, .05);
    * surface B (exponential, heterogeneous): :math:`Y(0) \sim N(\exp((X + W)\beta_B), 1)`,
      :math:`Y(1) \sim N(X\beta_B - \omega_B, 1)`, :math:`W` the matrix of 0.5s (an offset),
      entries of :math:`\beta_B` drawn from (0, .1, .2, .3, .4) with probabilities
      (.6, .1, .1, .1, .1), and :math:`\omega_B` chosen so that the conditional average
      effect on the treated (CATT) over the 139 treated children is 4.

    :math:`\beta` is drawn once per world from ``coef_seed``, so the replications of a cell
    differ only in their outcome noise and share one truth; another ``coef_seed`` is
    another world (drawing :math:`\beta` per replication would pool worlds with different
    truths into one cell's bias and coverage). The observed outcome is :math:`Y = Y(T)`.

    Truths are conditional on the 747 children's covariates (Hill's estimand): the CATE
    :math:`\mu_1(x) - \mu_0(x)` averaged over the sample, ATE over all, ATT (CATT) over the
    treated, ATC over the controls. Surface A: 4 for all three. Surface B: ATT = 4 by
    construction; ATE and ATC follow from :math:`\beta_B`. A population truth exists for
    surface A only (4 for any covariate distribution); for surface B the superpopulation
    average of :math:`X\beta_B - \omega_B - \exp((X+W)\beta_B)` is unknown beyond the
    sample, so the sample's conditional truth is the one reported.

    Covariates and treatment are fixed, so the replications' spread is the outcome noise's
    alone; standard errors aimed at new samples of children can exceed it (surface B,
    ``ols`` ATT). With 139 treated children and 26 coefficients per arm, extrapolating the
    treated regression to the controls is hard: surface A, ``ols`` ATE (per arm), 400
    replications: empirical SE 0.128 (the exact conditional SD is 0.132), mean model SE
    0.111, coverage 0.90; ATT: 0.105 against 0.102, coverage 0.95.

    Roles: outcome ``y``, treatment ``treat``, covariates the 25 columns (continuous ones
    standardised).
    """

    name: ClassVar[str] = "ihdp"
    Params: ClassVar[type[Params]] = IHDPParams
    needs_base: ClassVar[bool] = False

    def __init__(self, params: IHDPParams | None = None) -> None:
        self.params = params or IHDPParams()

    def means(self) -> tuple[np.ndarray, np.ndarray]:
        r"""The conditional means :math:`\mu_0(x_i), \mu_1(x_i)` of the 747 children in this world."""
        x, treat = _sample()
        values, probs = SURFACES[self.params.surface]
        beta = np.random.default_rng(self.params.coef_seed).choice(values, size=x.shape[1], p=probs)
        xb = x @ beta
        if self.params.surface == "A":
            return xb, xb + 4.0
        mu0 = np.exp((x + 0.5) @ beta)
        omega = float((xb - mu0)[treat].mean()) - 4.0
        return mu0, xb - omega

    def simulate(self, rng: np.random.Generator, base: Dataset | None = None) -> Simulated:
        frame, treat = ihdp_sample()
        mu0, mu1 = self.means()
        eps = rng.standard_normal((2, len(treat)))
        frame["treat"] = treat.astype(np.int64)
        frame["y"] = np.where(treat, mu1 + eps[1], mu0 + eps[0])
        cate = mu1 - mu0
        truth = Truth(
            {
                "ATE": float(cate.mean()),
                "ATT": float(cate[treat].mean()),
                "ATC": float(cate[~treat].mean()),
            }
        )
        roles = Roles(outcome="y", treatment="treat", covariates=(*CONTINUOUS, *BINARY))
        return Simulated(Dataset(frame, roles), truth)
