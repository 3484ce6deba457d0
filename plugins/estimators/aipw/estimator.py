"""The ``aipw`` estimator: cross-fitted augmented IPW for the ATE/ATT and its segment effects."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd

from causalkit import contracts
from causalkit.clusters import ClusterParts, fit_clusters, fit_weights, weight_diagnostics
from causalkit.contracts import (
    Capability,
    Clusters,
    Dataset,
    DiagnosticValue,
    Estimand,
    Fit,
    Params,
    Resampler,
)
from causalkit.coverage import World
from causalkit.errors import ConfigError, DataError, EstimationError
from causalkit.formulas import benchmark_groups
from causalkit.panel import binary_column, require_roles
from causalkit_plugins.dgps.position_bias import user_clustered_world
from causalkit_plugins.dgps.selection_on_observables import CLUSTERED_600, INFORMATIVE_600
from causalkit_plugins.estimators.aipw.batch_refit import (
    BatchRefit,
    ScoreRule,
    Units,
    batch_refit,
)
from causalkit_plugins.estimators.aipw.e_value import aipw_e_value
from causalkit_plugins.estimators.aipw.folds import (
    cluster_folds,
    folds_from_column,
    stratified_folds,
)
from causalkit_plugins.estimators.aipw.learners import LEARNERS, Recipe, check_sample_weight
from causalkit_plugins.estimators.aipw.nuisance import Nuisances, NuisanceSpec, crossfit_nuisances
from causalkit_plugins.estimators.aipw.params import AIPWParams
from causalkit_plugins.estimators.aipw.repeated import aggregate
from causalkit_plugins.estimators.aipw.scores import (
    Scores,
    aipw_scores,
    normalized_propensity,
    ratio_effect,
)
from causalkit_plugins.estimators.aipw.segments import (
    SegmentEffects,
    SegmentRules,
    segment_effects,
    segment_ratios,
)
from causalkit_plugins.estimators.aipw.sensitivity import (
    Elements,
    Repetition,
    elements,
    outcome_variance,
)
from causalkit_plugins.estimators.aipw.sensitivity import report as sensitivity_report
from causalkit_plugins.estimators.aipw.stacked import glm_piece, stacked_correction
from causalkit_plugins.estimators.selection.estimands import resampling_strata
from causalkit_plugins.inference.basic import influence_se
from causalkit_plugins.inference.common import influence_rows

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from scipy import sparse

__all__ = ["AIPW", "AIPWParams", "CrossFit"]

_QUANTILES = (0.0, 0.01, 0.05, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95, 0.99, 1.0)
_OVERLAP_ROWS = 10_000


@dataclass(frozen=True)
class CrossFit:
    """One cross-fit: nuisances, scores and the effect; per-row arrays are of the kept rows.

    ``kept`` marks the input rows kept after trimming; ``low``/``high`` the kept rows whose
    propensity was clipped up/down; ``m_raw`` is the unclipped, ``m`` the clipped (and, with
    ``normalize``, normalised) propensity; ``seeds`` the learners' seeds (three per fold);
    ``weights`` the kept rows' sampling weights (``None`` without the ``weight`` role).
    """

    estimand: Estimand
    estimate: float
    influence: np.ndarray
    scores: Scores
    nuisances: Nuisances
    spec: NuisanceSpec
    kept: np.ndarray
    y: np.ndarray
    d: np.ndarray
    m_raw: np.ndarray
    m: np.ndarray
    low: np.ndarray
    high: np.ndarray
    warnings: tuple[str, ...]
    seeds: np.ndarray
    weights: np.ndarray | None = None


def _is_binary(y: np.ndarray) -> bool:
    return bool(np.isin(np.unique(y), (0.0, 1.0)).all())


class AIPW:
    r"""Cross-fitted augmented inverse-probability weighting (doubly robust) estimator.

    Rows are split into ``folds`` folds stratified by treatment (drawn from the run's
    Generator), or into the folds the ``fold`` role gives. For each fold the propensity
    :math:`m(x)=P(D=1\mid x)` (on ``propensity_covariates``, default the ``covariates``) and
    outcome regressions :math:`g_d(x)=E[Y\mid D=d,x]` (on ``covariates``) are fitted on the
    other folds and predicted on it; ``folds=1`` is the classic AIPW with in-sample
    nuisances, refused at validation for a flexible learner (lasso, gbm, random_forest)
    unless ``allow_invalid_se=true``, which marks the SE invalid (diagnostic ``se_invalid``
    and a warning in every result). Propensities outside ``[trim, 1-trim]`` drop the row
    (changing the estimand to the trimmed population; counts reported); the rest are clipped
    to ``[clip, 1-clip]``.
    Scores, estimate and influence: see
    :func:`~causalkit_plugins.estimators.aipw.scores.aipw_scores`. The ATE and ATTE and their
    influence-based SEs equal DoubleML's ``DoubleMLIRM`` given the same folds and learners.
    ``estimand=MEAN1`` (``MEAN0``) estimates the potential-outcome mean :math:`E[Y(1)]`
    (:math:`E[Y(0)]`) from the ATE score's treated (control) part: with ``folds=1``,
    ``propensity_model=logit_unpenalized``, ``outcome_model=linear`` and ``clip=0`` it is
    Kang & Schafer's (2007) doubly robust :math:`\hat\mu_{BC\text{-}OLS}`; segments give
    one mean per segment; not with ``sensitivity`` or ``se_method=stacked``.

    The fit's estimates are the effect, then one effect per segment of each column of the
    ``segments`` role (named ``segment[<column>=<level>]``; see
    :func:`~causalkit_plugins.estimators.aipw.segments.segment_effects`), with their
    :math:`n \times k` influence matrix. Inference over the whole vector (pointwise, or
    sup-t bands and Holm-adjusted p-values with ``inference.joint=true``) is the inference
    method's.

    Influence: ``se_method="influence"`` uses the AIPW score, valid with cross-fitting (Neyman
    orthogonality makes nuisance estimation first-order negligible). ``"stacked"``
    (``folds=1``, unpenalised parametric learners) adds the first-order effect of the
    estimated GLM coefficients, i.e. the stacked estimating equations whose sandwich is Stata's
    ``teffects aipw`` SE (:func:`~causalkit_plugins.estimators.aipw.stacked.stacked_correction`).

    Clusters (the ``cluster`` role): drawn folds hold whole clusters
    (:func:`~causalkit_plugins.estimators.aipw.folds.cluster_folds`; a given ``fold`` role
    must keep each cluster in one fold), so no cluster's rows predict each other; the fit
    carries the clusters of the kept rows, so analytic inference sums the AIPW influence
    values within clusters with the factor :math:`G/(G-1)` (no regression defines a
    :math:`K`), the multiplier is drawn per cluster and the bootstrap resamples whole
    clusters (each copy keeps its cluster's fold). The sensitivity bounds' confidence limits
    are clustered the same way (:meth:`_sensitivity`).

    Sampling weights (the ``weight`` role, :math:`s_i \ge 0`): every nuisance learner is
    fitted with ``sample_weight`` (a learner without it, ``probit``, is refused), so it
    estimates the weighted population's :math:`m` and :math:`g_d`, and the score elements are
    weighted (:func:`~causalkit_plugins.estimators.aipw.scores.aipw_scores`): ATE
    :math:`\hat\theta = \sum_i s_i\varphi_i/\sum_i s_i` with influence values
    :math:`s_i(\varphi_i - \hat\theta)/\bar s`, ATT and segments alike. Analytic inference's
    SE is then :math:`(\sum_i s_i^2(\varphi_i-\hat\theta)^2)^{1/2}/\sum_i s_i` (each weighted
    row one draw; clustered when the fit is), the multiplier draws one multiplier per row (or
    cluster) and the bootstrap refits on resampled rows with their weights. Not with
    ``se_method=stacked`` (a one-line error); the fit carries the weights and the diagnostics
    ``weight_ess``, ``n_zero_weight``. ``sensitivity`` bounds the weighted population's effect:
    :math:`\hat\sigma^2`, :math:`\hat\nu^2` are weighted means with the weighted influence
    values (:func:`~causalkit_plugins.estimators.aipw.sensitivity.riesz_elements`), so the CI
    bounds use the same influence values as the SE; benchmarks refit with the weights.

    Repeated cross-fitting (``n_rep > 1``): the whole procedure on ``n_rep`` fold splits
    drawn in turn from the run's Generator, each estimate (headline and segments) the median
    over repetitions and its SE DoubleML's aggregate, carried by a rescaled influence matrix
    (:func:`~causalkit_plugins.estimators.aipw.repeated.aggregate`; per-repetition figures in
    the table ``repetitions``). Given splits: the ``fold`` role as a list of ``n_rep``
    columns, one per repetition (another count is a one-line error). Equal to DoubleML's
    ``n_rep`` given the same splits. No refit (the bootstrap is refused); ``trim`` needs
    ``n_rep=1``. The segment tables' ``dr_lift`` are the aggregated effects. ``sensitivity``
    aggregates as DoubleML's ``sensitivity_analysis`` does: the median over repetitions of
    each bound, CI bound and benchmark statistic, RV and RVa those of the median bounds (table
    ``sensitivity.repetitions`` per repetition).

    Resampling: ``refit(idx)`` re-runs the whole procedure on the kept rows ``idx`` (with
    repeats). Every resampled row keeps the fold it had in the original fit (given by the
    ``fold`` role or drawn), so all copies of a row share a fold and no copy predicts
    another. Segment membership travels with the row too, so the k estimates keep their
    meaning. Resamples are drawn from the whole sample for the ATE and within arms for the
    ATT (:func:`~causalkit_plugins.estimators.selection.estimands.resampling_strata`).

    References
    ----------
    Robins, J., Rotnitzky, A. & Zhao, L. (1994). *JASA* 89, 846-866.
    Chernozhukov, V. et al. (2018). Double/debiased machine learning. *Econometrics J.* 21, C1-C68.
    Cattaneo, M. (2010). Efficient semiparametric estimation of multi-valued treatment effects. *J. Econometrics* 155.
    Kang, J. & Schafer, J. (2007). Demystifying double robustness. *Statist. Sci.* 22(4), 523-539.
    """

    name: ClassVar[str] = "aipw"
    Params: ClassVar[type[Params]] = AIPWParams
    required_roles: ClassVar[tuple[str, ...]] = ("outcome", "treatment", "covariates")
    handles_roles: ClassVar[frozenset[str]] = frozenset({"cluster", "weight"})
    default_inference: ClassVar[str] = "analytic"
    coverage_worlds: ClassVar[tuple[World, ...]] = (
        World(
            "both_models_right",
            (
                "dgp=selection_on_observables",
                "dgp.n=500",
                "dgp.outcome.x1_sq=0",
                "mc.target=ATE",
            ),
            note="logit propensity and per-arm linear outcomes both correctly specified",
        ),
        World(
            "heavy_tails",
            (
                "dgp=selection_on_observables",
                "dgp.n=500",
                "dgp.outcome.x1_sq=0",
                "dgp.outcome.noise_df=3",
                "mc.target=ATE",
            ),
            note="both models right, Student-t(3) outcome noise",
        ),
        World(
            "clustered",
            (*CLUSTERED_600, "dgp.outcome.x1_sq=0", "mc.target=ATE"),
            inferences=frozenset({"analytic"}),
            note="60 clusters of 10 sharing covariates (so treatment) and noise; whole clusters "
            "per fold",
        ),
        World(
            "weighted",
            (*INFORMATIVE_600, "dgp.outcome.x1_sq=0", "mc.target=ATE"),
            reps=540,
            inferences=frozenset({"analytic"}),
            note="informative sampling on the effect modifier x1 (weights 1/probability), both "
            "models right: weighted learners and the weighted score target the population ATE; "
            "R=540, the smallest passing the power check",
        ),
        user_clustered_world(
            "about 100 users with three impressions each sharing a shift of the top-3 effect; "
            "whole users per fold, influence summed within users (without the role: coverage "
            "0.883, SE ratio 0.79 at R=600)"
        ),
    )

    def __init__(self, params: AIPWParams | None = None) -> None:
        self.params = params or AIPWParams()

    @classmethod
    def capabilities(cls, params: contracts.Params) -> frozenset[Capability]:
        """Influence always; resampling with one split (given folds travel with their rows).

        Repeated cross-fitting (``n_rep > 1``) offers no refit: its influence matrix carries
        the aggregated SE (analytic, multiplier), a refit would repeat every split per draw.
        """
        if isinstance(params, AIPWParams) and params.n_rep > 1:
            return frozenset({Capability.INFLUENCE})
        return frozenset({Capability.INFLUENCE, Capability.RESAMPLE})

    @staticmethod
    def figures(tables: Mapping[str, pd.DataFrame]) -> dict[str, Figure]:
        """Lift plot per ``segments.<column>`` table and the naive-vs-DR scatter (file name -> figure)."""
        from causalkit_plugins.estimators.aipw.plots import figures as segment_figures

        return segment_figures(tables)

    # -- inputs -----------------------------------------------------------------------------
    def _check(
        self, data: Dataset
    ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], tuple[str, ...]]:
        p = self.params
        require_roles(data, self.required_roles, self.name)
        frame, roles = data.frame, data.roles
        d = binary_column(frame[roles.treatment], "treatment").astype(np.float64)
        ys = frame[roles.outcome]
        if not pd.api.types.is_numeric_dtype(ys) or ys.isna().any():
            raise DataError(
                "roles.outcome",
                f"a numeric column without missing values in {roles.outcome!r}",
                f"dtype {ys.dtype}, {int(ys.isna().sum())} missing",
            )
        if d.sum() == 0 or d.sum() == d.size:
            raise DataError(
                "roles.treatment",
                "both treated and control rows",
                f"{int(d.sum())} treated of {d.size}",
            )
        covs = tuple(roles.covariates)
        pcovs = tuple(roles.propensity_covariates) if roles.propensity_covariates else covs
        for c in p.categorical:
            if c not in frame.columns:
                raise DataError("estimator.categorical", "a column of the table", repr(c))
        if p.se_method == "stacked" and roles.fold is not None:
            raise ConfigError(
                "roles.fold", "no fold role with se_method=stacked (one fold)", roles.fold
            )
        if roles.weight is not None and p.se_method == "stacked":
            raise ConfigError(
                "estimator.se_method",
                "se_method=influence with roles.weight (the stacked SE is unweighted)",
                p.se_method,
            )
        return ys.to_numpy(dtype=np.float64), d, covs, pcovs

    def _fold_columns(self, roles: contracts.Roles) -> tuple[str, ...]:
        """The given fold columns, one per repetition (none: folds are drawn).

        Raises
        ------
        ConfigError
            Their number is not ``n_rep``.
        """
        fold = roles.fold
        cols = () if fold is None else (fold,) if isinstance(fold, str) else tuple(fold)
        if cols and len(cols) != self.params.n_rep:
            raise ConfigError(
                "roles.fold",
                f"one fold column per repetition (estimator.n_rep={self.params.n_rep})",
                f"{len(cols)} columns {', '.join(cols)}",
            )
        return cols

    def _folds(
        self, data: Dataset, d: np.ndarray, rng: np.random.Generator, column: str | None = None
    ) -> np.ndarray:
        """Drawn folds, or those of the fold ``column`` (default the role's single column)."""
        codes = None
        if data.roles.cluster is not None:
            cl = fit_clusters(data, len(data.frame), self.name).clusters
            assert cl is not None
            codes = cl.codes
        if data.roles.fold is None:
            if codes is not None:
                return cluster_folds(codes, d.astype(bool), self.params.folds, rng)
            return stratified_folds(d.astype(bool), self.params.folds, rng)
        column = column if column is not None else self._fold_columns(data.roles)[0]
        folds = folds_from_column(data.frame[column], "roles.fold")
        if codes is not None:
            split = pd.Series(folds).groupby(codes).nunique()
            if (split > 1).any():
                raise DataError(
                    "roles.fold",
                    f"every cluster of {data.roles.cluster!r} in one fold",
                    f"{int((split > 1).sum())} clusters in several folds",
                )
        flexible = self.params.flexible_learners()
        if folds.max() == 0 and flexible and not self.params.allow_invalid_se:
            raise DataError(
                "roles.fold",
                f"at least two folds with {' and '.join(flexible)} (or "
                "estimator.allow_invalid_se=true to accept an invalid SE)",
                f"one fold in {column!r}",
            )
        return folds

    # -- estimation -------------------------------------------------------------------------
    def crossfit(
        self,
        data: Dataset,
        rng: np.random.Generator,
        folds: np.ndarray | None = None,
        seeds: np.ndarray | None = None,
    ) -> CrossFit:
        """Fit the nuisances and compute the scores and the effect.

        Parameters
        ----------
        data : Dataset
            The rows and their roles.
        rng : Generator
            Draws the folds (unless given) and the learners' seeds.
        folds : ndarray of int, optional
            Fold id ``0..K-1`` per row, instead of the ``fold`` role or drawn folds.
        seeds : ndarray of int, optional
            The learners' seeds (``3K``) instead of drawing them; with ``folds``, ``rng`` is
            not used.
        """
        p = self.params
        y, d, covs, pcovs = self._check(data)
        binary = _is_binary(y)
        outcome_model = (
            p.outcome_model if p.outcome_model != "auto" else ("logit" if binary else "linear")
        )
        if p.se_method == "stacked" and p.outcome_model == "auto":
            outcome_model = "logit_unpenalized" if binary else "linear"
        w = fit_weights(data, y.size)
        if w is not None:
            check_sample_weight(p.propensity_model, "classifier", "estimator.propensity_model")
            check_sample_weight(
                outcome_model, "classifier" if binary else "regressor", "estimator.outcome_model"
            )
        if folds is None:
            folds = self._folds(data, d, rng)
        k = int(folds.max()) + 1
        if seeds is None:
            seeds = rng.integers(0, 2**31 - 1, size=3 * k)
        spec = NuisanceSpec(
            p.propensity_model,
            outcome_model,
            p.propensity_params,
            p.outcome_params,
            covs,
            pcovs,
            p.categorical,
            Recipe(p.scale, p.rare_min_count),
            p.outcome_design,
            binary,
            p.n_jobs,
        )
        nu = crossfit_nuisances(data.frame, y, d, folds, spec, seeds, w)
        warnings: list[str] = []
        if not (
            np.all(np.isfinite(nu.m)) and np.all(np.isfinite(nu.g0)) and np.all(np.isfinite(nu.g1))
        ):
            raise EstimationError("aipw: a nuisance model returned non-finite predictions")

        kept = (
            (nu.m >= p.trim) & (nu.m <= 1 - p.trim) if p.trim > 0 else np.ones(y.size, dtype=bool)
        )
        yk, dk, g0, g1, m_raw = y[kept], d[kept], nu.g0[kept], nu.g1[kept], nu.m[kept]
        if dk.sum() == 0 or dk.sum() == dk.size:
            raise EstimationError(
                f"aipw: trimming at {p.trim} leaves no treated or no control rows"
            )
        wk = None if w is None else w[kept]
        if wk is not None and (wk @ dk <= 0 or wk @ (1.0 - dk) <= 0):
            raise EstimationError("aipw: no treated or no control rows with a positive weight")
        low, high = m_raw < p.clip, m_raw > 1 - p.clip
        m = np.clip(m_raw, p.clip, 1 - p.clip) if p.clip > 0 else m_raw
        if np.any((m <= 0) | (m >= 1)):
            raise EstimationError("aipw: propensity scores of exactly 0 or 1; set clip > 0")
        if low.any() or high.any():
            warnings.append(
                f"aipw: {int(low.sum())} propensities clipped up to {p.clip} and {int(high.sum())} "
                f"down to {1 - p.clip}"
            )
        m_used = normalized_propensity(m, dk, wk) if p.normalize else m
        scores = aipw_scores(yk, dk, g0, g1, m_used, p.estimand, wk)
        theta, infl = ratio_effect(scores.num, scores.den)
        return CrossFit(
            p.estimand,
            theta,
            infl,
            scores,
            nu,
            spec,
            kept,
            yk,
            dk,
            m_raw,
            m_used,
            low,
            high,
            tuple(warnings),
            seeds,
            wk,
        )

    def _segments(self, data: Dataset, cf: CrossFit) -> SegmentEffects:
        p = self.params
        cols = tuple(data.roles.segments)
        frame = data.frame.loc[cf.kept].reset_index(drop=True) if cols else pd.DataFrame()
        rules = SegmentRules(p.min_segment_rows, p.min_segment_treated, p.min_segment_controls)
        return segment_effects(
            frame,
            cols,
            p.segment_bins,
            p.segment_labels,
            cf.scores.num,
            cf.scores.den,
            cf.y,
            cf.d,
            rules,
        )

    def _stacked(self, data: Dataset, cf: CrossFit, members: sparse.spmatrix) -> np.ndarray:
        """Stacked-equation term of every influence column (rows: all kept, as trim=0)."""
        nu, spec, y, d = cf.nuisances, cf.spec, cf.y, cf.d
        pipes = nu.pipelines[0]
        rows = np.arange(y.size)
        Xo = data.frame[list(spec.outcome_covariates)]
        Xp = data.frame[list(spec.propensity_covariates)]
        o_link = LEARNERS[spec.outcome_model].link
        pieces = {
            "m": glm_piece(pipes["m"], Xp, d, rows, LEARNERS[spec.propensity_model].link),
            "g0": glm_piece(pipes["g0"], Xo, y, rows[d == 0], o_link),
            "g1": glm_piece(pipes["g1"], Xo, y, rows[d == 1], o_link),
        }
        free = ~(cf.low | cf.high)
        return stacked_correction(
            y, d, nu.g0, nu.g1, cf.m, free.astype(np.float64), cf.scores.estimand, pieces, members
        )

    @staticmethod
    def _distributions(
        g0: np.ndarray, g1: np.ndarray, m: np.ndarray, scores: Scores, d: np.ndarray
    ) -> dict[str, pd.DataFrame]:
        cols = {"propensity": m, "mu1": g1, "mu0": g0, "mu_diff": g1 - g0, "score": scores.per_row}
        dist = pd.DataFrame(
            {k: np.quantile(v, _QUANTILES) for k, v in cols.items()},
            index=pd.Index([f"q{q:g}" for q in _QUANTILES], name="quantile"),
        )
        dist.loc["mean"] = [float(v.mean()) for v in cols.values()]
        dist.loc["sd"] = [float(v.std(ddof=1)) for v in cols.values()]
        step = max(1, int(np.ceil(m.size / _OVERLAP_ROWS)))
        overlap = pd.DataFrame({"score": m[::step], "treated": d[::step].astype(np.int64)})
        return {"distribution": dist, "overlap": overlap}

    def _diagnostics(self, cf: CrossFit, n_segments: int) -> dict[str, DiagnosticValue]:
        metrics = cf.nuisances.metrics.groupby("model").mean(numeric_only=True)
        diag: dict[str, DiagnosticValue] = {
            "n_treated": int(cf.d.sum()),
            "n_control": int(cf.d.size - cf.d.sum()),
            "folds": int(cf.nuisances.folds.max()) + 1,
            "n_clipped_low": int(cf.low.sum()),
            "n_clipped_high": int(cf.high.sum()),
            "n_trimmed": int((~cf.kept).sum()),
            "propensity_min": float(cf.m_raw.min()),
            "propensity_max": float(cf.m_raw.max()),
            "naive_lift": float(cf.y[cf.d == 1].mean() - cf.y[cf.d == 0].mean()),
            "score_sd": float(cf.scores.per_row.std()),
            "se_method": self.params.se_method,
            "se_invalid": self._in_sample_flexible(cf),
            "outcome_model": cf.spec.outcome_model,
            "n_segments": n_segments,
        }
        for model, row in metrics.iterrows():
            for metric, value in row.items():
                if metric not in ("fold", "n") and np.isfinite(value):
                    diag[f"{model}_{metric}"] = float(value)
        return diag

    def _in_sample_flexible(self, cf: CrossFit) -> bool:
        """One fold (no cross-fitting) with a flexible learner: the SE is invalid."""
        return bool(cf.nuisances.folds.max() == 0 and self.params.flexible_learners())

    def fit(self, data: Dataset, rng: np.random.Generator) -> Fit:
        r"""Estimate the effect and the segment effects, with their influence and a refit.

        Returns
        -------
        Fit
            ``estimates`` :math:`(\hat\theta, \hat\theta_{g_1}, \ldots)`, ``influence``
            :math:`n \times k` over the kept rows, a :class:`~causalkit.contracts.Resampler`
            stratified by treatment, scalar diagnostics and the descriptive tables
            (``nuisance_metrics``, ``distribution``, ``overlap``, ``segments.<column>``);
            with ``sensitivity``, the diagnostics ``sensitivity.*`` and the table
            ``sensitivity.bounds`` (:meth:`_sensitivity`).
        """
        benchmarks = self._benchmark_roles(data)
        if self.params.n_rep > 1:
            return self._repeated(data, rng, benchmarks)
        cf = self.crossfit(data, rng)
        seg, infl = self._influence(data, cf)
        tables = {
            "nuisance_metrics": cf.nuisances.metrics,
            **self._distributions(
                cf.nuisances.g0[cf.kept], cf.nuisances.g1[cf.kept], cf.m_raw, cf.scores, cf.d
            ),
            **seg.tables,
        }
        refit, refit_batch = self._refit(data, cf, seg, int(rng.integers(0, 2**63 - 1)))
        cl = self._clusters(data, cf)
        diagnostics = {
            **self._diagnostics(cf, len(seg.names)),
            **(cl.diagnostics or {}),
            **weight_diagnostics(cf.weights),
            **aipw_e_value(cf.estimate, [cf]),
        }
        warnings = cf.warnings + self._invalid_se_warning(cf) + cl.warnings
        if self.params.sensitivity is not None:
            sens_diag, sens_tables, sens_warnings = self._sensitivity(
                data, [(cf, infl[:, 0])], benchmarks, cl.clusters
            )
            diagnostics.update(sens_diag)
            tables.update(sens_tables)
            warnings += sens_warnings
        return Fit(
            cf.estimand,
            np.concatenate([[cf.estimate], seg.estimates]),
            int(cf.y.size),
            names=(str(cf.estimand), *seg.names),
            influence=infl,
            resampler=Resampler(
                int(cf.y.size),
                strata=resampling_strata(cf.estimand, cf.d),
                refit=refit,
                refit_batch=refit_batch,
            ),
            clusters=cl.clusters,
            weights=cf.weights,
            diagnostics=diagnostics,
            tables=tables,
            warnings=warnings,
        )

    def _influence(self, data: Dataset, cf: CrossFit) -> tuple[SegmentEffects, np.ndarray]:
        """The segment effects and the (n, k) influence matrix of one cross-fit."""
        seg = self._segments(data, cf)
        infl = np.empty((cf.y.size, 1 + len(seg.names)), order="F")  # column-wise inference
        infl[:, 0] = cf.influence
        infl[:, 1:] = 0.0
        seg.influence(cf.scores.num, cf.scores.den, out=infl[:, 1:])
        if self.params.se_method == "stacked":
            corr = self._stacked(data, cf, seg.members)
            infl[:, 0] += corr[:, 0] / cf.scores.den.mean()
            infl[:, 1:] += corr[:, 1:] / seg.scale
        return seg, infl

    def repetitions(self, data: Dataset, rng: np.random.Generator) -> list[CrossFit]:
        """The ``n_rep`` cross-fits of repeated cross-fitting, in the order drawn from ``rng``.

        With fold columns (``roles.fold`` a list of ``n_rep`` columns) repetition ``r`` uses
        the ``r``-th column's folds, so given splits (e.g. DoubleML's ``smpls``) are reproduced.
        """
        cols = self._fold_columns(data.roles)
        if not cols:
            return [self.crossfit(data, rng) for _ in range(self.params.n_rep)]
        d = self._check(data)[1]
        return [self.crossfit(data, rng, self._folds(data, d, rng, c)) for c in cols]

    def _repeated(
        self,
        data: Dataset,
        rng: np.random.Generator,
        benchmarks: tuple[tuple[str, contracts.Roles], ...],
    ) -> Fit:
        """Repeated cross-fitting: the median-aggregated fit (:func:`aggregate`); no refit.

        The segment tables' ``dr_lift`` are the aggregated segment effects; the sensitivity
        analysis aggregates the repetitions' bounds (:meth:`_sensitivity`).
        """
        cfs = self.repetitions(data, rng)
        cf = cfs[0]
        parts = [self._influence(data, c) for c in cfs]
        seg = parts[0][0]
        if any(s.names != seg.names for s, _ in parts):
            raise EstimationError("aipw: the repetitions' segments differ")
        names = (str(cf.estimand), *seg.names)
        cl = self._clusters(data, cf)
        n = int(cf.y.size)

        def se_of(psi: np.ndarray) -> np.ndarray:
            one = Fit(cf.estimand, np.zeros(len(names)), n, names=names, influence=psi,
                      clusters=cl.clusters)  # fmt: skip
            return influence_se(*influence_rows(one))

        est = np.array(
            [
                np.concatenate([[c.estimate], s.estimates])
                for c, (s, _) in zip(cfs, parts, strict=True)
            ]
        )
        agg = aggregate(est, [psi for _, psi in parts], se_of)
        diagnostics = {
            **self._diagnostics(cf, len(seg.names)),
            **(cl.diagnostics or {}),
            **weight_diagnostics(cf.weights),
            **aipw_e_value(float(agg.estimates[0]), cfs),
            "n_rep": len(cfs),
            "rep_estimate_min": float(est[:, 0].min()),
            "rep_estimate_max": float(est[:, 0].max()),
        }
        reps = pd.DataFrame(
            {"estimate": est[:, 0], "se": agg.rep_se[:, 0]},
            index=pd.RangeIndex(1, len(cfs) + 1, name="repetition"),
        )
        by_name = dict(zip(names, agg.estimates, strict=True))
        tables = {
            "nuisance_metrics": cf.nuisances.metrics,
            **self._distributions(cf.nuisances.g0, cf.nuisances.g1, cf.m_raw, cf.scores, cf.d),
            **{
                key: table.assign(dr_lift=table["estimate"].map(by_name).astype(np.float64))
                for key, table in seg.tables.items()
            },
            "repetitions": reps,
        }
        warnings = tuple(
            dict.fromkeys(w for c in cfs for w in (*c.warnings, *self._invalid_se_warning(c)))
        )
        if self.params.sensitivity is not None:
            sens_diag, sens_tables, sens_warnings = self._sensitivity(
                data,
                [(c, psi[:, 0]) for c, (_, psi) in zip(cfs, parts, strict=True)],
                benchmarks,
                cl.clusters,
            )
            diagnostics.update(sens_diag)
            tables.update(sens_tables)
            warnings += sens_warnings
        return Fit(
            cf.estimand,
            agg.estimates,
            n,
            names=names,
            influence=agg.influence,
            clusters=cl.clusters,
            weights=cf.weights,
            diagnostics=diagnostics,
            tables=tables,
            warnings=warnings + cl.warnings,
        )

    def _clusters(self, data: Dataset, cf: CrossFit) -> ClusterParts:
        """The clusters of the kept rows (the fit's units); empty without a cluster role."""
        if data.roles.cluster is None:
            return ClusterParts()
        frame = data.frame[cf.kept].reset_index(drop=True)
        return fit_clusters(Dataset(frame, data.roles), int(cf.y.size), self.name)

    # -- sensitivity to unobserved confounding ----------------------------------------------
    def _benchmark_roles(self, data: Dataset) -> tuple[tuple[str, contracts.Roles], ...]:
        """The roles of each benchmark's short model (its covariates left out of both models)."""
        sens = self.params.sensitivity
        if sens is None:
            return ()
        roles = data.roles
        covs, pcovs = tuple(roles.covariates), roles.propensity_covariates
        known = tuple(dict.fromkeys((*covs, *(pcovs or ()))))
        field = "estimator.sensitivity.benchmark_covariates"
        out = []
        for name, group in benchmark_groups(sens.benchmark_covariates, known, roles.terms).items():
            short = tuple(c for c in covs if c not in group)
            short_p = None if pcovs is None else tuple(c for c in pcovs if c not in group)
            if not short or short_p == ():
                raise DataError(field, "at least one covariate left in each model", repr(name))
            out.append(
                (
                    name,
                    roles.model_copy(
                        update={"covariates": short, "propensity_covariates": short_p}
                    ),
                )
            )
        return tuple(out)

    @staticmethod
    def _elements(cf: CrossFit) -> Elements:
        nu = cf.nuisances
        return elements(cf.y, cf.d, nu.g0[cf.kept], nu.g1[cf.kept], cf.m, cf.estimand, cf.weights)

    def _sensitivity(
        self,
        data: Dataset,
        fits: Sequence[tuple[CrossFit, np.ndarray]],
        benchmarks: tuple[tuple[str, contracts.Roles], ...],
        clusters: Clusters | None = None,
    ) -> tuple[dict[str, DiagnosticValue], dict[str, pd.DataFrame], tuple[str, ...]]:
        r"""Bounds, robustness values and benchmarks of the headline effect.

        See :mod:`~causalkit_plugins.estimators.aipw.sensitivity` (:func:`report`, shared with
        ``ipw``). ``fits`` holds each repetition's cross-fit and headline influence column (one
        without repetitions). Each benchmark refits the nuisances without its covariates on
        each repetition's folds with its learner seeds (with ``trim > 0`` each short model
        trims by its own propensities). The CI bounds use the headline's influence column and
        those of :math:`\hat\sigma^2`, :math:`\hat\nu^2`, clustered with the fit's clusters
        (:func:`~causalkit_plugins.estimators.aipw.sensitivity.clustered`).
        """
        sens = self.params.sensitivity
        assert sens is not None
        shorts = {}
        for name, roles in benchmarks:
            # rng unused: folds and seeds are given
            refits = [
                self.crossfit(
                    Dataset(data.frame, roles),
                    np.random.default_rng(0),
                    cf.nuisances.folds,
                    cf.seeds,
                )
                for cf, _ in fits
            ]
            shorts[name] = [(short.estimate, self._elements(short)) for short in refits]
        return sensitivity_report(
            self.name,
            [Repetition(cf.estimate, psi, self._elements(cf)) for cf, psi in fits],
            sens,
            var_y=outcome_variance(fits[0][0].y, fits[0][0].weights),
            shorts=shorts,
            sigma2_source="outcome_model",
            clusters=clusters,
        )

    def _invalid_se_warning(self, cf: CrossFit) -> tuple[str, ...]:
        if not self._in_sample_flexible(cf):
            return ()
        return (
            f"aipw: one fold with {' and '.join(self.params.flexible_learners())} "
            "(allow_invalid_se=true): the nuisances are fitted and predicted on the same rows, "
            "so the SE, intervals and p-values are invalid (too small); use folds >= 2",
        )

    def _refit(
        self, data: Dataset, cf: CrossFit, seg: SegmentEffects, seed: int
    ) -> tuple[Callable[[np.ndarray], np.ndarray], BatchRefit | None]:
        """``refit(idx)``: the k estimates on the kept rows ``idx`` (with repeats); its batch form.

        Every refit uses the same seed (common random numbers across resamples). Each
        resampled row keeps its original fold (given or drawn; folds absent from the resample
        are dropped from the numbering), so copies of a row share a fold. With GLM nuisances
        on numeric covariates the batch form solves many resamples at once and equals
        ``refit`` resample by resample (:func:`~causalkit_plugins.estimators.aipw.batch_refit.batch_refit`);
        otherwise it is ``None`` and the bootstrap refits one resample at a time.
        """
        rows = np.flatnonzero(cf.kept)
        original = cf.nuisances.folds[rows]
        members = seg.members.tocsr()
        frame, roles = data.frame, data.roles

        def refit(idx: np.ndarray) -> np.ndarray:
            idx = np.asarray(idx)
            rng = np.random.default_rng(seed)
            folds = np.unique(original[idx], return_inverse=True)[1].astype(np.int64)
            sub = Dataset(frame.iloc[rows[idx]].reset_index(drop=True), roles)
            rf = self.crossfit(sub, rng, folds)
            return np.concatenate(
                [[rf.estimate], segment_ratios(members[idx][rf.kept], rf.scores.num, rf.scores.den)]
            )

        p = self.params
        if cf.weights is not None:  # the batched GLMs are unweighted
            return refit, None
        batch = batch_refit(
            frame.iloc[rows],
            cf.spec,
            Units(cf.y, cf.d, original, members),
            ScoreRule(cf.estimand, p.clip, p.trim, p.normalize),
            refit,
        )
        return refit, batch
