"""The ``microsynth`` estimator plugin: dispatch on ``weight_method`` (simplex or panel)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from causalkit.contracts import Dataset, Fit, Params
from causalkit_plugins.estimators.microsynth.panel import fit_panel
from causalkit_plugins.estimators.microsynth.params import MicroSynthParams
from causalkit_plugins.estimators.microsynth.simplex import fit_simplex

__all__ = ["MicroSynth", "MicroSynthParams"]


class MicroSynth:
    r"""MicroSynth (Robbins & Davenport 2021; the MicroSynth document, Modes A and B).

    ``weight_method="simplex"`` (unit-level, micro data): control weights solve the
    minimum-variance balancing QP

    .. math::
        w^\ast = \arg\min_w \tfrac12\|w - n_C^{-1}\mathbf 1\|^2
        \ \text{s.t.}\ X_0^\top w = \bar x_1,\ \mathbf 1^\top w = 1,\ w\ge 0,

    solved through its (d+1)-dimensional dual with semismooth Newton steps
    (:func:`~causalkit_plugins.estimators.microsynth.dual.solve_simplex_dual`). The ATT is the
    mean over post periods of :math:`\tau_t = \bar y_{1t} - \sum_j w_j^\ast y_{jt}`.
    Covariates are standardised with their pooled mean and SD before solving; if the treated
    mean lies outside the convex hull of the controls the fit is flagged infeasible.

    ``weight_method="panel"`` (aggregated areas, R microsynth's method; also
    ``propensity_mode``): non-negative weights whose control totals match the treated area's
    totals of the intercept, the covariates and every matched pre-period outcome, from R's
    linear calibration (default, reproduces R microsynth 2.0.51) or mlsynth's ridge QP; the
    estimate is the mean post-period effect on totals of the ``outcome`` role, with R's
    per-outcome Trt/Con/Pct.Chng, linearization p-values and CIs in the diagnostics
    (:func:`~causalkit_plugins.estimators.microsynth.panel.fit_panel`).

    References
    ----------
    Robbins, M.W. & Davenport, S. (2021). microsynth: Synthetic control methods for
    disaggregated and micro-level data in R. *J. Stat. Softw.* 97(2).
    Robbins, M.W., Saunders, J. & Kilmer, B. (2017). A framework for synthetic control
    methods with high-dimensional, micro-level data. *JASA* 112(517).
    """

    name: ClassVar[str] = "microsynth"
    Params: ClassVar[type[Params]] = MicroSynthParams
    required_roles: ClassVar[tuple[str, ...]] = ("unit", "outcome", "treatment", "covariates")
    default_inference: ClassVar[str] = "bootstrap"
    supported_inference: ClassVar[tuple[str, ...]] = (
        "bootstrap",
        "permutation",
        "analytic",
        "none",
    )

    def __init__(self, params: MicroSynthParams | None = None) -> None:
        self.params = params or MicroSynthParams()

    @classmethod
    def inference_for(cls, params: MicroSynthParams) -> tuple[str, tuple[str, ...]]:
        """Default and supported inference by mode: panel has R's linearization (analytic) SE."""
        if params.weight_method == "panel" or params.propensity_mode:
            return "analytic", ("analytic", "permutation", "none")
        return "bootstrap", ("bootstrap", "permutation", "none")

    def fit(self, data: Dataset, rng: np.random.Generator) -> Fit:
        """Dispatch on ``weight_method`` (and ``backend``: columnar.py, spark_backend.py)."""
        if self.params.backend != "memory":
            from causalkit_plugins.estimators.microsynth.columnar import fit_scaled

            return fit_scaled(data, self.params, rng)
        if self.params.weight_method == "panel" or self.params.propensity_mode:
            return fit_panel(data, self.params, rng)
        return fit_simplex(data, self.params, rng)
