"""Unadjusted differences in means: as-treated (``naive``) and by randomised arm (``itt``)."""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np

from causalkit.clusters import fit_clusters
from causalkit.contracts import Capability, Dataset, Estimand, Fit, Params, Resampler
from causalkit.contracts import Params as PluginParams
from causalkit.coverage import World
from causalkit.panel import unit_table
from causalkit_plugins.dgps.contaminated_holdout import RANDOMISED_600
from causalkit_plugins.dgps.selection_on_observables import clustered_worlds

__all__ = ["difference_in_means", "Naive", "ITT"]


def difference_in_means(
    y: np.ndarray, group: np.ndarray, welch: bool = True
) -> tuple[float, np.ndarray]:
    r"""Difference of group means and its influence values.

    Parameters
    ----------
    y : ndarray, shape (n,)
        Outcomes.
    group : ndarray of bool, shape (n,)
        Group indicator.
    welch : bool
        Scale each group's influence values by :math:`c_g` (below); ``False``:
        :math:`c_g = 1`, the score of the OLS regression of :math:`y` on :math:`(1, G)`,
        whose cluster sums give the clustered OLS variance.

    Returns
    -------
    estimate : float
        :math:`\hat\tau = \bar y_1 - \bar y_0`.
    influence : ndarray, shape (n,)
        :math:`\psi_i = \frac{G_i (y_i - \bar y_1)}{\hat p} c_1 - \frac{(1-G_i)(y_i-\bar y_0)}{1-\hat p} c_0`
        with :math:`\hat p = n_1/n` and :math:`c_g = \sqrt{n_g/(n_g-1)}`, so that
        :math:`n^{-2}\sum_i\psi_i^2 = s_1^2/n_1 + s_0^2/n_0` (Welch / Neyman variance).
    """
    g = group.astype(bool)
    n = y.shape[0]
    n1 = int(g.sum())
    n0 = n - n1
    m1 = float(y[g].mean())
    m0 = float(y[~g].mean())
    p = n1 / n
    c1 = (np.sqrt(n1 / (n1 - 1)) if n1 > 1 else np.nan) if welch else 1.0
    c0 = (np.sqrt(n0 / (n0 - 1)) if n0 > 1 else np.nan) if welch else 1.0
    psi = np.where(g, (y - m1) / p * c1, -(y - m0) / (1 - p) * c0)
    return m1 - m0, psi


class _DifferenceParams(Params):
    """No parameters."""


class _Difference:
    """Shared fit for the two unadjusted contrasts; subclasses pick the grouping role.

    Every fit offers the influence values of :func:`difference_in_means` and a refit on
    resampled units, stratified by group. That is the design's resampling for ``itt`` (the
    arms are randomised) and is valid for the as-treated ``naive`` contrast too: a
    difference of two arm means has no between-arm term in its influence function (unlike an
    ATE averaged over the covariates, whose observational bootstrap resamples the whole
    sample, see :func:`~causalkit_plugins.estimators.selection.estimands.resampling_strata`),
    so fixing the arm sizes changes its variance only at order :math:`n^{-2}`.

    With the ``cluster`` role the influence values are the OLS score (``welch=False``) and
    clustered inference uses the CR1 factor with :math:`K = 2`: the analytic SE is then that
    of the OLS regression of the outcome on an intercept and the group with
    ``cov_type="cluster"`` (statsmodels; Stata's ``regress ..., vce(cluster)``). The bootstrap
    resamples whole clusters, within the arms when every cluster lies in one arm (a
    cluster-randomised design).
    """

    name: ClassVar[str]
    group_role: ClassVar[Literal["treatment", "assignment"]]
    estimand: ClassVar[Estimand]
    Params: ClassVar[type[Params]] = _DifferenceParams
    default_inference: ClassVar[str] = "analytic"

    def __init__(self, params: PluginParams | None = None) -> None:
        self.params = params or self.Params()

    @classmethod
    def capabilities(cls, params: PluginParams) -> frozenset[Capability]:
        """Influence values and a refit, whatever the (empty) parameters."""
        return frozenset({Capability.INFLUENCE, Capability.RESAMPLE})

    def fit(self, data: Dataset, rng: np.random.Generator) -> Fit:
        table = unit_table(data, group_role=self.group_role, who=self.name)
        y = table.y
        g = table.group
        units = table.units if data.roles.time is not None else None
        cl = fit_clusters(data, table.n, self.name, units=units, regressors=2)
        est, psi = (
            difference_in_means(y, g)
            if cl.clusters is None
            else difference_in_means(y, g, welch=False)
        )

        def refit(idx: np.ndarray) -> np.ndarray:
            return np.array([difference_in_means(y[idx], g[idx])[0]])

        return Fit(
            self.estimand,
            est,
            table.n,
            influence=psi,
            resampler=Resampler(table.n, strata=g.astype(np.int64), refit=refit),
            clusters=cl.clusters,
            diagnostics={
                "n_treated": int(g.sum()),
                "n_control": int((~g).sum()),
                "n_unselected": table.n_unselected,
                **(cl.diagnostics or {}),
            },
            warnings=(
                (
                    f"{self.name}: {table.n_unselected} rows with selected=0 (outcome unobserved) "
                    "left out; the contrast is on the selected sample",
                )
                if table.n_unselected
                else ()
            )
            + cl.warnings,
        )


class Naive(_Difference):
    """As-treated difference in means by the actual treatment (biased under selection)."""

    name: ClassVar[str] = "naive"
    group_role: ClassVar[Literal["treatment", "assignment"]] = "treatment"
    required_roles: ClassVar[tuple[str, ...]] = ("outcome", "treatment")
    estimand: ClassVar[Estimand] = Estimand.ATE
    coverage_worlds: ClassVar[tuple[World, ...]] = (
        World(
            "randomised",
            (*RANDOMISED_600, "mc.target=ATE"),
            note="exposure randomised (no contamination): the difference in means is the ATE",
        ),
        World(
            "small_randomised",
            (
                "dgp.n_contaminated=0",
                "dgp.n_users=100",
                "dgp.n_exposed=50",
                "mc.target=ATE",
            ),
            note="small sample: 50 exposed and 50 holdout users, a 0/1 outcome",
        ),
        clustered_worlds(
            ("dgp.propensity.x1=0", "dgp.propensity.x2=1.0", "dgp.outcome.x2=0"),
            "60 clusters of 10; treatment driven by x2 alone, which does not affect the outcome "
            "(the difference in means is the ATE), correlated within clusters",
            bootstrap=True,
        ),
    )


class ITT(_Difference):
    """Intention-to-treat difference in means by the randomised arm."""

    name: ClassVar[str] = "itt"
    group_role: ClassVar[Literal["treatment", "assignment"]] = "assignment"
    required_roles: ClassVar[tuple[str, ...]] = ("outcome", "assignment")
    estimand: ClassVar[Estimand] = Estimand.ITT
    coverage_worlds: ClassVar[tuple[World, ...]] = (
        World(
            "contaminated_arm",
            (
                "dgp.n_users=600",
                "dgp.n_exposed=300",
                "dgp.n_contaminated=100",
                "mc.target=ITT",
            ),
            note="randomised arm with holdout contamination: the arm contrast is the ITT",
        ),
        World(
            "small_contaminated",
            (
                "dgp.n_users=120",
                "dgp.n_exposed=60",
                "dgp.n_contaminated=20",
                "mc.target=ITT",
            ),
            note="small sample: 60 users per arm, a third of the holdout contaminated",
        ),
    )
