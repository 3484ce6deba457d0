"""The simplex dual solver against an independent QP solve (cvxpy + Clarabel), resample and hull checks."""

from __future__ import annotations

import numpy as np
import pytest

from causalkit_plugins.estimators.microsynth.dual import solve_simplex_dual
from causalkit_plugins.estimators.microsynth.hull import separating_direction


def _problem(
    seed: int, n: int = 300, d: int = 4, shift: float = 0.8
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X0 = rng.standard_normal((n, d))
    target = X0.mean(axis=0) + shift * rng.standard_normal(d) / np.sqrt(d)
    return X0, target


def _cvxpy_weights(
    X0: np.ndarray, target: np.ndarray, counts: np.ndarray | None = None
) -> np.ndarray:
    cp = pytest.importorskip("cvxpy")
    n = X0.shape[0]
    c = np.ones(n) if counts is None else counts
    w = cp.Variable(n)
    m = c.sum()
    objective = cp.Minimize(0.5 * cp.sum(cp.multiply(c, cp.square(w - 1.0 / m))))
    cons = [X0.T @ cp.multiply(c, w) == target, c @ w == 1, w >= 0]
    cp.Problem(objective, cons).solve(
        solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12
    )
    return np.asarray(w.value)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dual_matches_clarabel_qp(seed):
    """Weights agree with an interior-point solve of the primal QP to 1e-6; balance to 1e-8."""
    X0, target = _problem(seed)
    sol = solve_simplex_dual(X0, target)
    w_ref = _cvxpy_weights(X0, target)
    assert sol.converged and sol.hull_feasible is None
    assert np.max(np.abs(sol.w - w_ref)) < 1e-6
    assert np.max(np.abs(X0.T @ sol.w - target)) < 1e-8
    assert abs(sol.w.sum() - 1) < 1e-12 and sol.w.min() >= 0
    assert (sol.w == 0).any(), "the test problem should have a non-trivial active set"


def test_frequency_weights_equal_materialised_resample():
    """counts=c on distinct rows gives the weights of the QP on the duplicated rows (and Clarabel's)."""
    X0, target = _problem(3, n=200)
    rng = np.random.default_rng(5)
    idx = rng.integers(0, 200, 200)
    counts = np.bincount(idx, minlength=200).astype(float)
    sol_c = solve_simplex_dual(X0, target, counts=counts)
    sol_m = solve_simplex_dual(X0[idx], target)
    assert sol_c.converged and sol_m.converged
    np.testing.assert_allclose(sol_c.w[idx], sol_m.w, atol=1e-12)
    ref = _cvxpy_weights(X0, target, counts)
    present = counts > 0
    assert np.max(np.abs(sol_c.w[present] - ref[present])) < 1e-6


def test_chord_warm_start_reaches_the_same_solution():
    X0, target = _problem(4, n=2000, d=6)
    full = solve_simplex_dual(X0, target)
    rng = np.random.default_rng(0)
    counts = np.bincount(rng.integers(0, 2000, 2000), minlength=2000).astype(float)
    cold = solve_simplex_dual(X0, target, counts=counts)
    warm = solve_simplex_dual(X0, target, counts=counts, mu0=full.mu, hessian=full.hessian)
    assert cold.converged and warm.converged
    np.testing.assert_allclose(warm.w, cold.w, atol=1e-12)


def test_outside_range_detected_before_iterating():
    X0, _ = _problem(0)
    target = np.array([10.0, 0, 0, 0])
    sol = solve_simplex_dual(X0, target)
    assert not sol.converged and sol.hull_feasible is False and sol.iterations == 0
    assert "outside" in sol.message


def test_outside_hull_inside_box_detected_by_farkas_certificate():
    """A target inside every coordinate's range but outside the hull: the LP certificate fires."""
    rng = np.random.default_rng(0)
    X0 = rng.standard_normal((20000, 2))
    X0 = X0[X0.sum(axis=1) < 1.0]  # half-plane: the hull excludes x1 + x2 > 1
    target = np.array([0.6, 0.6])  # inside the box, outside the hull
    sol = solve_simplex_dual(X0, target)
    assert not sol.converged and sol.hull_feasible is False
    assert "outside the convex hull" in sol.message
    delta = separating_direction(X0, target)
    assert delta is not None
    assert np.max(X0 @ delta[:2] + delta[2]) <= 1e-9 and target @ delta[:2] + delta[2] > 1e-7


def test_inside_hull_has_no_separating_direction():
    X0, target = _problem(1)
    assert separating_direction(X0, target) is None
