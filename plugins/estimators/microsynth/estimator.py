"""The ``microsynth`` estimator plugin: simplex MicroSynth on one of three backends."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from causalkit.contracts import Capability, Dataset, Fit, Params
from causalkit.contracts import Params as PluginParams
from causalkit.coverage import World
from causalkit.errors import DataError
from causalkit_plugins.dgps.contaminated_holdout import RANDOMISED_600
from causalkit_plugins.dgps.selection_on_observables import INFORMATIVE_600
from causalkit_plugins.estimators.microsynth.params import MicroSynthParams
from causalkit_plugins.estimators.microsynth.simplex import fit_simplex

__all__ = ["MicroSynth", "MicroSynthParams"]

#: What every fit of each backend offers to inference (:meth:`MicroSynth.capabilities`).
BACKEND_CAPABILITIES: dict[str, frozenset[Capability]] = {
    "memory": frozenset({Capability.RESAMPLE, Capability.PLACEBO}),
    "columnar": frozenset({Capability.RESAMPLE}),
    "spark": frozenset({Capability.REPLICATES}),
}


class MicroSynth:
    r"""Simplex MicroSynth (Robbins & Davenport 2021; the MicroSynth document, Mode A).

    Control weights solve the minimum-variance balancing QP

    .. math::
        w^\ast = \arg\min_w \tfrac12\|w - n_C^{-1}\mathbf 1\|^2
        \ \text{s.t.}\ X_0^\top w = \bar x_1,\ \mathbf 1^\top w = 1,\ w\ge 0,

    solved through its (d+1)-dimensional dual with semismooth Newton steps
    (:func:`~causalkit_plugins.estimators.microsynth.dual.solve_simplex_dual`). Covariates are
    standardised with their pooled mean and SD before solving; if the treated mean lies
    outside the convex hull of the controls the fit is flagged infeasible.

    The estimates are the headline :math:`\hat\theta = T_{post}^{-1}\sum_{t\,\in\,post}\tau_t`
    with :math:`\tau_t = \bar y_{1t} - \sum_j w_j^\ast y_{jt}` (divided by the balanced
    compliance gap for the CACE), followed, when there are several post periods, by each
    :math:`\tau_t` (same scaling), named ``"<estimand>@<period>"``.

    Inference: ``backend=memory`` offers a paired (treated/control) resampling refit and
    placebo draws; ``columnar`` the refit; ``spark`` Poisson-bootstrap replicates drawn on
    the executors (:attr:`~causalkit.contracts.Resampler.replicates`). A placebo draw takes
    :math:`n_T` controls as the pseudo-treated group and the other :math:`n_C - n_T` as
    donors, so it needs :math:`n_C \ge 2 n_T`; a design below that is known only from the
    data, so ``inference=permutation`` is refused at inference time by a one-line
    :class:`~causalkit.errors.DataError` (a Monte Carlo replication counts as failed).
    Between :math:`2 n_T` and about :math:`4 n_T` controls the test is conservative (the
    placebo donor pool is smaller than the real one). R microsynth's panel
    and propensity modes are the separate ``microsynth_panel`` estimator.

    Clusters (the ``cluster`` role, ``backend=memory`` only; one line refuses the others):
    ``inference=bootstrap`` resamples whole clusters and refits (the cluster bootstrap of a
    smooth estimator; Cameron, Gelbach & Miller 2008), within the treated and control strata
    when every cluster lies in one of them; ``permutation`` is refused in one line (its
    placebo groups are single units). The estimator gives no influence values, so there is
    no analytic clustered SE.

    Sampling weights (the ``weight`` role, ``backend=memory`` only; one line refuses the
    others): with non-negative weights :math:`d_i` the estimator is the unweighted one on
    the frequency-expanded data (unit :math:`i` repeated :math:`d_i` times; the same formulas
    for any :math:`d_i \ge 0`). The balance columns are standardised with the
    :math:`d`-weighted pooled mean and SD (ddof 0) and, with :math:`D_C = \sum_{j\in C} d_j`
    and the weighted treated mean :math:`\bar x_1^d = \sum_{i\in T} d_i x_i / \sum_{i\in T} d_i`,

    .. math::
        w^\ast = \arg\min_w \tfrac12\sum_{j\in C} d_j (w_j - D_C^{-1})^2
        \ \text{s.t.}\ \sum_j d_j w_j x_j = \bar x_1^d,\ \sum_j d_j w_j = 1,\ w\ge 0,

    the expanded problem itself: by strict convexity and symmetry the copies of a unit get
    equal weights, so the expanded weights collapse to one per unit (the solver's frequency
    ``counts``). The gaps are :math:`\tau_t = \bar y^d_{1t} - \sum_j d_j w^\ast_j y_{jt}`.
    Survey reading: substituting :math:`a_j = d_j w_j`, the objective is
    :math:`\tfrac12\sum_j (a_j - d_j/D_C)^2 / d_j`, the chi-square distance of Deville &
    Särndal (1992) from the normalised design weights :math:`d_j/D_C`, and the constraints
    are their calibration equations :math:`\sum_j a_j x_j = \bar x_1^d`,
    :math:`\sum_j a_j = 1` with the bound :math:`a_j \ge 0`: the controls' shares are a
    bounded linear calibration of the design weights to the weighted treated means, and
    without weights (:math:`d = 1`) the estimator above. (The survey reading is ours, not
    Robbins, Saunders & Kilmer's.) The estimates then target the
    weighted population's treated units. Units of weight 0 are dropped (the fit equals the fit
    without their rows). ``inference=bootstrap`` resamples units (or clusters) within the
    strata and carries their weights: a draw with multiplicities :math:`b_i` refits with
    frequency weights :math:`b_i d_i` (the with-replacement bootstrap of the weighted
    estimator, units as the sampled units). ``permutation`` is refused in one line: a
    placebo group of controls carries the controls' weights, not the treated group's, so
    its spread is not the estimate's null spread when the weights differ by arm
    (informative weights), and no weighted placebo design is derived here.

    References
    ----------
    Robbins, M.W. & Davenport, S. (2021). microsynth: Synthetic control methods for
    disaggregated and micro-level data in R. *J. Stat. Softw.* 97(2).
    Robbins, M.W., Saunders, J. & Kilmer, B. (2017). A framework for synthetic control
    methods with high-dimensional, micro-level data. *JASA* 112(517).
    Deville, J.-C. & Särndal, C.-E. (1992). Calibration estimators in survey sampling.
    *JASA* 87(418), 376-382.
    Cameron, A.C., Gelbach, J.B. & Miller, D.L. (2008). Bootstrap-based improvements for
    inference with clustered errors. *Rev. Econ. Stat.* 90(3).
    """

    name: ClassVar[str] = "microsynth"
    Params: ClassVar[type[Params]] = MicroSynthParams
    required_roles: ClassVar[tuple[str, ...]] = ("outcome", "covariates")
    """Plus ``treatment`` (ATT), ``assignment`` (ITT) or both (CACE); ``unit`` and ``time`` for a panel."""
    default_inference: ClassVar[str] = "bootstrap"
    handles_roles: ClassVar[frozenset[str]] = frozenset({"cluster", "weight"})
    coverage_worlds: ClassVar[tuple[World, ...]] = (
        World(
            "randomised",
            (*RANDOMISED_600, "mc.target=ATT"),
            inferences=frozenset({"bootstrap"}),
            note="exposure randomised: the paired bootstrap's world",
        ),
        World(
            "few_treated",
            (
                "dgp.n_contaminated=0",
                "dgp.n_users=600",
                "dgp.n_exposed=20",
                "mc.target=ATT",
            ),
            inferences=frozenset({"bootstrap"}),
            note="20 exposed users of 600",
        ),
        World(
            "few_treated_null",
            (
                "dgp.n_contaminated=0",
                "dgp.n_users=600",
                "dgp.n_exposed=40",
                "dgp.lift=0",
                "mc.target=ATT",
            ),
            inferences=frozenset({"permutation"}),
            null=True,
            note="40 exposed of 600, no lift: placebo groups of the treated size exist",
        ),
        World(
            "default_sizes_null",
            (
                "dgp.n_contaminated=0",
                "dgp.lift=0",
                "mc.target=ATT",
            ),
            expect="refuse",
            reps=200,
            inferences=frozenset({"permutation"}),
            note="1,200 exposed of 2,000 users: fewer than 2 n_T controls, no valid placebo groups",
        ),
        World(
            "weighted",
            (*INFORMATIVE_600, "dgp.outcome.x1_sq=0", "mc.target=ATT"),
            inferences=frozenset({"bootstrap"}),
            note="informative sampling on the effect modifier x1 (weights 1/probability), "
            "outcomes linear in the balanced covariates: the weighted balance targets the "
            "population ATT; the bootstrap resamples units carrying their weights",
        ),
        World(
            "weighted_null",
            (
                *INFORMATIVE_600,
                "dgp.outcome.x1_sq=0",
                "dgp.outcome.tau=0",
                "dgp.outcome.tau_x1=0",
                "mc.target=ATT",
            ),
            expect="refuse",
            reps=20,
            inferences=frozenset({"permutation"}),
            null=True,
            note="placebo groups with sampling weights: refused in one line (their weights are the "
            "controls', not the treated group's)",
        ),
    )

    def __init__(self, params: MicroSynthParams | None = None) -> None:
        self.params = params or MicroSynthParams()

    @classmethod
    def capabilities(cls, params: PluginParams) -> frozenset[Capability]:
        """By backend: memory RESAMPLE + PLACEBO, columnar RESAMPLE, spark REPLICATES."""
        assert isinstance(params, MicroSynthParams)
        return BACKEND_CAPABILITIES[params.backend]

    def fit(self, data: Dataset, rng: np.random.Generator) -> Fit:
        """Fit on ``backend`` (memory: :func:`fit_simplex`; columnar.py; spark_backend.py)."""
        p = self.params
        if data.roles.weight is not None and p.backend != "memory":
            raise DataError(
                "estimator.backend",
                "backend=memory with roles.weight (the other backends do not weight units)",
                f"backend={p.backend}",
            )
        if data.roles.cluster is not None and p.backend != "memory":
            raise DataError(
                "roles.cluster",
                "estimator.backend=memory for clustered inference (its refit resamples whole "
                "clusters; the other backends resample units)",
                f"backend={p.backend}",
            )
        if p.backend == "columnar":
            from causalkit_plugins.estimators.microsynth.columnar import fit_columnar

            return fit_columnar(data, p)
        if p.backend == "spark":
            from causalkit_plugins.estimators.microsynth.spark_backend import fit_spark

            return fit_spark(data, p)
        return fit_simplex(data, p)
