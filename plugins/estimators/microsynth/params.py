"""Parameters of the MicroSynth estimator (all modes)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from causalkit.contracts import Params

__all__ = ["MicroSynthParams"]


class MicroSynthParams(Params):
    """Parameters of MicroSynth."""

    weight_method: Literal["simplex", "panel"] = Field(
        "simplex", description="simplex: unit-level mean balance; panel: aggregated-area totals (R microsynth)"
    )
    estimand: Literal["att", "itt", "cace"] = Field(
        "att",
        description="att: by actual exposure; itt: by assigned arm; cace: itt / balanced compliance gap",
    )
    outcome_lag_periods: tuple[int | float | str, ...] = Field(
        (), description="pre-period labels whose outcomes (of match_outcomes) are balanced too"
    )
    match_outcomes: tuple[str, ...] = Field(
        (), description="outcome columns balanced at outcome_lag_periods (default: the outcome role)"
    )
    band_reps: int = Field(0, ge=0, description="simplex: paired-bootstrap reps for the per-period gap band (0: none)")
    band_level: float = Field(0.95, gt=0, lt=1, description="simplex: level of the per-period gap band")
    min_compliance_gap: float = Field(0.05, ge=0, description="cace: warn when the balanced compliance gap is below")
    balance_tol: float = Field(1e-8, gt=0, description="max |SMD| after weighting to call a fit feasible")
    tol: float = Field(1e-11, gt=0, description="dual residual tolerance (standardised units)")
    max_iter: int = Field(50, ge=1, description="maximum semismooth Newton steps")
    # --- scale (simplex, estimand att); see columnar.py and spark_backend.py ---
    backend: Literal["memory", "columnar", "spark"] = Field(
        "memory", description="memory: in-memory arrays; columnar: chunked passes, memory ~ size of X; spark: Spark passes"
    )
    dtype: Literal["float64", "float32"] = Field("float64", description="columnar: covariate precision in memory")
    spark_master: str = Field("local[2]", description="spark: spark.master of the session (e.g. yarn, spark://host:7077)")
    spark_poisson_boot: int = Field(0, ge=0, description="spark: Poisson-bootstrap replications run in the fit (0: none)")
    seed: int = Field(0, ge=0, description="spark: seed of the Poisson bootstrap weights (hashed with the unit id)")
    # --- panel / propensity mode (R microsynth); see panel.py ---
    start_pre: int | float | None = Field(None, description="panel: first pre period (default: the first period)")
    end_pre: int | float | None = Field(None, description="panel: last pre period (default: the period before onset)")
    end_post: int | float | None = Field(None, description="panel: last post period (default: the last period)")
    result_outcomes: tuple[str, ...] = Field(
        (), description="panel: outcomes with effects reported (default: match_outcomes, else the outcome role)"
    )
    panel_weights: Literal["calibration", "qp"] = Field(
        "calibration",
        description="panel: calibration (R's survey::calibrate, linear, bounds [0, inf)) or qp (mlsynth's ridge QP)",
    )
    panel_ridge: float = Field(1e-6, gt=0, description="panel qp: ridge rho selecting the minimum-norm optimum")
    cal_epsilon: float = Field(1e-4, gt=0, description="panel calibration: stop when max |misfit|/(1+|target|) < this")
    cal_maxit: int = Field(250, ge=1, description="panel calibration: maximum Newton iterations")
    propensity_mode: bool = Field(False, description="panel: balance covariate totals only (no outcome matching)")
    test: Literal["lower", "upper", "twosided"] = Field("twosided", description="panel: direction of the p-values")
    confidence: float = Field(0.9, gt=0, lt=1, description="panel: level of the linearization CI (R default 0.9)")
    n_permutations: int = Field(0, ge=0, description="panel: placebo groups for per-period p-values and gap band")
