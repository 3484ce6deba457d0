"""Plasmode simulation: treatment and outcome simulated over the covariates of the user's table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from causalkit.contracts import Dataset, Params, Roles, Simulated, Truth
from causalkit.errors import ConfigError, DataError
from causalkit.formulas import expand_formulas
from causalkit_plugins.dgps.draws import bernoulli
from causalkit_plugins.dgps.real_covariates import free_name, numeric_covariates, standardise

__all__ = ["Plasmode", "PlasmodeParams", "PlasmodeDraw"]


class TreatmentModel(Params):
    """Logistic treatment model: ``logit P(T=1|x) = alpha + strength * index_T(x)``."""

    covariates: tuple[str, ...] | None = Field(
        None, description="covariates the treatment depends on (None: all of data.roles.covariates)"
    )
    share: float = Field(0.3, gt=0, lt=1, description="target treated share (solves alpha)")
    strength: float = Field(
        1.0,
        ge=0,
        description="SD of the log-odds around alpha: 0 randomises, larger means less overlap",
    )


class OutcomeModel(Params):
    """Outcome model: prognostic part ``strength * index_Y(x)``, continuous or binary."""

    type: Literal["continuous", "binary"] = "continuous"
    covariates: tuple[str, ...] | None = Field(
        None, description="prognostic covariates (None: all of data.roles.covariates)"
    )
    strength: float = Field(1.0, ge=0, description="SD of the prognostic part (log-odds if binary)")
    noise_sd: float = Field(1.0, gt=0, description="SD of the noise (continuous outcome)")
    base_rate: float = Field(
        0.3, gt=0, lt=1, description="mean of P(Y(0)=1|x) over the table (binary outcome)"
    )


class PlasmodeParams(Params):
    """Parameters of the ``plasmode`` world."""

    n: int | None = Field(
        None, ge=20, description="rows drawn with replacement each replication (None: the table)"
    )
    effect: float = Field(1.0, description="average effect (a log odds ratio if binary)")
    heterogeneity: float = Field(0.0, ge=0, description="SD of the effect across the table")
    effect_covariates: tuple[str, ...] | None = Field(
        None, description="covariates the effect varies with (None: all of data.roles.covariates)"
    )
    treatment: TreatmentModel = Field(default_factory=TreatmentModel)
    outcome: OutcomeModel = Field(default_factory=OutcomeModel)


@dataclass(frozen=True)
class PlasmodeDraw:
    """One replication: the covariate design, treatment and both potential outcomes."""

    design: pd.DataFrame
    treat: np.ndarray
    y0: np.ndarray
    y1: np.ndarray


def _intercept(index: np.ndarray, mean: float) -> float:
    """Solve ``mean(expit(a + index)) = mean`` for ``a`` (increasing in ``a``)."""
    from scipy.optimize import brentq
    from scipy.special import expit

    lo, hi = -60.0 - float(index.max()), 60.0 - float(index.min())
    return float(brentq(lambda a: float(expit(a + index).mean()) - mean, lo, hi, xtol=1e-12))


class Plasmode:
    r"""Plasmode: treatment and outcome simulated over the covariates of the user's table (data=csv|parquet).

    Plasmode simulation (Franklin et al. 2014, *Comput Stat Data Anal* 72:219; Vaughan et al.
    2009) keeps the real covariate distribution and replaces treatment and outcome by models
    whose strengths are stated, so the question "how would these estimators behave on my
    covariates?" has a known answer. The covariates are ``data.roles.covariates`` of the
    table (``data=csv|parquet``); text or categorical columns are dummy-coded (one 0/1
    column ``col.<level>`` per level but the lowest, as formulas code them; a formula role is
    expanded as :mod:`causalkit.formulas` does); a missing value or a constant covariate is a
    one-line error. The table's own outcome and treatment columns are not used.

    Every covariate column is standardised over the table, :math:`\tilde x_j = (x_j -
    \bar x_j)/s_j`, before coefficients apply, so strengths compare across covariates and
    tables. For a set :math:`S` of covariates (a categorical one: all its dummies) the
    index :math:`h_S(x) = u_S(x)/\mathrm{sd}(u_S)`, :math:`u_S = \sum_{j\in S}\tilde x_j`
    (equal weights), has mean 0 and SD 1 over the table. Then

    * treatment: :math:`T \sim \mathrm{Bern}(\operatorname{expit}(\alpha + s_T h_T(x)))`
      with :math:`\alpha` solved so the mean propensity over the table is ``treatment.share``;
      ``treatment.strength`` :math:`s_T` is the SD of the log-odds: 0 is a randomised
      experiment, about 1 moderate confounding, 2 and above poor overlap;
    * effect: :math:`\tau(x) = \tau + \delta\, h_E(x)` (``effect``, ``heterogeneity``,
      ``effect_covariates``), so :math:`\tau` is the average over the table;
    * continuous outcome: :math:`Y(0) = s_Y h_Y(x) + \sigma\varepsilon`,
      :math:`Y(1) = Y(0) + \tau(x)`, :math:`\varepsilon \sim N(0,1)` (``outcome.strength``,
      ``outcome.noise_sd``);
    * binary outcome: with one uniform :math:`U` per row, :math:`Y(t) = 1\{U <
      \operatorname{expit}(\beta + s_Y h_Y(x) + t\,\tau(x))\}` (the effect on the log-odds
      scale), :math:`\beta` solved so that the mean of :math:`P(Y(0)=1\mid x)` over the
      table is ``outcome.base_rate``.

    With the defaults both models use all covariates with the same signs: treated units
    have larger prognostic scores, so the naive difference is biased upwards.

    Truths are the sample's, recomputed in every replication from the potential outcomes
    drawn: ATE (SATE) :math:`= \frac1n\sum_i (Y_i(1)-Y_i(0))`, ATT (SATT) the same over the
    treated, ATC over the controls; an estimator is judged by the one of its estimand. For
    a continuous outcome the individual effect is :math:`\tau(x_i)`, so on the whole table
    (``n`` unset) the SATE is :math:`\tau` exactly. With ``n`` set, each replication draws
    ``n`` rows of the table with replacement first (the table is the population; the
    standardisation and intercepts stay those of the table).

    Roles: outcome ``y``, treatment ``treat`` (underscores prepended should a covariate
    bear the name), covariates the design columns.
    """

    name: ClassVar[str] = "plasmode"
    Params: ClassVar[type[Params]] = PlasmodeParams
    needs_base: ClassVar[bool] = True

    def __init__(self, params: PlasmodeParams | None = None) -> None:
        self.params = params or PlasmodeParams()

    def draw(self, rng: np.random.Generator, base: Dataset | None) -> PlasmodeDraw:
        """Draw one replication's rows, treatment and potential outcomes (what ``simulate`` uses)."""
        from scipy.special import expit

        p = self.params
        design, groups = self._design(base)
        names = list(design.columns)
        z = standardise(design.to_numpy(), names, "data.roles.covariates")
        h_t = self._index(z, names, groups, p.treatment.covariates, "dgp.treatment.covariates")
        h_y = self._index(z, names, groups, p.outcome.covariates, "dgp.outcome.covariates")
        h_e = self._index(z, names, groups, p.effect_covariates, "dgp.effect_covariates")
        alpha = _intercept(p.treatment.strength * h_t, p.treatment.share)
        prog = p.outcome.strength * h_y
        if p.outcome.type == "binary":
            prog = prog + _intercept(prog, p.outcome.base_rate)
        if p.n is not None:
            rows = rng.integers(0, len(design), p.n)
            design = design.iloc[rows].reset_index(drop=True)
            h_t, h_e, prog = h_t[rows], h_e[rows], prog[rows]
        n = len(design)
        treat = bernoulli(rng, expit(alpha + p.treatment.strength * h_t))
        tau = p.effect + p.heterogeneity * h_e
        if p.outcome.type == "binary":
            u = rng.random(n)
            y0 = (u < expit(prog)).astype(np.float64)
            y1 = (u < expit(prog + tau)).astype(np.float64)
        else:
            y0 = prog + p.outcome.noise_sd * rng.standard_normal(n)
            y1 = y0 + tau
        return PlasmodeDraw(design, treat, y0, y1)

    def simulate(self, rng: np.random.Generator, base: Dataset | None) -> Simulated:
        d = self.draw(rng, base)
        frame = d.design.copy()
        taken = set(frame.columns)
        t_name = free_name("treat", taken)
        y_name = free_name("y", taken | {t_name})
        frame[t_name] = d.treat.astype(np.int64)
        frame[y_name] = np.where(d.treat, d.y1, d.y0)
        effect = d.y1 - d.y0
        truth = Truth(
            {
                "ATE": float(effect.mean()),
                "ATT": float(effect[d.treat].mean()) if d.treat.any() else float("nan"),
                "ATC": float(effect[~d.treat].mean()) if not d.treat.all() else float("nan"),
            }
        )
        roles = Roles(outcome=y_name, treatment=t_name, covariates=tuple(d.design.columns))
        return Simulated(Dataset(frame, roles), truth)

    @staticmethod
    def _design(base: Dataset | None) -> tuple[pd.DataFrame, dict[str, tuple[str, ...]]]:
        """The numeric covariate design of the table, and the design columns of each covariate."""
        if base is None:
            raise ConfigError(
                "data", "a data source with a table (csv, parquet) for dgp=plasmode", "synthetic"
            )
        covariates = base.roles.covariates
        if isinstance(covariates, str):
            base, _ = expand_formulas(base)
            covariates = base.roles.covariates
        if not covariates:
            raise ConfigError(
                "data.roles.covariates", "the columns dgp=plasmode simulates over", "nothing"
            )
        assert isinstance(covariates, tuple)
        return numeric_covariates(base.frame, covariates, "data.roles.covariates")

    @staticmethod
    def _index(
        z: np.ndarray,
        names: list[str],
        groups: dict[str, tuple[str, ...]],
        chosen: tuple[str, ...] | None,
        field: str,
    ) -> np.ndarray:
        """The standardised equal-weight index of the chosen covariates (all when ``None``)."""
        if chosen is None:
            cols = list(range(len(names)))
        else:
            cols = []
            for c in chosen:
                parts = groups.get(c, (c,) if c in names else ())
                if not parts:
                    raise ConfigError(
                        field, f"covariates among data.roles.covariates ({', '.join(groups)})", c
                    )
                cols += [names.index(part) for part in parts]
        if not cols:
            return np.zeros(len(z))
        u = z[:, cols].sum(axis=1)
        sd = u.std()
        if not sd > 1e-12:
            raise DataError(field, "covariates whose sum varies", ", ".join(chosen or names))
        return (u - u.mean()) / sd
