"""The ``microsynth`` estimator plugin (simplex mode): exact mean balance with minimum-variance weights."""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from causalkit.balance import balance_diagnostics, balance_table
from causalkit.contracts import Dataset, Estimand, Fit, Params
from causalkit.errors import DataError, EstimationError
from causalkit.panel import unit_table
from causalkit_plugins.estimators.microsynth.dual import DualSolution, solve_simplex_dual

__all__ = ["MicroSynth", "MicroSynthParams"]


class MicroSynthParams(Params):
    """Parameters of MicroSynth."""

    weight_method: Literal["simplex"] = Field("simplex", description="weighting program")
    estimand: Literal["att"] = Field("att", description="att: effect on the actually treated")
    balance_tol: float = Field(1e-8, gt=0, description="max |SMD| after weighting to call a fit feasible")
    tol: float = Field(1e-11, gt=0, description="dual residual tolerance (standardised units)")
    max_iter: int = Field(50, ge=1, description="maximum semismooth Newton steps")


class MicroSynth:
    r"""MicroSynth in simplex mode (Robbins & Davenport 2021; the MicroSynth document, Mode A).

    Control weights solve the minimum-variance balancing QP

    .. math::
        w^\ast = \arg\min_w \tfrac12\|w - n_C^{-1}\mathbf 1\|^2
        \ \text{s.t.}\ X_0^\top w = \bar x_1,\ \mathbf 1^\top w = 1,\ w\ge 0,

    solved through its (d+1)-dimensional dual with semismooth Newton steps
    (:func:`~causalkit_plugins.estimators.microsynth.dual.solve_simplex_dual`). The ATT is the
    mean over post periods of :math:`\tau_t = \bar y_{1t} - \sum_j w_j^\ast y_{jt}`.

    Covariates are standardised with their pooled mean and SD before solving; balance is
    invariant to this affine map because the weights sum to one. If the treated mean lies
    outside the convex hull of the controls the fit is flagged infeasible (``feasible=False``,
    a warning, and the bootstrap counts such replications as failed).

    References
    ----------
    Robbins, M.W. & Davenport, S. (2021). microsynth: Synthetic control methods for
    disaggregated and micro-level data in R. *J. Stat. Softw.* 97(2).
    """

    name: ClassVar[str] = "microsynth"
    Params: ClassVar[type[Params]] = MicroSynthParams
    required_roles: ClassVar[tuple[str, ...]] = ("unit", "outcome", "treatment", "covariates")
    default_inference: ClassVar[str] = "bootstrap"
    supported_inference: ClassVar[tuple[str, ...]] = ("bootstrap", "none")

    def __init__(self, params: MicroSynthParams | None = None) -> None:
        self.params = params or MicroSynthParams()

    def fit(self, data: Dataset, rng: np.random.Generator) -> Fit:
        p = self.params
        table = unit_table(data, group_role="treatment", who=self.name)
        if not table.covariates:
            raise DataError("roles.covariates", "at least one covariate to balance", "none")
        X = table.X
        sd = X.std(axis=0)
        constant = [c for c, s in zip(table.covariates, sd, strict=True) if s == 0]
        if constant:
            raise DataError("roles.covariates", "covariates that vary across units", f"constant {', '.join(constant)}")
        Z = (X - X.mean(axis=0)) / sd
        g = table.group
        y_post = table.y_post
        Zt, Zc = Z[g], Z[~g]
        sol = solve_simplex_dual(Zc, Zt.mean(axis=0), tol=p.tol, max_iter=p.max_iter)
        gaps = y_post[g].mean(axis=0) - sol.w @ y_post[~g]
        att = float(gaps.mean())

        bal = balance_table(table.covariates, X[g], X[~g], w_c=sol.w)
        diag = balance_diagnostics(bal, sol.w)
        feasible = bool(sol.converged and diag["max_abs_smd_after"] <= p.balance_tol)
        if feasible:
            msg = f"balance achieved (max |SMD| = {diag['max_abs_smd_after']:.2e} <= {p.balance_tol:.0e})"
        else:
            msg = (f"balance NOT achieved (max |SMD| = {diag['max_abs_smd_after']:.2e} > {p.balance_tol:.0e}):"
                   " the treated mean may lie outside the convex hull of the controls")
        warnings = () if feasible else (f"microsynth: {msg}",)
        gaps_table = pd.DataFrame({
            "period": table.post_periods,
            "treated": y_post[g].mean(axis=0),
            "synthetic": sol.w @ y_post[~g],
            "gap": gaps,
        })

        y_bar = y_post.mean(axis=1)
        mu_hat = sol.mu

        def refit(idx: np.ndarray) -> float:
            gi = g[idx]
            zi = Z[idx]
            s: DualSolution = solve_simplex_dual(zi[~gi], zi[gi].mean(axis=0), tol=p.tol,
                                                 max_iter=p.max_iter, mu0=mu_hat)
            if not s.converged:
                raise EstimationError("microsynth: bootstrap dual did not converge")
            yi = y_bar[idx]
            return float(yi[gi].mean() - s.w @ yi[~gi])

        return Fit(
            estimand=Estimand.ATT,
            estimate=att,
            n=table.n,
            strata=g.astype(np.int64),
            refit=refit,
            diagnostics={
                "n_treated": int(g.sum()),
                "n_control": int((~g).sum()),
                **diag,
                "feasible": feasible,
                "feasibility_message": msg,
                "iterations": sol.iterations,
                "converged": sol.converged,
            },
            tables={"balance": bal, "gaps": gaps_table},
            warnings=warnings,
        )
