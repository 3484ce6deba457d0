"""The ``microsynth`` estimator plugin (simplex mode): exact mean balance with minimum-variance weights."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from causalkit_plugins.estimators.microsynth.params import MicroSynthParams
from causalkit_plugins.estimators.microsynth.simplex import fit_simplex

from causalkit.contracts import Dataset, Fit, Params

__all__ = ["MicroSynth", "MicroSynthParams"]


class MicroSynth:
    r"""MicroSynth in simplex mode (Robbins & Davenport 2021; the MicroSynth document, Mode A).

    Control weights solve the minimum-variance balancing QP

    .. math::
        w^\ast = \arg\min_w \tfrac12\|w - n_C^{-1}\mathbf 1\|^2
        \ \text{s.t.}\ X_0^\top w = \bar x_1,\ \mathbf 1^\top w = 1,\ w\ge 0,

    solved through its (d+1)-dimensional dual with semismooth Newton steps
    (:func:`~causalkit_plugins.estimators.microsynth.dual.solve_simplex_dual`). The ATT is the
    mean over post periods of :math:`\tau_t = \bar y_{1t} - \sum_j w_j^\ast y_{jt}`.

    Covariates are standardised with their pooled mean and SD before solving; balance is
    invariant to this affine map because the weights sum to one. If the treated mean lies
    outside the convex hull of the controls the fit is flagged infeasible (``feasible=False``,
    a warning, and the bootstrap counts such replications as failed).

    References
    ----------
    Robbins, M.W. & Davenport, S. (2021). microsynth: Synthetic control methods for
    disaggregated and micro-level data in R. *J. Stat. Softw.* 97(2).
    """

    name: ClassVar[str] = "microsynth"
    Params: ClassVar[type[Params]] = MicroSynthParams
    required_roles: ClassVar[tuple[str, ...]] = ("unit", "outcome", "treatment", "covariates")
    default_inference: ClassVar[str] = "bootstrap"
    supported_inference: ClassVar[tuple[str, ...]] = ("bootstrap", "none")

    def __init__(self, params: MicroSynthParams | None = None) -> None:
        self.params = params or MicroSynthParams()

    def fit(self, data: Dataset, rng: np.random.Generator) -> Fit:
        """Dispatch on ``weight_method``."""
        return fit_simplex(data, self.params, rng)
