"""Simplex mode: minimum-variance weights on control units that exactly balance treated covariate means."""

from __future__ import annotations

import numpy as np
import pandas as pd
from causalkit_plugins.estimators.microsynth.dual import DualSolution, solve_simplex_dual
from causalkit_plugins.estimators.microsynth.params import MicroSynthParams

from causalkit.balance import balance_diagnostics, balance_table
from causalkit.contracts import Dataset, Estimand, Fit
from causalkit.errors import DataError, EstimationError
from causalkit.panel import unit_table

__all__ = ["fit_simplex"]


def fit_simplex(data: Dataset, p: MicroSynthParams, rng: np.random.Generator) -> Fit:
    """Fit simplex-mode MicroSynth; see :class:`~causalkit_plugins.estimators.microsynth.estimator.MicroSynth`."""
    table = unit_table(data, group_role="treatment", who="microsynth")
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
