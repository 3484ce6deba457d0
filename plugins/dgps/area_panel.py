r"""Aggregated-area panel with unit-specific pre-trends and a known post-period effect on totals.

The world of MicroSynth panel mode (R microsynth's Seattle setting, in miniature): small
areas (blocks) of random size, count covariates proportional to size, an outcome with a
unit-specific linear trend that depends on a covariate, and a treated area chosen with
probability tilted towards large values of that covariate.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from causalkit.contracts import Dataset, Params, Roles, Simulated, Truth

__all__ = ["AreaPanel", "AreaPanelParams"]


class AreaPanelParams(Params):
    """Parameters of the area panel (defaults: a small, fast world)."""

    n_units: int = Field(300, ge=10, description="areas (blocks)")
    n_treated: int = Field(8, ge=1, description="areas in the treated area")
    n_pre: int = Field(8, ge=1, description="pre periods")
    n_post: int = Field(4, ge=1, description="post periods")
    n_covariates: int = Field(3, ge=1, description="count covariates")
    size_mu: float = Field(3.0, description="mean of log area size")
    size_sigma: float = Field(0.5, ge=0, description="SD of log area size")
    covariate_rate: float = Field(0.3, gt=0, description="covariate count per unit of size")
    covariate_shape: float = Field(5.0, gt=0, description="gamma shape of covariate heterogeneity")
    level: float = Field(0.1, description="outcome per unit of size per period")
    slope: float = Field(0.2, description="mean pre-trend per period")
    slope_covariate: float = Field(
        0.3, description="trend per period per SD of the first covariate"
    )
    season_sd: float = Field(1.0, ge=0, description="SD of common period shocks")
    noise_sd: float = Field(1.0, ge=0, description="SD of idiosyncratic noise")
    selection: float = Field(
        0.3, description="log-odds tilt of treatment per SD of the first covariate"
    )
    effect: float = Field(-1.0, description="effect per treated area-unit per post period")
    cluster_size: int = Field(
        0, ge=0, description="areas per cluster (consecutive areas; 0: no clusters)"
    )
    cluster_sd: float = Field(
        0.0, ge=0, description="SD of the period shocks shared by the areas of a cluster"
    )
    assign: Literal["area", "cluster"] = Field(
        "area", description="treat areas, or whole clusters (n_treated a multiple of cluster_size)"
    )
    cluster_role: bool = Field(
        True,
        description="emit the cluster role (false: the same draws without it, so inference "
        "ignores the clusters)",
    )
    effect_covariate: float = Field(
        0.0,
        description="effect per treated area-unit per post period per SD of the first covariate",
    )
    weight_tilt: float = Field(
        0.0,
        description="sampling weights proportional to exp(-weight_tilt * z), z the standardised "
        "first covariate, in column and role 'weight' (0: no weights)",
    )

    added_fields: ClassVar[frozenset[str]] = frozenset(
        {
            "cluster_size",
            "cluster_sd",
            "assign",
            "cluster_role",
            "effect_covariate",
            "weight_tilt",
        }
    )

    @model_validator(mode="after")
    def _sizes(self) -> AreaPanelParams:
        if 2 * self.n_treated >= self.n_units:
            raise ValueError(
                f"n_treated must be below n_units/2={self.n_units / 2:g}, got {self.n_treated}"
            )
        if self.cluster_size == 0 and (self.cluster_sd > 0 or self.assign == "cluster"):
            raise ValueError("cluster_size > 0 for cluster_sd > 0 or assign=cluster")
        if self.assign == "cluster" and self.n_treated % self.cluster_size:
            raise ValueError(
                f"n_treated a multiple of cluster_size={self.cluster_size} with assign=cluster, "
                f"got {self.n_treated}"
            )
        return self


class AreaPanel:
    r"""Simulate an aggregated-area panel.

    Model, for areas :math:`i = 1..n` and periods :math:`t = 1..T_0+T_1`:

    .. math::
        s_i &= \exp(\mu_s + \sigma_s u_i),\quad u_i \sim N(0,1);\qquad
        x_{ik} \sim \mathrm{Poisson}(r\, s_i\, g_{ik}),\ g_{ik} \sim \Gamma(a, 1/a);\\
        z_i &= (x_{i1} - \bar x_1)/\mathrm{sd}(x_1);\qquad
        D_i = 1 \text{ for the } n_T \text{ areas with the largest }
        \gamma z_i + G_i,\ G_i \sim \mathrm{Gumbel}\\
        y_{it} &= \ell\, s_i + (b + b_z z_i)\, t + \lambda_t + \sigma\varepsilon_{it}
        + \sigma_c \eta_{c(i)t} + (\delta + \delta_z z_i)\, D_i 1\{t > T_0\},\quad
        \lambda_t \sim N(0, \sigma_\lambda^2),\ \eta_{ct} \sim N(0, 1).

    (The Gumbel top-:math:`k` draw samples :math:`n_T` areas without replacement with
    probabilities proportional to :math:`e^{\gamma z_i}`.) With ``selection`` :math:`\gamma > 0`
    treated areas trend upwards faster, so an unweighted comparison is biased while weights
    that match covariate totals and every pre-period outcome total remove the bias. The truth
    is the effect on the treated area's total per post period, :math:`\mathrm{ATT} = n_T\delta`
    (the MicroSynth panel estimand: mean post-period gap on totals). With ``selection = 0``
    treatment is exchangeable and a placebo-permutation test is exact.

    **Clusters** (``cluster_size`` :math:`m > 0`): area :math:`i` lies in cluster
    :math:`c(i) = \lfloor i/m \rfloor` (column and role ``cluster``; the role left unset with
    ``cluster_role=false``, to show what ignoring the clusters does), whose areas share the
    period shocks :math:`\sigma_c\eta_{ct}` (``cluster_sd``; drawn last, after the treatment
    and the noise). With ``assign=cluster`` the treated area is :math:`n_T/m` whole clusters,
    drawn by the same Gumbel top-:math:`k` on the clusters' mean :math:`z`. The defaults (no
    clusters) draw exactly what they drew before these parameters existed.

    **Sampling weights** (``weight_tilt`` :math:`\kappa_w \ne 0`): the areas stand for a
    population in which areas of large :math:`z` were sampled more often; area :math:`i`
    carries the weight :math:`d_i = e^{-\kappa_w z_i}/\overline{e^{-\kappa_w z}}` (column and
    role ``weight``; no extra draws). With an effect that varies with :math:`z`
    (``effect_covariate`` :math:`\delta_z`) the truth is the effect on the weighted total,
    :math:`\sum_{i\in T} d_i(\delta + \delta_z z_i)` (:math:`\sum_{i\in T}(\delta +
    \delta_z z_i)` without weights), which an estimate that ignores the weights misses.
    """

    name: ClassVar[str] = "area_panel"
    Params: ClassVar[type[Params]] = AreaPanelParams
    needs_base: ClassVar[bool] = False

    def __init__(self, params: AreaPanelParams | None = None) -> None:
        self.params = params or AreaPanelParams()

    def simulate(self, rng: np.random.Generator, base: Dataset | None) -> Simulated:
        p = self.params
        n, T, k = p.n_units, p.n_pre + p.n_post, p.n_covariates
        size = np.exp(p.size_mu + p.size_sigma * rng.standard_normal(n))
        het = rng.gamma(p.covariate_shape, 1.0 / p.covariate_shape, size=(n, k))
        X = rng.poisson(p.covariate_rate * size[:, None] * het).astype(np.float64)
        sd = X[:, 0].std()
        z = (X[:, 0] - X[:, 0].mean()) / (sd if sd > 0 else 1.0)
        cluster = np.arange(n) // p.cluster_size if p.cluster_size else None
        treated = np.zeros(n, dtype=bool)
        if cluster is not None and p.assign == "cluster":
            n_cl = int(cluster[-1]) + 1
            z_cl = np.bincount(cluster, weights=z) / np.bincount(cluster)
            keys = p.selection * z_cl + rng.gumbel(size=n_cl)
            treated[np.isin(cluster, np.argsort(-keys)[: p.n_treated // p.cluster_size])] = True
        else:
            keys = p.selection * z + rng.gumbel(size=n)
            treated[np.argsort(-keys)[: p.n_treated]] = True
        t = np.arange(1, T + 1, dtype=np.float64)
        season = p.season_sd * rng.standard_normal(T)
        y = (
            p.level * size[:, None]
            + (p.slope + p.slope_covariate * z)[:, None] * t[None, :]
            + season[None, :]
            + p.noise_sd * rng.standard_normal((n, T))
        )
        if cluster is not None and p.cluster_sd > 0:
            y += p.cluster_sd * rng.standard_normal((int(cluster[-1]) + 1, T))[cluster]
        post = t > p.n_pre
        effect = p.effect + p.effect_covariate * z
        y += effect[:, None] * (treated[:, None] & post[None, :])
        cov_names = tuple(f"x{j + 1}" for j in range(k))
        frame = pd.DataFrame(
            {
                "unit": np.repeat(np.arange(n), T),
                "time": np.tile(np.arange(1, T + 1), n),
                "treated": (treated[:, None] & post[None, :]).reshape(-1).astype(np.int64),
                "y": y.reshape(-1),
            }
        )
        for j, c in enumerate(cov_names):
            frame[c] = np.repeat(X[:, j], T)
        if cluster is not None:
            frame["cluster"] = np.repeat(cluster, T)
        weight = None
        if p.weight_tilt != 0:
            raw = np.exp(-p.weight_tilt * z)
            weight = raw / raw.mean()
            frame["weight"] = np.repeat(weight, T)
        roles = Roles(
            unit="unit",
            time="time",
            treatment="treated",
            outcome="y",
            covariates=cov_names,
            cluster="cluster" if cluster is not None and p.cluster_role else None,
            weight="weight" if weight is not None else None,
        )
        if p.effect_covariate == 0 and weight is None:
            att = p.n_treated * p.effect
        else:
            att = float(
                (effect[treated] if weight is None else weight[treated] @ effect[treated]).sum()
            )
        return Simulated(Dataset(frame, roles), Truth({"ATT": att}))
