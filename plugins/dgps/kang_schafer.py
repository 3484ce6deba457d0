"""Kang & Schafer's (2007) "Demystifying double robustness" world: a population mean under two misspecifiable models."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
from pydantic import Field

from causalkit.contracts import Dataset, Params, Roles, Simulated, Truth

__all__ = ["MEAN", "X_COLUMNS", "Z_COLUMNS", "KangSchafer", "KangSchaferParams", "transformed"]

MEAN = 210.0
"""The outcome's mean, :math:`E[Y] = E[Y(1)] = E[Y(0)]`: the paper's target."""

Z_COLUMNS = ("z1", "z2", "z3", "z4")
X_COLUMNS = ("x1", "x2", "x3", "x4")


class KangSchaferParams(Params):
    """Parameters of the ``kang_schafer`` world (the paper's two sample sizes are 200 and 1000)."""

    n: int = Field(200, ge=20, description="number of units")
    ps_misspecified: bool = Field(
        False,
        description="the propensity model sees the transforms x1..x4 instead of z1..z4 "
        "(roles.propensity_covariates)",
    )
    outcome_misspecified: bool = Field(
        False,
        description="the outcome model sees the transforms x1..x4 instead of z1..z4 "
        "(roles.covariates)",
    )


def transformed(z: np.ndarray) -> np.ndarray:
    r"""Kang & Schafer's observed covariates :math:`x_1..x_4` from :math:`z` (shape (4, n)).

    :math:`x_1 = e^{z_1/2}`, :math:`x_2 = z_2/(1 + e^{z_1}) + 10`,
    :math:`x_3 = (z_1z_3/25 + 0.6)^3`, :math:`x_4 = (z_2 + z_4 + 20)^2`.
    """
    z1, z2, z3, z4 = z
    return np.stack(
        [
            np.exp(z1 / 2.0),
            z2 / (1.0 + np.exp(z1)) + 10.0,
            (z1 * z3 / 25.0 + 0.6) ** 3,
            (z2 + z4 + 20.0) ** 2,
        ]
    )


class KangSchafer:
    r"""Kang & Schafer's (2007) simulation, with their response indicator as the treatment.

    Units have :math:`z_1..z_4 \sim N(0,1)` independent,
    :math:`Y = 210 + 27.4 z_1 + 13.7(z_2 + z_3 + z_4) + \varepsilon`,
    :math:`\varepsilon \sim N(0,1)`, and the treatment
    :math:`T \sim \text{Bern}(\operatorname{expit}(-z_1 + 0.5z_2 - 0.25z_3 - 0.1z_4))` (the
    paper's response indicator :math:`R`; 50% treated on average). The analyst also sees the
    transforms :math:`x_1..x_4` (:func:`transformed`), which are not linear in :math:`z`.
    Both a linear regression of :math:`Y` on :math:`z` and a logit of :math:`T` on :math:`z`
    are correctly specified; on :math:`x` both are misspecified, though not grossly (a
    linear regression of :math:`Y` on :math:`x` has population :math:`R^2` about 0.79, by
    our simulation of :math:`2 \times 10^5` units). The treated's mean of :math:`Y` is
    about 200: the unadjusted respondent mean is 10 too low.

    :math:`Y` does not depend on :math:`T`: :math:`Y(1) = Y(0) = Y`, so
    :math:`E[Y(1)] = E[Y(0)] = 210` and every effect is 0. The paper's target, the mean of
    :math:`Y` estimated from the respondents, is our ``MEAN1`` (the estimators of ``MEAN1``
    use the outcomes of the treated only: ``ols``'s control regression, ``ipw``'s control
    mean and ``aipw``'s :math:`g_0` do not enter); :math:`Y` is recorded for every unit.
    Truth: ``MEAN1`` and ``MEAN0`` 210; ``ATE``, ``ATT``, ``ATC`` 0.

    Roles: outcome ``y``, treatment ``t``; ``covariates`` (the outcome model's) are
    ``x1..x4`` with ``outcome_misspecified`` and ``z1..z4`` otherwise, and
    ``propensity_covariates`` ``x1..x4`` with ``ps_misspecified`` and ``z1..z4`` otherwise;
    ``ols`` reads the former, ``ipw`` the latter, ``aipw`` both. All eight columns are in the
    table.

    Draws, in order: the :math:`4 \times n` normals :math:`z`, the :math:`n` noise draws, the
    :math:`n` uniforms of the treatment; the two flags change the roles, never the draws, so
    the four scenarios of one seed share their data.

    References
    ----------
    Kang, J. & Schafer, J. (2007). Demystifying double robustness: a comparison of
    alternative strategies for estimating a population mean from incomplete data.
    *Statist. Sci.* 22(4), 523-539.
    """

    name: ClassVar[str] = "kang_schafer"
    Params: ClassVar[type[Params]] = KangSchaferParams
    needs_base: ClassVar[bool] = False

    def __init__(self, params: KangSchaferParams | None = None) -> None:
        self.params = params or KangSchaferParams()

    def simulate(self, rng: np.random.Generator, base: Dataset | None = None) -> Simulated:
        from scipy.special import expit

        p = self.params
        z = rng.standard_normal((4, p.n))
        eps = rng.standard_normal(p.n)
        u = rng.random(p.n)
        z1, z2, z3, z4 = z
        y = MEAN + 27.4 * z1 + 13.7 * (z2 + z3 + z4) + eps
        t = (u < expit(-z1 + 0.5 * z2 - 0.25 * z3 - 0.1 * z4)).astype(np.int64)
        frame = pd.DataFrame(
            {
                "y": y,
                "t": t,
                **dict(zip(Z_COLUMNS, z, strict=True)),
                **dict(zip(X_COLUMNS, transformed(z), strict=True)),
            }
        )
        roles = Roles(
            outcome="y",
            treatment="t",
            covariates=X_COLUMNS if p.outcome_misspecified else Z_COLUMNS,
            propensity_covariates=X_COLUMNS if p.ps_misspecified else Z_COLUMNS,
        )
        truth = Truth({"MEAN1": MEAN, "MEAN0": MEAN, "ATE": 0.0, "ATT": 0.0, "ATC": 0.0})
        return Simulated(Dataset(frame, roles), truth)
