"""The ``aipw`` estimator's parameter model, with its cross-field rules as validators."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from causalkit.contracts import Estimand, EstimandName, Params
from causalkit.errors import ConfigError
from causalkit_plugins.estimators.aipw.learners import (
    LEARNERS,
    ParamValue,
    check_learner_params,
    tasks,
)
from causalkit_plugins.estimators.aipw.sensitivity import OptionalSensitivity

__all__ = ["MEANS", "AIPWParams", "OutcomeName", "PropensityName"]

MEANS = (Estimand.MEAN1, Estimand.MEAN0)
"""The potential-outcome means: one arm's part of the ATE score."""

PropensityName = Literal["logit", "logit_unpenalized", "probit", "gbm", "random_forest"]
OutcomeName = Literal[
    "auto", "logit", "logit_unpenalized", "linear", "ridge", "lasso", "gbm", "random_forest"
]


class AIPWParams(Params):
    """Parameters of the ``aipw`` estimator (see :class:`~causalkit_plugins.estimators.aipw.estimator.AIPW`).

    Segments and given folds are data roles (``roles.segments``, ``roles.fold``), not
    parameters; confidence levels belong to the inference method.

    ``folds=1`` (nuisances fitted and predicted on the same rows) with a flexible learner
    (:attr:`~causalkit_plugins.estimators.aipw.learners.LearnerSpec.flexible`: lasso, gbm,
    random_forest) fails validation: the in-sample residuals of an overfitted learner make
    the influence SE far too small (0.052 against 0.318 with five folds for a random forest
    with ``min_samples_leaf=1``). ``allow_invalid_se=true`` runs it anyway and marks every
    result (diagnostic ``se_invalid``, a warning). It is dumped only when true, so the config
    hashes (and seeds) of cells that leave it unset are those they had before it existed;
    likewise ``impute`` only when not ``none`` (missing covariates are refused by the core
    input check, :mod:`causalkit.inputs`, unless ``impute=median`` asks for imputation),
    ``sensitivity`` only when set
    (:class:`~causalkit_plugins.estimators.aipw.sensitivity.SensitivityParams`) and ``n_rep``
    only when above 1.
    """

    estimand: EstimandName = Field(
        Estimand.ATE,
        description="ATE, ATT, or a potential-outcome mean: MEAN1 = E[Y(1)], MEAN0 = E[Y(0)]",
    )
    propensity_model: PropensityName = "logit"
    outcome_model: OutcomeName = Field(
        "auto", description="auto: logit for a 0/1 outcome, else linear"
    )
    propensity_params: dict[str, ParamValue] = Field(default_factory=dict)
    outcome_params: dict[str, ParamValue] = Field(default_factory=dict)
    folds: int = Field(
        5, ge=1, le=100, description="K cross-fitting folds unless roles.fold gives them; 1 = none"
    )
    allow_invalid_se: bool = Field(
        False,
        description="accept folds=1 with a flexible learner; the SE is then marked invalid",
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
    segment_bins: dict[str, list[float] | int] = Field(
        default_factory=dict, description="segment column -> bin edges or a quantile count"
    )
    segment_labels: dict[str, list[str]] = Field(default_factory=dict)
    min_segment_rows: int = Field(50, ge=1)
    min_segment_treated: int = Field(5, ge=1)
    min_segment_controls: int = Field(5, ge=1)
    n_jobs: int = Field(1, ge=1, le=64, description="threads fitting the nuisance models")
    impute: Literal["none", "median"] = Field(
        "none",
        description="missing covariate values: none refuses them; median imputes them within "
        "each fold (the most frequent level for categories), counted and reported",
    )

    n_rep: int = Field(
        1,
        ge=1,
        le=100,
        description="repeated cross-fitting: fold splits drawn, effects aggregated by the "
        "median (DoubleML); 1: one split",
    )

    sensitivity: OptionalSensitivity = Field(
        None,
        description="omitted-variable-bias bounds for a confounding scenario (cf_y, cf_d, rho) "
        "and benchmarks; null: off",
    )

    added_fields: ClassVar[frozenset[str]] = frozenset(
        {"allow_invalid_se", "impute", "sensitivity", "n_rep"}
    )
    seed_neutral: ClassVar[frozenset[str]] = frozenset({"sensitivity"})

    @field_validator("estimand")
    @classmethod
    def _ate_or_att(cls, value: Estimand) -> Estimand:
        if value not in (Estimand.ATE, Estimand.ATT, *MEANS):
            raise ValueError("ATE or ATT (effects), MEAN1 or MEAN0 (potential-outcome means)")
        return value

    @model_validator(mode="after")
    def _means(self) -> AIPWParams:
        """The sensitivity bounds and the stacked SE are derived for the ATE and ATT only."""
        if self.estimand in MEANS and self.sensitivity is not None:
            raise ConfigError(
                "estimator.sensitivity",
                "null with a potential-outcome mean (the bounds are derived for the ATE and ATT)",
                self.estimand.value,
            )
        if self.estimand in MEANS and self.se_method == "stacked":
            raise ConfigError(
                "estimator.se_method",
                "influence with a potential-outcome mean (the stacked SE is derived for the ATE "
                "and ATT)",
                "stacked",
            )
        return self

    @model_validator(mode="after")
    def _learners(self) -> AIPWParams:
        """Learner parameters must be parameters of the learner (of both ``auto`` may pick)."""
        check_learner_params(
            [(self.propensity_model, "classifier")],
            self.propensity_params,
            "estimator.propensity_params",
        )
        outcome = ("logit", "linear") if self.outcome_model == "auto" else (self.outcome_model,)
        check_learner_params(
            [t for name in outcome for t in tasks(name)],
            self.outcome_params,
            "estimator.outcome_params",
        )
        return self

    def flexible_learners(self) -> tuple[str, ...]:
        """The flexible learners among the two nuisance models (``auto`` picks a GLM)."""
        names = dict.fromkeys((self.propensity_model, self.outcome_model))
        return tuple(n for n in names if n != "auto" and LEARNERS[n].flexible)

    @model_validator(mode="after")
    def _in_sample(self) -> AIPWParams:
        """``folds=1`` with a flexible learner needs the explicit ``allow_invalid_se``."""
        flexible = self.flexible_learners()
        if self.folds == 1 and flexible and not self.allow_invalid_se:
            raise ConfigError(
                "estimator.folds",
                f"folds >= 2 with {' and '.join(flexible)} (in-sample nuisances of a flexible "
                "learner make the SE too small), or allow_invalid_se=true to accept an invalid SE",
                self.folds,
            )
        return self

    @model_validator(mode="after")
    def _repeated(self) -> AIPWParams:
        """``n_rep > 1`` needs folds to redraw and rows that every repetition keeps."""
        if self.n_rep == 1:
            return self
        if self.folds == 1:
            raise ConfigError(
                "estimator.n_rep",
                "n_rep=1 with folds=1 (one fold has no split to repeat)",
                self.n_rep,
            )
        if self.trim > 0:
            raise ConfigError(
                "estimator.trim",
                "trim=0 with n_rep > 1 (each repetition would trim other rows)",
                self.trim,
            )
        return self

    @model_validator(mode="after")
    def _stacked(self) -> AIPWParams:
        """``se_method=stacked`` needs one fold, unpenalised GLM nuisances and the plain score."""
        if self.se_method != "stacked":
            return self
        if self.folds != 1:
            raise ConfigError("estimator.se_method", "folds=1 for the stacked SE", "stacked")
        if LEARNERS[self.propensity_model].link == "none":
            raise ConfigError(
                "estimator.propensity_model",
                "probit or logit_unpenalized for se_method=stacked",
                self.propensity_model,
            )
        if self.outcome_model != "auto" and LEARNERS[self.outcome_model].link == "none":
            raise ConfigError(
                "estimator.outcome_model",
                "linear or logit_unpenalized for se_method=stacked",
                self.outcome_model,
            )
        if self.normalize or self.trim > 0 or self.outcome_design != "separate":
            raise ConfigError(
                "estimator.se_method",
                "normalize=false, trim=0, outcome_design=separate for stacked",
                "stacked",
            )
        return self
