"""The ``aipw`` estimator: cross-fitted augmented IPW for the ATE/ATT with segment effects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from pydantic import Field

from causalkit.contracts import Dataset, DiagnosticValue, Estimand, Fit, Params
from causalkit.errors import ConfigError, DataError, EstimationError
from causalkit.panel import binary_column, require_roles
from causalkit_plugins.estimators.aipw.folds import folds_from_column, stratified_folds
from causalkit_plugins.estimators.aipw.learners import LEARNERS, ParamValue, Recipe
from causalkit_plugins.estimators.aipw.nuisance import Nuisances, NuisanceSpec, crossfit_nuisances
from causalkit_plugins.estimators.aipw.plots import figures as segment_figures
from causalkit_plugins.estimators.aipw.scores import (
    Scores,
    aipw_scores,
    normalized_propensity,
    ratio_effect,
)
from causalkit_plugins.estimators.aipw.segments import SegmentRules, all_segments, segment_columns
from causalkit_plugins.estimators.aipw.stacked import glm_piece, stacked_correction

__all__ = ["AIPW", "AIPWParams", "CrossFit"]

PropensityName = Literal["logistic", "logistic_unpenalized", "probit", "gbm", "random_forest"]
OutcomeName = Literal[
    "auto", "logistic", "logistic_unpenalized", "linear", "ridge", "lasso", "gbm", "random_forest"
]
_QUANTILES = (0.0, 0.01, 0.05, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95, 0.99, 1.0)
_OVERLAP_ROWS = 10_000


class AIPWParams(Params):
    """Parameters of the ``aipw`` estimator (see :class:`AIPW`)."""

    estimand: Literal["ate", "att"] = "ate"
    propensity_model: PropensityName = "logistic"
    outcome_model: OutcomeName = Field(
        "auto", description="auto: logistic for a 0/1 outcome, else linear"
    )
    propensity_params: dict[str, ParamValue] = Field(default_factory=dict)
    outcome_params: dict[str, ParamValue] = Field(default_factory=dict)
    folds: int = Field(5, ge=1, le=100, description="K cross-fitting folds; 1 = no cross-fitting")
    fold_column: str | None = Field(
        None, description="column of given fold labels (overrides roles.fold)"
    )
    clip: float = Field(0.01, ge=0, lt=0.5, description="clip propensities to [clip, 1-clip]")
    trim: float = Field(
        0.0, ge=0, lt=0.5, description="drop rows with propensity outside [trim, 1-trim]"
    )
    normalize: bool = Field(
        False, description="normalised (Hajek) IPW part, as DoubleML normalize_ipw"
    )
    outcome_design: Literal["separate", "pooled"] = "separate"
    se_method: Literal["influence", "stacked"] = "influence"
    scale: bool = Field(True, description="standardise numeric covariates inside each fold")
    rare_min_count: int = Field(50, ge=1, description="one-hot levels rarer than this are grouped")
    categorical: tuple[str, ...] = Field(
        (), description="numeric-coded covariates to one-hot encode"
    )
    segments: tuple[str, ...] = Field((), description="segment columns (or set roles.segments)")
    segment_bins: dict[str, list[float] | int] = Field(default_factory=dict)
    segment_labels: dict[str, list[str]] = Field(default_factory=dict)
    min_segment_rows: int = Field(50, ge=1)
    min_segment_treated: int = Field(5, ge=1)
    min_segment_controls: int = Field(5, ge=1)
    segment_level: float = Field(0.95, gt=0, lt=1)
    n_jobs: int = Field(1, ge=1, le=64, description="threads fitting the nuisance models")


@dataclass(frozen=True)
class CrossFit:
    """Everything computed by one AIPW fit, including per-row arrays (rows kept after trimming)."""

    estimand: Estimand
    estimate: float
    influence: np.ndarray
    scores: Scores
    nuisances: Nuisances
    kept: np.ndarray
    y: np.ndarray
    d: np.ndarray
    m: np.ndarray
    tables: dict[str, pd.DataFrame]
    diagnostics: dict[str, DiagnosticValue]
    warnings: tuple[str, ...]


def _is_binary(y: np.ndarray) -> bool:
    return bool(np.isin(np.unique(y), (0.0, 1.0)).all())


class AIPW:
    r"""Cross-fitted augmented inverse-probability weighting (doubly robust) estimator.

    Rows are split into ``folds`` folds stratified by treatment (drawn from the run's
    Generator, or taken from ``fold_column`` / the ``fold`` role, the parameter winning). For
    each fold the propensity :math:`m(x)=P(D=1\mid x)` (on ``propensity_covariates``, default
    the ``covariates``) and outcome regressions :math:`g_d(x)=E[Y\mid D=d,x]` (on
    ``covariates``) are fitted on the other folds and predicted on it; ``folds=1`` is the
    classic AIPW with in-sample nuisances. Propensities outside ``[trim, 1-trim]`` drop the
    row (changing the estimand to the trimmed population; counts reported); the rest are
    clipped to ``[clip, 1-clip]``. Scores, estimate and influence: see
    :func:`~causalkit_plugins.estimators.aipw.scores.aipw_scores`. The ATE and ATTE and their
    SEs equal DoubleML's ``DoubleMLIRM`` given the same folds and learners.

    Standard errors: ``se_method="influence"`` uses :math:`n^{-2}\sum\psi_i^2` of the AIPW
    score, valid with cross-fitting (Neyman orthogonality makes nuisance estimation
    first-order negligible). ``"stacked"`` (``folds=1``, unpenalised parametric learners)
    adds the first-order effect of the estimated GLM coefficients, i.e. the sandwich of the
    stacked estimating equations used by Stata's ``teffects aipw``.

    Segment effects (``segments`` or the ``segments`` role): see
    :func:`~causalkit_plugins.estimators.aipw.segments.segment_table`.

    References
    ----------
    Robins, J., Rotnitzky, A. & Zhao, L. (1994). *JASA* 89, 846-866.
    Chernozhukov, V. et al. (2018). Double/debiased machine learning. *Econometrics J.* 21, C1-C68.
    Cattaneo, M. (2010). Efficient semiparametric estimation of multi-valued treatment effects. *J. Econometrics* 155.
    """

    name: ClassVar[str] = "aipw"
    Params: ClassVar[type[Params]] = AIPWParams
    required_roles: ClassVar[tuple[str, ...]] = ("outcome", "treatment", "covariates")
    default_inference: ClassVar[str] = "analytic"
    supported_inference: ClassVar[tuple[str, ...]] = ("analytic", "multiplier", "bootstrap", "none")

    def __init__(self, params: AIPWParams | None = None) -> None:
        self.params = params or AIPWParams()

    @staticmethod
    def figures(tables: Mapping[str, pd.DataFrame]) -> dict[str, Figure]:
        """Forest plot per ``segments.<column>`` table and the naive-vs-DR scatter (file name -> figure)."""
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
        for c in (p.fold_column, *p.categorical):
            if c is not None and c not in frame.columns:
                raise DataError(
                    "estimator.fold_column" if c == p.fold_column else "estimator.categorical",
                    "a column of the table",
                    repr(c),
                )
        if p.se_method == "stacked":
            self._check_stacked()
        return ys.to_numpy(dtype=np.float64), d, covs, pcovs

    def _check_stacked(self) -> None:
        p = self.params
        outcome = p.outcome_model
        if p.folds != 1 or p.fold_column is not None:
            raise ConfigError(
                "estimator.se_method", "folds=1 without fold_column for the stacked SE", "stacked"
            )
        if LEARNERS[p.propensity_model].link == "none":
            raise ConfigError(
                "estimator.propensity_model",
                "probit or logistic_unpenalized for se_method=stacked",
                p.propensity_model,
            )
        if outcome != "auto" and LEARNERS[outcome].link == "none":
            raise ConfigError(
                "estimator.outcome_model",
                "linear or logistic_unpenalized for se_method=stacked",
                outcome,
            )
        if p.normalize or p.trim > 0 or p.outcome_design != "separate":
            raise ConfigError(
                "estimator.se_method",
                "normalize=false, trim=0, outcome_design=separate for stacked",
                "stacked",
            )

    def _folds(self, data: Dataset, d: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        col = self.params.fold_column or data.roles.fold
        if col is not None:
            field = "estimator.fold_column" if self.params.fold_column else "roles.fold"
            return folds_from_column(data.frame[col], field)
        return stratified_folds(d.astype(bool), self.params.folds, rng)

    # -- estimation -------------------------------------------------------------------------
    def crossfit(
        self, data: Dataset, rng: np.random.Generator, with_segments: bool = True
    ) -> CrossFit:
        """Fit nuisances, scores, the effect and (optionally) segment effects; keeps per-row arrays."""
        p = self.params
        y, d, covs, pcovs = self._check(data)
        binary = _is_binary(y)
        outcome_model = (
            p.outcome_model if p.outcome_model != "auto" else ("logistic" if binary else "linear")
        )
        if p.se_method == "stacked" and p.outcome_model == "auto":
            outcome_model = "logistic_unpenalized" if binary else "linear"
        folds = self._folds(data, d, rng)
        k = int(folds.max()) + 1
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
        nu = crossfit_nuisances(data.frame, y, d, folds, spec, seeds)
        warnings: list[str] = []
        if not (
            np.all(np.isfinite(nu.m)) and np.all(np.isfinite(nu.g0)) and np.all(np.isfinite(nu.g1))
        ):
            raise EstimationError("aipw: a nuisance model returned non-finite predictions")

        kept = (
            (nu.m >= p.trim) & (nu.m <= 1 - p.trim) if p.trim > 0 else np.ones(y.size, dtype=bool)
        )
        n_trimmed = int((~kept).sum())
        yk, dk, g0, g1, m_raw = y[kept], d[kept], nu.g0[kept], nu.g1[kept], nu.m[kept]
        if dk.sum() == 0 or dk.sum() == dk.size:
            raise EstimationError(
                f"aipw: trimming at {p.trim} leaves no treated or no control rows"
            )
        low, high = m_raw < p.clip, m_raw > 1 - p.clip
        m = np.clip(m_raw, p.clip, 1 - p.clip) if p.clip > 0 else m_raw
        if np.any((m <= 0) | (m >= 1)):
            raise EstimationError("aipw: propensity scores of exactly 0 or 1; set clip > 0")
        if low.any() or high.any():
            warnings.append(
                f"aipw: {int(low.sum())} propensities clipped up to {p.clip} and {int(high.sum())} "
                f"down to {1 - p.clip}"
            )
        m_used = normalized_propensity(m, dk) if p.normalize else m
        estimand = Estimand.ATE if p.estimand == "ate" else Estimand.ATT
        scores = aipw_scores(yk, dk, g0, g1, m_used, estimand)
        theta, infl = ratio_effect(scores.num, scores.den)
        if p.se_method == "stacked":
            infl = (
                infl
                + self._stacked(data, y, d, nu, scores, m, ~(low | high), spec) / scores.den.mean()
            )

        tables = {"nuisance_metrics": nu.metrics, **self._distributions(g0, g1, m_raw, scores, dk)}
        if with_segments:
            cols = segment_columns(p.segments, data.roles.segments)
            rules = SegmentRules(
                p.min_segment_rows, p.min_segment_treated, p.min_segment_controls, p.segment_level
            )
            if cols:
                tables.update(
                    all_segments(
                        data.frame.loc[kept].reset_index(drop=True),
                        cols,
                        p.segment_bins,
                        p.segment_labels,
                        scores.num,
                        scores.den,
                        yk,
                        dk,
                        rules,
                        rng,
                    )
                )
        metrics = nu.metrics.groupby("model").mean(numeric_only=True)
        diag: dict[str, DiagnosticValue] = {
            "n_treated": int(dk.sum()),
            "n_control": int(dk.size - dk.sum()),
            "folds": k,
            "n_clipped_low": int(low.sum()),
            "n_clipped_high": int(high.sum()),
            "n_trimmed": n_trimmed,
            "propensity_min": float(m_raw.min()),
            "propensity_max": float(m_raw.max()),
            "naive_lift": float(yk[dk == 1].mean() - yk[dk == 0].mean()),
            "score_sd": float(scores.per_row.std()),
            "se_method": p.se_method,
            "outcome_model": outcome_model,
        }
        for model, row in metrics.iterrows():
            for metric, value in row.items():
                if metric not in ("fold", "n") and np.isfinite(value):
                    diag[f"{model}_{metric}"] = float(value)
        return CrossFit(
            estimand, theta, infl, scores, nu, kept, yk, dk, m_used, tables, diag, tuple(warnings)
        )

    def _stacked(
        self,
        data: Dataset,
        y: np.ndarray,
        d: np.ndarray,
        nu: Nuisances,
        scores: Scores,
        m: np.ndarray,
        free: np.ndarray,
        spec: NuisanceSpec,
    ) -> np.ndarray:
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
        return stacked_correction(
            y, d, nu.g0, nu.g1, m, free.astype(np.float64), scores.estimand, pieces
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

    def fit(self, data: Dataset, rng: np.random.Generator) -> Fit:
        cf = self.crossfit(data, rng)
        refit_seed = int(rng.integers(0, 2**63 - 1))
        frame = data.frame

        def refit(idx: np.ndarray) -> float:
            sub = Dataset(frame.iloc[idx].reset_index(drop=True), data.roles)
            return (
                AIPW(self.params)
                .crossfit(sub, np.random.default_rng(refit_seed), with_segments=False)
                .estimate
            )

        return Fit(
            estimand=cf.estimand,
            estimate=cf.estimate,
            n=int(cf.y.size),
            influence=cf.influence,
            strata=cf.d.astype(np.int64),
            refit=refit if self.params.fold_column is None and data.roles.fold is None else None,
            diagnostics=cf.diagnostics,
            tables=cf.tables,
            warnings=cf.warnings,
        )
