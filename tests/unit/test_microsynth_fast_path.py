"""Simplex MicroSynth's small-data fast path against a straightforward recomputation.

The fit (pooled standardisation, semismooth-Newton dual, one-pass balance moments, tables
assembled from arrays) is checked on the contaminated-holdout DGP against an independent
computation written here: per-unit arrays by a pandas pivot of the long frame, the
minimum-variance simplex QP solved exactly on its active set (and certified optimal by the
KKT conditions), the estimate as treated mean minus weighted control mean (divided by the
balanced compliance gap for CACE) and the balance table from
:func:`causalkit.balance.balance_table`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import linalg

from causalkit.balance import balance_diagnostics, balance_table, effective_sample_size
from causalkit.contracts import Dataset
from causalkit.errors import DataError
from causalkit_plugins.dgps.contaminated_holdout import (
    ContaminatedHoldout,
    ContaminatedHoldoutParams,
)
from causalkit_plugins.estimators.microsynth.dual import _inverse, _syrk
from causalkit_plugins.estimators.microsynth.estimator import MicroSynth, MicroSynthParams
from causalkit_plugins.estimators.microsynth.simplex import _column_frame

RTOL = 1e-12  # the fit's dual residual is ~1e-13: weights agree with the exact QP to rounding
ROUNDING = 1e-10  # absolute, for quantities that are rounding noise (SMD after, residual)


def _units(data: Dataset, group: str) -> dict[str, np.ndarray]:
    """Per-unit covariates, group, exposure and outcome by period, by a plain pivot."""
    r, f = data.roles, data.frame
    by = f.groupby(r.unit, sort=False)
    first = by.first()
    y = f.pivot(index=r.unit, columns=r.time, values=r.outcome).loc[first.index]
    return {
        "X": first[list(r.covariates)].to_numpy(float),
        "g": by[group].max().to_numpy() > 0,
        "D": by[r.treatment].max().to_numpy(float),
        "Y": y.to_numpy(float),
        "periods": y.columns.to_numpy(),
    }


def _exact_weights(Zc: np.ndarray, target: np.ndarray) -> np.ndarray:
    r""":math:`\arg\min \|w - 1/n\|^2` s.t. :math:`Z_c^\top w = \bar z_1, 1^\top w = 1, w \ge 0`.

    Equality-constrained least squares on a shrinking support (drop rows with negative
    weight), then the KKT conditions are asserted, which proves the answer optimal.
    """
    n = Zc.shape[0]
    A = np.column_stack([Zc, np.ones(n)])
    b = np.append(target, 1.0)
    support = np.ones(n, dtype=bool)
    for _ in range(100):
        As = A[support]
        mu = np.linalg.solve(As.T @ As, b - As.sum(axis=0) / n)
        score = 1.0 / n + A @ mu
        w = np.where(support, score, 0.0)
        if (w >= 0).all():
            break
        support &= score > 0
    assert (w >= 0).all() and (score[~support] <= 1e-12).all()  # KKT: optimal
    return w


def _reference(data: Dataset, estimand: str) -> dict[str, object]:
    r = data.roles
    u = _units(data, r.treatment if estimand == "att" else r.assignment)
    X, g, Y = u["X"], u["g"], u["Y"]
    m, sd = X.mean(axis=0), X.std(axis=0)
    Z = (X - m) / sd
    w = _exact_weights(Z[~g], Z[g].mean(axis=0))
    per = Y[g].mean(axis=0) - w @ Y[~g]
    gap = 1.0 if estimand != "cace" else u["D"][g].mean() - w @ u["D"][~g]
    post = np.arange(Y.shape[1]) >= 1
    bal = balance_table(list(data.roles.covariates), X[g], X[~g], w_c=w)
    gaps = pd.DataFrame(
        {
            "period": u["periods"],
            "post": post,
            "treated": Y[g].mean(axis=0),
            "synthetic": w @ Y[~g],
            "gap": per / gap,
        }
    )
    return {
        "estimate": per[post].mean() / gap,
        "itt": per[post].mean(),
        "gap": gap,
        "w": w,
        "g": g,
        "balance": bal,
        "gaps": gaps,
        "sd": sd,
        "residual": np.abs(w @ Z[~g] - Z[g].mean(axis=0)).max(),
    }


CASES = [(seed, "att") for seed in range(50)] + [(s, e) for s in range(10) for e in ("itt", "cace")]


@pytest.mark.parametrize(("seed", "estimand"), CASES)
def test_fit_equals_straightforward_computation(seed: int, estimand: str) -> None:
    data = ContaminatedHoldout().simulate(np.random.default_rng(seed)).dataset
    fit = MicroSynth(MicroSynthParams(estimand=estimand)).fit(data, np.random.default_rng(seed))
    ref = _reference(data, estimand)
    w, g, d = ref["w"], ref["g"], fit.diagnostics

    # a contrast is a difference of means: 1e-12 relative to the outcome's level
    level = RTOL * np.abs(ref["gaps"]["treated"]).max() / abs(ref["gap"])
    assert fit.estimate == pytest.approx(ref["estimate"], rel=RTOL, abs=level)
    assert fit.n == g.size and (fit.resampler.strata == g).all()
    assert (d["n_treated"], d["n_control"]) == (int(g.sum()), int((~g).sum()))
    assert (d["n_periods_post"], d["n_balance_columns"]) == (1, len(data.roles.covariates))
    assert d["feasible"] and d["converged"] and d["hull_feasible"] and d["iterations"] >= 1
    assert d["feasibility_message"].startswith("balance achieved (max |SMD| = ")
    assert d["dual_residual"] <= 1e-11 and abs(d["dual_residual"] - ref["residual"]) < ROUNDING
    assert d["ess"] == pytest.approx(effective_sample_size(w), rel=RTOL)
    assert d["max_weight"] == pytest.approx(w.max() / w.sum(), rel=RTOL)
    assert d["max_abs_smd_before"] == pytest.approx(
        np.abs(ref["balance"]["smd_before"]).max(), rel=RTOL
    )
    assert d["max_abs_smd_after"] < ROUNDING
    if estimand == "cace":
        assert d["compliance_gap"] == pytest.approx(ref["gap"], rel=RTOL, abs=RTOL)
        assert d["itt"] == pytest.approx(ref["itt"], rel=RTOL, abs=level * abs(ref["gap"]))
    assert not fit.warnings

    bal = fit.tables["balance"]
    exact = [
        "mean_treated_before",
        "mean_treated_after",
        "mean_control_before",
        "smd_before",
        "var_ratio_before",
    ]
    # standardised-scale moments: zero differences come out as ~1e-18 rather than 0
    pd.testing.assert_frame_equal(bal[exact], ref["balance"][exact], rtol=RTOL, atol=RTOL)
    # weighted control means match the treated means up to the dual's tolerance (1e-11 in
    # standardised units): absolute agreement for means near zero
    atol = 1e-11 * ref["sd"].max()
    weighted = ["mean_control_after", "var_ratio_after"]
    pd.testing.assert_frame_equal(bal[weighted], ref["balance"][weighted], rtol=RTOL, atol=atol)
    assert np.abs(bal["smd_after"]).max() < ROUNDING
    pd.testing.assert_frame_equal(fit.tables["gaps"], ref["gaps"], rtol=RTOL, atol=level)
    # the framework's diagnostics of the fit's own table agree with the fast path
    assert balance_diagnostics(bal, w) == pytest.approx(
        {k: d[k] for k in ("max_abs_smd_before", "ess", "max_weight")}
        | {"max_abs_smd_after": np.abs(bal["smd_after"]).max()},
        rel=RTOL,
    )


def test_refit_and_placebo_hooks_match_a_fresh_fit_on_the_resample() -> None:
    data = ContaminatedHoldout().simulate(np.random.default_rng(7)).dataset
    fit = MicroSynth(MicroSynthParams()).fit(data, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    rs = fit.resampler
    t, c = np.flatnonzero(rs.strata == 1), np.flatnonzero(rs.strata == 0)
    idx = np.concatenate([rng.choice(t, t.size), rng.choice(c, c.size)])
    u = _units(data, "saw_ad")
    Z = (u["X"] - u["X"].mean(axis=0)) / u["X"].std(axis=0)  # the fit's scaling, kept
    Zt, Zc, Yt, Yc = (
        Z[idx[: t.size]],
        Z[idx[t.size :]],
        u["Y"][idx[: t.size]],
        u["Y"][idx[t.size :]],
    )
    w = _exact_weights(Zc, Zt.mean(axis=0))
    expected = Yt[:, 1].mean() - w @ Yc[:, 1]
    assert rs.refit(idx) == pytest.approx([expected], rel=1e-10)
    assert rs.refit_batch([idx, idx])[1] == pytest.approx([expected], rel=1e-10)
    # 500 controls cannot supply placebo groups of the 1,500 treated: refused, not shrunk
    with pytest.raises(DataError, match="at least 2 x n_T = 3000 control units"):
        fit.placebo(np.random.default_rng(2))
    few = ContaminatedHoldout(ContaminatedHoldoutParams(n_exposed=400, n_contaminated=0))
    fit = MicroSynth(MicroSynthParams()).fit(few.simulate(np.random.default_rng(7)).dataset, rng)
    assert np.isfinite(fit.placebo(np.random.default_rng(2))).all()


def test_infeasible_target_inside_every_range_is_found_by_the_hull_check() -> None:
    """Treated mean outside the controls' hull but inside each coordinate's range (LP path)."""
    rng = np.random.default_rng(0)
    n = 300
    x = rng.standard_normal(n)
    d = rng.random(n) < 0.3
    x2 = np.where(d, rng.standard_normal(n), -x)  # controls on the line x2 = -x
    x1 = np.where(d, x + 1.5, x)
    y = x + rng.standard_normal((2, n))
    frame = pd.DataFrame(
        {
            "unit": np.repeat(np.arange(n), 2),
            "time": np.tile([0, 1], n),
            "x1": np.repeat(x1, 2),
            "x2": np.repeat(x2, 2),
            "treat": (d[:, None] & (np.arange(2) == 1)).astype(int).ravel(),
            "y": y.T.ravel(),
        }
    )
    from causalkit.contracts import Roles

    data = Dataset(
        frame,
        Roles(unit="unit", time="time", treatment="treat", outcome="y", covariates=("x1", "x2")),
    )
    fit = MicroSynth(MicroSynthParams()).fit(data, np.random.default_rng(0))
    diag = fit.diagnostics
    assert not diag["feasible"] and not diag["hull_feasible"] and not diag["converged"]
    assert "outside the convex hull" in str(diag["feasibility_message"])
    assert "separating hyperplane" in str(diag["feasibility_message"])
    assert fit.warnings and "NOT achieved" in fit.warnings[0]


def test_column_frame_equals_the_public_constructor() -> None:
    cols = {
        "period": np.array([3, 4, 5]),
        "post": np.array([False, True, True]),
        "treated": np.array([0.1, 0.2, np.nan]),
        "lower": np.array([-1.0, 0.0, 1.0]),
    }
    ours = _column_frame(cols, pd.RangeIndex(3))
    pd.testing.assert_frame_equal(ours, pd.DataFrame(cols), check_exact=True)
    ours.columns.name = "renamed"  # labels are per frame, not shared through the cache
    assert _column_frame(cols, pd.RangeIndex(3)).columns.name is None


@pytest.mark.parametrize(
    "values",
    [[0.5, -2.0, 1.0], [np.nan, -3.0, 1.0], [np.nan, np.nan], [], [np.inf, 1.0], [-np.inf]],
)
def test_balance_diagnostics_keep_pandas_max_semantics(values: list[float]) -> None:
    """NaN skipped as by ``Series.max`` (the previous implementation), 0 for no rows."""
    smd = pd.Series(values, dtype=float)
    table = pd.DataFrame({"smd_before": smd, "smd_after": smd[::-1].to_numpy()})
    w = np.array([0.2, 0.3, 0.5])
    old = float(np.max(np.abs(smd))) if len(table) else 0.0
    out = balance_diagnostics(table, w)
    np.testing.assert_equal([out["max_abs_smd_before"], out["max_abs_smd_after"]], [old, old])
    assert out["ess"] == w.sum() ** 2 / np.sum(w**2) and out["max_weight"] == 0.5


def test_newton_matrix_helpers_equal_scipy() -> None:
    rng = np.random.default_rng(0)
    M = np.asfortranarray(rng.standard_normal((40, 4)))
    G = _syrk(M)
    np.testing.assert_array_equal(G, G.T)
    np.testing.assert_allclose(G, M.T @ M, rtol=1e-13, atol=1e-12)
    np.testing.assert_array_equal(_syrk(np.ascontiguousarray(M)), G)
    p = G.shape[0]
    Gr = G + np.diag(np.full(p, 1e-12 * (1.0 + np.trace(G) / p)))
    np.testing.assert_array_equal(
        _inverse(G), linalg.cho_solve(linalg.cho_factor(Gr, check_finite=False), np.eye(p))
    )
    indefinite = np.outer([1.0, -1.0, 2.0], [1.0, -1.0, 2.0]) - np.eye(3)
    regularised = indefinite + np.eye(3) * 1e-12 * (1.0 + np.trace(indefinite) / 3)
    np.testing.assert_array_equal(_inverse(indefinite), np.linalg.pinv(regularised))
    nan = np.full((2, 2), np.nan)
    with pytest.raises(np.linalg.LinAlgError):  # as scipy's checks sent NaN to pinv before
        _inverse(nan)
    assert _inverse(np.eye(2))[0, 0] == pytest.approx(1.0) and _inverse(np.eye(2)).flags.writeable


def _near_boundary(seed: int) -> Dataset:
    """Contaminated holdout with 740 of the 800 holdouts contaminated: 60 controls for 5 covariates."""
    world = ContaminatedHoldout(ContaminatedHoldoutParams(n_contaminated=740, lift=0.0))
    return world.simulate(np.random.default_rng([9, seed])).dataset


def _inside_hull(data: Dataset, idx: np.ndarray | None = None) -> bool:
    """Is the treated covariate mean (of the units ``idx``, with repeats) in the controls' hull? (HiGHS LP)."""
    from scipy.optimize import linprog

    f = data.frame
    f = f[f.week == 1]
    X = f[list(data.roles.covariates)].to_numpy(float)
    g = f[data.roles.treatment].to_numpy() == 1
    idx = np.arange(g.size) if idx is None else idx
    Xt, Xc = X[idx[g[idx]]], X[idx[~g[idx]]]
    lp = linprog(
        np.zeros(len(Xc)),
        A_eq=np.vstack([Xc.T, np.ones(len(Xc))]),
        b_eq=np.append(Xt.mean(axis=0), 1.0),
        bounds=(0, None),
        method="highs",
    )
    return lp.status == 0


@pytest.mark.parametrize("backend", ["memory", "columnar"])
@pytest.mark.parametrize("seed", [72, 137])
def test_fit_inside_the_hull_near_its_boundary_reaches_balance(seed, backend) -> None:
    """The stall test used to give up two Newton steps early and flag these fits infeasible."""
    data = _near_boundary(seed)
    assert _inside_hull(data)
    fit = MicroSynth(MicroSynthParams(backend=backend)).fit(data, np.random.default_rng(0))
    d = fit.diagnostics
    assert d["feasible"] and d["converged"] and not fit.warnings
    assert d["max_abs_smd_after"] <= 1e-8


def test_near_boundary_fits_are_balanced_or_flagged_and_warned() -> None:
    """Never a plain estimate without balance: feasible fits are inside the hull and balanced;
    every other fit carries ``feasible=False`` and a warning."""
    flagged = 0
    for seed in range(40):
        data = _near_boundary(seed)
        fit = MicroSynth(MicroSynthParams()).fit(data, np.random.default_rng(0))
        d = fit.diagnostics
        if d["feasible"]:
            assert d["converged"] and d["max_abs_smd_after"] <= 1e-8 and not fit.warnings
            assert _inside_hull(data)
        else:
            flagged += 1
            assert fit.warnings and "balance NOT achieved" in fit.warnings[0]
            assert not _inside_hull(data)  # inside the hull, the solver now reaches balance
    assert 0 < flagged < 40


def test_resample_near_the_boundary_inside_the_hull_is_refitted() -> None:
    """A resample whose warm-started dual stalled (inside the hull) is solved from a cold start."""
    data = _near_boundary(1)
    fit = MicroSynth(MicroSynthParams()).fit(data, np.random.default_rng(0))
    rs = fit.resampler
    t, c = np.flatnonzero(rs.strata == 1), np.flatnonzero(rs.strata == 0)
    rng = np.random.default_rng(1)
    idxs = [np.concatenate([rng.choice(t, t.size), rng.choice(c, c.size)]) for _ in range(8)]
    idx = idxs[7]
    assert _inside_hull(data, idx)
    u = _units(data, "saw_ad")
    Z = (u["X"] - u["X"].mean(axis=0)) / u["X"].std(axis=0)
    Zt, Zc, Yt, Yc = (
        Z[idx[: t.size]],
        Z[idx[t.size :]],
        u["Y"][idx[: t.size]],
        u["Y"][idx[t.size :]],
    )
    expected = Yt[:, 1].mean() - _exact_weights(Zc, Zt.mean(axis=0)) @ Yc[:, 1]
    assert rs.refit(idx) == pytest.approx([expected], rel=1e-8)
    assert rs.refit_batch(idxs)[7] == pytest.approx([expected], rel=1e-8)
