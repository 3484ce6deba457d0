"""MicroSynth simplex balance to 1e-8 and agreement with an independent cvxpy/Clarabel solve."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

from causalkit_plugins.estimators.microsynth.dual import solve_simplex_dual
from causalkit_plugins.estimators.microsynth.estimator import MicroSynth


def test_balance_to_1e8_on_the_study(holdout_panel):
    fit = MicroSynth().fit(holdout_panel.dataset, np.random.default_rng(0))
    assert fit.diagnostics["max_abs_smd_after"] <= 1e-8
    assert fit.diagnostics["converged"] and fit.diagnostics["feasible"]
    assert fit.diagnostics["iterations"] <= 10


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weights_equal_an_independent_clarabel_solve(seed):
    rng = np.random.default_rng(seed)
    n, d = 300, 4
    X0 = rng.standard_normal((n, d)) + rng.uniform(-0.5, 0.5, d)
    target = X0[rng.choice(n, 40)].mean(axis=0) * 0.6 + 0.3
    ours = solve_simplex_dual(X0, target)
    w = cp.Variable(n)
    prob = cp.Problem(
        cp.Minimize(0.5 * cp.sum_squares(w - 1 / n)), [X0.T @ w == target, cp.sum(w) == 1, w >= 0]
    )
    prob.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    assert prob.status == "optimal" and ours.converged
    # tolerance: Clarabel's interior-point accuracy (~1e-9 on weights of size 1/n)
    np.testing.assert_allclose(ours.w, np.maximum(w.value, 0), atol=1e-8)
    assert np.max(np.abs(X0.T @ ours.w - target)) < 1e-12


def test_infeasible_target_is_flagged_not_returned_as_balanced():
    rng = np.random.default_rng(3)
    X0 = rng.standard_normal((200, 3))
    sol = solve_simplex_dual(X0, np.array([8.0, 0.0, 0.0]))
    assert not sol.converged and sol.residual > 1.0
