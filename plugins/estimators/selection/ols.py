"""The ``ols`` estimator: regression adjustment (one outcome regression per arm) or one pooled regression."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from causalkit.clusters import fit_clusters, fit_weights, weight_diagnostics
from causalkit.contracts import (
    Capability,
    Dataset,
    DiagnosticValue,
    Estimand,
    EstimandName,
    Fit,
    Params,
    Resampler,
)
from causalkit.contracts import Params as PluginParams
from causalkit.coverage import World
from causalkit.errors import ConfigError, DataError
from causalkit.evalue import e_value
from causalkit.inputs import separating_columns
from causalkit.panel import UnitTable, binary_column, unit_table
from causalkit_plugins.dgps.selection_on_observables import clustered_worlds, weighted_world
from causalkit_plugins.estimators.selection.estimands import (
    WHOLE_SAMPLE,
    estimand_in,
    resampling_strata,
)
from causalkit_plugins.estimators.selection.least_squares import CONDITION_WARN, arm_ols
from causalkit_plugins.estimators.selection.ols_pooled import (
    OLSSensitivityParams,
    OptionalOLSSensitivity,
    PooledResult,
    pooled_regression,
    sensitivity_analysis,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "OLS",
    "OLSParams",
    "OLSSensitivityParams",
    "PooledResult",
    "RAResult",
    "pooled_regression",
    "regression_adjustment",
]


@dataclass(frozen=True)
class RAResult:
    """Regression-adjustment estimate, its influence values and the two fitted regressions.

    ``condition`` is the larger condition number of the two regressions' column-scaled designs.
    """

    estimate: float
    influence: np.ndarray
    coef_treated: np.ndarray
    coef_control: np.ndarray
    mu1: np.ndarray
    mu0: np.ndarray
    condition: float = 1.0


def regression_adjustment(
    y: np.ndarray,
    d: np.ndarray,
    X: np.ndarray,
    estimand: Estimand = Estimand.ATE,
    weights: np.ndarray | None = None,
) -> RAResult:
    r"""Linear regression adjustment with its exact influence function.

    Parameters
    ----------
    y : ndarray, shape (n,)
    d : ndarray of bool, shape (n,)
    X : ndarray, shape (n, p)
        Covariates (an intercept is added).
    estimand : {Estimand.ATE, Estimand.ATT, Estimand.MEAN1, Estimand.MEAN0}
    weights : ndarray, shape (n,), optional
        Sampling weights :math:`w_i \ge 0` (below); ``None``: all one.

    Returns
    -------
    RAResult

    Notes
    -----
    With :math:`z_i = (1, x_i)`, :math:`\hat\beta_a` the OLS fit in arm :math:`a` and
    :math:`\hat\mu_a(z) = z^\top\hat\beta_a`, the estimates are
    :math:`\hat\tau_{ATE} = n^{-1}\sum_i \{\hat\mu_1(z_i) - \hat\mu_0(z_i)\}` and
    :math:`\hat\tau_{ATT} = n_1^{-1}\sum_{d_i=1}\{\hat\mu_1(z_i) - \hat\mu_0(z_i)\}`. They solve
    the stacked estimating equations of the two regressions and the mean contrast; with
    :math:`M_a = n^{-1}\sum_i 1[d_i=a] z_i z_i^\top`, :math:`e_i = y_i - \hat\mu_{d_i}(z_i)`, and
    :math:`\bar z` the mean of :math:`z` over all units (ATE) or the treated (ATT), the
    influence function of the contrast is

    .. math::
        \psi_i = \omega_i\{\hat\mu_1(z_i) - \hat\mu_0(z_i) - \hat\tau\}
            + \bar z^\top M_1^{-1} z_i d_i e_i - \bar z^\top M_0^{-1} z_i (1-d_i) e_i,

    with :math:`\omega_i = 1` (ATE) or :math:`d_i n/n_1` (ATT). The first term is the
    sampling of the covariates, the others the estimation error of the two regressions.
    :math:`n^{-2}\sum\psi_i^2` is the robust (sandwich) variance of the stacked system,
    which is Stata's ``teffects ra`` ``vce(robust)`` variance.

    The potential-outcome means replace the contrast by one arm's fit averaged over all
    units: :math:`\widehat{E[Y(1)]} = n^{-1}\sum_i\hat\mu_1(z_i)` (``MEAN1``) with
    :math:`\psi_i = \hat\mu_1(z_i) - \hat\theta + \bar z^\top M_1^{-1}z_id_ie_i`, and
    ``MEAN0`` likewise with :math:`\hat\mu_0` and the controls (Kang & Schafer 2007's
    regression estimator :math:`\hat\mu_{OLS}`); the other arm's regression is fitted but
    does not enter.

    With sampling weights every equation is weighted: :math:`\hat\beta_a` is the weighted
    least squares fit in arm :math:`a`, the contrast is averaged with weights
    :math:`w_i\omega_i` (:math:`\omega_i = 1` or :math:`d_i`), :math:`\bar z` is the
    :math:`w\omega`-weighted mean of :math:`z` and, with :math:`M_a = n^{-1}\sum_i 1[d_i=a]
    w_iz_iz_i^\top`,

    .. math::
        \psi_i = \frac{n\,w_i\omega_i}{\sum_j w_j\omega_j}\{\hat\mu_1(z_i) - \hat\mu_0(z_i)
            - \hat\tau\} + w_i\{\bar z^\top M_1^{-1} z_i d_i e_i
            - \bar z^\top M_0^{-1} z_i (1-d_i) e_i\},

    which is the above when every :math:`w_i = 1` and whose :math:`n^{-2}\sum\psi_i^2` is the
    (HC0) sandwich of the weighted stacked system.

    References
    ----------
    Imbens, G. & Wooldridge, J. (2009). Recent developments in the econometrics of program
    evaluation. *J. Econ. Lit.* 47(1), section 5.3. StataCorp, *Stata Treatment-Effects
    Reference Manual*, ``teffects ra``, Methods and formulas. Kang, J. & Schafer, J. (2007).
    Demystifying double robustness. *Statist. Sci.* 22(4), 523-539.
    """
    d = np.asarray(d, dtype=bool)
    n = y.shape[0]
    Z = np.column_stack([np.ones(n), X])
    sw = None if weights is None else np.sqrt(weights)
    f1 = arm_ols(Z, y, d, "treated", sw)
    f0 = arm_ols(Z, y, ~d, "control", sw)
    mu1, mu0 = Z @ f1.coef, Z @ f0.coef
    # the contrast's coefficients on the two arms' fits: mu1 - mu0, or one arm's mean
    c1, c0 = {Estimand.MEAN1: (1.0, 0.0), Estimand.MEAN0: (0.0, 1.0)}.get(estimand, (1.0, -1.0))
    contrast = c1 * mu1 + c0 * mu0
    everyone = estimand in WHOLE_SAMPLE
    if weights is not None:
        share = weights if everyone else weights * d
        weight = share * (n / share.sum())
        zbar = weight @ Z / n
    elif everyone:
        weight = np.ones(n)
        zbar = Z.mean(axis=0)
    else:
        weight = d * (n / d.sum())
        zbar = Z[d].mean(axis=0)
    tau = float(np.mean(weight * contrast))
    resid = np.where(d, y - mu1, y - mu0)
    # n * zbar' (Z_a'W_aZ_a)^{-1} z_i = zbar' M_a^{-1} z_i, needed on arm a's rows only
    lever = np.empty(n)
    lever[d] = c1 * n * f1.leverage(zbar)
    lever[~d] = c0 * n * f0.leverage(zbar)
    if sw is not None:  # the leverage rows belong to W^{1/2}Z: one more sqrt(w_i) makes w_i
        lever *= sw
    psi = weight * (contrast - tau) + lever * resid
    return RAResult(tau, psi, f1.coef, f0.coef, mu1, mu0, max(f1.condition, f0.condition))


def _e_value_per_arm(
    res: RAResult, y: np.ndarray, d: np.ndarray, w: np.ndarray | None, estimand: Estimand
) -> dict[str, DiagnosticValue]:
    r"""The ``e_value.*`` diagnostics of an effect (none for a potential-outcome mean).

    The baseline risk of a 0/1 outcome is the estimand's mean control prediction
    :math:`\hat\mu_0(x)`, weighted: over every unit (ATE) or over the treated (ATT).
    """
    if estimand in (Estimand.MEAN1, Estimand.MEAN0):
        return {}
    pop = np.ones(d.size, dtype=bool) if estimand in WHOLE_SAMPLE else d
    baseline = float(np.average(res.mu0[pop], weights=None if w is None else w[pop]))
    return e_value(res.estimate, y, d, baseline, w).diagnostics()


def _numerics_warnings(condition: float, separating: list[str], pooled: bool = False) -> list[str]:
    """Warnings for a nearly collinear design and for covariates that predict the treatment."""
    out = []
    if condition > CONDITION_WARN:
        out.append(
            f"ols: nearly collinear covariates (condition number {condition:.3g} > "
            f"{CONDITION_WARN:g}): the estimate may have lost up to {np.log10(condition):.0f} "
            "of its ~16 significant digits"
        )
    if separating:
        out.append(
            f"ols: {', '.join(map(repr, separating))} alone predicts the treatment perfectly "
            + (
                "(the arms' ranges do not overlap): the arms are compared only through the "
                "linear form of the pooled regression"
                if pooled
                else "(the arms' ranges do not overlap): each arm's regression is extrapolated "
                "to the other arm and the estimate rests on the linear form alone"
            )
        )
    return out


class OLSParams(Params):
    """Parameters of the ``ols`` estimator.

    ``model`` and ``sensitivity`` are dumped only when set (:attr:`Params.added_fields`), so
    the config hashes of earlier cells stay; ``sensitivity`` changes what is reported, never
    the estimate (:attr:`Params.seed_neutral`).
    """

    estimand: Annotated[
        EstimandName, estimand_in(Estimand.ATE, Estimand.ATT, Estimand.MEAN1, Estimand.MEAN0)
    ] = Field(
        Estimand.ATE,
        description="ATE (everyone), ATT (the treated), MEAN1 = E[Y(1)] or MEAN0 = E[Y(0)]; "
        "lower case accepted",
    )
    model: Literal["per_arm", "pooled"] = Field(
        "per_arm",
        description="per_arm: one regression per arm (regression adjustment); pooled: one "
        "regression on the treatment and the covariates, the estimate its coefficient",
    )
    sensitivity: OptionalOLSSensitivity = Field(
        None,
        description="Cinelli & Hazlett partial-R2 sensitivity of the pooled coefficient; null: off",
    )

    added_fields: ClassVar[frozenset[str]] = frozenset({"model", "sensitivity"})
    seed_neutral: ClassVar[frozenset[str]] = frozenset({"sensitivity"})

    @model_validator(mode="after")
    def _pooled_only(self) -> OLSParams:
        if self.model == "pooled" and self.estimand is not Estimand.ATE:
            raise ConfigError(
                "estimator.estimand",
                "ATE with estimator.model=pooled (one coefficient for everyone; the ATT and the "
                "potential-outcome means need model=per_arm)",
                self.estimand.value,
            )
        if self.sensitivity is not None and self.model != "pooled":
            raise ConfigError(
                "estimator.sensitivity",
                "estimator.model=pooled (the partial-R2 bounds are those of one regression's "
                "coefficient; the per-arm model has two regressions)",
                f"model={self.model}",
            )
        return self


class OLS:
    r"""Regression adjustment: one linear outcome regression per arm (``teffects ra``), or one pooled regression.

    See :func:`regression_adjustment` for the estimator and its influence function, which
    accounts for the estimation of both regressions (analytic SE = Stata's robust SE).

    With ``model="pooled"`` the estimate is the treatment's coefficient in one regression of
    the outcome on the treatment and the covariates (:func:`pooled_regression`; the ATE when
    the effect does not vary with the covariates): analytic SE HC1 (statsmodels'
    ``cov_type="HC1"``), with clusters CR1 with :math:`K = p + 2` (``cov_type="cluster"``),
    with weights weighted least squares; ``coef.<name>`` in the diagnostics. Its
    ``sensitivity`` parameter adds Cinelli & Hazlett's (2020) partial-R² analysis
    (:mod:`~causalkit_plugins.estimators.selection.partial_r2`): ``sensitivity.partial_r2``,
    ``sensitivity.rv``, ``sensitivity.rva``, the bounds table ``sensitivity.bounds`` for
    confounders ``kd``/``ky`` times as strong as each benchmark covariate, and the contour
    plot. It uses the classical SE and :math:`\text{dof} = n - K` as the paper does, whatever
    the SE reported.

    With the ``cluster`` role, clustered inference sums the influence values within clusters
    with the CR1 factor :math:`\frac{G}{G-1}\frac{N-1}{N-K}`, :math:`K = 2p` the coefficients
    of the fully interacted regression (:math:`p` per arm, intercept included) whose
    treatment coefficient, with covariates centred at their mean, is the ATE; the bootstrap
    resamples whole clusters.

    With the ``weight`` role both regressions are weighted least squares and the contrast is
    averaged with the weights (the weighted population's ATE or ATT); the influence values are
    weighted (:func:`regression_adjustment`), so the analytic SE is the HC0 sandwich of the
    weighted stacked system (CR1 with clusters) and the bootstrap refits with each resampled
    unit's weight.

    Diagnostics include the E-value of an effect (not of ``MEAN1``/``MEAN0``) with its
    conversion (``e_value.*``,
    :func:`~causalkit.evalue.e_value`; the SD of a
    continuous outcome is the pooled within-arm SD, weighted with the ``weight`` role). The
    baseline risk of a 0/1 outcome is the model's mean outcome without treatment over the
    estimand's population: per arm, the mean control prediction :math:`\hat\mu_0(x)` over
    every unit (ATE) or over the treated (ATT); pooled, the mean prediction with the treatment
    set to 0.

    When the ``selected`` role is set (an outcome observed only for selected units, as in
    the ``heckman_selection`` DGP), the analysis is restricted to the selected units, which
    estimates the effect among them and is biased for the population effect under
    selection on unobservables; the restriction is reported in a warning.
    """

    name: ClassVar[str] = "ols"
    Params: ClassVar[type[Params]] = OLSParams
    required_roles: ClassVar[tuple[str, ...]] = ("outcome", "treatment")
    handles_roles: ClassVar[frozenset[str]] = frozenset({"cluster", "weight"})
    default_inference: ClassVar[str] = "analytic"
    coverage_worlds: ClassVar[tuple[World, ...]] = (
        World(
            "linear_confounding",
            (
                "dgp=selection_on_observables",
                "dgp.n=400",
                "dgp.outcome.x1_sq=0",
            ),
            note="confounding by observed covariates, outcome linear in them per arm",
        ),
        World(
            "small_heavy_tails",
            (
                "dgp=selection_on_observables",
                "dgp.n=80",
                "dgp.outcome.x1_sq=0",
                "dgp.outcome.noise_df=3",
            ),
            note="80 units and Student-t(3) noise (no fourth moment)",
            known="the sandwich (HC0, Stata's teffects ra vce(robust)) has no small-sample "
            "correction and, with t(3) noise, a skewed distribution of infinite variance: mean "
            "SE 3-13% below the empirical SE over R = 600 (coverage 0.93-0.94)",
        ),
        clustered_worlds(
            ("dgp.outcome.x1_sq=0",),
            "60 clusters of 10 sharing covariates and noise, outcome linear per arm",
            bootstrap=False,
        ),
        weighted_world(
            ("dgp.outcome.x1_sq=0",),
            "informative sampling on the effect modifier x1 (weights 1/probability), outcome "
            "linear per arm: the weighted regression adjustment targets the population ATE",
        ),
    )

    def __init__(self, params: OLSParams | None = None) -> None:
        self.params = params or OLSParams()

    @classmethod
    def capabilities(cls, params: PluginParams) -> frozenset[Capability]:
        """The exact influence values and a refit, for either estimand.

        The refit's resamples are drawn from the whole sample for the ATE and within arms for
        the ATT (:func:`~causalkit_plugins.estimators.selection.estimands.resampling_strata`).
        """
        return frozenset({Capability.INFLUENCE, Capability.RESAMPLE})

    def fit(self, data: Dataset, rng: np.random.Generator) -> Fit:
        warnings: list[str] = []
        n_unselected = 0
        if data.roles.selected is not None:
            keep = binary_column(data.frame[data.roles.selected], "selected")
            n_unselected = int((~keep).sum())
            if n_unselected:
                data = Dataset(data.frame.loc[keep], data.roles)
                warnings.append(
                    f"ols: {n_unselected} unselected units dropped (outcome observed only when "
                    f"{data.roles.selected!r} is 1); the estimate is for the selected units"
                )
        if data.roles.time is not None:
            raise DataError(
                "roles.time", "a cross-section for ols (one row per unit)", data.roles.time
            )
        table = unit_table(data, group_role="treatment", who=self.name)
        y, d, X = table.y, table.group, table.X
        estimand = self.params.estimand
        w = fit_weights(data, table.n)
        if self.params.model == "pooled":
            return self._fit_pooled(data, table, w, n_unselected, warnings)
        res = regression_adjustment(y, d, X, estimand, w)
        cl = fit_clusters(data, table.n, self.name, regressors=2 * (X.shape[1] + 1))

        def refit(idx: np.ndarray) -> np.ndarray:
            wi = None if w is None else w[idx]
            return np.array([regression_adjustment(y[idx], d[idx], X[idx], estimand, wi).estimate])

        k = X.shape[1] + 1
        warnings += _numerics_warnings(
            res.condition, [table.covariates[j] for j in separating_columns(X, d)]
        )
        return Fit(
            estimand,
            res.estimate,
            table.n,
            influence=res.influence,
            resampler=Resampler(table.n, strata=resampling_strata(estimand, d), refit=refit),
            clusters=cl.clusters,
            weights=w,
            diagnostics={
                "n_treated": int(d.sum()),
                "n_control": int((~d).sum()),
                "n_unselected_dropped": n_unselected,
                "mean_mu1": float(np.average(res.mu1, weights=w)),
                "mean_mu0": float(np.average(res.mu0, weights=w)),
                "coefficients_per_arm": k,
                "condition_number": res.condition,
                **(cl.diagnostics or {}),
                **weight_diagnostics(w),
                **_e_value_per_arm(res, y, d, w, estimand),
            },
            warnings=(*warnings, *cl.warnings),
        )

    @staticmethod
    def figures(tables: Mapping[str, pd.DataFrame]) -> dict[str, Figure]:
        """The sensitivity contour plot when the fit carries ``sensitivity.contour`` (file name -> figure)."""
        from causalkit_plugins.estimators.selection.partial_r2_plots import sensitivity_figures

        return sensitivity_figures(tables)

    # -- the pooled regression ----------------------------------------------------------------
    def _fit_pooled(
        self,
        data: Dataset,
        table: UnitTable,
        w: np.ndarray | None,
        n_unselected: int,
        warnings: list[str],
    ) -> Fit:
        r"""One regression; HC1 influence values, or CR1 clusters with :math:`K = p + 2`.

        Unclustered, the influence values of :func:`pooled_regression` are multiplied by
        :math:`\sqrt{n/(n-K)}`, so analytic inference gives the HC1 sandwich (statsmodels'
        ``cov_type="HC1"``, Stata's ``vce(robust)``); with clusters they are left as they are
        and inference applies the CR1 factor :math:`\frac{G}{G-1}\frac{N-1}{N-K}`.
        """
        y, d, X, names = table.y, table.group, table.X, table.covariates
        if "intercept" in names:
            raise DataError(
                "roles.covariates", "no covariate named 'intercept' with model=pooled", names
            )
        res = pooled_regression(y, d, X, w)
        n, k = table.n, X.shape[1] + 2
        cl = fit_clusters(data, n, self.name, regressors=k)
        psi = res.influence if cl.clusters is not None else res.influence * np.sqrt(n / (n - k))

        def refit(idx: np.ndarray) -> np.ndarray:
            wi = None if w is None else w[idx]
            return np.array([pooled_regression(y[idx], d[idx], X[idx], wi).estimate])

        warnings += _numerics_warnings(
            res.condition, [names[j] for j in separating_columns(X, d)], pooled=True
        )
        treatment = str(data.roles.treatment)
        coefs = dict(zip(("intercept", treatment, *names), res.coef.tolist(), strict=True))
        diagnostics: dict[str, DiagnosticValue] = {
            "n_treated": int(d.sum()),
            "n_control": int((~d).sum()),
            "n_unselected_dropped": n_unselected,
            "regressors": k,
            "condition_number": res.condition,
            **{f"coef.{c}": float(b) for c, b in coefs.items()},
            **(cl.diagnostics or {}),
            **weight_diagnostics(w),
            # baseline risk of a 0/1 outcome: the mean prediction with the treatment set to 0
            **e_value(
                res.estimate, y, d, float(np.average(res.coef[0] + X @ res.coef[2:], weights=w)), w
            ).diagnostics(),
        }
        tables: dict[str, pd.DataFrame] = {}
        if self.params.sensitivity is not None:
            sd, tables, sw = sensitivity_analysis(
                self.params.sensitivity,
                res,
                d,
                X,
                w,
                names,
                cl.clusters is not None,
                data.roles.terms,
            )
            diagnostics.update(sd)
            warnings += sw
        return Fit(
            Estimand.ATE,
            res.estimate,
            n,
            influence=psi,
            resampler=Resampler(n, strata=resampling_strata(Estimand.ATE, d), refit=refit),
            clusters=cl.clusters,
            weights=w,
            diagnostics=diagnostics,
            tables=tables,
            warnings=(*warnings, *cl.warnings),
        )
