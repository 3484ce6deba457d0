"""The ``psm`` estimator: nearest-neighbour matching on the propensity score or on covariates."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from causalkit.balance import weighted_balance
from causalkit.clusters import fit_clusters, fit_weights, weight_diagnostics
from causalkit.contracts import (
    Capability,
    Dataset,
    DiagnosticValue,
    Estimand,
    Fit,
    LazyTables,
    Params,
)
from causalkit.contracts import Params as PluginParams
from causalkit.coverage import World
from causalkit.errors import ConfigError, DataError, EstimationError
from causalkit.evalue import e_value, pooled_sd
from causalkit_plugins.dgps.selection_on_observables import CLUSTERED_600, INFORMATIVE_600
from causalkit_plugins.estimators.selection.estimands import LOGIT_CONFOUNDING, WEAK_OVERLAP
from causalkit_plugins.estimators.selection.ipw import TargetEstimand, propensity_warnings
from causalkit_plugins.estimators.selection.overlap import overlap_diagnostics, tail_warnings
from causalkit_plugins.estimators.selection.propensity import (
    PropensityFit,
    PropensityModel,
    TreatmentData,
    fit_propensity,
    treatment_data,
    unselected_warnings,
)
from causalkit_plugins.estimators.selection.psm_match import (
    MatchSpec,
    Pairs,
    match_greedy,
    match_with_replacement,
)
from causalkit_plugins.estimators.selection.psm_variance import (
    MatchedPairs,
    MatchingResult,
    ai_standard_error,
    clustered_standard_error,
    conditional_variances,
    matching_estimate,
    outside_cluster_residuals,
    score_terms,
    score_unit_terms,
    unit_terms,
)
from causalkit_plugins.estimators.selection.sensitivity import (
    Alternative,
    covariance_adjusted,
    matched_sets,
    rosenbaum_bounds,
    rosenbaum_m_bounds,
)

__all__ = ["PSM", "PSMParams", "match_units"]

SCORE_TIE_TOLERANCE = float(np.sqrt(np.finfo(np.float64).eps))
"""Default tie tolerance on the score: ties up to rounding (as Stata ``teffects psmatch``)."""
COVARIATE_TIE_TOLERANCE = 1e-5
"""Default tie tolerance on covariates: R ``Matching``'s ``distance.tolerance``."""
CLUSTER_RESIDUAL_MATCHES = 8
r"""Same-arm units from other clusters whose mean is subtracted in the clustered SE's residuals.

The mean's noise adds about :math:`\sigma^2/J` to each squared unit term, which dilutes the
design effect; more neighbours are less local (8 of an arm's 300 units in the clustered
coverage world)."""


_UNADJUSTED_SE = {
    Estimand.ATE: "for the ATE this SE is conservative",
    Estimand.ATT: "for the ATT this SE can be too small or too large",
    Estimand.ATC: "for the ATC this SE can be too small or too large",
}
"""What ignoring the score's estimation does to the SE, per estimand (Abadie & Imbens 2016)."""


class PSMParams(Params):
    """Parameters of the ``psm`` estimator."""

    estimand: TargetEstimand = Field(
        Estimand.ATT,
        description="target population: ATT (the default: effect on the treated, where "
        "ipw, aipw and ols default to the ATE), ATE or ATC (lower case accepted)",
    )
    k: int = Field(1, ge=1, le=1000, description="matches per unit")
    match_on: Literal["propensity", "logit", "covariates"] = Field(
        "propensity", description="the score, its logit, or the covariates themselves"
    )
    propensity_model: PropensityModel = Field("logit", description="logit or probit score model")
    distance: Literal["inverse_variance", "mahalanobis"] = Field(
        "inverse_variance", description="covariate metric (match_on=covariates)"
    )
    replace: bool = Field(True, description="match with replacement (the AI SE assumes it)")
    order: Literal["largest", "smallest", "random", "data"] = Field(
        "largest", description="greedy order without replacement (by score; MatchIt m.order)"
    )
    caliper: float | None = Field(
        None, gt=0, description="max distance in SDs of the score (or of each covariate)"
    )
    ties: bool = Field(True, description="keep all pool units tied at the k-th distance")
    exact: tuple[str, ...] = Field((), description="columns matched exactly (strata)")
    bias_adjust: bool = Field(False, description="Abadie-Imbens (2011) regression bias adjustment")
    var_matches: int = Field(
        2,
        ge=0,
        le=100,
        description="same-arm matches for the conditional variance (0: homoskedastic)",
    )
    variance: Literal["population", "sample"] = Field(
        "population", description="AI variance of the population or the sample average effect"
    )
    se: Literal["ai2016", "ai2006"] = Field(
        "ai2016",
        description="ai2016: adjust the AI SE for the estimated score (match_on a score); "
        "ai2006: treat the score as known",
    )
    tie_tolerance: float | None = Field(
        None,
        ge=0.0,
        description="standardised distances this close tie (default: 1e-5 for covariates, "
        "sqrt(machine eps) for a score)",
    )
    gammas: tuple[float, ...] = Field((1.0, 1.5, 2.0, 2.5, 3.0), description="Rosenbaum bounds")
    alternative: Alternative = Field(
        "two-sided",
        description="direction of the Rosenbaum test (greater: treated outcomes larger), "
        "fixed before seeing the data",
    )
    overlap_bound: float = Field(
        0.05, gt=0.0, lt=0.5, description="scores this close to 0/1 flagged"
    )

    @model_validator(mode="after")
    def _consistent(self) -> PSMParams:
        if self.estimand is Estimand.ATE and not self.replace:
            raise ConfigError(
                "estimator.replace",
                "true for estimand=ATE (greedy matching is one-directional)",
                False,
            )
        if self.distance != "inverse_variance" and self.match_on != "covariates":
            raise ConfigError(
                "estimator.distance",
                "inverse_variance unless match_on=covariates (the score is one column)",
                self.distance,
            )
        if self.order != "largest" and self.replace:
            raise ConfigError(
                "estimator.order", "largest unless replace=false (greedy matching)", self.order
            )
        if self.se == "ai2016" and self.match_on != "covariates" and self.variance == "sample":
            raise ConfigError(
                "estimator.variance",
                "population with se=ai2016 (the adjustment is for the population effect; "
                "or set se=ai2006)",
                self.variance,
            )
        if any(g < 1 for g in self.gammas):
            raise ConfigError("estimator.gammas", "values >= 1", self.gammas)
        return self


def _standardise(X: np.ndarray) -> np.ndarray:
    sd = X.std(axis=0, ddof=1)
    sd = np.where(sd > 1e-5, sd, 1e-5)
    return (X - X.mean(axis=0)) / sd


def _strata(frame: pd.DataFrame, exact: tuple[str, ...]) -> np.ndarray:
    for c in exact:
        if c not in frame.columns:
            raise DataError("estimator.exact", "columns of the table", repr(c))
        if frame[c].isna().any():
            raise DataError(
                "estimator.exact",
                f"no missing values in {c!r}",
                f"{int(frame[c].isna().sum())} missing",
            )
    if not exact:
        return np.zeros(len(frame), dtype=np.int64)
    return frame.groupby(list(exact), sort=False).ngroup().to_numpy(np.int64)


def match_units(
    Q: np.ndarray,
    S: np.ndarray,
    d: np.ndarray,
    strata: np.ndarray,
    directions: list[bool],
    spec: MatchSpec,
    replace: bool,
    order_key: np.ndarray,
) -> MatchedPairs:
    """Match every focal arm in ``directions`` (True: treated focal) within each stratum.

    Returns the pairs in global indices with weights :math:`1/M_i`, and the number of focal
    units left without a match (caliper, empty stratum, or pool used up).
    """
    focal_parts, match_parts = [], []
    n_focal = 0
    for treated_focal in directions:
        fmask = d if treated_focal else ~d
        n_focal += int(fmask.sum())
        for s in np.unique(strata[fmask]):
            fi = np.flatnonzero(fmask & (strata == s))
            pi = np.flatnonzero(~fmask & (strata == s))
            if pi.size == 0:
                continue
            if replace:
                pairs = match_with_replacement(Q[fi], Q[pi], S[fi], S[pi], spec)
            else:
                order = np.argsort(order_key[fi], kind="stable")
                pairs = match_greedy(Q[fi], Q[pi], S[fi], S[pi], spec, order)
            focal_parts.append(fi[pairs.focal])
            match_parts.append(pi[pairs.pool])
    pairs = Pairs(
        np.concatenate(focal_parts) if focal_parts else Pairs.empty().focal,
        np.concatenate(match_parts) if match_parts else Pairs.empty().pool,
    )
    m = np.bincount(pairs.focal, minlength=d.shape[0]).astype(np.float64)
    n_matched = int((m > 0).sum())
    return MatchedPairs(pairs.focal, pairs.pool, 1.0 / m[pairs.focal], n_focal - n_matched)


class PSM:
    r"""Nearest-neighbour matching with Abadie-Imbens SEs; targets the ATT by default (ipw, aipw, ols: ATE).

    Units are matched on the estimated propensity score (``match_on="propensity"``), its
    logit, or on ``roles.covariates`` (standardised: inverse-variance distance, or the
    Mahalanobis distance of the standardised covariates, R ``Matching``'s ``Weight=1/2``).
    ``k`` nearest matches with replacement (ties kept and weights split, as R ``Matching``
    with ``ties=TRUE``), or greedy matching without replacement in ``order`` (MatchIt's
    ``m.order``; ``random`` uses the run's generator). A ``caliper`` (in SDs of the score,
    or of each covariate) and ``exact`` strata drop focal units without an acceptable match;
    the estimate is then for the matched units, and the count is reported.

    No distance matrix is formed: a 1-D score is matched by binary search in the sorted
    pool (ties are a contiguous run), covariates with a k-d tree (:mod:`.psm_match`).

    Ties: with the default ``tie_tolerance`` a score's ties are exact up to rounding
    (:data:`SCORE_TIE_TOLERANCE`, as Stata ``teffects psmatch``), covariate distances within
    1e-5 standardised units tie (R ``Matching``'s ``distance.tolerance``).

    Standard error (``Fit.model_se``, used by ``analytic`` inference): Abadie & Imbens
    (2006), for the population (default) or the sample average effect, with conditional
    variances from ``var_matches`` same-arm matches or, with 0, homoskedastic
    (:func:`~.psm_variance.matching_estimate`). When matching on an estimated score
    (``match_on`` ``propensity`` or ``logit``) the default ``se="ai2016"`` adds Abadie &
    Imbens' (2016) adjustment for the first step (:func:`~.psm_variance.score_terms`,
    local neighbourhoods of ``max(var_matches, 1) + 1`` units): it reduces the variance of
    the ATE and can move the ATT's either way. ``se="ai2006"`` treats the score as known
    (conservative for the ATE, off either way for the ATT), with a warning saying which.
    With ``var_matches=1`` this reproduces Stata ``teffects psmatch``'s default robust SE
    (``tests/reference/test_psm_stata.py``).
    The adjustment is derived for the population effect, the simple matching estimator
    with replacement and no strata; with ``exact`` strata, a binding caliper,
    ``bias_adjust`` or greedy matching it is applied as is (an approximation). The SE
    assumes matching with replacement; without replacement it is reported with a warning.
    The bootstrap is not offered: it is invalid for nearest-neighbour matching (Abadie &
    Imbens 2008), so every fit offers ``MODEL_SE`` only (:meth:`capabilities`):
    ``analytic`` or ``none``.

    Clusters (the ``cluster`` role): matching is unchanged, across clusters (to match within
    clusters, name the cluster column in ``exact``), so the estimand is too. The estimator is
    asymptotically linear, :math:`\hat\tau - \tau = N_F^{-1}\sum_i\psi_i + B` with
    :math:`\psi_i = 1[i\in F]\{\tau(X_i) - \tau\} + (2D_i - 1)(1[i\in F] + K_i)
    \varepsilon_i` (:math:`F` the focal units, :math:`K_i` the times unit :math:`i` is used
    as a match, :math:`\varepsilon_i = Y_i - \mu_{D_i}(X_i)`; Abadie & Imbens 2006, proof of
    Theorem 1), and the clustered variance is the Abadie-Imbens variance above times the
    design effect of the clusters on estimated terms :math:`\hat\psi_i`, and :math:`G/(G-1)`:

    .. math::
        \hat V^{cl} = \frac{G}{G-1}\,(\hat V^{AI} + \Delta)\,
            \frac{\sum_g(\sum_{i\in g}\hat\psi_i)^2}{\sum_i\hat\psi_i^2}

    (:func:`~.psm_variance.clustered_standard_error`, where the choice of the ratio over
    adding the cross products is explained; :math:`\Delta` the 2016 adjustment, 0 with
    ``se="ai2006"``; one unit per cluster gives :math:`\tfrac{G}{G-1}` times the
    unclustered variance, which is reported as the diagnostic ``se_unclustered``). In
    :math:`\hat\psi_i` (:func:`~.psm_variance.unit_terms`) the residual
    :math:`\hat\varepsilon_i` is :math:`Y_i` minus the mean of its
    :data:`CLUSTER_RESIDUAL_MATCHES` nearest same-arm units *from other clusters* (a
    same-cluster neighbour would cancel the shared noise), and a match's noise is moved
    from the focal unit's cluster to the match's. With the 2016 adjustment each term also
    carries the score's part :math:`N_F a^\top\hat V_\theta S_i`
    (:func:`~.psm_variance.score_unit_terms`: the linear form whose variance is Abadie &
    Imbens' adjusted one), so units of a cluster that share covariates share that part too.
    What it ignores: the noise of the neighbour means in :math:`\hat\varepsilon` (it
    dilutes the design effect a little) and the matching bias :math:`B`. In the clustered
    coverage world (60 clusters of 10; ``tests/unit/test_psm_clusters.py``), matching on
    the covariates, the clustered variance equals the Monte Carlo variance (ratio 1.01,
    coverage 0.950, R = 300; the unclustered one is 28% small, coverage 0.90). On the
    estimated score (the default) the clustered SE is within 1-6% of the Monte Carlo SD and
    covers 0.943 (R = 300), 0.948 and 0.917 (R = 600, two seed sets); the unclustered SE
    there is about 9% small but covers 0.92-0.94, because matched controls often come from
    the treated unit's cluster (shared covariates), so much of the shared noise cancels.
    The SE is NaN, with a warning, when a used unit's residual is undefined (its
    arm lies in one cluster). Fewer than 30 clusters warn; one cluster is an error.

    Sampling weights (the ``weight`` role), with ``match_on="covariates"`` only: a focal unit
    counts with its weight and hands it to its matches, so the estimate is
    :math:`\sum_{i\in F}\omega_i\hat\tau_i/\sum_{i\in F}\omega_i`, the effect in the
    weighted population's focal arm, and the SE is Abadie & Imbens' with weighted match
    counts (formulas in :func:`~.psm_variance.matching_estimate`; with clusters, the unit
    terms carry the weights too). Matching itself is unweighted (the nearest units, whatever
    their weights): a match on the covariates estimates :math:`\mu_0(X_i)`, which is the same
    in the sample and in the weighted population. A match on a score is refused: it
    estimates :math:`E[Y(0)\mid p(X_i)]` in the *sample*, whose covariates at a given score
    are not distributed as the weighted population's (the sample's ATT at the score, not
    the unit's), so the weighted average is biased wherever effects vary within score
    strata (-0.26 against a population ATT of 1.37 in the coverage matrix's weighted
    world). Units of weight 0 are not in the weighted population and are left out (neither
    matched nor a match; ``n_zero_weight`` counts them); for greedy matching the score that
    orders the units is the weighted logit. The ``rosenbaum`` table ignores the weights.

    Tables: ``balance`` (:func:`causalkit.balance.weighted_balance`; weights: the number of
    times each unit appears in the matched sample), ``overlap`` (when a score is fitted) and
    ``rosenbaum``: Γ bounds on the p-value of a test against the direction ``alternative``
    (fixed in the config, never read from the estimate; ``two-sided`` by default), a
    sensitivity diagnostic, not inference on the estimate. Disjoint pairs (``replace=false,
    k=1``) use the Wilcoxon signed-rank bounds; every other design (``k > 1``, matching with
    replacement, the ATE) uses Rosenbaum's (2007) M-test in the matched sets, the connected
    components of the match graph (:mod:`.sensitivity`). Both are applied to the
    covariance-adjusted responses (residuals of ``y`` on the covariates, fitted ignoring
    treatment; Rosenbaum 2002): matching on an *estimated* score balances the covariates
    better than coin flips, and on raw outcomes the tests are conservative (Γ = 1 rejected
    0.7-1.3% at the 5% level in ``tests/statistical/test_ipw_psm_coverage.py``'s world).
    Diagnostics include the E-value of the estimate with its conversion (``e_value.*``,
    :func:`causalkit.evalue.e_value`; a 0/1 outcome's baseline risk is the controls' mean weighted
    as matched; a continuous outcome's SD is the pooled within-arm SD, weighted by the sampling
    weights if any) and the unweighted pooled SD ``outcome_sd``,
    and ``se_score_adjustment`` (the variance added by the 2016 adjustment; 0 when not
    applied).

    References
    ----------
    Abadie, A. & Imbens, G. (2006). *Econometrica* 74(1), 235-267.
    Abadie, A. & Imbens, G. (2008). On the failure of the bootstrap for matching
    estimators. *Econometrica* 76(6), 1537-1557.
    Abadie, A. & Imbens, G. (2016). Matching on the estimated propensity score.
    *Econometrica* 84(2), 781-807.
    Sekhon, J. (2011). Multivariate and propensity score matching software with automated
    balance optimization: the Matching package for R. *J. Stat. Softw.* 42(7).
    """

    name: ClassVar[str] = "psm"
    Params: ClassVar[type[Params]] = PSMParams
    required_roles: ClassVar[tuple[str, ...]] = ("outcome", "treatment")
    handles_roles: ClassVar[frozenset[str]] = frozenset({"cluster", "weight"})
    default_inference: ClassVar[str] = "analytic"
    coverage_worlds: ClassVar[tuple[World, ...]] = (
        World(
            "logit_confounding",
            LOGIT_CONFOUNDING,
            note="matching on the estimated logit score",
        ),
        World(
            "small_sample",
            (*LOGIT_CONFOUNDING, "dgp.n=300"),
            note="300 units (about 130 treated) matched on the estimated score",
        ),
        World(
            "weak_overlap",
            WEAK_OVERLAP,
            expect="flagged",
            reps=300,
            note="controls' odds weights with infinite variance: the fit must warn",
        ),
        World(
            "clustered",
            (*CLUSTERED_600, "dgp.outcome.x1_sq=0"),
            reps=1000,
            inferences=frozenset({"analytic"}),
            note="60 clusters of 10 sharing covariates and noise; the clustered Abadie-Imbens SE "
            "(R=1000: at 600 coverage 0.917 missed the band by 0.006; ignoring the clusters "
            "here costs only 7% of SE, matching on covariates 15%)",
        ),
        World(
            "weighted",
            INFORMATIVE_600,
            expect="refuse",
            reps=20,
            note="matching on the estimated score with sampling weights is biased (the sample's "
            "covariate mix at a score is not the population's): refused in one line",
        ),
    )

    def __init__(self, params: PSMParams | None = None) -> None:
        self.params = params or PSMParams()

    @classmethod
    def capabilities(cls, params: PluginParams) -> frozenset[Capability]:
        """The Abadie-Imbens SE only: no influence values, and no valid refit."""
        return frozenset({Capability.MODEL_SE})

    def _space(
        self, td: TreatmentData, w: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, PropensityFit | None]:
        """Matching coordinates ``Q`` (Euclidean = the metric), standardised ``S``, the score fit."""
        p = self.params
        needs_ps = p.match_on != "covariates" or (
            not p.replace and p.order in ("largest", "smallest")
        )
        ps = fit_propensity(td.P, td.d, p.propensity_model, w) if needs_ps else None
        if p.match_on != "covariates":
            assert ps is not None
            e = ps.score
            x = e if p.match_on == "propensity" else np.log(e) - np.log1p(-e)
            S = _standardise(x[:, None])
            return S, S, ps
        if td.X.shape[1] == 0:
            raise DataError(
                "roles.covariates", "at least one covariate for match_on=covariates", "none"
            )
        S = _standardise(td.X)
        if p.distance == "inverse_variance":
            return S, S, ps
        W = np.linalg.pinv(S.T @ S / S.shape[0])
        try:
            L = np.linalg.cholesky(W)
        except np.linalg.LinAlgError as err:
            raise EstimationError(
                "psm: the covariate covariance is singular (mahalanobis distance)"
            ) from err
        return S @ L, S, ps

    def fit(self, data: Dataset, rng: np.random.Generator) -> Fit:
        p = self.params
        td = treatment_data(data, self.name)
        analysed = Dataset(td.frame, data.roles.model_copy(update={"selected": None}))
        w = fit_weights(analysed, td.n)
        weight_notes = weight_diagnostics(w)
        if w is not None:
            self._check_weighted()
            if (w == 0).any():  # not in the weighted population: neither matched nor a match
                keep = w > 0
                td = replace(
                    td, y=td.y[keep], d=td.d[keep], X=td.X[keep], P=td.P[keep],
                    frame=td.frame.loc[keep],
                )  # fmt: skip
                analysed, w = Dataset(td.frame, analysed.roles), w[keep]
        y, d = td.y, td.d
        Q, S, ps = self._space(td, w)
        strata = _strata(td.frame, p.exact)
        if p.order == "random":
            key = rng.random(td.n)
        elif p.order == "data":
            key = np.arange(td.n, dtype=np.float64)
        else:
            key = (
                np.zeros(td.n) if ps is None else (-ps.score if p.order == "largest" else ps.score)
            )
        directions = {Estimand.ATT: [True], Estimand.ATC: [False], Estimand.ATE: [True, False]}[
            p.estimand
        ]
        tol = self._tie_tolerance()
        spec = MatchSpec(k=p.k, ties=p.ties and p.replace, tol=tol, caliper=p.caliper)
        pairs = match_units(Q, S, d, strata, directions, spec, p.replace, key)
        if pairs.focal.size == 0:
            raise EstimationError("psm: no unit found a match (caliper or exact strata too strict)")
        sigma2 = conditional_variances(Q, y, d, p.var_matches, tol) if p.var_matches else None
        if p.bias_adjust and td.X.shape[1] == 0:
            raise DataError("roles.covariates", "covariates for bias_adjust=true", "none")
        res = matching_estimate(
            pairs, y, d, sigma2, td.X if p.bias_adjust else None, p.estimand is Estimand.ATE, w
        )
        table, balance = self._balance(td, ps, res.unit_weight)
        adjustment, terms = 0.0, None
        if self._adjusts():
            assert ps is not None
            Z = np.column_stack([np.ones(td.n), td.P])
            terms = score_terms(
                Q, y, d, Z, ps.score, ps.gradient, p.estimand.value, res.estimate,
                max(p.var_matches, 1) + 1, tol,
            )  # fmt: skip
            adjustment = terms.adjustment
        diagnostics = self._diagnostics(td, ps, pairs, res, sigma2, balance, w)
        diagnostics["se_score_adjustment"] = adjustment
        diagnostics.update(weight_notes)
        se = ai_standard_error(res, p.variance, adjustment)
        cl = fit_clusters(analysed, td.n, self.name)
        cluster_notes = list(cl.warnings)
        if cl.clusters is not None:
            codes = cl.clusters.codes
            resid = outside_cluster_residuals(Q, y, d, codes, CLUSTER_RESIDUAL_MATCHES, tol)
            psi = unit_terms(pairs, res, d, resid, p.variance)
            if terms is not None:
                assert ps is not None
                psi = psi + score_unit_terms(terms, d, ps.score, ps.gradient, res.focal_total)
            diagnostics["se_unclustered"] = se
            se = clustered_standard_error(res, p.variance, psi, codes, adjustment)
            diagnostics.update(cl.diagnostics or {})
            if np.isnan(se) and np.isfinite(diagnostics["se_unclustered"]):
                cluster_notes.append(
                    "psm: the clustered SE is undefined: a unit used in the estimate has no "
                    "unit of its arm in another cluster (an arm inside one cluster); SE is NaN"
                )
        return Fit(
            p.estimand,
            res.estimate,
            td.n,
            model_se=se,
            clusters=cl.clusters,
            weights=w,
            diagnostics=diagnostics,
            tables=self._tables(td, ps, pairs, table),
            warnings=tuple(
                self._warnings(td, ps, pairs, sigma2)
                + cluster_notes
                + tail_warnings(self.name, diagnostics)
            ),
        )

    def _check_weighted(self) -> None:
        """Refuse matching on a score with sampling weights (see the class docstring)."""
        p = self.params
        if p.match_on != "covariates":
            raise ConfigError(
                "estimator.match_on",
                "covariates with roles.weight (units matched on a score have the sample's, not "
                "the weighted population's, covariate mix at that score: the estimate is biased)",
                p.match_on,
            )
        if p.propensity_model != "logit" and not p.replace:
            raise ConfigError(
                "estimator.propensity_model",
                "logit with roles.weight (the weighted probit is not implemented)",
                p.propensity_model,
            )

    def _tie_tolerance(self) -> float:
        p = self.params
        if p.tie_tolerance is not None:
            return p.tie_tolerance
        return COVARIATE_TIE_TOLERANCE if p.match_on == "covariates" else SCORE_TIE_TOLERANCE

    def _adjusts(self) -> bool:
        """Whether the SE carries the Abadie-Imbens (2016) adjustment for the estimated score."""
        return self.params.match_on != "covariates" and self.params.se == "ai2016"

    def _balance(
        self, td: TreatmentData, ps: PropensityFit | None, weight: np.ndarray
    ) -> tuple[pd.DataFrame, dict[str, float]]:
        """Balance of the covariates (and the score) in the matched sample."""
        d = td.d
        if self.params.match_on == "covariates":
            names, M = td.covariates, td.X
        else:
            assert ps is not None
            names, M = (
                (*td.propensity_covariates, "propensity_score"),
                np.column_stack([td.P, ps.score]),
            )
        return weighted_balance(names, M[d], M[~d], weight[d], weight[~d])

    def _tables(
        self,
        td: TreatmentData,
        ps: PropensityFit | None,
        pairs: MatchedPairs,
        table: pd.DataFrame,
    ) -> LazyTables:
        """``balance``, ``rosenbaum`` and ``overlap``; the Γ bounds (most of a fit's time) lazily."""
        out: dict[str, Callable[[], pd.DataFrame]] = {
            "balance": lambda: table,
            "rosenbaum": lambda: self._rosenbaum(td, pairs),
        }
        if ps is not None:
            score = ps.score
            out["overlap"] = lambda: pd.DataFrame(
                {"score": score, "treated": td.d.astype(np.int64)}
            )
        return LazyTables(out)

    def _rosenbaum(self, td: TreatmentData, pairs: MatchedPairs) -> pd.DataFrame:
        """Γ bounds whose size fits the design: signed ranks for disjoint pairs, else M-test."""
        p = self.params
        r = covariance_adjusted(td.y, np.column_stack([td.P, td.X]))
        if not p.replace and p.k == 1:
            sign = np.where(td.d[pairs.focal], 1.0, -1.0)
            diff = sign * (r[pairs.focal] - r[pairs.match])
            return rosenbaum_bounds(diff, p.gammas, p.alternative)
        labels = matched_sets(pairs.focal, pairs.match, td.n)
        return rosenbaum_m_bounds(r, td.d, labels, p.gammas, p.alternative)

    def _diagnostics(
        self,
        td: TreatmentData,
        ps: PropensityFit | None,
        pairs: MatchedPairs,
        res: MatchingResult,
        sigma2: np.ndarray | None,
        balance: dict[str, float],
        sampling: np.ndarray | None,
    ) -> dict[str, DiagnosticValue]:
        p = self.params
        d, w = td.d, res.unit_weight
        outcome_sd = pooled_sd(td.y, d)
        out: dict[str, DiagnosticValue] = {
            "n_treated": int(d.sum()),
            "n_control": int((~d).sum()),
            "n_matched": res.n_focal,
            "n_unmatched": pairs.n_unmatched,
            "n_unselected_dropped": td.n_unselected,
            "n_pairs": int(pairs.focal.size),
            "n_treated_used": int(np.sum((w > 0) & d)),
            "n_control_used": int(np.sum((w > 0) & ~d)),
            "mean_matches": float(pairs.focal.size / res.n_focal),
            "max_times_used": float(res.times_used.max()),
            **balance,
            "ps_estimation_ignored_in_se": p.match_on != "covariates" and not self._adjusts(),
            # baseline risk of a 0/1 outcome: the controls' mean weighted as matched
            **e_value(
                res.estimate, td.y, d, float(np.average(td.y[~d], weights=w[~d])), sampling
            ).diagnostics(),
            "outcome_sd": outcome_sd,
        }
        if ps is not None:
            out.update(overlap_diagnostics(ps.score, d, p.overlap_bound, p.estimand.value))
        if sigma2 is not None:
            out["n_sigma2_undefined"] = int(np.sum(~np.isfinite(sigma2)))
        return out

    def _warnings(
        self,
        td: TreatmentData,
        ps: PropensityFit | None,
        pairs: MatchedPairs,
        sigma2: np.ndarray | None,
    ) -> list[str]:
        p = self.params
        out = unselected_warnings(self.name, td)
        if ps is not None:
            out += propensity_warnings(self.name, ps, 0, 0, td.n)
        if p.match_on != "covariates" and not self._adjusts():
            out.append(
                "psm: the Abadie-Imbens SE treats the estimated propensity score as known "
                "(se=ai2006: the Abadie & Imbens 2016 adjustment is not applied); "
                + _UNADJUSTED_SE[p.estimand]
            )
        if not p.replace:
            out.append("psm: the Abadie-Imbens SE is derived for matching with replacement")
        if pairs.n_unmatched:
            out.append(
                f"psm: {pairs.n_unmatched} focal units without an acceptable match were dropped; "
                "the estimate is for the matched units"
            )
        if sigma2 is not None and not np.all(np.isfinite(sigma2)):
            out.append(
                "psm: conditional variances undefined (an arm with a single unit); SE is NaN"
            )
        if p.match_on == "covariates" and td.X.shape[1] > 1 and not p.bias_adjust:
            out.append(
                "psm: matching on more than one continuous covariate has a bias of order "
                "N^(-1/k); consider bias_adjust=true"
            )
        return out
