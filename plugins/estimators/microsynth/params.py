"""Parameters of the simplex MicroSynth estimator (``estimator=microsynth``).

R microsynth's panel and propensity modes are the separate ``microsynth_panel`` estimator.
Every cross-field rule is a validator here: a combination that cannot work fails at
validation (exit 2), never at fit time and never by being ignored.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from causalkit.contracts import Estimand, EstimandName, Params

__all__ = ["MicroSynthParams", "SIMPLEX_ESTIMANDS"]

SIMPLEX_ESTIMANDS = (Estimand.ATT, Estimand.ITT, Estimand.CACE)
"""Estimands of simplex MicroSynth: by actual exposure, by assigned arm, and their balanced ratio."""

DEFAULT_MIN_COMPLIANCE_GAP = 0.05
DEFAULT_SPARK_MASTER = "local[2]"


class MicroSynthParams(Params):
    """Parameters of simplex MicroSynth.

    Rules (checked at validation): ``backend=columnar|spark`` fit the ATT without lagged
    outcomes; ``match_outcomes`` needs ``outcome_lag_periods``; ``min_compliance_gap`` is for
    ``estimand=CACE``; ``dtype=float32`` is for ``backend=columnar`` and ``spark_master`` for
    ``backend=spark``.
    """

    estimand: EstimandName = Field(
        Estimand.ATT,
        description="ATT: by actual exposure; ITT: by assigned arm; CACE: ITT / balanced compliance gap",
    )
    outcome_lag_periods: tuple[int | float | str, ...] = Field(
        (), description="pre-period labels whose outcomes (of match_outcomes) are balanced too"
    )
    match_outcomes: tuple[str, ...] = Field(
        (),
        description="outcome columns balanced at outcome_lag_periods (default: the outcome role)",
    )
    min_compliance_gap: float | None = Field(
        None,
        ge=0,
        description="CACE: warn when the balanced compliance gap is below (default 0.05)",
    )
    balance_tol: float = Field(
        1e-8, gt=0, description="max |SMD| after weighting to call a fit feasible"
    )
    tol: float = Field(1e-11, gt=0, description="dual residual tolerance (standardised units)")
    max_iter: int = Field(50, ge=1, description="maximum semismooth Newton steps")
    backend: Literal["memory", "columnar", "spark"] = Field(
        "memory",
        description="memory: in-memory arrays; columnar: chunked passes, memory ~ size of X; spark: Spark passes",
    )
    dtype: Literal["float64", "float32"] = Field(
        "float64", description="columnar: covariate precision in memory"
    )
    spark_master: str | None = Field(
        None,
        description="spark: spark.master of the session (default local[2]; e.g. yarn, spark://host:7077)",
    )

    # Cross-field rules, each on the later field of its pair (fields validate in order), so an
    # error names the field that cannot work with what came before.
    @field_validator("estimand")
    @classmethod
    def _simplex_estimand(cls, value: Estimand) -> Estimand:
        if value not in SIMPLEX_ESTIMANDS:
            raise ValueError(
                f"one of {', '.join(map(str, SIMPLEX_ESTIMANDS))} (lower case accepted)"
            )
        return value

    @field_validator("match_outcomes")
    @classmethod
    def _lags_for_outcomes(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if value and not info.data.get("outcome_lag_periods"):
            raise ValueError(
                "no match_outcomes without outcome_lag_periods (the pre periods to balance them at)"
            )
        return value

    @field_validator("min_compliance_gap")
    @classmethod
    def _cace_only(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and info.data.get("estimand", Estimand.CACE) is not Estimand.CACE:
            raise ValueError("no min_compliance_gap unless estimand=CACE")
        return value

    @field_validator("backend")
    @classmethod
    def _scaled_backends_fit_att(cls, value: str, info: ValidationInfo) -> str:
        if value != "memory":
            if info.data.get("estimand", Estimand.ATT) is not Estimand.ATT:
                raise ValueError(
                    f"backend=memory for estimand={info.data['estimand']} ({value} fits the ATT only)"
                )
            if info.data.get("outcome_lag_periods"):
                raise ValueError(
                    f"backend=memory with outcome_lag_periods ({value} balances covariates only)"
                )
        return value

    @field_validator("dtype")
    @classmethod
    def _columnar_dtype(cls, value: str, info: ValidationInfo) -> str:
        if value != "float64" and info.data.get("backend", "columnar") != "columnar":
            raise ValueError("float64 unless backend=columnar")
        return value

    @field_validator("spark_master")
    @classmethod
    def _spark_only(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("backend", "spark") != "spark":
            raise ValueError("no spark_master unless backend=spark")
        return value

    @property
    def compliance_floor(self) -> float:
        """``min_compliance_gap`` or its default."""
        return (
            DEFAULT_MIN_COMPLIANCE_GAP
            if self.min_compliance_gap is None
            else self.min_compliance_gap
        )

    @property
    def master(self) -> str:
        """``spark_master`` or its default."""
        return self.spark_master or DEFAULT_SPARK_MASTER
