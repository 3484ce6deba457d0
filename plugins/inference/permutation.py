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
placebo area) are skipped and counted in ``n_failed``.

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

from causalkit.contracts import Fit, InferenceOutcome, Params
from causalkit.errors import EstimationError, PluginError
from causalkit.progress import progress

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


class PermutationParams(Params):
    """Parameters of placebo-permutation inference."""

    n_perm: int = Field(250, ge=19, description="placebo draws")
    level: float = Field(0.95, gt=0, lt=1, description="level of the placebo-inversion CI")
    test: Test = Field("twosided", description="which tail gives the reported p_value")


class Permutation:
    """Placebo-permutation inference through ``fit.placebo`` (see the module docstring)."""

    name: ClassVar[str] = "permutation"
    Params: ClassVar[type[Params]] = PermutationParams

    def __init__(self, params: PermutationParams | None = None) -> None:
        self.params = params or PermutationParams()

    def infer(self, fit: Fit, rng: np.random.Generator) -> InferenceOutcome:
        if fit.placebo is None:
            raise PluginError("inference=permutation: this estimator provides no placebo hook")
        p = self.params
        draws = np.full(p.n_perm, np.nan)
        for r in progress(range(p.n_perm), p.n_perm, "permutations"):
            try:
                draws[r] = fit.placebo(rng)
            except EstimationError:
                continue
        ok = draws[np.isfinite(draws)]
        if ok.size < 2:
            raise EstimationError(
                f"permutation: only {ok.size} of {p.n_perm} placebo draws succeeded"
            )
        pv = permutation_p_values(np.array([fit.estimate]), ok[:, None])
        bare = permutation_p_values(np.array([fit.estimate]), ok[:, None], add_one=False)
        lo, hi = placebo_interval(np.array([fit.estimate]), ok[:, None], p.level)
        diag: dict[str, float | int | str] = {
            "n_perm": int(ok.size),
            "n_failed": int(p.n_perm - ok.size),
            "test": p.test,
        }
        for k in ("lower", "upper", "twosided"):
            diag[f"p_{k}"] = float(pv[k][0])
            diag[f"p_{k}_bare"] = float(bare[k][0])
        return InferenceOutcome(
            self.name,
            float(np.std(ok, ddof=1)),
            float(lo[0]),
            float(hi[0]),
            float(pv[p.test][0]),
            p.level,
            diag,
        )
