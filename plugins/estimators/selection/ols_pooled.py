"""The pooled regression of ``ols`` (``model=pooled``) and its partial-R² sensitivity analysis."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import BeforeValidator, Field, ValidationError, field_validator, model_validator

from causalkit.contracts import DiagnosticValue, FormulaTerm, Params
from causalkit.errors import ConfigError, EstimationError
from causalkit.formulas import benchmark_groups
from causalkit_plugins.estimators.aipw.sensitivity import clipped_bound
from causalkit_plugins.estimators.selection import partial_r2 as pr
from causalkit_plugins.estimators.selection.least_squares import ArmFit, arm_ols, unscaled_block

__all__ = ["OLSSensitivityParams", "PooledResult", "pooled_regression", "sensitivity_analysis"]


@dataclass(frozen=True)
class PooledResult:
    """The pooled regression: the treatment's coefficient, its influence values and the fit.

    ``coef`` is ordered (intercept, treatment, covariates); ``se_classical`` is the classical
    (homoskedastic) SE, ``rss`` the (weighted) residual sum of squares, ``dof`` = n - K.
    """

    estimate: float
    influence: np.ndarray
    coef: np.ndarray
    se_classical: float
    rss: float
    dof: int
    condition: float
    fit: ArmFit

    def cov_unscaled(self, cols: list[int]) -> np.ndarray:
        r"""The block :math:`[(Z^\top WZ)^{-1}]_{GG}` for the design columns ``cols``."""
        return unscaled_block(self.fit, cols)


def pooled_regression(
    y: np.ndarray, d: np.ndarray, X: np.ndarray, weights: np.ndarray | None = None
) -> PooledResult:
    r"""One least-squares regression of the outcome on the treatment and the covariates.

    Parameters
    ----------
    y : ndarray, shape (n,)
    d : ndarray of bool, shape (n,)
    X : ndarray, shape (n, p)
        Covariates (an intercept is added).
    weights : ndarray, shape (n,), optional
        Sampling weights :math:`w_i \ge 0` (weighted least squares); ``None``: all one.

    Returns
    -------
    PooledResult

    Notes
    -----
    With :math:`z_i = (1, d_i, x_i)` (:math:`K = p + 2` regressors),
    :math:`\hat\theta = (Z^\top WZ)^{-1}Z^\top Wy` and :math:`e_i = y_i - z_i^\top\hat\theta`,
    the estimate is the treatment's coefficient :math:`\hat\tau = \hat\theta_d` and its
    influence values are

    .. math:: \psi_i = n\,w_i\,[(Z^\top WZ)^{-1}z_i]_d\,e_i,

    so :math:`n^{-2}\sum_i\psi_i^2` is the HC0 sandwich
    :math:`[(Z^\top WZ)^{-1}Z^\top W\operatorname{diag}(e^2)WZ(Z^\top WZ)^{-1}]_{dd}` and
    their cluster sums give the CR0 one. The classical SE is
    :math:`\sqrt{s^2[(Z^\top WZ)^{-1}]_{dd}}`, :math:`s^2 = \sum_iw_ie_i^2/(n-K)`. The
    coefficient is the ATE when the effect does not vary with the covariates; otherwise it
    weights the conditional effects by the conditional variance of the treatment
    (Angrist 1998), unlike the per-arm :func:`regression_adjustment`.

    References
    ----------
    White, H. (1980). A heteroskedasticity-consistent covariance matrix estimator.
    *Econometrica* 48(4). Angrist, J. (1998). Estimating the labor market impact of voluntary
    military service. *Econometrica* 66(2).
    """
    n = y.shape[0]
    Z = np.column_stack([np.ones(n), np.asarray(d, dtype=float), X])
    k = Z.shape[1]
    if n <= k:
        raise EstimationError(
            f"ols: the pooled regression has no residual degrees of freedom ({n} units, "
            f"{k} coefficients)"
        )
    sw = None if weights is None else np.sqrt(weights)
    f = arm_ols(Z, y, np.ones(n, dtype=bool), "pooled", sw)
    resid = y - Z @ f.coef
    unit = np.zeros(k)
    unit[1] = 1.0
    lever = n * f.leverage(unit)  # rows of W^{1/2}Z (Z'WZ)^{-1} e_d, times n
    if sw is not None:
        lever *= sw
    wr2 = resid**2 if weights is None else weights * resid**2
    rss = float(wr2.sum())
    inv_dd = float(unscaled_block(f, [1])[0, 0])
    se = float(np.sqrt(rss / (n - k) * inv_dd))
    return PooledResult(float(f.coef[1]), lever * resid, f.coef, se, rss, n - k, f.condition, f)


def _tuple(value: Any) -> Any:
    """A scalar (or a name) as a one-element tuple; ``None`` as empty."""
    if value is None:
        return ()
    return (value,) if isinstance(value, (str, int, float)) else value


class OLSSensitivityParams(Params):
    """Cinelli & Hazlett's partial-R² sensitivity (``estimator.sensitivity``), ``sensemakr``'s names.

    ``benchmark_covariates`` names covariates to benchmark one at a time (an entry ``"a+b"``
    benchmarks the group ``a``, ``b``); each gives one bound per ``kd`` (with ``ky``, default
    ``kd``): a confounder ``kd`` times as strongly related to the treatment and ``ky`` times
    to the outcome as the benchmark.
    """

    benchmark_covariates: tuple[str, ...] = Field(
        (), description="covariates (or a+b groups) to benchmark the confounder's strength"
    )
    kd: tuple[float, ...] = Field(
        (1.0,), description="multiples of the benchmark's strength with the treatment"
    )
    ky: tuple[float, ...] | None = Field(
        None, description="multiples of its strength with the outcome (one per kd); null: kd"
    )
    q: float = Field(
        1.0, gt=0, description="fraction of the estimate the robustness values explain away"
    )
    alpha: float = Field(
        0.05, gt=0, lt=1, description="significance level of RV_{q,alpha} and the bounds' CIs"
    )
    reduce: bool = Field(
        True, description="the confounder moves the estimate towards zero (false: away)"
    )

    @field_validator("benchmark_covariates", "kd", mode="before")
    @classmethod
    def _scalars(cls, value: Any) -> Any:
        return _tuple(value)

    @field_validator("ky", mode="before")
    @classmethod
    def _ky(cls, value: Any) -> Any:
        return None if value is None else _tuple(value)

    @model_validator(mode="after")
    def _multiples(self) -> OLSSensitivityParams:
        if not self.kd or any(k < 0 for k in (*self.kd, *(self.ky or ()))):
            raise ConfigError(
                "estimator.sensitivity.kd", "one or more non-negative multiples", list(self.kd)
            )
        if self.ky is not None and len(self.ky) != len(self.kd):
            raise ConfigError(
                "estimator.sensitivity.ky",
                f"one multiple per kd ({len(self.kd)}) or null",
                list(self.ky),
            )
        return self

    def multiples(self) -> tuple[tuple[float, float], ...]:
        """The (kd, ky) pairs."""
        return tuple(zip(self.kd, self.ky or self.kd, strict=True))

    @classmethod
    def off(cls, value: Any) -> bool:
        """Tell whether a raw ``sensitivity`` value leaves the analysis off.

        ``None``, or the YAML default: ``benchmark_covariates`` null with every other key at
        its default (Hydra sets keys only under a mapping, never under null). An empty list
        of benchmarks, or any other key changed, switches it on.
        """
        if value is None:
            return True
        if not isinstance(value, Mapping) or value.get("benchmark_covariates", ()) is not None:
            return False
        try:
            rest = cls.model_validate(
                {k: v for k, v in value.items() if k != "benchmark_covariates"}
            )
        except ValidationError:
            return False
        return rest == cls()


OptionalOLSSensitivity = Annotated[
    OLSSensitivityParams | None,
    BeforeValidator(lambda value: None if OLSSensitivityParams.off(value) else value),
]
"""The ``sensitivity`` parameter of ``ols``: the YAML default (``benchmark_covariates`` null) is
off, like ``None`` (:meth:`OLSSensitivityParams.off`)."""


def sensitivity_analysis(
    sens: OLSSensitivityParams,
    res: PooledResult,
    d: np.ndarray,
    X: np.ndarray,
    w: np.ndarray | None,
    names: tuple[str, ...],
    clustered: bool,
    terms: Sequence[FormulaTerm] = (),
) -> tuple[dict[str, DiagnosticValue], dict[str, pd.DataFrame], list[str]]:
    r"""Partial R², robustness values, benchmark bounds and the contour grid.

    From the coefficient, its classical SE and :math:`\text{dof} = n - K`
    (:mod:`~causalkit_plugins.estimators.selection.partial_r2`). A benchmark's partial R²
    with the outcome is that of its column(s) in the pooled regression, with the treatment
    that in the (weighted) regression of the treatment on the covariates
    (:func:`~causalkit_plugins.estimators.selection.partial_r2.group_partial_r2`). A benchmark
    may name a column, or a term or variable of the covariate formula's ``terms``
    (:func:`~causalkit.formulas.benchmark_groups`), e.g. ``C(village)``: all its dummies.
    """
    est, se, dof = res.estimate, res.se_classical, res.dof
    if dof < 2:
        raise EstimationError(f"ols: the sensitivity analysis needs dof >= 2, got {dof}")
    t = est / se
    diag: dict[str, DiagnosticValue] = {
        "sensitivity.partial_r2": pr.partial_r2(t, dof),
        "sensitivity.rv": pr.robustness_value(t, dof, sens.q),
        "sensitivity.rva": pr.robustness_value(t, dof, sens.q, sens.alpha),
        "sensitivity.se_classical": se,
        "sensitivity.t_classical": t,
        "sensitivity.dof": dof,
    }
    warnings: list[str] = []
    if clustered:
        warnings.append(
            "ols: the sensitivity analysis' adjusted SEs, t-values, CIs and RV_{q,alpha} use "
            "the classical OLS SE (Cinelli & Hazlett 2020), not the clustered one"
        )
    rows = _benchmark_rows(sens, res, d, X, w, names, terms, warnings)
    tables = {}
    if rows:
        tables["sensitivity.bounds"] = pr.bounds_table(rows, est, se, dof, sens.alpha, sens.reduce)
    # sensemakr's axes (0.4), stretched to show every benchmark
    lim = min(0.99, max([0.4, *(1.1 * max(r[1], r[2]) for r in rows)]))
    tables["sensitivity.contour"] = pr.contour_grid(est, se, dof, sens.alpha, sens.reduce, lim)
    return diag, tables, warnings


def _benchmark_rows(
    sens: OLSSensitivityParams,
    res: PooledResult,
    d: np.ndarray,
    X: np.ndarray,
    w: np.ndarray | None,
    names: tuple[str, ...],
    terms: Sequence[FormulaTerm],
    warnings: list[str],
) -> list[tuple[str, float, float]]:
    """(label, r2dz_x, r2yz_dx) of every benchmark and multiple, labelled as ``sensemakr``."""
    if not sens.benchmark_covariates:
        return []
    groups = benchmark_groups(sens.benchmark_covariates, names, terms)
    index = {c: j for j, c in enumerate(names)}
    sw = None if w is None else np.sqrt(w)
    Zx, dd = np.column_stack([np.ones(d.size), X]), d.astype(float)
    treat = arm_ols(Zx, dd, np.ones(d.size, dtype=bool), "treatment", sw)
    resid = dd - Zx @ treat.coef
    rss_d = float(np.sum(resid**2 if w is None else w * resid**2))
    rows = []
    for label, group in groups.items():
        cols = [index[c] for c in group]
        r2y = pr.group_partial_r2(
            res.coef[[c + 2 for c in cols]], res.cov_unscaled([c + 2 for c in cols]), res.rss
        )
        xcols = [c + 1 for c in cols]  # after the intercept
        r2d = pr.group_partial_r2(treat.coef[xcols], unscaled_block(treat, xcols), rss_d)
        kd = [m[0] for m in sens.multiples()]
        ky = [m[1] for m in sens.multiples()]
        try:
            r2dz, r2yz = pr.benchmark_bounds(r2d, r2y, kd, ky)
        except ValueError:
            raise ConfigError(
                "estimator.sensitivity.kd",
                f"multiples below {(1 - r2d) / r2d:.4g} (a confounder kd times as strong as "
                f"{label!r} would explain all of the treatment's residual variance)",
                kd,
            ) from None
        for (a, b), x, z in zip(sens.multiples(), r2dz, r2yz, strict=True):
            name = f"{b:g}x {label}" if a == b else f"{a:g}/{b:g}x {label}"
            if z >= 1.0:
                warnings.append(clipped_bound("ols", "r2yz_dx", name))
            rows.append((name, float(x), float(z)))
    return rows
