"""The ``ipw`` estimator: inverse probability weighting with stacked-estimating-equation SEs."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from causalkit.balance import weighted_balance
from causalkit.clusters import fit_clusters, fit_weights, weight_diagnostics
from causalkit.contracts import (
    Capability,
    Clusters,
    Dataset,
    DiagnosticValue,
    Estimand,
    EstimandName,
    Fit,
    FormulaTerm,
    Params,
    Resampler,
)
from causalkit.contracts import Params as PluginParams
from causalkit.coverage import World
from causalkit.errors import ConfigError, EstimationError
from causalkit.evalue import e_value, pooled_sd
from causalkit_plugins.dgps.selection_on_observables import clustered_worlds, weighted_world
from causalkit_plugins.estimators.aipw.sensitivity import Elements, OptionalSensitivity
from causalkit_plugins.estimators.selection.estimands import (
    LOGIT_CONFOUNDING,
    WEAK_OVERLAP,
    estimand_in,
    resampling_strata,
)
from causalkit_plugins.estimators.selection.ipw_sensitivity import (
    benchmark_columns,
    ipw_elements,
    ipw_report,
)
from causalkit_plugins.estimators.selection.overlap import overlap_diagnostics, tail_warnings
from causalkit_plugins.estimators.selection.propensity import (
    PropensityFit,
    PropensityModel,
    TreatmentData,
    fit_propensity,
    treatment_data,
    unselected_warnings,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "IPW",
    "IPWParams",
    "IPWResult",
    "ipw_estimate",
    "TargetEstimand",
    "propensity_warnings",
]

TargetEstimand = Annotated[EstimandName, estimand_in(Estimand.ATE, Estimand.ATT, Estimand.ATC)]
"""The estimands of weighting and matching on the score: ATE, ATT or ATC (any case)."""

IPWEstimand = Annotated[
    EstimandName,
    estimand_in(Estimand.ATE, Estimand.ATT, Estimand.ATC, Estimand.MEAN1, Estimand.MEAN0),
]
"""IPW's estimands: the effects of :data:`TargetEstimand` and the potential-outcome means."""

MEANS = {Estimand.MEAN1: 0, Estimand.MEAN0: 1}
"""A potential-outcome mean estimand and the position of its arm in ``(treated, control)``."""


@dataclass(frozen=True)
class IPWResult:
    """IPW estimate, its influence values, the weights actually used and the two arm means."""

    estimate: float
    influence: np.ndarray
    weight_treated: np.ndarray
    weight_control: np.ndarray
    kept: np.ndarray
    n_clipped: int
    n_trimmed: int
    mu1: float = math.nan
    mu0: float = math.nan


def _arm_weights(
    e: np.ndarray, estimand: Estimand
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Treated and control weights as functions of the score, and their derivatives in it."""
    one = np.ones_like(e)
    zero = np.zeros_like(e)
    if estimand is Estimand.ATE or estimand in MEANS:
        return 1.0 / e, 1.0 / (1.0 - e), -1.0 / e**2, 1.0 / (1.0 - e) ** 2
    if estimand is Estimand.ATT:
        return one, e / (1.0 - e), zero, 1.0 / (1.0 - e) ** 2
    return (1.0 - e) / e, one, -1.0 / e**2, zero


def ipw_estimate(
    y: np.ndarray,
    d: np.ndarray,
    ps: PropensityFit,
    estimand: Estimand = Estimand.ATE,
    normalized: bool = True,
    clip: float = 0.0,
    trim: float = 0.0,
    sampling: np.ndarray | None = None,
) -> IPWResult:
    r"""IPW contrast and its influence values from the stacked estimating equations.

    Parameters
    ----------
    y : ndarray, shape (n,)
    d : ndarray of bool, shape (n,)
    ps : PropensityFit
        The fitted propensity model (all ``n`` units).
    estimand : {Estimand.ATE, Estimand.ATT, Estimand.ATC, Estimand.MEAN1, Estimand.MEAN0}
    normalized : bool
        Hajek (weights normalised to sum to one within each arm) or Horvitz-Thompson.
    clip : float
        Scores are clipped to :math:`[c, 1-c]` in the weights (0: no clipping).
    trim : float
        Units with :math:`\hat e \notin [a, 1-a]` are dropped from the contrast (0: none);
        the estimand becomes the effect in the trimmed population.
    sampling : ndarray, shape (n,), optional
        Sampling weights :math:`s_i \ge 0`; ``ps`` should be the model fitted with them.

    Returns
    -------
    IPWResult

    Notes
    -----
    With the kept-unit indicator :math:`k_i`, arm weights :math:`a(e)` (treated) and
    :math:`b(e)` (controls) -- ATE :math:`1/e,\ 1/(1-e)`; ATT :math:`1,\ e/(1-e)`;
    ATC :math:`(1-e)/e,\ 1` -- and :math:`w_{1i} = k_i d_i a(e_i)`,
    :math:`w_{0i} = k_i(1-d_i) b(e_i)`, the arm means solve

    .. math::
        \text{Hajek: } \sum_i w_{gi}(y_i - \mu_g) = 0, \qquad
        \text{HT: } \sum_i (w_{gi} y_i - \mu_g r_i) = 0,

    with :math:`r_i = k_i` (ATE), :math:`k_i d_i` (ATT) or :math:`k_i(1-d_i)` (ATC), and
    :math:`\hat\tau = \hat\mu_1 - \hat\mu_0`. Stacked with the propensity score equations
    :math:`\sum_i s_i(\gamma) = 0`, a first-order expansion gives the influence of
    :math:`\hat\mu_g`

    .. math::
        \phi_{gi} = \{m_{gi} + G_g^\top \mathrm{IF}_{\gamma,i}\}/D_g, \qquad
        G_g = n^{-1}\sum_i \partial m_{gi}/\partial\gamma,

    with :math:`m_{gi}` the summand above, :math:`D_g = \overline{w_g}` (Hajek) or
    :math:`\bar r` (HT), and :math:`\psi_i = \phi_{1i} - \phi_{0i}`. The analytic variance
    :math:`n^{-2}\sum_i\psi_i^2` is the sandwich variance of the stacked system: Stata's
    ``teffects ipw`` (which normalises the weights). Clipped scores have zero derivative;
    the trimming indicator is treated as fixed.

    The potential-outcome means ``MEAN1`` and ``MEAN0`` are one arm's mean under the ATE
    weights (:math:`r_i = k_i`): :math:`\hat\mu_1` with influence :math:`\phi_{1i}` (or
    :math:`\hat\mu_0`, :math:`\phi_{0i}`). Without trimming the Horvitz-Thompson
    :math:`\hat\mu_1 = n^{-1}\sum_i d_iy_i/\hat e_i` is Kang & Schafer's (2007)
    :math:`\hat\mu_{HT}` and the Hajek :math:`\sum_i (d_i/\hat e_i)y_i/\sum_i d_i/\hat e_i`
    their :math:`\hat\mu_{IPW\text{-}NR}`.

    With sampling weights :math:`s_i`, :math:`w_{gi}`, its derivative in the score and
    :math:`r_i` are multiplied by :math:`s_i` (so the arm means and the estimand are those of
    the weighted population) and :math:`\mathrm{IF}_\gamma` is that of the weighted
    propensity model: the same formulas then give the sandwich of the weighted system.

    References
    ----------
    Lunceford, J. & Davidian, M. (2004). Stratification and weighting via the propensity
    score in estimation of causal treatment effects. *Stat. Med.* 23, 2937-2960.
    Hirano, K., Imbens, G. & Ridder, G. (2003). *Econometrica* 71(4), 1161-1189.
    Kang, J. & Schafer, J. (2007). Demystifying double robustness. *Statist. Sci.* 22(4),
    523-539.
    """
    d = np.asarray(d, dtype=bool)
    df = d.astype(np.float64)
    e_raw = ps.score
    free = np.ones_like(e_raw)
    e = e_raw
    n_clipped = 0
    if clip > 0:
        outside = (e_raw < clip) | (e_raw > 1.0 - clip)
        n_clipped = int(outside.sum())
        e = np.clip(e_raw, clip, 1.0 - clip)
        free = (~outside).astype(np.float64)
    kept = np.ones_like(d) if trim <= 0 else (e_raw >= trim) & (e_raw <= 1.0 - trim)
    n_trimmed = int((~kept).sum())
    k = kept.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        a, b, da, db = _arm_weights(e, estimand)
        w1, w0 = np.where(k * df > 0, a, 0.0), np.where(k * (1.0 - df) > 0, b, 0.0)
        da, db = np.where(k * df > 0, da, 0.0), np.where(k * (1.0 - df) > 0, db, 0.0)
    if w1.sum() <= 0 or w0.sum() <= 0:
        raise EstimationError("ipw: no treated or no control units left after trimming")
    r = {Estimand.ATT: k * df, Estimand.ATC: k * (1.0 - df)}.get(estimand, k)
    if sampling is not None:
        w1, w0, da, db, r = (v * sampling for v in (w1, w0, da, db, r))
        if w1.sum() <= 0 or w0.sum() <= 0:
            raise EstimationError("ipw: no treated or no control units with a positive weight")
    grad = ps.gradient * free[:, None]  # d e_i / d gamma, zero where clipped
    phis = []
    # dw: d w_i / d e_i (zero outside the arm and for trimmed units)
    for w, dwg in ((w1, da), (w0, db)):
        if normalized:
            mu = float(w @ y / w.sum())
            m = w * (y - mu)
            G = (grad * (dwg * (y - mu))[:, None]).mean(axis=0)
            D = w.mean()
        else:
            mu = float(w @ y / r.sum())
            m = w * y - mu * r
            G = (grad * (dwg * y)[:, None]).mean(axis=0)
            D = r.mean()
        phis.append((mu, (m + ps.influence @ G) / D))
    (mu1, phi1), (mu0, phi0) = phis
    if estimand in MEANS:
        mu, phi = phis[MEANS[estimand]]
        return IPWResult(mu, phi, w1, w0, kept, n_clipped, n_trimmed, mu1, mu0)
    return IPWResult(mu1 - mu0, phi1 - phi0, w1, w0, kept, n_clipped, n_trimmed, mu1, mu0)


class IPWParams(Params):
    """Parameters of the ``ipw`` estimator."""

    estimand: IPWEstimand = Field(
        Estimand.ATE,
        description="target population: ATE, ATT or ATC; or a potential-outcome mean, MEAN1 = "
        "E[Y(1)] or MEAN0 = E[Y(0)] (lower case accepted)",
    )
    weights: Literal["normalized", "unnormalized"] = Field(
        "normalized", description="Hajek (normalised within arm) or Horvitz-Thompson"
    )
    propensity_model: PropensityModel = Field("logit", description="logit or probit")
    clip: float = Field(0.0, ge=0.0, lt=0.5, description="clip scores to [clip, 1-clip]")
    trim: float = Field(
        0.0, ge=0.0, lt=0.5, description="drop units with score outside [trim, 1-trim]"
    )
    overlap_bound: float = Field(
        0.05, gt=0.0, lt=0.5, description="scores below it or above 1 minus it count as near 0/1"
    )
    sensitivity: OptionalSensitivity = Field(
        None,
        description="omitted-variable-bias bounds for a confounding scenario (cf_y, cf_d, rho) "
        "and benchmarks, as aipw's; null: off",
    )

    # dumped only when set, and out of the seed hash: existing cells keep their hashes and draws
    added_fields: ClassVar[frozenset[str]] = frozenset({"sensitivity"})
    seed_neutral: ClassVar[frozenset[str]] = frozenset({"sensitivity"})

    @model_validator(mode="after")
    def _one_of_clip_trim(self) -> IPWParams:
        if self.clip > 0 and self.trim > 0:
            raise ConfigError(
                "estimator.clip/trim", "clipping or trimming, not both", (self.clip, self.trim)
            )
        if self.estimand in MEANS and self.sensitivity is not None:
            raise ConfigError(
                "estimator.sensitivity",
                "null with a potential-outcome mean (the bounds are derived for effects)",
                self.estimand.value,
            )
        if self.trim > 0 and self.sensitivity is not None:
            raise ConfigError(
                "estimator.trim", "trim=0 with sensitivity (bounds for the whole sample)", self.trim
            )
        return self


class IPW:
    r"""Inverse probability weighting for the ATE, ATT or ATC, or a potential-outcome mean.

    ``estimand=MEAN1`` (``MEAN0``) estimates :math:`E[Y(1)]` (:math:`E[Y(0)]`) by one arm's
    weighted mean (:func:`ipw_estimate`): with ``weights=unnormalized`` Kang & Schafer's
    (2007) Horvitz-Thompson estimator, with ``weights=normalized`` the Hajek one. The
    E-value, which is for an effect, is then not reported, and the weight tail index is that
    of the ATE weights.

    The propensity score is a logit or probit of the treatment on ``roles.covariates`` (or
    ``roles.propensity_covariates``). See :func:`ipw_estimate` for the weights and for the
    influence values, which account for the estimated score (stacked estimating equations):
    ``analytic`` inference gives the sandwich SE of Stata's ``teffects ipw``; ``bootstrap``
    refits the propensity model on every resample, drawn from the whole sample for the ATE and
    within arms for the ATT/ATC
    (:func:`~causalkit_plugins.estimators.selection.estimands.resampling_strata`).
    With the ``cluster`` role the influence values are summed within clusters with the factor
    :math:`G/(G-1)` (no regression defines a :math:`K`), the multiplier is drawn per cluster
    and the bootstrap resamples whole clusters (refitting the propensity model).
    With the ``weight`` role (logit score only) the propensity model is the weighted logit and
    the Hajek (or HT) means are weighted by the sampling weight times the inverse-probability
    weight (:func:`ipw_estimate`): the estimand is that of the weighted population and the
    influence values are those of the weighted stacked system; the bootstrap refits both with
    each resampled unit's weight.

    Diagnostics: overlap (score range by arm, share near 0/1, Kish ESS of the weights in each
    arm), balance before/after weighting (table ``balance`` from
    :func:`causalkit.balance.weighted_balance`; SMD denominators are the unweighted arm
    variances), clipped and trimmed counts, and the E-value of the estimate with the
    conversion behind it (:func:`~causalkit.evalue.e_value`:
    ``e_value.conversion`` ``risk_ratio`` for a 0/1 outcome, from the weighted control mean
    :math:`\hat\mu_0` and :math:`\hat\mu_0 + \hat\tau`; ``smd_0.91`` otherwise, with the
    pooled within-arm SD ``e_value.sd``, weighted by the sampling weights if any (not by the
    inverse-probability weights); ``e_value.basis`` says it in words); the
    E-value of a confidence limit is
    :func:`~causalkit.evalue.e_value_ci` of the interval
    inference gives.

    Sensitivity to unobserved confounding (``sensitivity``, as ``aipw``'s): the
    omitted-variable-bias bounds of Chernozhukov, Cinelli, Newey, Sharma & Syrgkanis (2022)
    through IPW's Riesz representer :math:`\hat\alpha = \bar w(d/\hat e - (1-d)/(1-\hat e))`
    (the clipped score; ATE, ATT and ATC) and its stacked-equation influence values, computed
    by the implementation ``aipw`` uses
    (:func:`~causalkit_plugins.estimators.aipw.sensitivity.report`). IPW fits no outcome
    model, so :math:`\sigma^2 = E[(Y - g(D,X))^2]` is estimated from per-arm least squares of
    the outcome on the covariates with leave-one-out residuals
    (:func:`~causalkit_plugins.estimators.selection.ipw_sensitivity.ipw_elements`;
    diagnostic ``sensitivity.sigma2_source`` = ``linear_loo``): a linear fit that misses part
    of :math:`g` only makes :math:`\hat\sigma^2` and the bounds wider. Benchmarks refit the
    propensity model and the regressions without the benchmark's columns. The CI bounds are
    clustered with the ``cluster`` role. With the ``weight`` role the bounds are those of the
    weighted population (weighted means and influence values, weighted least squares for
    :math:`\hat\sigma^2`, weighted benchmark refits; see
    :func:`~causalkit_plugins.estimators.aipw.sensitivity.riesz_elements`); with ``trim > 0``
    the analysis is refused. Results ``sensitivity.*`` in the diagnostics, tables
    ``sensitivity.bounds`` and ``sensitivity.contour``, figure ``sensitivity_contour.png``.
    """

    name: ClassVar[str] = "ipw"
    Params: ClassVar[type[Params]] = IPWParams
    required_roles: ClassVar[tuple[str, ...]] = ("outcome", "treatment")
    handles_roles: ClassVar[frozenset[str]] = frozenset({"cluster", "weight"})
    default_inference: ClassVar[str] = "analytic"
    coverage_worlds: ClassVar[tuple[World, ...]] = (
        World(
            "logit_confounding",
            LOGIT_CONFOUNDING,
            note="logit propensity correctly specified, moderate overlap",
        ),
        World(
            "small_sample",
            ("dgp=selection_on_observables", "dgp.n=150", "dgp.outcome.x1_sq=0"),
            note="150 units with the default propensity (about 65 treated)",
            known="the stacked-equation sandwich is 10-20% small at n = 150 (weights with a "
            "heavy tail in a fifth of the samples): coverage 0.91-0.95 over R = 300-600",
        ),
        World(
            "weak_overlap",
            WEAK_OVERLAP,
            expect="flagged",
            reps=300,
            note="weights with infinite variance: intervals too short; the fit must warn",
        ),
        clustered_worlds(
            ("dgp.outcome.x1_sq=0",),
            "60 clusters of 10 sharing covariates (so treatment) and noise",
            bootstrap=False,
        ),
        weighted_world(
            (),
            "informative sampling on the effect modifier x1 (weights 1/probability), logit "
            "propensity correctly specified: weighted logit and weighted Hajek means target "
            "the population ATE",
        ),
    )

    def __init__(self, params: IPWParams | None = None) -> None:
        self.params = params or IPWParams()

    @classmethod
    def capabilities(cls, params: PluginParams) -> frozenset[Capability]:
        """Influence values (stacked estimating equations) and a refit, under every option."""
        return frozenset({Capability.INFLUENCE, Capability.RESAMPLE})

    def _estimate(
        self, y: np.ndarray, d: np.ndarray, P: np.ndarray, w: np.ndarray | None = None
    ) -> tuple[PropensityFit, IPWResult]:
        p = self.params
        ps = fit_propensity(P, d, p.propensity_model, w)
        res = ipw_estimate(
            y, d, ps, p.estimand, p.weights == "normalized", p.clip, p.trim, sampling=w
        )
        return ps, res

    def fit(self, data: Dataset, rng: np.random.Generator) -> Fit:
        p = self.params
        td = treatment_data(data, self.name)
        y, d, P = td.y, td.d, td.P
        analysed = Dataset(td.frame, data.roles.model_copy(update={"selected": None}))
        w = fit_weights(analysed, td.n)
        if w is not None and p.propensity_model != "logit":
            raise ConfigError(
                "estimator.propensity_model",
                "logit with roles.weight (the weighted probit is not implemented)",
                p.propensity_model,
            )
        ps, res = self._estimate(y, d, P, w)
        cl = fit_clusters(analysed, td.n, self.name)

        def refit(idx: np.ndarray) -> np.ndarray:
            dd = d[idx]
            if dd.all() or not dd.any():
                raise EstimationError("ipw: a resample has no treated or no control units")
            return np.array(
                [self._estimate(y[idx], dd, P[idx], None if w is None else w[idx])[1].estimate]
            )

        kept = res.kept
        t, c = d & kept, ~d & kept
        weighting = Estimand.ATE if p.estimand in MEANS else p.estimand
        table, balance = weighted_balance(
            td.propensity_covariates, P[t], P[c], res.weight_treated[t], res.weight_control[c]
        )
        outcome_sd = pooled_sd(y, d)
        diagnostics: dict[str, DiagnosticValue] = {
            "n_treated": int(d.sum()),
            "n_control": int((~d).sum()),
            "n_clipped": res.n_clipped,
            "n_trimmed": res.n_trimmed,
            "n_unselected_dropped": td.n_unselected,
            **overlap_diagnostics(ps.score, d, p.overlap_bound, weighting.value),
            **balance,
            "propensity_converged": ps.converged,
            "propensity_separation": ps.separation,
            # an E-value is for an effect, not for a mean
            **(
                {} if p.estimand in MEANS else e_value(res.estimate, y, d, res.mu0, w).diagnostics()
            ),
            "outcome_sd": outcome_sd,
        }
        sens: tuple[dict[str, DiagnosticValue], dict[str, pd.DataFrame], tuple[str, ...]] = (
            {},
            {},
            (),
        )
        if p.sensitivity is not None:
            sens = self._sensitivity(td, ps, res, cl.clusters, w, data.roles.terms)
        return Fit(
            p.estimand,
            res.estimate,
            td.n,
            influence=res.influence,
            resampler=Resampler(td.n, strata=resampling_strata(p.estimand, d), refit=refit),
            clusters=cl.clusters,
            weights=w,
            diagnostics={
                **diagnostics,
                **(cl.diagnostics or {}),
                **weight_diagnostics(w),
                **sens[0],
            },
            tables={
                "overlap": pd.DataFrame({"score": ps.score, "treated": d.astype(np.int64)}),
                "balance": table,
                **sens[1],
            },
            warnings=tuple(
                unselected_warnings(self.name, td)
                + propensity_warnings(self.name, ps, res.n_clipped, res.n_trimmed, td.n)
                + tail_warnings(self.name, diagnostics)
                + list(cl.warnings)
                + list(sens[2])
            ),
        )

    def _sensitivity(
        self,
        td: TreatmentData,
        ps: PropensityFit,
        res: IPWResult,
        clusters: Clusters | None,
        w: np.ndarray | None,
        terms: tuple[FormulaTerm, ...] = (),
    ) -> tuple[dict[str, DiagnosticValue], dict[str, pd.DataFrame], tuple[str, ...]]:
        """Bounds, RVs, benchmarks and contour grid (:mod:`.ipw_sensitivity`).

        ``terms``: the covariate formulas' terms a benchmark may name
        (:func:`~causalkit.formulas.benchmark_groups`).

        Each benchmark refits the propensity model and the outcome regressions without its
        columns (with the sampling weights ``w``, if any); the CI bounds are clustered with
        the fit's clusters.
        """
        p = self.params
        sens = p.sensitivity
        assert sens is not None
        names = list(dict.fromkeys((*td.covariates, *td.propensity_covariates)))
        columns = {c: td.X[:, j] for j, c in enumerate(td.covariates)}
        for j, c in enumerate(td.propensity_covariates):
            columns.setdefault(c, td.P[:, j])

        def elements(leave_out: tuple[str, ...], score: np.ndarray) -> Elements:
            kept = [columns[c] for c in names if c not in leave_out]
            X = np.column_stack(kept) if kept else np.empty((td.n, 0))
            e = np.clip(score, p.clip, 1.0 - p.clip) if p.clip > 0 else score
            return ipw_elements(td.y, td.d, e, X, p.estimand, w)

        shorts = {}
        for name, group in benchmark_columns(
            sens, td.covariates, td.propensity_covariates, terms
        ).items():
            keep = [j for j, c in enumerate(td.propensity_covariates) if c not in group]
            ps_s, res_s = self._estimate(td.y, td.d, td.P[:, keep], w)
            shorts[name] = (res_s.estimate, elements(group, ps_s.score))
        return ipw_report(
            res.estimate, res.influence, elements((), ps.score), sens, td.y, shorts, clusters, w
        )

    @staticmethod
    def figures(tables: Mapping[str, pd.DataFrame]) -> dict[str, Figure]:
        """The sensitivity contour plot (``sensitivity_contour.png``) when the fit carries its grid."""
        from causalkit_plugins.estimators.aipw.plots import sensitivity_figures

        return sensitivity_figures(tables)


def propensity_warnings(
    who: str, ps: PropensityFit, n_clipped: int, n_trimmed: int, n: int
) -> list[str]:
    """The propensity-model trouble a user must see."""
    out = []
    if not ps.converged:
        out.append(f"{who}: the propensity model did not converge; estimates are unreliable")
    if ps.separation:
        out.append(
            f"{who}: fitted propensity scores within 1e-10 of 0 or 1 (separation): "
            "overlap fails and the weights are unstable"
        )
    if n_clipped:
        out.append(f"{who}: {n_clipped} of {n} propensity scores clipped")
    if n_trimmed:
        out.append(
            f"{who}: {n_trimmed} of {n} units trimmed; the estimate is for the trimmed population"
        )
    if not math.isfinite(float(np.sum(ps.influence))):
        out.append(
            f"{who}: singular propensity information matrix; the analytic SE is not available"
        )
    return out
