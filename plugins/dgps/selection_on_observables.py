"""A confounded world where treatment is ignorable given two observed covariates; ATE, ATT and ATC differ."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
from pydantic import Field
from scipy.special import expit

from causalkit.contracts import Dataset, Params, Roles, Simulated, Truth

__all__ = ["SelectionOnObservables", "SelectionOnObservablesParams", "arm_means_of_x1"]


class PropensityCoefficients(Params):
    """Log-odds of treatment ``intercept + x1*x1 + x2*x2``."""

    intercept: float = -0.3
    x1: float = 0.8
    x2: float = -0.6


class PotentialOutcomes(Params):
    """``Y(0) = intercept + x1*x1 + x2*x2 + x1_sq*(x1^2 - 1) + noise_sd*eps``; ``Y(1) = Y(0) + tau + tau_x1*x1``."""

    intercept: float = 1.0
    x1: float = 1.0
    x2: float = 1.0
    x1_sq: float = Field(
        0.5, description="mild nonlinearity (a linear outcome model is misspecified)"
    )
    tau: float = Field(1.0, description="effect at x1 = 0 (the ATE, as E[x1] = 0)")
    tau_x1: float = Field(1.0, description="effect heterogeneity: ATT and ATC differ from the ATE")
    noise_sd: float = Field(1.0, gt=0)
    added_fields: ClassVar[frozenset[str]] = frozenset({"noise_df"})
    noise_df: float | None = Field(
        None,
        gt=2,
        description="Student-t noise with this many degrees of freedom (scaled to SD noise_sd); "
        "None: normal",
    )


class SelectionOnObservablesParams(Params):
    """Parameters of the ``selection_on_observables`` world."""

    n: int = Field(2000, ge=20, description="number of units")
    propensity: PropensityCoefficients = Field(default_factory=PropensityCoefficients)
    outcome: PotentialOutcomes = Field(default_factory=PotentialOutcomes)
    quadrature_nodes: int = Field(
        80, ge=10, le=400, description="Gauss-Hermite nodes for the truths"
    )


def arm_means_of_x1(c: PropensityCoefficients, nodes: int = 80) -> tuple[float, float]:
    r""":math:`E[x_1 \mid T=1]` and :math:`E[x_1 \mid T=0]` under the logistic propensity model.

    With :math:`v = a_1x_1 + a_2x_2 \sim N(0, s^2)` and :math:`E[x_1\mid v] = a_1 v/s^2`,
    :math:`E[x_1\mid T=1] = (a_1/s^2) E[vF(a_0+v)]/E[F(a_0+v)]` and, as :math:`E[v] = 0`,
    :math:`E[x_1\mid T=0] = -(a_1/s^2) E[vF(a_0+v)]/(1 - E[F(a_0+v)])` (:math:`F` logistic):
    one-dimensional normal integrals by Gauss-Hermite quadrature.
    """
    s2 = c.x1**2 + c.x2**2
    if s2 == 0:
        return 0.0, 0.0
    t, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / w.sum()
    v = np.sqrt(s2) * t
    f = expit(c.intercept + v)
    p, vf = float(w @ f), float(w @ (v * f))
    return c.x1 / s2 * vf / p, -c.x1 / s2 * vf / (1.0 - p)


class SelectionOnObservables:
    r"""Treatment ignorable given :math:`(x_1, x_2)`, with heterogeneous effects.

    :math:`x_1, x_2, \varepsilon \sim N(0,1)` independent;
    :math:`T \sim \mathrm{Bern}(\operatorname{expit}(a_0 + a_1x_1 + a_2x_2))`;
    :math:`Y(0) = b_0 + b_1x_1 + b_2x_2 + b_{11}(x_1^2 - 1) + \sigma\varepsilon`,
    :math:`Y(1) = Y(0) + \tau + \tau_1 x_1`, :math:`Y = Y(T)`. With ``noise_df`` =
    :math:`\nu` the noise is :math:`\varepsilon = t_\nu\sqrt{(\nu-2)/\nu}` instead (unit variance,
    heavy tails; :math:`\nu \le 4` has no finite fourth moment).

    Truths (population): ATE :math:`=\tau`; ATT :math:`=\tau + \tau_1E[x_1\mid T=1]`;
    ATC :math:`=\tau + \tau_1E[x_1\mid T=0]` (:func:`arm_means_of_x1`). With the defaults
    treated units have larger :math:`x_1`, hence larger outcomes and effects: the naive
    difference is biased for all three; a logit propensity model on :math:`(x_1, x_2)` is
    correctly specified (IPW and propensity matching are consistent), a linear outcome
    regression is not (the :math:`x_1^2` term) unless ``x1_sq = 0``.

    Roles: outcome ``y``, treatment ``treat``, covariates ``(x1, x2)``.
    """

    name: ClassVar[str] = "selection_on_observables"
    Params: ClassVar[type[Params]] = SelectionOnObservablesParams
    needs_base: ClassVar[bool] = False

    def __init__(self, params: SelectionOnObservablesParams | None = None) -> None:
        self.params = params or SelectionOnObservablesParams()

    def simulate(self, rng: np.random.Generator, base: Dataset | None = None) -> Simulated:
        p = self.params
        a, o = p.propensity, p.outcome
        x1, x2, eps = rng.standard_normal((3, p.n))
        treat = rng.random(p.n) < expit(a.intercept + a.x1 * x1 + a.x2 * x2)
        if o.noise_df is not None:  # heavy tails; drawn after the normal defaults' draws
            eps = rng.standard_t(o.noise_df, p.n) * np.sqrt((o.noise_df - 2.0) / o.noise_df)
        y0 = o.intercept + o.x1 * x1 + o.x2 * x2 + o.x1_sq * (x1 * x1 - 1.0) + o.noise_sd * eps
        y = y0 + treat * (o.tau + o.tau_x1 * x1)
        frame = pd.DataFrame({"x1": x1, "x2": x2, "treat": treat.astype(np.int64), "y": y})
        m1, m0 = arm_means_of_x1(a, p.quadrature_nodes)
        truth = Truth({"ATE": o.tau, "ATT": o.tau + o.tau_x1 * m1, "ATC": o.tau + o.tau_x1 * m0})
        roles = Roles(outcome="y", treatment="treat", covariates=("x1", "x2"))
        return Simulated(Dataset(frame, roles), truth)
