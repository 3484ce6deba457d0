r"""Panel mode (R microsynth) and propensity mode: a synthetic area from weighted control units.

The treated area is the set of ever-treated units; the synthetic area is a non-negative
weighting of the never-treated units whose **totals** match the treated area's totals of
the intercept (so the weights sum to :math:`n_T`), every time-invariant covariate and, for
every matched outcome, every pre period of the window ``start_pre .. end_pre``. Weights come
from R's linear calibration (``panel_weights="calibration"``, the default, reproducing R's
numbers; :mod:`.panel_calibration`) or mlsynth's ridge QP (``"qp"``; :mod:`.panel_qp`).

For each result outcome and window period :math:`t`,
:math:`\tau_t = \sum_{i \in T} y_{it} - \sum_{j \in C} w_j y_{jt}`; over the post window
``end_pre < t <= end_post``, :math:`\mathrm{Trt} = \sum_t \sum_{i\in T} y_{it}`,
:math:`\mathrm{Con} = \sum_t \sum_j w_j y_{jt}` and
:math:`\mathrm{Pct.Chng} = \mathrm{Trt}/\mathrm{Con} - 1`, with R's linearization p-value and
log-scale CI (:mod:`.panel_inference`).

**Primary estimate.** ``Fit.estimate`` is the ATT on totals of the ``outcome`` role: the
mean post-period effect :math:`\bar\tau = (\mathrm{Trt} - \mathrm{Con})/|T_{post}|` (the
treated area's total per period minus the synthetic area's). ``Fit.model_se`` is
:math:`n_T\,\widehat{se}(\hat\beta)` from the linearization regression; since
:math:`n_T\hat\beta = \bar\tau` whenever the weights sum to :math:`n_T` (the intercept
constraint), this is the linearization SE of :math:`\bar\tau`, used by ``inference=analytic``
(two-sided normal CI on totals). The per-outcome percent changes, R's one-sided p-values and
CIs are in the diagnostics as ``<outcome>.trt``, ``.con``, ``.pct_change``, ``.p_value``,
``.ci_lower``, ``.ci_upper`` (fractions). ``fit.placebo`` draws a placebo area of
:math:`n_T` controls, refits from the remaining controls and returns its :math:`\bar\tau`
(``inference=permutation``); ``n_permutations > 0`` also gives per-period placebo p-values
and the gap band.

**Propensity mode** balances the intercept and covariate totals only (R's
``match.out = FALSE``); the weights (minimum-norm, non-negative, exact balance) are the
deliverable, in the table ``weights``. A cross-section (no time role) is allowed.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
from threadpoolctl import ThreadpoolController

from causalkit.balance import balance_table, effective_sample_size
from causalkit.contracts import Dataset, DiagnosticValue, Estimand, Fit
from causalkit.errors import DataError, EstimationError
from causalkit_plugins.estimators.microsynth.panel_data import PanelArrays, panel_arrays
from causalkit_plugins.estimators.microsynth.panel_inference import linear_test
from causalkit_plugins.estimators.microsynth.panel_weights import (
    InfeasibleBalance,
    PanelDesign,
    PanelWeights,
)
from causalkit_plugins.estimators.microsynth.params import MicroSynthParams
from causalkit_plugins.inference.permutation import permutation_p_values, placebo_interval

__all__ = ["fit_panel"]


@cache
def _blas_controller() -> ThreadpoolController:
    """One controller per process (building it scans the loaded libraries, ~10 ms)."""
    return ThreadpoolController()


def _outcome_sets(
    data: Dataset, p: MicroSynthParams
) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    primary = data.roles.outcome
    if primary is None:
        raise DataError("roles.outcome", "a column name (required by microsynth)", "nothing")
    match = () if p.propensity_mode else (p.match_outcomes or (primary,))
    result = p.result_outcomes or p.match_outcomes or (primary,)
    if primary not in result:
        result = (primary, *result)
    return primary, match, result


def _design(
    arr: PanelArrays, match: tuple[str, ...], p: MicroSynthParams
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
    design = PanelDesign(hard, soft, p.panel_weights, p.panel_ridge, p.cal_epsilon, p.cal_maxit)
    return design, names + soft_names


def _gaps(
    arr: PanelArrays, outcome: str, area: np.ndarray, donors: np.ndarray, w: np.ndarray
) -> np.ndarray:
    y = arr.outcomes[outcome]
    return y[area].sum(axis=0) - w @ y[donors]


def _placebo_draw(
    arr: PanelArrays, design: PanelDesign, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, PanelWeights]:
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


def fit_panel(data: Dataset, p: MicroSynthParams, rng: np.random.Generator) -> Fit:
    """Fit panel (or propensity) mode; see the module docstring.

    The solvers work on small dense systems where threaded BLAS only adds contention, so
    BLAS runs single-threaded inside the fit and inside each placebo refit.
    """
    with _blas_controller().limit(limits=1, user_api="blas"):
        return _fit_panel(data, p, rng)


def _fit_panel(data: Dataset, p: MicroSynthParams, rng: np.random.Generator) -> Fit:
    primary, match, result = _outcome_sets(data, p)
    needed = tuple(dict.fromkeys((primary, *match, *result)))
    arr = panel_arrays(
        data, needed, p.start_pre, p.end_pre, p.end_post, cross_section_ok=p.propensity_mode
    )
    n_t, n_c = arr.n_treated, int((~arr.treated).sum())
    if n_c <= n_t:
        raise DataError(
            "roles.treatment", f"more control units than treated units ({n_t})", f"{n_c} controls"
        )
    design, names = _design(arr, match, p)
    treated, controls = arr.treated, ~arr.treated
    try:
        pw = design.weights(treated, controls)
    except InfeasibleBalance as exc:
        raise DataError(
            "roles.covariates",
            "treated covariate totals reachable by non-negative control weights",
            str(exc).removeprefix("microsynth: "),
        ) from None
    w = pw.w
    # A cross-section (no pre period) is one "post" period.
    post = ~arr.pre if arr.pre.any() else np.ones(arr.periods.size, dtype=bool)
    t_post = int(post.sum())

    diag: dict[str, DiagnosticValue] = {}
    rows = []
    for o in result:
        gaps = _gaps(arr, o, treated, controls, w)
        trt = float(arr.outcomes[o][treated][:, post].sum())
        con = float(w @ arr.outcomes[o][controls][:, post].sum(axis=1))
        lin = linear_test(arr.outcomes[o][:, post], treated, w, p.test, p.confidence)
        pct = trt / con - 1.0 if con != 0 else float("nan")
        diag.update(
            {
                f"{o}.trt": trt,
                f"{o}.con": con,
                f"{o}.pct_change": pct,
                f"{o}.effect": float(gaps[post].mean()),
                f"{o}.p_value": lin.p_value,
                f"{o}.ci_lower": lin.ci_lower,
                f"{o}.ci_upper": lin.ci_upper,
            }
        )
        rows.append(
            {
                "outcome": o,
                "Trt": trt,
                "Con": con,
                "Pct.Chng": pct,
                "Linear.pVal": lin.p_value,
                "Linear.Lower": lin.ci_lower,
                "Linear.Upper": lin.ci_upper,
                "z": lin.z,
            }
        )
        if o == primary:
            primary_lin = lin

    gaps_primary = _gaps(arr, primary, treated, controls, w)
    estimate = float(gaps_primary[post].mean())
    gaps_table = pd.DataFrame(
        {
            "period": arr.periods,
            "treated": arr.outcomes[primary][treated].sum(axis=0),
            "synthetic": w @ arr.outcomes[primary][controls],
            "gap": gaps_primary,
            "post": post,
        }
    )
    results_table = pd.DataFrame(rows).set_index("outcome")
    warnings: list[str] = []
    if pw.method == "qp_fallback":
        warnings.append(
            "microsynth: calibration did not reach exact balance within cal_maxit; "
            "weights are from the QP (outcomes matched by least squares)"
        )

    if p.n_permutations > 0:
        _permutations(arr, design, result, primary, post, p, rng, diag, gaps_table, results_table)

    M = np.hstack([design.hard, design.soft])
    bal = balance_table(names[1:], M[treated, 1:], M[controls, 1:], w_c=w)
    totals = pd.DataFrame(
        {
            "Targets": M[treated].sum(axis=0),
            "Weighted.Control": w @ M[controls],
            "All.scaled": M.sum(axis=0) * n_t / arr.units.shape[0],
        },
        index=pd.Index(names, name="variable"),
    )
    weights_table = pd.DataFrame(
        {"unit": arr.units, "treated": treated, "weight": np.ones(arr.units.size)}
    )
    weights_table.loc[controls, "weight"] = w

    def placebo(g: np.random.Generator) -> float:
        with _blas_controller().limit(limits=1, user_api="blas"):
            area, donors, pw_r = _placebo_draw(arr, design, g)
        return float(_gaps(arr, primary, area, donors, pw_r.w)[post].mean())

    diag.update(
        {
            "n_treated": n_t,
            "n_control": n_c,
            "n_periods_pre": int(arr.pre.sum()),
            "n_periods_post": t_post,
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
        }
    )
    return Fit(
        estimand=Estimand.ATT,
        estimate=estimate,
        n=int(arr.units.size),
        model_se=float(n_t * primary_lin.se_beta),
        placebo=placebo,
        diagnostics=diag,
        tables={
            "balance": bal,
            "balance_totals": totals,
            "gaps": gaps_table,
            "results": results_table,
            "weights": weights_table,
        },
        warnings=tuple(warnings),
    )


def _permutations(
    arr: PanelArrays,
    design: PanelDesign,
    result: tuple[str, ...],
    primary: str,
    post: np.ndarray,
    p: MicroSynthParams,
    rng: np.random.Generator,
    diag: dict[str, DiagnosticValue],
    gaps_table: pd.DataFrame,
    results_table: pd.DataFrame,
) -> None:
    """Placebo draws for per-period p-values, per-outcome permutation p-values and the gap band."""
    draws: dict[str, list[np.ndarray]] = {o: [] for o in result}
    failed = 0
    for _ in range(p.n_permutations):
        try:
            area, donors, pw = _placebo_draw(arr, design, rng)
        except EstimationError:
            failed += 1
            continue
        for o in result:
            draws[o].append(_gaps(arr, o, area, donors, pw.w))
    if len(draws[primary]) < 2:
        raise EstimationError(
            f"microsynth: only {len(draws[primary])} of {p.n_permutations} placebo areas were feasible"
        )
    diag["n_permutations_ok"] = len(draws[primary])
    diag["n_permutations_failed"] = failed
    for o in result:
        d = np.asarray(draws[o])
        pv = permutation_p_values(np.array([diag[f"{o}.effect"]]), d[:, post].mean(axis=1)[:, None])
        diag[f"{o}.perm_p_value"] = float(pv[p.test][0])
        results_table.loc[o, "Perm.pVal"] = float(pv[p.test][0])
    obs_gap = gaps_table["gap"].to_numpy()
    d = np.asarray(draws[primary])
    per = permutation_p_values(obs_gap, d)
    lo, hi = placebo_interval(obs_gap, d, p.confidence)
    gaps_table["p_value"] = per[p.test]
    gaps_table["lower"] = lo
    gaps_table["upper"] = hi
