r"""The ``microsynth_panel`` estimator plugin: R microsynth's panel mode and its propensity mode.

Every cross-field rule is a validator of :class:`MicroSynthPanelParams`: a combination that
cannot work fails at validation (exit 2), never at fit time and never by being ignored.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import BaseModel, Field, field_validator, model_validator

from causalkit.contracts import Capability, Dataset, Estimand, EstimandName, Fit, Params
from causalkit.coverage import World
from causalkit_plugins.estimators.microsynth.panel import fit_panel

__all__ = ["MicroSynthPanel", "MicroSynthPanelParams"]

DEFAULT_CAL_EPSILON = 1e-4
"""R microsynth's ``cal.epsilon``."""
DEFAULT_CAL_MAXIT = 250
"""Calibration Newton steps allowed (survey's ``maxit`` as microsynth calls it)."""


_SMALL_PANEL_NULL = (
    "dgp=area_panel",
    "dgp.n_units=200",
    "dgp.n_treated=10",
    "dgp.n_pre=4",
    "dgp.n_post=2",
    "dgp.n_covariates=2",
    "dgp.selection=0",
    "dgp.effect=0",
    "mc.target=ATT",
)
"""One small no-effect panel for every coverage world of this estimator (nominal and conservative)."""

_FEW_AREAS_NULL = (
    *(o for o in _SMALL_PANEL_NULL if not o.startswith("dgp.n_treated=")),
    "dgp.n_treated=3",
)
"""The same panel with only three treated areas (the edge world)."""

_CLUSTERED_AREAS_NULL = (
    *(o for o in _SMALL_PANEL_NULL if not o.startswith(("dgp.n_treated=", "dgp.n_pre="))),
    "dgp.n_treated=20",
    "dgp.n_pre=2",
    "dgp.cluster_size=5",
    "dgp.cluster_sd=1.0",
    "dgp.assign=cluster",
)
"""200 areas in 40 clusters of 5 sharing period shocks, 4 whole clusters treated (the clustered
world; 2 pre periods: with 4 the clustered SE runs about 6% low, see the estimator's notes)."""

_WEIGHTED_AREAS = (
    *(o for o in _SMALL_PANEL_NULL if not o.startswith(("dgp.selection=", "dgp.effect="))),
    "dgp.effect=-1",
    "dgp.effect_covariate=0.5",
    "dgp.weight_tilt=0.8",
)
"""The small panel with selection on the first covariate (the default tilt), sampling weights
falling with it and an effect growing with it: the truth is the effect on the weighted total of
the drawn treated areas, which an estimate without the weights misses."""


def _null_panel_worlds(
    name: str,
    overrides: tuple[str, ...],
    note: str,
    nominal: frozenset[str] = frozenset({"permutation", "analytic", "multiplier"}),
) -> tuple[World, World]:
    """A no-effect panel: nominal for the unit-level methods, conservative for R's linearisation."""
    return (
        World(
            name,
            overrides,
            inferences=nominal,
            null=True,
            note=note,
        ),
        World(
            name,
            overrides,
            expect="conservative",
            inferences=frozenset({"linearisation"}),
            null=True,
            note=f"{note}; R microsynth's linearisation treats (unit, period) rows as "
            "independent: conservative",
        ),
    )


class MicroSynthPanelParams(Params):
    """Parameters of ``microsynth_panel``.

    Rules (checked at validation): the estimand is the ATT on totals; ``propensity_mode``
    matches no outcomes; ``cal_epsilon``/``cal_maxit`` are for ``weighting=calibration``;
    ``start_pre <= end_pre < end_post`` where given.
    """

    estimand: EstimandName = Field(
        Estimand.ATT,
        description="ATT only: effect on the treated area's totals (lower case accepted)",
    )
    start_pre: int | float | None = Field(
        None, description="first pre period (default: the first period)"
    )
    end_pre: int | float | None = Field(
        None, description="last pre period (default: the period before onset)"
    )
    end_post: int | float | None = Field(
        None, description="last post period (default: the last period)"
    )
    match_outcomes: tuple[str, ...] = Field(
        (), description="outcomes whose pre-period totals are matched (default: the outcome role)"
    )
    result_outcomes: tuple[str, ...] = Field(
        (),
        description="outcomes with effects reported (default: match_outcomes, else the outcome role)",
    )
    weighting: Literal["calibration", "qp"] = Field(
        "calibration",
        description="calibration (R's survey::calibrate, linear, bounds [0, inf)) or qp (mlsynth's ridge QP)",
    )
    ridge: float = Field(
        1e-6,
        gt=0,
        description="ridge rho of the QP (weighting=qp, and the calibration's QP fallback)",
    )
    cal_epsilon: float | None = Field(
        None,
        gt=0,
        description="calibration: stop when max |misfit|/(1+|target|) < this (default 1e-4)",
    )
    cal_maxit: int | None = Field(
        None, ge=1, description="calibration: maximum Newton steps (default 250)"
    )
    propensity_mode: bool = Field(
        False, description="balance covariate totals only (no outcome matching)"
    )

    @field_validator("estimand")
    @classmethod
    def _att_only(cls, value: Estimand) -> Estimand:
        if value is not Estimand.ATT:
            raise ValueError(
                "ATT (microsynth_panel estimates the effect on the treated area's totals; "
                "ITT and CACE are estimator=microsynth's)"
            )
        return value

    @model_validator(mode="after")
    def _combinations(self) -> MicroSynthPanelParams:
        if self.propensity_mode and self.match_outcomes:
            raise ValueError(
                "no match_outcomes with propensity_mode=true (it balances covariates only)"
            )
        if self.weighting != "calibration" and (
            self.cal_epsilon is not None or self.cal_maxit is not None
        ):
            raise ValueError("cal_epsilon and cal_maxit only with weighting=calibration")
        given = [
            (k, v)
            for k, v in (
                ("start_pre", self.start_pre),
                ("end_pre", self.end_pre),
                ("end_post", self.end_post),
            )
            if v is not None
        ]
        for (k1, v1), (k2, v2) in zip(given, given[1:], strict=False):
            strict = k2 == "end_post"  # the post window starts after every pre period
            if v1 > v2 or (strict and v1 == v2):
                raise ValueError(
                    f"{k1} {'<' if strict else '<='} {k2}, got {k1}={v1} and {k2}={v2}"
                )
        return self

    @property
    def epsilon(self) -> float:
        """``cal_epsilon`` or its default."""
        return DEFAULT_CAL_EPSILON if self.cal_epsilon is None else self.cal_epsilon

    @property
    def maxit(self) -> int:
        """``cal_maxit`` or its default."""
        return DEFAULT_CAL_MAXIT if self.cal_maxit is None else self.cal_maxit


class MicroSynthPanel:
    r"""R microsynth's panel mode (Robbins & Davenport 2021) and its propensity mode.

    Non-negative control weights whose totals match the treated area's totals of the
    intercept, the covariates and every matched pre-period outcome, from R's linear
    calibration (default; reproduces R microsynth 2.0.51) or mlsynth's ridge QP. The
    estimates are the mean post-period effect on totals of the ``outcome`` role (``ATT``),
    the same for every other result outcome, each outcome's log ratio
    :math:`\log(\mathrm{Trt}/\mathrm{Con})` and the per-period effects
    (:mod:`~causalkit_plugins.estimators.microsynth.panel`).

    Inference: ``analytic`` (the default) and ``multiplier`` read a unit-level influence
    matrix, the calibration (GREG) linearisation of Deville & Särndal (1992) on the residuals
    of each unit's post-period mean on its balance columns
    (:mod:`~causalkit_plugins.estimators.microsynth.panel_influence`); ``permutation`` draws
    placebo areas (an exact test of no effect when treatment is exchangeable); R's
    ``linearisation`` reproduces R's ``Linear.pVal`` and its percent-change CI, but treats the
    weights as fixed and every unit-period as independent, so it is conservative.

    Clusters (the ``cluster`` role; each unit in one cluster): the unit-level variance is
    already clustered by unit (a unit's post periods are one draw), and with the role the
    clusters of units become the independent draws. ``analytic`` sums the unit influence
    values within clusters with the factor :math:`G/(G-1)` (no :math:`K`: no regression
    defines the estimate), ``multiplier`` draws one multiplier per cluster, so singleton
    clusters give today's variance times :math:`n/(n-1)`; the estimate is valid when
    treatment was assigned to whole clusters and conservative when clusters mix treated and
    control units (a warning;
    :mod:`~causalkit_plugins.estimators.microsynth.panel_influence` has the derivation).
    ``linearisation`` becomes R's ``svydesign(ids = ~cluster)``: row terms summed within
    clusters, factor :math:`G/(G-1)`. ``permutation`` draws placebo areas of whole control
    clusters, as many as the treated area spans (exact when whole clusters were assigned
    exchangeably), and is refused in one line when a cluster holds treated and control
    units.

    Sampling weights (the ``weight`` role, one non-negative weight per unit; weight-0 units
    are dropped): the targets are the weighted treated totals :math:`\sum_T d_i m_i`, the
    estimate the effect on the weighted treated total, and the weights are those of the panel
    in which each unit appears :math:`d_i` times (exactly, for integer weights): calibration
    from the design weights, the QP's ridge :math:`\rho\sum_j w_j^2/d_j`
    (:class:`~causalkit_plugins.estimators.microsynth.panel_weights.PanelDesign`). ``analytic``
    and ``multiplier`` count each unit as one draw carrying its weight; the treated area's
    variance is transported with the factor :math:`\kappa = \sum_T d_i^2/\sum_T d_i`
    (exact when the treated weights do not vary with the units' variance;
    :mod:`~causalkit_plugins.estimators.microsynth.panel_influence`, *Sampling weights*).
    ``linearisation`` weights the treated rows by :math:`d_i` (``svydesign(weights=)``);
    ``permutation`` is refused in one line (placebo areas carry the controls' weights).

    References
    ----------
    Robbins, M.W. & Davenport, S. (2021). microsynth: Synthetic control methods for
    disaggregated and micro-level data in R. *J. Stat. Softw.* 97(2).
    Robbins, M.W., Saunders, J. & Kilmer, B. (2017). A framework for synthetic control
    methods with high-dimensional, micro-level data. *JASA* 112(517).
    Deville, J.-C. & Särndal, C.-E. (1992). Calibration estimators in survey sampling. *JASA* 87.
    """

    name: ClassVar[str] = "microsynth_panel"
    Params: ClassVar[type[Params]] = MicroSynthPanelParams
    required_roles: ClassVar[tuple[str, ...]] = ("unit", "outcome", "treatment", "covariates")
    default_inference: ClassVar[str] = "analytic"
    handles_roles: ClassVar[frozenset[str]] = frozenset({"cluster", "weight"})
    coverage_worlds: ClassVar[tuple[World, ...]] = (
        *_null_panel_worlds(
            "small_panel_null",
            _SMALL_PANEL_NULL,
            "200 areas, 10 treated, 4 pre / 2 post periods, random treatment, no effect",
        ),
        *_null_panel_worlds(
            "few_treated_areas_null", _FEW_AREAS_NULL, "the small panel with 3 treated areas of 200"
        ),
        *_null_panel_worlds(
            "clustered_areas_null",
            _CLUSTERED_AREAS_NULL,
            "40 clusters of 5 areas sharing period shocks, 4 clusters treated, cluster role set "
            "(permutation of whole clusters is checked in the unit tests: its cell costs 7 min)",
            frozenset({"analytic", "multiplier"}),
        ),
        World(
            "weighted",
            _WEIGHTED_AREAS,
            inferences=frozenset({"analytic", "multiplier"}),
            conditional=True,
            note="sampling weights exp(-0.8 z) and an effect 0.5 per SD of z; the truth, the "
            "weighted total of the drawn treated areas' effects, varies by draw and the SE is "
            "conditional on it: compared with the SD of the errors",
        ),
        World(
            "weighted",
            _WEIGHTED_AREAS,
            expect="conservative",
            inferences=frozenset({"linearisation"}),
            conditional=True,
            note="R's linearisation with the treated rows weighted: (unit, period) rows as "
            "independent, conservative",
        ),
        World(
            "weighted_null",
            (
                *(o for o in _WEIGHTED_AREAS if not o.startswith(("dgp.effect", "dgp.weight"))),
                "dgp.effect=0",
                "dgp.weight_tilt=0.8",
            ),
            expect="refuse",
            reps=20,
            inferences=frozenset({"permutation"}),
            null=True,
            note="placebo areas with sampling weights: refused in one line (they carry the "
            "controls' weights, not the treated area's)",
        ),
    )

    def __init__(self, params: MicroSynthPanelParams | None = None) -> None:
        self.params = params or MicroSynthPanelParams()

    @classmethod
    def capabilities(cls, params: BaseModel) -> frozenset[Capability]:
        """Every fit offers unit-level influence values, placebo draws and R's linearisation terms."""
        return frozenset({Capability.INFLUENCE, Capability.PLACEBO, Capability.LINEARISATION})

    def fit(self, data: Dataset, rng: np.random.Generator) -> Fit:
        """Fit panel or propensity mode (:func:`~causalkit_plugins.estimators.microsynth.panel.fit_panel`)."""
        return fit_panel(data, self.params)
