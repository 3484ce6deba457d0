r"""Placebo-permutation inference: rank the estimate among estimates under the sharp null.

The estimator's ``fit.placebo(rng)`` returns one placebo estimate (e.g. MicroSynth panel
mode: :math:`n_T` controls drawn without replacement act as a placebo treated area and the
weights are refitted from the remaining controls). With :math:`R` successful draws
:math:`\hat\tau^{(r)}` and the observed :math:`\hat\tau`, the p-values use the add-one
convention of a finite-sample randomisation test (never exactly zero; valid at level
:math:`\alpha` when the placebo draws are exchangeable with the observed assignment):

.. math::
    p_{lower} = \frac{1 + \#\{\hat\tau^{(r)} \le \hat\tau\}}{1 + R},\quad
    p_{upper} = \frac{1 + \#\{\hat\tau^{(r)} \ge \hat\tau\}}{1 + R},\quad
    p_{two} = \frac{1 + \#\{|\hat\tau^{(r)}| \ge |\hat\tau|\}}{1 + R}.

R microsynth's ``get.pval`` reports the bare fraction :math:`\#\{\cdot\}/R` instead (floor
0); both are in the diagnostics here (``p_<test>`` add-one, ``p_<test>_bare``). The SE is
the SD (ddof=1) of the placebo estimates and the CI inverts the placebo distribution around
the observed effect, :math:`[\hat\tau - q_{1-\alpha/2},\ \hat\tau - q_{\alpha/2}]`.
The reported ``p_value`` is the one of the chosen ``test`` (default two-sided).
Draws whose refit raises :class:`~causalkit.errors.EstimationError` (e.g. an infeasible
placebo area) are skipped and counted in ``n_failed``; a NaN in one estimate only (e.g. an
undefined ratio for one outcome) leaves that estimate short of a draw. With :math:`F_j` draws
missing for estimate :math:`j` out of :math:`R`, :math:`F_j/R >` ``max_failed`` (or fewer
than two draws) withholds its SE, CI and p-value (NaN) with a warning; the outcome is flagged
``refused`` when the headline is withheld (the placebo draws that can be estimated are not
exchangeable with the ones that cannot, so a rank among them is no randomisation test).

References
----------
Robbins, M.W., Saunders, J. & Kilmer, B. (2017). A framework for synthetic control methods
with high-dimensional, micro-level data. *JASA* 112(517).
Abadie, A., Diamond, A. & Hainmueller, J. (2010). Synthetic control methods for comparative
case studies. *JASA* 105(490).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from causalkit.contracts import Capability, DiagnosticValue, Fit, InferenceOutcome, Params
from causalkit.errors import EstimationError, PluginError
from causalkit.progress import progress
from causalkit_plugins.inference.common import (
    REFUSED,
    ResamplingParams,
    draws_sup_t,
    outcome,
    resampling_failures,
)

__all__ = ["Permutation", "PermutationParams", "permutation_p_values", "placebo_interval"]

Test = Literal["lower", "upper", "twosided"]


def permutation_p_values(
    observed: np.ndarray, draws: np.ndarray, add_one: bool = True
) -> dict[str, np.ndarray]:
    """Lower, upper and two-sided permutation p-values of ``observed`` against ``draws``.

    Parameters
    ----------
    observed : ndarray, shape (k,)
        Observed statistics (e.g. one per period).
    draws : ndarray, shape (R, k)
        Placebo statistics.
    add_one : bool
        Add-one form :math:`(1 + \\#)/(1 + R)` (default) or the bare fraction :math:`\\#/R`.

    Returns
    -------
    dict
        Arrays of shape (k,) under keys ``lower``, ``upper``, ``twosided``.
    """
    obs = np.atleast_1d(np.asarray(observed, dtype=float))
    d = np.asarray(draws, dtype=float).reshape(-1, obs.size)
    counts = {
        "lower": (d <= obs).sum(axis=0),
        "upper": (d >= obs).sum(axis=0),
        "twosided": (np.abs(d) >= np.abs(obs)).sum(axis=0),
    }
    r = d.shape[0]
    if add_one:
        return {k: (1.0 + c) / (1.0 + r) for k, c in counts.items()}
    return {k: c / r for k, c in counts.items()}


def placebo_interval(
    observed: np.ndarray, draws: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray]:
    """CI inverting the placebo distribution: ``[obs - q_{1-a/2}, obs - q_{a/2}]`` per column."""
    obs = np.atleast_1d(np.asarray(observed, dtype=float))
    d = np.asarray(draws, dtype=float).reshape(-1, obs.size)
    alpha = 1.0 - level
    lo_q, hi_q = np.quantile(d, [alpha / 2, 1 - alpha / 2], axis=0)
    return obs - hi_q, obs - lo_q


class PermutationParams(ResamplingParams):
    """Parameters of placebo-permutation inference."""

    n_perm: int = Field(250, ge=19, description="placebo draws")
    test: Test = Field("twosided", description="which tail gives the reported p_value")


class Permutation:
    r"""Placebo-permutation inference through ``fit.placebo`` (see the module docstring).

    Works on the whole vector of estimates: each placebo draw gives k placebo estimates. With
    ``joint`` (k > 1) the p-values are Holm-adjusted and the band uses one critical value, the
    ``level`` quantile of :math:`\max_j |\hat\tau^{(r)}_j|/s_j` with :math:`s_j` the placebo SDs.
    """

    name: ClassVar[str] = "permutation"
    Params: ClassVar[type[Params]] = PermutationParams
    requires_any: ClassVar[frozenset[Capability]] = frozenset({Capability.PLACEBO})

    def __init__(self, params: PermutationParams | None = None) -> None:
        self.params = params or PermutationParams()

    def infer(self, fit: Fit, rng: np.random.Generator) -> InferenceOutcome:
        if fit.placebo is None:
            raise PluginError("inference=permutation: this estimator provides no placebo hook")
        p = self.params
        draws = np.full((p.n_perm, fit.k), np.nan)
        for r in progress(range(p.n_perm), p.n_perm, "permutations"):
            try:
                draws[r] = fit.placebo(rng)
            except EstimationError:
                continue
        # A draw that raised is a failure; a NaN in one column only (e.g. an undefined ratio
        # for one outcome) leaves that column short of a draw, not the others.
        failed = np.isnan(draws).all(axis=1)
        n_failed = int(failed.sum())
        draws = draws[~failed]
        per_column = np.isfinite(draws).sum(axis=0)
        diag: dict[str, DiagnosticValue] = {
            "n_perm": int(draws.shape[0]),
            "n_failed": n_failed,
            "test": p.test,
        }
        if int(per_column.min()) < draws.shape[0]:
            diag["n_perm_min"] = int(per_column.min())
        policy = [
            resampling_failures(
                self.name, p.n_perm - int(c), p.n_perm, p.max_failed, "placebo draws"
            )
            for c in per_column
        ]
        keep = np.array([not refused for refused, _ in policy])
        est = fit.estimates
        nan = np.full(fit.k, np.nan)
        pv = {key: nan.copy() for key in ("lower", "upper", "twosided")}
        bare = {key: nan.copy() for key in pv}
        sd, lo, hi = nan.copy(), nan.copy(), nan.copy()
        for j in np.flatnonzero(keep):
            col = draws[np.isfinite(draws[:, j]), j][:, None]
            for out, add_one in ((pv, True), (bare, False)):
                for key, value in permutation_p_values(est[j : j + 1], col, add_one).items():
                    out[key][j] = value[0]
            sd[j] = np.std(col, ddof=1)
            (lo[j],), (hi[j],) = placebo_interval(est[j : j + 1], col, p.level)
        if p.joint and fit.k > 1 and keep.any():
            kept = draws[:, keep]
            complete = kept[np.isfinite(kept).all(axis=1)]
            crit = draws_sup_t(complete, np.zeros(int(keep.sum())), sd[keep], p.level)
            diag["critical_value"] = crit
            lo, hi = est - crit * sd, est + crit * sd
        if fit.k == 1:
            for key in ("lower", "upper", "twosided"):
                diag[f"p_{key}"] = float(pv[key][0])
                diag[f"p_{key}_bare"] = float(bare[key][0])
        if not keep[0]:
            diag[REFUSED] = True
        # One warning when every estimate lost the same draws, else one per estimate that did.
        messages = [ws[0] if ws else None for _, ws in policy]
        warnings: tuple[str, ...] = ()
        if len(set(messages)) == 1 and messages[0] is not None:
            warnings = (messages[0],)
        elif any(messages):
            warnings = tuple(f"{fit.names[j]}: {m}" for j, m in enumerate(messages) if m)
        return outcome(self.name, p, sd, lo, hi, pv[p.test], diag, warnings)
