"""The 2016 Atlantic Causal Inference Conference data challenge worlds (Dorie et al. 2019)."""

from __future__ import annotations

from functools import lru_cache
from typing import ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from causalkit.contracts import Dataset, Params, Roles, Simulated, Truth
from causalkit_plugins.dgps.real_covariates import numeric_covariates, packaged_table

__all__ = ["ACIC2016", "ACIC2016Params", "acic2016_covariates", "acic2016_setting"]


@lru_cache(maxsize=1)
def _covariates() -> pd.DataFrame:
    x = packaged_table("acic2016_x.csv.gz")
    design, _ = numeric_covariates(x, tuple(x.columns), "dgp")
    return design


def acic2016_covariates() -> pd.DataFrame:
    """The 58 covariates of the 4,802 units, ``x_2 x_21 x_24`` dummy-coded (79 columns)."""
    return _covariates().copy()


@lru_cache(maxsize=10)
def _setting(k: int) -> pd.DataFrame:
    return packaged_table(f"acic2016_zymu_{k}.csv.gz")


def acic2016_setting(k: int) -> pd.DataFrame:
    """Setting ``k``'s shipped draw: treatment ``z``, outcomes ``y0 y1``, their means ``mu0 mu1``."""
    return _setting(k).copy()


class ACIC2016Params(Params):
    """Parameters of the ``acic2016`` world."""

    setting: int = Field(1, ge=1, le=10, description="which of the ten shipped settings")
    outcomes: Literal["redraw", "file"] = Field(
        "redraw",
        description="redraw: new outcome noise each replication; file: the challenge's own "
        "draw (every replication the same)",
    )


class ACIC2016:
    r"""ACIC 2016 challenge world (Dorie et al. 2019; data from causallib 0.10, shipped in the package).

    Dorie, Hill, Shalit, Scott & Cervone (2019, *Statistical Science* 34(1):43-68) built 77
    settings on 58 covariates of 4,802 units from the Collaborative Perinatal Project, each
    with its own treatment and response models; ten settings ship here, one draw each (as
    causallib 0.10 ships them): the treatment :math:`z`, the potential outcomes
    :math:`y_0, y_1` and their conditional means :math:`\mu_0(x), \mu_1(x)`. The three
    categorical covariates ``x_2 x_21 x_24`` are dummy-coded (one 0/1 column ``x_2.B`` etc.
    per level but the first), 79 covariate columns in all.

    Truth: the (conditional) SATT :math:`\frac{1}{n_1}\sum_{z_i=1}(\mu_1(x_i) -
    \mu_0(x_i))`, the challenge's estimand; likewise ATE over all units and ATC over the
    controls. The treatment is the file's in every replication (the challenge's treatment
    models are not shipped), so the truths are the same in every replication.

    How replications differ: with ``outcomes=redraw`` (the default) every replication,
    the first included, draws new outcomes :math:`y = \mu_z(x) + \sigma_z\varepsilon`,
    :math:`\varepsilon \sim N(0,1)` independent across units, with :math:`\sigma_z` the SD
    of :math:`y_z - \mu_z` in the file (about 1 in every setting; the two arms' residuals
    are uncorrelated there, so the arms' noise is independent here); the replications thus
    measure an estimator's behaviour over outcome noise, with covariates and treatment
    fixed. With ``outcomes=file`` every replication returns the challenge's own draw
    :math:`y = y_z` (use ``mc.reps=1``: further replications are copies).

    Covariates and treatment being fixed, the spread over replications is the outcome
    noise's alone, while most standard errors aim at the variance over new samples of units
    too: coverage of the conditional truth is then conservative (setting 1, ``ipw`` ATT, 100
    replications: empirical SE 0.041, mean model SE 0.159, coverage 1.0, bias -0.009 with
    MCSE 0.004). In setting 1 no treated unit has ``x_2`` = F, so per-arm regressions of the
    treated on all covariates are rank deficient (``ols`` refuses, naming it).

    Roles: outcome ``y``, treatment ``z``, covariates the 79 columns.
    """

    name: ClassVar[str] = "acic2016"
    Params: ClassVar[type[Params]] = ACIC2016Params
    needs_base: ClassVar[bool] = False

    def __init__(self, params: ACIC2016Params | None = None) -> None:
        self.params = params or ACIC2016Params()

    def simulate(self, rng: np.random.Generator, base: Dataset | None = None) -> Simulated:
        s = _setting(self.params.setting)
        z = s["z"].to_numpy() == 1
        mu0, mu1 = s["mu0"].to_numpy(), s["mu1"].to_numpy()
        y0, y1 = s["y0"].to_numpy(), s["y1"].to_numpy()
        if self.params.outcomes == "redraw":
            eps = rng.standard_normal((2, len(z)))
            y0 = mu0 + float(np.std(y0 - mu0)) * eps[0]
            y1 = mu1 + float(np.std(y1 - mu1)) * eps[1]
        frame = acic2016_covariates()
        covariates = tuple(frame.columns)
        frame["z"] = z.astype(np.int64)
        frame["y"] = np.where(z, y1, y0)
        cate = mu1 - mu0
        truth = Truth(
            {"ATE": float(cate.mean()), "ATT": float(cate[z].mean()), "ATC": float(cate[~z].mean())}
        )
        return Simulated(
            Dataset(frame, Roles(outcome="y", treatment="z", covariates=covariates)), truth
        )
