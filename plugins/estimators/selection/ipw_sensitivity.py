r"""Omitted-variable-bias bounds for ``ipw``: AIPW's analysis through IPW's Riesz representer.

The bounds of Chernozhukov, Cinelli, Newey, Sharma & Syrgkanis (2022) need the Riesz
representer :math:`\alpha` of the effect, the effect's influence values and
:math:`\sigma^2 = E[(Y - g(D,X))^2]`. IPW has the first two (its propensity score and its
stacked-equation influence values); it estimates no outcome model, so :math:`\hat\sigma^2`
comes from per-arm least squares of the outcome on the covariates, with leave-one-out
residuals (:func:`loo_residuals`); with sampling weights, weighted least squares and the
weighted population's elements. Everything else is
:func:`~causalkit_plugins.estimators.aipw.sensitivity.report`, the implementation ``aipw`` uses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from causalkit.contracts import Clusters, DiagnosticValue, Estimand, FormulaTerm
from causalkit.errors import DataError, EstimationError
from causalkit.formulas import benchmark_groups
from causalkit_plugins.estimators.aipw.sensitivity import (
    Elements,
    Repetition,
    SensitivityParams,
    outcome_variance,
    report,
    riesz_elements,
)

__all__ = ["SIGMA2_SOURCE", "loo_residuals", "ipw_elements", "benchmark_columns", "ipw_report"]

SIGMA2_SOURCE = "linear_loo"
"""The diagnostic ``sensitivity.sigma2_source`` of ``ipw``: per-arm OLS, leave-one-out residuals."""

# 1 - h_ii below this: a row its arm's regression fits exactly, whose left-out residual is undefined
_LEVERAGE_GAP = 1e-10


def loo_residuals(
    y: np.ndarray, d: np.ndarray, X: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    r"""Leave-one-out residuals of the least squares of ``y`` on :math:`(1, X)` within each arm.

    Parameters
    ----------
    y : ndarray, shape (n,)
    d : ndarray of bool, shape (n,)
    X : ndarray, shape (n, p)
        Covariates (``p`` may be 0: the arm means).
    weights : ndarray, shape (n,), optional
        Sampling weights :math:`s_i \ge 0`: weighted least squares (the weighted population's
        linear projection), each row left out with its whole weight.

    Returns
    -------
    ndarray, shape (n,)
        :math:`e_i/(1-h_{ii})`, with :math:`e_i` the residual and :math:`h_{ii}` the leverage
        in the regression of unit :math:`i`'s arm: exactly :math:`y_i` minus the prediction of
        the regression fitted without unit :math:`i` (the PRESS residual; :math:`n`-fold
        cross-fitting without any draw). With weights :math:`h_{ii} = s_i z_i^\top(Z^\top S
        Z)^{+} z_i`, the same identity for the weighted fit (0 for a row of weight 0, whose
        residual is that of the fit on the others).

    Raises
    ------
    EstimationError
        An arm with a unit of leverage 1 (no more units than coefficients).
    """
    out = np.empty_like(y, dtype=np.float64)
    root = np.ones_like(out) if weights is None else np.sqrt(weights)
    for arm in (d, ~d):
        Z = np.column_stack([np.ones(int(arm.sum())), X[arm]])
        # rows scaled by sqrt(s): weighted least squares, hat matrix diagonal s_i z_i'(Z'SZ)^+ z_i
        Zs = root[arm, None] * Z
        pinv = np.linalg.pinv(Zs)
        gap = 1.0 - np.einsum("ij,ji->i", Zs, pinv)
        if np.any(gap < _LEVERAGE_GAP):
            raise EstimationError(
                "ipw: an arm's outcome regression fits a unit exactly (leverage 1); the "
                "sensitivity sigma2 needs more units than covariates in each arm"
            )
        out[arm] = (y[arm] - Z @ (pinv @ (root[arm] * y[arm]))) / gap
    return out


def ipw_elements(
    y: np.ndarray,
    d: np.ndarray,
    score: np.ndarray,
    X: np.ndarray,
    estimand: Estimand,
    weights: np.ndarray | None = None,
) -> Elements:
    r"""The sensitivity elements of an IPW effect.

    Parameters
    ----------
    y, d : ndarray
        Outcome, treatment (bool).
    score : ndarray
        The propensity the weights use (clipped when ``clip`` is set).
    X : ndarray
        The outcome regression's covariates: ``covariates`` and ``propensity_covariates``.
    estimand : Estimand
    weights : ndarray, optional
        Sampling weights: the weighted population's elements (``score`` from the weighted
        propensity model, weighted :func:`loo_residuals`).

    Notes
    -----
    :func:`~causalkit_plugins.estimators.aipw.sensitivity.riesz_elements` of the
    :func:`loo_residuals` and the score: :math:`\hat\alpha = \bar h(d/\hat e - (1-d)/(1-\hat e))`,
    the representer IPW's weights estimate, and
    :math:`\hat\sigma^2 = \overline{(y - \hat g_{-i}(d_i, x_i))^2}`. Any fixed regression
    function :math:`h` has :math:`E[(Y - h(D,X))^2] \ge E[(Y - g(D,X))^2]` (:math:`g` is the
    conditional mean), so a linear :math:`\hat g` that misses part of :math:`g` makes
    :math:`\hat\sigma^2`, hence the bounds, wider: conservative, never optimistic, up to
    estimation error; left-out residuals keep the fit's own overfitting from shrinking it.
    With weights every mean and expectation is the weighted population's.
    """
    resid = loo_residuals(y, d, X, weights)
    return riesz_elements(resid, d.astype(np.float64), score, estimand, weights)


def benchmark_columns(
    sens: SensitivityParams,
    covariates: tuple[str, ...],
    propensity: tuple[str, ...],
    terms: Sequence[FormulaTerm] = (),
) -> dict[str, tuple[str, ...]]:
    """Benchmark name -> the columns it leaves out; one-line errors for unknown or exhausting ones.

    A name may be a column, a formula term or a variable of ``terms``
    (:func:`~causalkit.formulas.benchmark_groups`).
    """
    known = tuple(dict.fromkeys((*covariates, *propensity)))
    field = "estimator.sensitivity.benchmark_covariates"
    out = benchmark_groups(sens.benchmark_covariates, known, terms, field)
    for name, group in out.items():
        if not [c for c in propensity if c not in group]:
            raise DataError(
                field, "at least one covariate left in the propensity model", repr(name)
            )
    return out


def ipw_report(
    theta: float,
    influence: np.ndarray,
    long: Elements,
    sens: SensitivityParams,
    y: np.ndarray,
    shorts: Mapping[str, tuple[float, Elements]],
    clusters: Clusters | None,
    weights: np.ndarray | None = None,
) -> tuple[dict[str, DiagnosticValue], dict[str, pd.DataFrame], tuple[str, ...]]:
    r""":func:`~causalkit_plugins.estimators.aipw.sensitivity.report` for ``ipw`` (``sigma2_source`` linear_loo).

    One repetition: ``ipw`` draws no fold split (its :math:`\hat\sigma^2` uses every
    leave-one-out fit), so there is nothing to repeat. ``weights``: the sampling weights
    (the benchmarks' weighted :math:`\widehat{Var}(Y)`).
    """
    return report(
        "ipw",
        (Repetition(theta, influence, long),),
        sens,
        var_y=outcome_variance(y, weights),
        shorts={name: (short,) for name, short in shorts.items()},
        sigma2_source=SIGMA2_SOURCE,
        clusters=clusters,
    )
