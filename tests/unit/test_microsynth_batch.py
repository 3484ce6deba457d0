"""Batched simplex resamples equal the one-at-a-time refits (reference: solve_simplex_dual).

Both paths solve every dual to the fit's tolerance (max-abs residual 1e-11 in standardised
units) on the same resamples, so estimates must agree to 1e-9 absolute.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from causalkit.errors import EstimationError
from causalkit_plugins.dgps.ad_holdout import AdHoldout, AdHoldoutParams
from causalkit_plugins.estimators.microsynth.dual import solve_simplex_dual
from causalkit_plugins.estimators.microsynth.dual_batch import (
    BatchDesign,
    solve_simplex_dual_batch,
)
from causalkit_plugins.estimators.microsynth.estimator import MicroSynth, MicroSynthParams
from causalkit_plugins.inference.bootstrap import (
    Bootstrap,
    BootstrapParams,
    resample_indices,
    stratum_members,
)

ATOL = 1e-9


def _controls(seed: int = 0, n: int = 3000, d: int = 5):
    rng = np.random.default_rng(seed)
    X = np.asfortranarray(rng.standard_normal((n, d)))
    target = X.mean(axis=0) + 0.15
    return rng, X, target, solve_simplex_dual(X, target)


def test_batch_solver_matches_one_at_a_time():
    rng, X, target, full = _controls()
    n, k = X.shape[0], 12
    counts = rng.multinomial(n, np.full(n, 1 / n), size=k).astype(float)
    targets = target + 0.01 * rng.standard_normal((k, X.shape[1]))
    Y = rng.standard_normal((n, 2))
    sol = solve_simplex_dual_batch(
        BatchDesign.build(X, Y), targets, counts, mu0=full.mu, hessian=full.hessian
    )
    # On 3,000 controls the chord contraction is weaker: an occasional problem is handed back.
    assert sol.converged.sum() >= k - 2 and (sol.residual[sol.converged] <= 1e-11).all()
    for i in np.flatnonzero(sol.converged):
        ref = solve_simplex_dual(
            X, targets[i], counts=counts[i], mu0=full.mu, hessian=full.hessian, check_hull=False
        )
        assert ref.converged
        np.testing.assert_allclose(sol.moments[i], (counts[i] * ref.w) @ Y, rtol=0, atol=ATOL)


def test_batch_solver_hands_back_what_it_cannot_solve():
    """A poor initial matrix (overlong steps, backtracking) or max_iter: unconverged, not wrong."""
    rng, X, target, full = _controls(1)
    n, k = X.shape[0], 8
    counts = rng.multinomial(n, np.full(n, 1 / n), size=k).astype(float)
    targets = np.repeat(target[None], k, axis=0)
    design = BatchDesign.build(X, None)
    bad = solve_simplex_dual_batch(design, targets, counts, mu0=full.mu, hessian=0.3 * full.hessian)
    assert not bad.converged.any()
    short = solve_simplex_dual_batch(
        design, targets, counts, mu0=full.mu, hessian=full.hessian, max_iter=1
    )
    assert not short.converged.any() and (short.iterations == 1).all()


def _fit(estimand: str, seed: int = 1):
    sim = AdHoldout(AdHoldoutParams(n_per_arm=600, holdout_arm_logit=0.0)).simulate(
        np.random.default_rng(seed)
    )
    return MicroSynth(MicroSynthParams(estimand=estimand)).fit(
        sim.dataset, np.random.default_rng(0)
    )


def _strata(fit) -> np.ndarray:
    assert fit.resampler is not None and fit.resampler.strata is not None
    return fit.resampler.strata


def _resamples(fit, k: int, seed: int = 2) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    members = stratum_members(_strata(fit))
    return [resample_indices(rng, _strata(fit), fit.n, members) for _ in range(k)]


def _sequential(fit, idxs: list[np.ndarray]) -> np.ndarray:
    out = np.full((len(idxs), fit.k), np.nan)
    for i, idx in enumerate(idxs):
        try:
            out[i] = fit.resampler.refit(idx)
        except EstimationError:
            continue
    return out


@pytest.mark.parametrize("estimand", ["att", "itt", "cace"])
def test_refit_batch_equals_refit(estimand):
    fit = _fit(estimand)
    idxs = _resamples(fit, 40)
    batch = fit.resampler.refit_batch(idxs)
    seq = _sequential(fit, idxs)
    assert batch.shape == seq.shape == (40, fit.k) and np.isfinite(seq).all()
    np.testing.assert_allclose(batch, seq, rtol=0, atol=ATOL)
    # A resample that is the full sample reproduces the estimates.
    np.testing.assert_allclose(
        fit.resampler.refit_batch([np.arange(fit.n)])[0], fit.estimates, rtol=0, atol=ATOL
    )


def _with_dual(fit, **changes):
    """The fit's contrast and full-sample dual, through the refit closures (test access)."""
    cells = {
        c.cell_contents.__class__.__name__: c.cell_contents
        for c in fit.resampler.refit_batch.__closure__
        if c.cell_contents is not None
    }
    contrast, sol = cells["BalancedContrast"], cells["DualSolution"]
    return dataclasses.replace(contrast, **changes), sol


def test_fallback_columns_follow_the_sequential_solver():
    """Backtracking columns (a perturbed chord matrix) and max_iter failures go one at a time."""
    fit = _fit("cace")
    contrast, sol = _with_dual(fit)
    t_rows, c_rows = np.flatnonzero(_strata(fit) == 1), np.flatnonzero(_strata(fit) == 0)
    idxs = _resamples(fit, 10, seed=5)
    post = contrast.post
    # Overlong chord steps: the sequential solver backtracks; the batch hands every column back.
    bent = dataclasses.replace(sol, hessian=0.3 * sol.hessian)
    per, gap = contrast.resampled_batch(idxs, (t_rows, c_rows), bent)
    for i, idx in enumerate(idxs):
        p_i, g_i = contrast.resampled(idx, (t_rows, c_rows), bent)
        assert per[i, post].mean() / gap[i] == pytest.approx(p_i[post].mean() / g_i, abs=ATOL)
    # Too few steps for anyone: both paths fail on every resample, and the batch says NaN.
    tight = dataclasses.replace(contrast, max_iter=1)
    per, gap = tight.resampled_batch(idxs, (t_rows, c_rows), sol)
    for idx in idxs:
        with pytest.raises(EstimationError):
            tight.resampled(idx, (t_rows, c_rows), sol)
    assert np.isnan(per).all() and np.isnan(gap).all()


def test_mixed_batch_some_fall_back():
    """max_iter between the easy and hard resamples: batch result equals the sequential one."""
    fit = _fit("att", seed=4)
    contrast, sol = _with_dual(fit)
    rows = (np.flatnonzero(_strata(fit) == 1), np.flatnonzero(_strata(fit) == 0))
    idxs = _resamples(fit, 24, seed=6)
    its = [
        solve_simplex_dual(
            contrast.Zc,
            np.bincount(i, minlength=fit.n)[rows[0]] @ contrast.Zt / rows[0].size,
            counts=np.bincount(i, minlength=fit.n)[rows[1]].astype(float),
            tol=contrast.tol,
            mu0=sol.mu,
            hessian=sol.hessian,
            check_hull=False,
        ).iterations
        for i in idxs
    ]
    cap = int(np.median(its))
    assert min(its) <= cap < max(its), its
    capped = dataclasses.replace(contrast, max_iter=cap)
    per, gap = capped.resampled_batch(idxs, rows, sol)
    est = per[:, contrast.post].mean(axis=1) / gap
    for i, idx in enumerate(idxs):
        try:
            p_i, g_i = capped.resampled(idx, rows, sol)
        except EstimationError:
            assert np.isnan(est[i])
            continue
        assert est[i] == pytest.approx(p_i[contrast.post].mean() / g_i, abs=ATOL)
    assert np.isfinite(est).any() and np.isnan(est).any()


def test_bootstrap_batched_equals_sequential_bookkeeping():
    fit = _fit("att")
    boot = Bootstrap(BootstrapParams(n_boot=70))
    fast = boot.infer(fit, np.random.default_rng(9))
    rs = fit.resampler
    slow = boot.infer(
        dataclasses.replace(fit, resampler=dataclasses.replace(rs, refit_batch=None)),
        np.random.default_rng(9),
    )
    assert fast.diagnostics == slow.diagnostics
    np.testing.assert_allclose(fast.se, slow.se, rtol=0, atol=ATOL)
    np.testing.assert_allclose(fast.ci_lower, slow.ci_lower, rtol=0, atol=ATOL)
    np.testing.assert_allclose(fast.ci_upper, slow.ci_upper, rtol=0, atol=ATOL)
    # Failures are NaN and counted the same way on both paths.
    nan_batch = dataclasses.replace(
        rs, refit_batch=lambda idxs: np.full((len(idxs), fit.k), np.nan)
    )
    failing = dataclasses.replace(fit, resampler=nan_batch)
    refused = boot.infer(failing, np.random.default_rng(9))
    assert refused.diagnostics["n_failed"] == 70 and refused.diagnostics["refused"] is True
    assert np.isnan(refused.se).all() and np.isnan(refused.ci_lower).all()
