r"""Panel mode (R microsynth) and propensity mode: a synthetic area from weighted control units.

The treated area is the set of ever-treated units; the synthetic area is a non-negative
weighting of the never-treated units whose **totals** match the treated area's totals of
the intercept (so the weights sum to :math:`n_T`), every time-invariant covariate and, for
every matched outcome, every pre period of the window ``start_pre .. end_pre``. Weights come
from R's linear calibration (``weighting="calibration"``, the default, reproducing R's
numbers; :mod:`.panel_calibration`) or mlsynth's ridge QP (``"qp"``; :mod:`.panel_qp`).

**Estimates.** For outcome :math:`o` and window period :math:`t`,
:math:`\tau_{ot} = \sum_{i \in T} y_{oit} - \sum_{j \in C} w_j y_{ojt}`; over the post
window, :math:`\mathrm{Trt}_o = \sum_t \sum_{i\in T} y_{oit}` and
:math:`\mathrm{Con}_o = \sum_t \sum_j w_j y_{ojt}`. The vector of estimates is, in order,

1. ``"ATT"``: :math:`\bar\tau = T_{post}^{-1}\sum_{t\in post}\tau_{t}` of the ``outcome`` role
   (the treated area's total per post period minus the synthetic area's);
2. ``"<o>"``: the same for every other result outcome;
3. ``"<o>.log_ratio"``: :math:`\log\bigl((\mathrm{Trt}_o/n_T)/(\mathrm{Con}_o/W_C)\bigr)`,
   :math:`W_C = \sum_j w_j`, for every result outcome: R's :math:`\log(\bar y_T/\bar y_C)`
   from the regression below, which is :math:`\log(\mathrm{Trt}_o/\mathrm{Con}_o)` (R's
   ``Pct.Chng`` is :math:`e^{x} - 1`) when the weights sum to :math:`n_T`; NaN unless both
   totals are positive;
4. ``"ATT@<period>"``: :math:`\tau_t` of the ``outcome`` role for each post period (when
   there are several).

**Unit-level variance** (the default; inference ``analytic`` or ``multiplier``). The fit's
influence matrix is the calibration (GREG) linearisation of Deville & Särndal (1992) on
unit-level residuals: each unit's post-period mean regressed on its balance columns among the
controls, the control rows weighted by :math:`\sqrt{w_j(1+w_j)}`, the treated units' own
counterfactual variance transported by the weights
(:mod:`~causalkit_plugins.estimators.microsynth.panel_influence` has the derivation). With the
``cluster`` role inference sums it within clusters of units (factor :math:`G/(G-1)`), the
control rows carrying the treated clusters' transported variance; the linearisation terms
are summed within clusters and placebo areas are whole control clusters
(:mod:`~causalkit_plugins.estimators.microsynth.panel_clusters`).

**R's linearisation** (R microsynth's ``get.stats1``; inference ``linearisation``). For each
outcome R stacks the post periods of every unit into rows :math:`r = (i, t)` with weight
:math:`w_i` (1 for treated units) and fits by weighted least squares
(``survey::svyglm``, ``svydesign(ids = ~0, weights = w)``)

.. math:: y_{it} = \beta D_i + \sum_t \alpha_t 1\{t\} + e_{it},
    \qquad x_r = (D_i, 1\{t\}),\quad B = \sum_r w_r x_r x_r^\top ,

with the linearisation (sandwich) variance of a with-replacement design whose every row is
its own PSU, :math:`\widehat V = \sum_r t_r t_r^\top`,
:math:`t_r = \sqrt{N/(N-1)}\,B^{-1}x_r w_r e_r` (:math:`N` rows, zero-weight controls
included). The terms handed to inference are, per row,
:math:`n_T\,t_{r,\beta}` for the effect on totals (:math:`n_T\hat\beta = \bar\tau` when the
weights sum to :math:`n_T`, which calibration meets to its relative tolerance) and
:math:`g^\top t_r` for the log ratio, where :math:`g` is R's ``my.delta`` gradient of
:math:`\log(\bar y_T/\bar y_C)`, :math:`\bar y_C = T^{-1}\sum_t\hat\alpha_t`,
:math:`\bar y_T = \bar y_C + \hat\beta`: :math:`g_\beta = 1/(\hat\beta + \bar y_C)`,
:math:`g_{\alpha_t} = (g_\beta - 1/\bar y_C)/T`. A per-period effect :math:`\tau_t` gets the
same construction from the one-period regression :math:`y_{it} = \beta_t D_i + \alpha_t`
(its rows are the units at period :math:`t`). What is ignored (as in R): the weights are
treated as fixed, not as estimated by calibration, and rows of the same unit as independent,
while the residuals keep the unit levels that matching on pre-period outcomes removed; it is
conservative (about 3.3 times the empirical SE on ``area_panel``) and kept to reproduce R.

**Placebo.** ``fit.placebo(rng)`` draws :math:`n_T` controls without replacement as a
placebo treated area, refits the weights from the remaining controls and returns the whole
vector of estimates for it (``inference=permutation``); an infeasible placebo area raises
:class:`~causalkit.errors.EstimationError`.

**Propensity mode** balances the intercept and covariate totals only (R's
``match.out = FALSE``); the weights (minimum-norm, non-negative, exact balance) are the
deliverable, in the table ``weights``. A cross-section (no time role) is allowed.

References
----------
Robbins, M.W. & Davenport, S. (2021). microsynth: synthetic control methods for
disaggregated and micro-level data in R. *J. Stat. Softw.* 97(2).
Binder, D.A. (1983). On the variances of asymptotically normal estimators from complex
surveys. *Int. Stat. Rev.* 51.
"""

from __future__ import annotations

import dataclasses
import math
from functools import cache
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from threadpoolctl import ThreadpoolController

from causalkit.balance import balance_table, effective_sample_size
from causalkit.clusters import fit_clusters, fit_weights, weight_diagnostics
from causalkit.contracts import Clusters, Dataset, DiagnosticValue, Estimand, Fit, Linearisation
from causalkit.errors import DataError, EstimationError
from causalkit_plugins.estimators.microsynth.panel_clusters import cluster_notes, placebo_clusters
from causalkit_plugins.estimators.microsynth.panel_data import WindowArrays, window_arrays
from causalkit_plugins.estimators.microsynth.panel_influence import unit_influence
from causalkit_plugins.estimators.microsynth.panel_weights import (
    InfeasibleBalance,
    PanelDesign,
    PanelWeights,
)

if TYPE_CHECKING:
    from causalkit_plugins.estimators.microsynth.panel_estimator import MicroSynthPanelParams

__all__ = ["fit_panel", "estimate_names", "linearisation_terms"]


@cache
def _blas_controller() -> ThreadpoolController:
    """One controller per process (building it scans the loaded libraries, ~10 ms)."""
    return ThreadpoolController()


def _outcome_sets(
    data: Dataset, p: MicroSynthPanelParams
) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """The ``outcome`` role, the matched outcomes and the result outcomes (role first)."""
    primary = data.roles.outcome
    if primary is None:
        raise DataError("roles.outcome", "a column name (required by microsynth_panel)", "nothing")
    match = () if p.propensity_mode else (p.match_outcomes or (primary,))
    result = p.result_outcomes or p.match_outcomes or (primary,)
    return primary, match, (primary, *(o for o in result if o != primary))


def _design(
    arr: WindowArrays,
    match: tuple[str, ...],
    p: MicroSynthPanelParams,
    sampling: np.ndarray | None = None,
) -> tuple[PanelDesign, list[str]]:
    """Constraint columns in R's order: intercept, covariates, then each outcome from end_pre back."""
    n = arr.units.shape[0]
    hard = np.column_stack([np.ones(n), arr.X])
    names = ["Intercept", *arr.covariates]
    pre_idx = np.flatnonzero(arr.pre)[::-1]
    soft_cols, soft_names = [], []
    for o in match:
        for j in pre_idx:
            soft_cols.append(arr.outcomes[o][:, j])
            soft_names.append(f"{o}.{arr.periods[j]}")
    soft = np.column_stack(soft_cols) if soft_cols else np.empty((n, 0))
    design = PanelDesign(hard, soft, p.weighting, p.ridge, p.epsilon, p.maxit, sampling)
    return design, names + soft_names


def _label(period: object) -> str:
    return f"{period:g}" if isinstance(period, (float, np.floating)) else str(period)


def estimate_names(outcomes: tuple[str, ...], post_periods: np.ndarray) -> tuple[str, ...]:
    """Names of the estimates vector (see the module docstring); ``outcomes[0]`` is the role's."""
    periods = [f"ATT@{_label(t)}" for t in post_periods] if post_periods.size > 1 else []
    return ("ATT", *outcomes[1:], *(f"{o}.log_ratio" for o in outcomes), *periods)


def _estimates(
    arr: WindowArrays,
    outcomes: tuple[str, ...],
    area: np.ndarray,
    donors: np.ndarray,
    w: np.ndarray,
    d_area: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, tuple[float, float]]]:
    """The estimates vector for a (treated or placebo) area, and each outcome's (Trt, Con).

    ``d_area``: the area's sampling weights (its totals are weighted); ``None``: all 1.
    """
    post = arr.post
    n_area = float(area.sum()) if d_area is None else float(d_area.sum())
    effects, ratios, totals = [], [], {}
    per_period = np.empty(0)
    for o in outcomes:
        y = arr.outcomes[o]
        trt_t = y[area].sum(axis=0) if d_area is None else d_area @ y[area]
        gaps = trt_t - w @ y[donors]
        trt = float((y[area][:, post] if d_area is None else trt_t[post]).sum())
        con = float(w @ y[donors][:, post].sum(axis=1))
        effects.append(gaps[post].mean())
        # R's log(ybar_T / ybar_C): the weights normalised to sum to n_T (module docstring).
        ratios.append(math.log(trt * w.sum() / (con * n_area)) if trt > 0 and con > 0 else math.nan)
        totals[o] = (trt, con)
        if o == outcomes[0] and post.sum() > 1:
            per_period = gaps[post]
    return np.concatenate([effects, ratios, per_period]), totals


def _pooled_terms(
    y_post: np.ndarray, treated: np.ndarray, w: np.ndarray, rows_are_psus: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    r"""R's pooled regression for one outcome: terms of :math:`n_T\hat\beta` and of the log ratio.

    Parameters
    ----------
    y_post : ndarray, shape (n, T)
        Post-period outcomes of every unit.
    treated : ndarray of bool, shape (n,)
        Treated-area indicator.
    w : ndarray, shape (n,)
        Row weights: 1 for treated units, the control weight otherwise.
    rows_are_psus : bool
        Include the factor :math:`\sqrt{N/(N-1)}` of rows as PSUs; ``False`` leaves it out
        (the rows are summed within clusters later).

    Returns
    -------
    effect, log_ratio : ndarray, shape (n, T)
        :math:`n_T t_{r,\beta}` and :math:`g^\top t_r` for every row :math:`r = (i, t)`.
    """
    n, T = y_post.shape
    d = treated.astype(np.float64)
    # Closed-form normal equations of y ~ D + period dummies (no intercept), weights w.
    W, W1 = w.sum(), (w * d).sum()
    B = np.zeros((T + 1, T + 1))
    B[0, 0] = T * W1
    B[0, 1:] = B[1:, 0] = W1
    B[1:, 1:] = np.diag(np.full(T, W))
    rhs = np.concatenate([[(w * d) @ y_post.sum(axis=1)], w @ y_post])
    coef = np.linalg.solve(B, rhs)
    beta, alpha = coef[0], coef[1:]
    we = w[:, None] * (y_post - beta * d[:, None] - alpha[None, :])  # w_r e_r
    N = n * T
    Binv = np.linalg.inv(B)
    c = math.sqrt(N / (N - 1)) if rows_are_psus else 1.0
    # B^{-1} x_r = B^{-1}[:, 0] D_i + B^{-1}[:, 1 + t]
    effect = c * W1 * we * (Binv[0, 0] * d[:, None] + Binv[0, 1:][None, :])
    yc = alpha.mean()
    if not (yc > 0 and beta + yc > 0):  # no log ratio (its estimate is NaN too)
        return effect, np.full_like(effect, np.nan)
    g = np.empty(T + 1)
    g[0] = 1.0 / (beta + yc)
    g[1:] = (g[0] - 1.0 / yc) / T
    gB = g @ Binv
    log_ratio = c * we * (gB[0] * d[:, None] + gB[1:][None, :])
    return effect, log_ratio


def _period_terms(
    y_t: np.ndarray, treated: np.ndarray, w: np.ndarray, rows_are_psus: bool = True
) -> np.ndarray:
    r"""Terms of :math:`n_T\hat\beta_t` from the one-period regression :math:`y_i = \beta_t D_i + \alpha_t`.

    With weighted group means :math:`\bar y_1, \bar y_0` and totals of weights :math:`W_1, W_0`,
    :math:`t_i = \sqrt{n/(n-1)}\,n_T\,(D_i e_i/W_1 - (1-D_i) w_i e_i/W_0)`,
    :math:`e_i = y_i - \bar y_{D_i}` (without the first factor when not ``rows_are_psus``).
    """
    n = y_t.size
    W1, W0 = w[treated].sum(), w[~treated].sum()
    m1, m0 = (w[treated] @ y_t[treated]) / W1, (w[~treated] @ y_t[~treated]) / W0
    e = y_t - np.where(treated, m1, m0)
    c = math.sqrt(n / (n - 1)) if rows_are_psus else 1.0
    return c * W1 * np.where(treated, e / W1, -w * e / W0)


def linearisation_terms(
    arr: WindowArrays,
    outcomes: tuple[str, ...],
    w_controls: np.ndarray,
    clusters: Clusters | None = None,
    d_treated: np.ndarray | None = None,
) -> np.ndarray:
    r"""R's linearisation terms of every estimate, rows ``(unit, post period)`` (module docstring).

    ``d_treated``, the treated units' sampling weights, are their row weights (1 without):
    ``svydesign(weights = w)`` with the treated rows weighted as the estimate weights them.

    With ``clusters`` the rows are the clusters instead: R's ``svydesign(ids = ~cluster,
    weights = w)``, whose sandwich sums each cluster's unscaled row terms and scales by
    :math:`\sqrt{G/(G-1)}` (the with-replacement PSU variance; the row terms sum to zero, so
    the centring of the PSU totals changes nothing).

    Returns
    -------
    ndarray, shape (n * T_post, k), or (G, k) with clusters
        Columns in the order of :func:`estimate_names`.
    """
    psus = clusters is None
    post, treated = arr.post, arr.treated
    w = np.ones(treated.size)
    w[~treated] = w_controls
    if d_treated is not None:
        w[treated] = d_treated
    n, T = treated.size, int(post.sum())
    per_period = T if T > 1 else 0
    k = 2 * len(outcomes) + per_period
    terms = np.zeros((n, T, k))
    for j, o in enumerate(outcomes):
        terms[:, :, j], terms[:, :, len(outcomes) + j] = _pooled_terms(
            arr.outcomes[o][:, post], treated, w, psus
        )
    y = arr.outcomes[outcomes[0]][:, post]
    for t in range(per_period):
        terms[:, t, 2 * len(outcomes) + t] = _period_terms(y[:, t], treated, w, psus)
    if clusters is None:
        return terms.reshape(n * T, k)
    g = clusters.n_clusters
    return math.sqrt(g / (g - 1)) * clusters.sums(terms.sum(axis=1))


def _placebo_draw(
    arr: WindowArrays,
    design: PanelDesign,
    rng: np.random.Generator,
    clusters: Clusters | None = None,
) -> tuple[np.ndarray, np.ndarray, PanelWeights]:
    if clusters is not None:
        area = placebo_clusters(arr.treated, clusters, rng)
    else:
        controls = np.flatnonzero(~arr.treated)
        pick = rng.choice(controls.size, size=arr.n_treated, replace=False)
        area = np.zeros(arr.treated.size, dtype=bool)
        area[controls[pick]] = True
    donors = ~arr.treated & ~area
    try:
        pw = design.weights(area, donors)
    except InfeasibleBalance as exc:
        raise EstimationError(f"placebo area infeasible: {exc}") from None
    return area, donors, pw


def _kept(arr: WindowArrays, keep: np.ndarray) -> WindowArrays:
    """The window's arrays of the units in ``keep`` (boolean mask)."""
    return dataclasses.replace(
        arr,
        units=arr.units[keep],
        treated=arr.treated[keep],
        X=arr.X[keep],
        outcomes={o: y[keep] for o, y in arr.outcomes.items()},
    )


def fit_panel(data: Dataset, p: MicroSynthPanelParams) -> Fit:
    """Fit panel (or propensity) mode; see the module docstring.

    The solvers work on small dense systems where threaded BLAS only adds contention, so
    BLAS runs single-threaded inside the fit and inside each placebo refit.
    """
    with _blas_controller().limit(limits=1, user_api="blas"):
        return _fit_panel(data, p)


def _fit_panel(data: Dataset, p: MicroSynthPanelParams) -> Fit:
    primary, match, result = _outcome_sets(data, p)
    needed = tuple(dict.fromkeys((primary, *match, *result)))
    arr = window_arrays(
        data, needed, p.start_pre, p.end_pre, p.end_post, cross_section_ok=p.propensity_mode
    )
    given = fit_weights(data, int(arr.units.size), units=arr.units)
    sampling = given
    if given is not None and (given == 0).any():  # a unit of weight 0 is not in the population
        arr, sampling = _kept(arr, given > 0), given[given > 0]
    n_t, n_c = arr.n_treated, int((~arr.treated).sum())
    if n_t == 0:
        raise DataError("roles.weight", "a positive weight for some treated unit", "all zero")
    if n_c <= n_t:
        raise DataError(
            "roles.treatment", f"more control units than treated units ({n_t})", f"{n_c} controls"
        )
    design, names = _design(arr, match, p, sampling)
    treated, controls = arr.treated, ~arr.treated
    d_treated = None if sampling is None else sampling[treated]
    try:
        pw = design.weights(treated, controls)
    except InfeasibleBalance as exc:
        raise DataError(
            "roles.covariates",
            "treated covariate totals reachable by non-negative control weights",
            str(exc).removeprefix("microsynth: "),
        ) from None
    w = pw.w
    post = arr.post
    estimates, totals = _estimates(arr, result, treated, controls, w, d_treated)
    parts = fit_clusters(data, int(arr.units.size), "microsynth_panel", units=arr.units)
    clusters = parts.clusters

    warnings: list[str] = list(parts.warnings)
    if pw.method == "qp_fallback":
        warnings.append(
            "microsynth_panel: calibration did not reach exact balance within cal_maxit; "
            "weights are from the QP (outcomes matched by least squares)"
        )
    bad = [o for o, (trt, con) in totals.items() if not (trt > 0 and con > 0)]
    if bad:
        warnings.append(
            f"microsynth_panel: no log ratio (treated or synthetic post total not positive) for {', '.join(bad)}"
        )

    def placebo(g: np.random.Generator) -> np.ndarray:
        if sampling is not None:
            raise DataError(
                "inference=permutation",
                "no weight role (a placebo area of controls carries the controls' sampling "
                "weights, not the treated area's, so its spread is not the estimate's null "
                "spread; use inference=analytic or multiplier)",
                f"roles.weight={data.roles.weight!r}",
            )
        with _blas_controller().limit(limits=1, user_api="blas"):
            area, donors, pw_r = _placebo_draw(arr, design, g, clusters)
            return _estimates(arr, result, area, donors, pw_r.w)[0]

    diag: dict[str, DiagnosticValue] = {}
    for o, (trt, con) in totals.items():
        diag[f"{o}.trt"], diag[f"{o}.con"] = trt, con
        diag[f"{o}.pct_change"] = trt / con - 1.0 if con != 0 else math.nan
    diag.update(
        {
            "n_treated": n_t,
            "n_control": n_c,
            "n_periods_pre": int(arr.pre.sum()),
            "n_periods_post": int(post.sum()),
            "n_constraints_exact": int(
                design.hard.shape[1] + (design.soft.shape[1] if pw.method == "calibration" else 0)
            ),
            "n_constraints_soft": int(0 if pw.method == "calibration" else design.soft.shape[1]),
            "weights_method": pw.method,
            "iterations": pw.iterations,
            "converged": pw.converged,
            "max_rel_misfit": pw.max_rel_misfit,
            "feasible": True,
            "ess": effective_sample_size(w),
            "max_weight": float(w.max()),
            "sum_weights": float(w.sum()),
            "estimate_scale": "total",
            **(parts.diagnostics or {}),
            **weight_diagnostics(given),
        }
    )
    if clusters is not None:
        notes, mixed = cluster_notes(treated, clusters)
        diag.update(notes)
        warnings.extend(mixed)
    k_o = len(result)
    influence = unit_influence(
        arr,
        result,
        np.hstack([design.hard, design.soft]),
        w,
        np.isfinite(estimates[k_o : 2 * k_o]),
        clusters,
        1.0 if d_treated is None else float(d_treated @ d_treated / d_treated.sum()),
    )
    return Fit(
        Estimand.ATT,
        estimates,
        int(arr.units.size),
        names=estimate_names(result, arr.periods[post]),
        influence=influence,
        placebo=placebo,
        linearisation=Linearisation(linearisation_terms(arr, result, w, clusters, d_treated)),
        clusters=clusters,
        weights=sampling,
        diagnostics=diag,
        tables=_tables(arr, design, names, result, totals, w, d_treated),
        warnings=tuple(warnings),
    )


def _tables(
    arr: WindowArrays,
    design: PanelDesign,
    names: list[str],
    result: tuple[str, ...],
    totals: dict[str, tuple[float, float]],
    w: np.ndarray,
    d_treated: np.ndarray | None = None,
) -> dict[str, pd.DataFrame]:
    """Descriptive tables: balance (SMD), R's balance totals, gaps, per-outcome totals, weights.

    With sampling weights (``d_treated``, and ``design.sampling`` for every unit) the
    treated side is weighted: totals, means in the balance table and ``All.scaled``.
    """
    treated, controls = arr.treated, ~arr.treated
    M = np.hstack([design.hard, design.soft])
    y = arr.outcomes[result[0]]
    synthetic = w @ y[controls]
    w_all = np.ones(treated.size)
    w_all[controls] = w
    if d_treated is None or design.sampling is None:
        targets, trt_y = M[treated].sum(axis=0), y[treated].sum(axis=0)
        scaled = M.sum(axis=0) * arr.n_treated / arr.units.shape[0]
    else:
        w_all[treated] = d_treated
        targets, trt_y = d_treated @ M[treated], d_treated @ y[treated]
        scaled = design.sampling @ M * d_treated.sum() / design.sampling.sum()
    return {
        "balance": balance_table(names[1:], M[treated, 1:], M[controls, 1:], w_c=w, w_t=d_treated),
        "balance_totals": pd.DataFrame(
            {
                "Targets": targets,
                "Weighted.Control": w @ M[controls],
                "All.scaled": scaled,
            },
            index=pd.Index(names, name="variable"),
        ),
        "gaps": pd.DataFrame(
            {
                "period": arr.periods,
                "treated": trt_y,
                "synthetic": synthetic,
                "gap": trt_y - synthetic,
                "post": arr.post,
            }
        ),
        "results": pd.DataFrame(
            {
                "Trt": [totals[o][0] for o in result],
                "Con": [totals[o][1] for o in result],
                "Pct.Chng": [
                    t / c - 1.0 if c != 0 else math.nan for t, c in (totals[o] for o in result)
                ],
            },
            index=pd.Index(list(result), name="outcome"),
        ),
        "weights": pd.DataFrame({"unit": arr.units, "treated": treated, "weight": w_all}),
    }
