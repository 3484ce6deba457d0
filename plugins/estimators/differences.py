"""Unadjusted differences in means: as-treated (``naive``) and by randomised arm (``itt``)."""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np

from causalkit.clusters import fit_clusters, fit_weights, weight_diagnostics
from causalkit.contracts import Capability, Dataset, Estimand, Fit, Params, Resampler
from causalkit.contracts import Params as PluginParams
from causalkit.coverage import World
from causalkit.errors import EstimationError
from causalkit.evalue import e_value
from causalkit.panel import unit_table
from causalkit_plugins.dgps.contaminated_holdout import RANDOMISED_600
from causalkit_plugins.dgps.selection_on_observables import clustered_worlds, weighted_world

__all__ = ["difference_in_means", "Naive", "ITT"]


def difference_in_means(
    y: np.ndarray, group: np.ndarray, welch: bool = True, weights: np.ndarray | None = None
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
    weights : ndarray, shape (n,), optional
        Sampling weights :math:`w_i \ge 0`: weighted means and influence values (below).

    Returns
    -------
    estimate : float
        :math:`\hat\tau = \bar y_1 - \bar y_0`.
    influence : ndarray, shape (n,)
        :math:`\psi_i = \frac{G_i (y_i - \bar y_1)}{\hat p} c_1 - \frac{(1-G_i)(y_i-\bar y_0)}{1-\hat p} c_0`
        with :math:`\hat p = n_1/n` and :math:`c_g = \sqrt{n_g/(n_g-1)}`, so that
        :math:`n^{-2}\sum_i\psi_i^2 = s_1^2/n_1 + s_0^2/n_0` (Welch / Neyman variance).

    Raises
    ------
    EstimationError
        With weights, a group without a positive weight (a bootstrap counts the resample as
        failed).

    Notes
    -----
    With weights, :math:`\bar y_g = \sum_{i\in g} w_iy_i/W_g`, :math:`W_g = \sum_{i\in g}w_i`,
    and :math:`\psi_i = \pm n\,w_i(y_i - \bar y_g)\,c_i/W_g` (sign of the group), so
    :math:`n^{-2}\sum_i\psi_i^2 = \sum_g\sum_{i\in g} w_i^2(y_i-\bar y_g)^2c_i^2/W_g^2`: the
    sandwich of the weighted least squares regression of :math:`y` on :math:`(1, G)`. With
    ``welch`` :math:`c_i = (1 - h_i)^{-1/2}`, :math:`h_i = w_i/W_g` its leverage: the HC2
    covariance (statsmodels' WLS ``cov_type="HC2"``), which is the Welch variance above when
    the weights are equal; without, :math:`c_i = 1` (HC0, the WLS score).
    """
    g = group.astype(bool)
    n = y.shape[0]
    if weights is not None:
        w1, w0 = np.where(g, weights, 0.0), np.where(g, 0.0, weights)
        big1, big0 = w1.sum(), w0.sum()
        if not (big1 > 0 and big0 > 0):
            raise EstimationError(
                f"no positive weight (roles.weight) in group {0 if big0 <= 0 else 1} of the "
                "contrast: its weighted mean is undefined"
            )
        m1w, m0w = float(w1 @ y / big1), float(w0 @ y / big0)
        h = np.where(g, w1 / big1, w0 / big0) if welch else np.zeros(n)
        with np.errstate(divide="ignore", invalid="ignore"):  # h = 1: one weighted unit, NaN
            c = 1.0 / np.sqrt(1.0 - h)
            psi_w = n * np.where(g, w1 * (y - m1w) / big1, -w0 * (y - m0w) / big0) * c
        return m1w - m0w, psi_w
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

    With the ``weight`` role the group means are weighted (the contrast of the weighted
    population) and so are the influence values (see :func:`difference_in_means`): the
    analytic SE is that of the weighted least squares regression with HC2 (the Welch
    convention of the unweighted contrast, to which it reduces with equal weights), or with
    clusters the CR1 clustered one; the bootstrap resamples rows (or clusters) with their
    weights.

    Diagnostics include the E-value of the contrast with its conversion (``e_value.*``,
    :func:`~causalkit.evalue.e_value`): for a 0/1 outcome
    the risk ratio with baseline risk the (weighted) outcome mean of the group :math:`G = 0`
    (the untreated arm for ``naive``, the assigned-control arm for ``itt``); otherwise the
    VanderWeele-Ding approximation with the (weighted) pooled within-group SD.
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
        w = fit_weights(data, table.n, units=units)
        est, psi = difference_in_means(y, g, welch=cl.clusters is None, weights=w)

        def refit(idx: np.ndarray) -> np.ndarray:
            return np.array(
                [difference_in_means(y[idx], g[idx], weights=None if w is None else w[idx])[0]]
            )

        return Fit(
            self.estimand,
            est,
            table.n,
            influence=psi,
            resampler=Resampler(table.n, strata=g.astype(np.int64), refit=refit),
            clusters=cl.clusters,
            weights=w,
            diagnostics={
                "n_treated": int(g.sum()),
                "n_control": int((~g).sum()),
                "n_unselected": table.n_unselected,
                **(cl.diagnostics or {}),
                **weight_diagnostics(w),
                # baseline risk of a 0/1 outcome: the (weighted) mean of the group G = 0
                **e_value(
                    est, y, g, float(np.average(y[~g], weights=None if w is None else w[~g])), w
                ).diagnostics(),
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
    handles_roles: ClassVar[frozenset[str]] = frozenset({"cluster", "weight"})
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
        weighted_world(
            ("dgp.propensity.x1=0", "dgp.propensity.x2=1.0", "dgp.outcome.x2=0"),
            "informative sampling on the effect modifier x1 (weights 1/probability); treatment "
            "driven by x2 alone, which does not affect the outcome: the weighted difference in "
            "means is the population ATE",
        ),
    )


class ITT(_Difference):
    """Intention-to-treat difference in means by the randomised arm."""

    name: ClassVar[str] = "itt"
    group_role: ClassVar[Literal["treatment", "assignment"]] = "assignment"
    required_roles: ClassVar[tuple[str, ...]] = ("outcome", "assignment")
    handles_roles: ClassVar[frozenset[str]] = frozenset({"cluster", "weight"})
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
