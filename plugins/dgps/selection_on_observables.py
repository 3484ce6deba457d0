"""A confounded world where treatment is ignorable given two observed covariates; ATE, ATT and ATC differ."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from causalkit.contracts import Dataset, Params, Roles, Simulated, Truth
from causalkit.coverage import World
from causalkit.errors import ConfigError

__all__ = [
    "SelectionOnObservables",
    "SelectionOnObservablesParams",
    "arm_means_of_x1",
    "CLUSTERED_600",
    "clustered_worlds",
    "INFORMATIVE_600",
    "weighted_world",
]


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


class ClusterParams(Params):
    """Clustered units: equal-sized clusters sharing a covariate shift and an outcome effect."""

    n_clusters: int = Field(
        0, ge=0, description="number of clusters (0: independent units, no cluster role)"
    )
    icc: float = Field(
        0.0, ge=0.0, le=1.0, description="share of the outcome noise variance shared in a cluster"
    )
    x_icc: float = Field(
        0.0, ge=0.0, le=1.0, description="share of each covariate's variance shared in a cluster"
    )
    role: bool = Field(
        True,
        description="emit the cluster role (false: the same draws without it, so inference "
        "ignores the clusters)",
    )


class SamplingParams(Params):
    """Informative sampling: units with a larger effect modifier ``x1`` are sampled more often."""

    informative: float = Field(
        0.0,
        description="strength s: a unit is sampled with probability proportional to exp(s*x1) "
        "and carries the weight 1/probability (0: a simple random sample, no weight role)",
    )
    role: bool = Field(
        True,
        description="emit the weight role (false: the same draws without it, so estimation "
        "ignores the weights)",
    )


class SelectionOnObservablesParams(Params):
    """Parameters of the ``selection_on_observables`` world."""

    added_fields: ClassVar[frozenset[str]] = frozenset({"cluster", "sampling"})

    n: int = Field(2000, ge=20, description="number of units")
    propensity: PropensityCoefficients = Field(default_factory=PropensityCoefficients)
    outcome: PotentialOutcomes = Field(default_factory=PotentialOutcomes)
    quadrature_nodes: int = Field(
        80, ge=10, le=400, description="Gauss-Hermite nodes for the truths"
    )
    cluster: ClusterParams = Field(ClusterParams(), description="clustered units (default none)")
    sampling: SamplingParams = Field(
        SamplingParams(), description="informative sampling with weights (default none)"
    )

    @model_validator(mode="after")
    def _clusters_fit(self) -> SelectionOnObservablesParams:
        c = self.cluster
        if c.n_clusters == 1 or c.n_clusters > self.n:
            raise ConfigError(
                "dgp.cluster.n_clusters", f"0 or 2 to n ({self.n}) clusters", c.n_clusters
            )
        if c.n_clusters == 0 and (c.icc > 0 or c.x_icc > 0):
            raise ConfigError(
                "dgp.cluster.n_clusters", "clusters for dgp.cluster.icc/x_icc to act on", 0
            )
        return self


def arm_means_of_x1(c: PropensityCoefficients, nodes: int = 80) -> tuple[float, float]:
    r""":math:`E[x_1 \mid T=1]` and :math:`E[x_1 \mid T=0]` under the logistic propensity model.

    With :math:`v = a_1x_1 + a_2x_2 \sim N(0, s^2)` and :math:`E[x_1\mid v] = a_1 v/s^2`,
    :math:`E[x_1\mid T=1] = (a_1/s^2) E[vF(a_0+v)]/E[F(a_0+v)]` and, as :math:`E[v] = 0`,
    :math:`E[x_1\mid T=0] = -(a_1/s^2) E[vF(a_0+v)]/(1 - E[F(a_0+v)])` (:math:`F` logistic):
    one-dimensional normal integrals by Gauss-Hermite quadrature.
    """
    from scipy.special import expit

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

    With ``cluster.n_clusters`` = :math:`G > 0` the units form :math:`G` equal-sized
    clusters (consecutive rows) and, with cluster effects :math:`a_{g1}, a_{g2}, u_g \sim N(0,1)`,
    :math:`x_k = \sqrt{\rho_x}\,a_{gk} + \sqrt{1-\rho_x}\,x_k` (``x_icc`` :math:`=\rho_x`) and
    :math:`\varepsilon = \sqrt{\rho}\,u_g + \sqrt{1-\rho}\,\varepsilon` (``icc`` :math:`=\rho`):
    every unit's marginal law, hence every truth, is unchanged, while the covariates (so the
    treatment and the effect :math:`\tau_1x_1`) and the noise are correlated within a
    cluster. The cluster effects are drawn after all other draws, so :math:`G = 0` keeps the
    draws of an unclustered world. Roles: ``cluster`` (column ``cluster``; left unset with
    ``cluster.role=false``, to show what ignoring the clusters does) besides the ones below.

    With ``sampling.informative`` = :math:`s \ne 0` the data are an informative sample of the
    population above: a unit is sampled with probability :math:`\pi(x_1)\propto e^{sx_1}`, so
    in the sample :math:`x_1 \sim N(s, 1)` (exponential tilting of the normal; drawn as
    :math:`x_1 + s` after every other draw, the clusters' mixing included) while
    :math:`x_2`, the treatment given the covariates and the outcomes given them are
    unchanged. Each unit carries the weight :math:`1/\pi`, normalised to mean one in the
    population's terms, :math:`w = e^{-sx_1 + s^2/2}` (the ratio of the population's to the
    sample's density of :math:`x_1`; column ``weight``, role ``weight`` unless
    ``sampling.role=false``). The truths stay the population's; the sample's own ATE is
    :math:`\tau + \tau_1 s`, which is what an estimator that ignores the weights targets.

    Roles: outcome ``y``, treatment ``treat``, covariates ``(x1, x2)``.
    """

    name: ClassVar[str] = "selection_on_observables"
    Params: ClassVar[type[Params]] = SelectionOnObservablesParams
    needs_base: ClassVar[bool] = False

    def __init__(self, params: SelectionOnObservablesParams | None = None) -> None:
        self.params = params or SelectionOnObservablesParams()

    def simulate(self, rng: np.random.Generator, base: Dataset | None = None) -> Simulated:
        from scipy.special import expit

        p = self.params
        a, o = p.propensity, p.outcome
        x1, x2, eps = rng.standard_normal((3, p.n))
        uniform = rng.random(p.n)
        if o.noise_df is not None:  # heavy tails; drawn after the normal defaults' draws
            eps = rng.standard_t(o.noise_df, p.n) * np.sqrt((o.noise_df - 2.0) / o.noise_df)
        c = p.cluster
        if c.n_clusters:
            cluster = np.arange(p.n) * c.n_clusters // p.n
            shared = rng.standard_normal((3, c.n_clusters))[:, cluster]
            x1 = np.sqrt(c.x_icc) * shared[0] + np.sqrt(1.0 - c.x_icc) * x1
            x2 = np.sqrt(c.x_icc) * shared[1] + np.sqrt(1.0 - c.x_icc) * x2
            eps = np.sqrt(c.icc) * shared[2] + np.sqrt(1.0 - c.icc) * eps
        tilt = p.sampling.informative
        if tilt:
            x1 = x1 + tilt
        treat = uniform < expit(a.intercept + a.x1 * x1 + a.x2 * x2)
        y0 = o.intercept + o.x1 * x1 + o.x2 * x2 + o.x1_sq * (x1 * x1 - 1.0) + o.noise_sd * eps
        y = y0 + treat * (o.tau + o.tau_x1 * x1)
        frame = pd.DataFrame({"x1": x1, "x2": x2, "treat": treat.astype(np.int64), "y": y})
        if c.n_clusters:
            frame["cluster"] = cluster
        if tilt:
            frame["weight"] = np.exp(-tilt * x1 + 0.5 * tilt * tilt)
        m1, m0 = arm_means_of_x1(a, p.quadrature_nodes)
        truth = Truth({"ATE": o.tau, "ATT": o.tau + o.tau_x1 * m1, "ATC": o.tau + o.tau_x1 * m0})
        roles = Roles(
            outcome="y",
            treatment="treat",
            covariates=("x1", "x2"),
            cluster="cluster" if c.n_clusters and c.role else None,
            weight="weight" if tilt and p.sampling.role else None,
        )
        return Simulated(Dataset(frame, roles), truth)


CLUSTERED_600 = (
    "dgp=selection_on_observables",
    "dgp.n=600",
    "dgp.cluster.n_clusters=60",
    "dgp.cluster.icc=0.5",
    "dgp.cluster.x_icc=0.6",
)
"""600 units in 60 clusters of 10 sharing 60% of their covariates' and 50% of their noise's
variance: ignoring the clusters, analytic SEs are about a quarter too small (coverage near
0.84 for naive, ols and ipw)."""


def clustered_worlds(extra: tuple[str, ...], note: str, bootstrap: bool) -> World:
    """The clustered world (:data:`CLUSTERED_600` plus ``extra``) for an estimator's pairings.

    ``bootstrap=False`` leaves the refitting bootstrap out where its cell would be costly
    (R = 600 replications of ``n_boot`` refits): the cluster resampling is the same for
    every estimator and is checked by the ``naive`` cell.
    """
    methods = {"analytic", "multiplier"} | ({"bootstrap"} if bootstrap else set())
    return World("clustered", (*CLUSTERED_600, *extra), inferences=frozenset(methods), note=note)


INFORMATIVE_600 = (
    "dgp=selection_on_observables",
    "dgp.n=600",
    "dgp.sampling.informative=0.3",
)
"""600 units sampled with probability proportional to :math:`e^{0.3x_1}` (weights
about 0.4 to 3): the sample's ATE is :math:`\tau + 0.3\tau_1` (1.3 at the defaults) against the
population's :math:`\tau` (1.0), so an estimator that ignores the weights is biased by about
two and a half SEs. (At strength 0.5 weighted Hajek IPW has a finite-sample bias of 7% of its
SE at n = 600, measured over R = 3000; at 0.3 it is within the Monte Carlo error.)"""


def weighted_world(extra: tuple[str, ...], note: str) -> World:
    """The informative-sampling world (:data:`INFORMATIVE_600` plus ``extra``), analytic and multiplier."""
    return World(
        "weighted",
        (*INFORMATIVE_600, *extra),
        inferences=frozenset({"analytic", "multiplier"}),
        note=note,
    )
