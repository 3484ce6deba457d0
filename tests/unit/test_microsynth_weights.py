"""Sampling weights (the ``weight`` role) in simplex ``microsynth`` (issue 18, part 2).

The weighted estimator is defined as the unweighted one on the frequency-expanded data (unit
:math:`i` repeated :math:`d_i` times), so the references are:

(a) integer weights equal the unweighted fit on the row-expanded panel, estimates, per-period
    effects and the gaps table to 1e-9 (the dual solver stops at a balance residual of 1e-11 in
    standardised units; the two fits standardise with sums in different orders, so their
    weights agree to about that residual times the outcomes' scale);
(b) the control weights equal cvxpy's (Clarabel, gap and feasibility tolerances 1e-12)
    solution of the weighted QP written directly on the raw covariates, to 1e-6 relative to
    the uniform centre :math:`1/D_C` (an interior-point solver's accuracy; reached 7e-8), and
    the fit's synthetic outcomes are those weights' to 1e-6;
(c) weight 1 everywhere equals today's unweighted fit to 1e-12 (only the summation order of
    the standardisation and the control-weight products differ);
(d) weight 0 equals dropping the unit, bit for bit (the rows are dropped before fitting).

The bootstrap refit carries each unit's weight: a resample with multiplicities :math:`b_i`
equals the unweighted fit on the panel with unit :math:`i` repeated :math:`b_i d_i` times
(1e-9, as (a)), in the one-at-a-time and in the batched refit. Each fit here is on a few
hundred units (milliseconds).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from causalkit.balance import BALANCE_COLUMNS, N_MEAN_COLUMNS
from causalkit.contracts import Dataset, Roles
from causalkit.errors import DataError
from causalkit_plugins.estimators.microsynth.estimands import BalancedContrast
from causalkit_plugins.estimators.microsynth.estimator import MicroSynth, MicroSynthParams
from causalkit_plugins.estimators.microsynth.simplex import _standardise_split
from causalkit_plugins.inference.bootstrap import Bootstrap, BootstrapParams
from causalkit_plugins.inference.permutation import Permutation, PermutationParams

N_PRE, N_POST = 3, 2
LAGS = MicroSynthParams(outcome_lag_periods=[0, 2])
"""Two pre-period outcomes balanced besides x1, x2: the lag columns are standardised too."""


def _panel(n: int = 150, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Long panel sorted by unit and period (effect 2 after period 3) and integer unit weights 1-3.

    The weights rise with x1, which also drives treatment: informative, unequal by arm.
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 2))
    d = rng.random(n) < 1 / (1 + np.exp(-(0.8 * x[:, 0] - 0.7)))
    T = N_PRE + N_POST
    t = np.arange(T)
    y = (x @ [1.0, -0.5])[:, None] + 0.3 * t + rng.standard_normal((n, T))
    y += (2.0 + x[:, :1]) * (d[:, None] & (t >= N_PRE))
    w = 1.0 + (x[:, 0] > -0.3) + (x[:, 0] > 0.8)
    frame = pd.DataFrame(
        {
            "unit": np.repeat(np.arange(n), T),
            "time": np.tile(t, n),
            "x1": np.repeat(x[:, 0], T),
            "x2": np.repeat(x[:, 1], T),
            "treat": (d[:, None] & (t >= N_PRE)).astype(int).ravel(),
            "y": y.ravel(),
            "w": np.repeat(w, T),
        }
    )
    return frame, w


def _data(frame: pd.DataFrame, weight: str | None = "w", **roles: object) -> Dataset:
    base: dict[str, object] = dict(
        unit="unit", time="time", treatment="treat", outcome="y", covariates=("x1", "x2")
    )
    base.update(roles)
    return Dataset(frame, Roles(**base, weight=weight))  # type: ignore[arg-type]


def _expanded(frame: pd.DataFrame, copies: np.ndarray) -> pd.DataFrame:
    """Unit ``i`` repeated ``copies[i]`` times (new unit labels; units with 0 copies dropped)."""
    T = N_PRE + N_POST
    blocks = frame.to_numpy().reshape(len(copies), T, frame.shape[1])
    reps = np.repeat(np.arange(len(copies)), copies.astype(int))
    out = pd.DataFrame(blocks[reps].reshape(-1, frame.shape[1]), columns=frame.columns)
    out = out.astype(frame.dtypes.to_dict())
    out["unit"] = np.repeat(np.arange(reps.size), T)
    return out.drop(columns="w")


def _fit(data: Dataset, params: MicroSynthParams = LAGS):
    return MicroSynth(params).fit(data, np.random.default_rng(0))


def test_integer_weights_equal_the_unweighted_fit_on_expanded_rows():
    frame, w = _panel()
    weighted = _fit(_data(frame))
    plain = _fit(_data(_expanded(frame, w), weight=None))
    assert weighted.names == plain.names and len(weighted.names) == 1 + N_POST
    np.testing.assert_allclose(weighted.estimates, plain.estimates, rtol=0, atol=1e-9)
    a, b = weighted.tables["gaps"], plain.tables["gaps"]
    np.testing.assert_allclose(
        a[["treated", "synthetic", "gap"]], b[["treated", "synthetic", "gap"]], atol=1e-9
    )
    means = list(BALANCE_COLUMNS[:N_MEAN_COLUMNS])  # variances: scale-free divisor, not Σd - 1
    np.testing.assert_allclose(
        weighted.tables["balance"][means], plain.tables["balance"][means], rtol=0, atol=1e-9
    )
    assert weighted.weights is not None and weighted.diagnostics["n_zero_weight"] == 0
    assert weighted.diagnostics["max_abs_smd_after"] < 1e-8
    # the unweighted fit on the sample is another estimate (the weights are informative)
    assert abs(_fit(_data(frame, weight=None)).estimates[0] - weighted.estimates[0]) > 0.05


def test_bootstrap_refit_carries_the_weights():
    frame, w = _panel()
    fit = _fit(_data(frame))
    assert fit.resampler is not None
    g = fit.resampler.strata
    rng = np.random.default_rng(7)
    idxs = [
        np.concatenate([rng.choice(np.flatnonzero(g == s), (g == s).sum()) for s in (0, 1)])
        for _ in range(3)
    ]
    one = np.array([fit.resampler.refit(i) for i in idxs])
    assert fit.resampler.refit_batch is not None
    batch = fit.resampler.refit_batch(idxs)
    for i, idx in enumerate(idxs):
        copies = np.bincount(idx, minlength=w.size) * w
        ref = _fit(_data(_expanded(frame, copies), weight=None)).estimates
        np.testing.assert_allclose(one[i], ref, rtol=0, atol=1e-9)
        np.testing.assert_allclose(batch[i], ref, rtol=0, atol=1e-9)


def test_control_weights_equal_cvxpy_on_the_weighted_qp():
    import cvxpy as cp

    frame, _ = _panel(n=120, seed=3)
    d = np.random.default_rng(1).uniform(0.2, 3.0, 120)  # non-integer weights
    frame["w"] = np.repeat(d, N_PRE + N_POST)
    units = frame.drop_duplicates("unit")
    treated = frame.groupby("unit")["treat"].max().to_numpy() == 1
    X = units[["x1", "x2"]].to_numpy()
    Y = frame["y"].to_numpy().reshape(120, -1)
    dt, dc = d[treated], d[~treated]
    target = dt @ X[treated] / dt.sum()
    v = cp.Variable(dc.size)
    problem = cp.Problem(
        cp.Minimize(0.5 * cp.sum(cp.multiply(dc, cp.square(v - 1.0 / dc.sum())))),
        [X[~treated].T @ cp.multiply(dc, v) == target, dc @ v == 1, v >= 0],
    )
    tight = dict(tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12, tol_ktratio=1e-10)
    problem.solve(solver=cp.CLARABEL, **tight)
    assert problem.status == "optimal"
    ref = np.asarray(v.value)
    # the fit's own path: weighted standardisation, weighted target, counts = d
    rows = (np.flatnonzero(treated), np.flatnonzero(~treated))
    Zt, Zc, _, _ = _standardise_split((X,), ("x1", "x2"), rows, (dt, dc))
    contrast = BalancedContrast(
        Zt, Zc, Y[treated], Y[~treated], np.arange(5) >= 3, None, None, 1e-11, 50, dt, dc
    )
    sol = contrast.solve(None, None, None, check_hull=True)
    assert sol.converged
    # on the scale of the uniform centre (D_C w = 1 for every control when no balancing is needed)
    np.testing.assert_allclose(dc.sum() * sol.w, dc.sum() * ref, rtol=0, atol=1e-6)
    # and the fit's synthetic outcomes are the cvxpy weights' (every period)
    fit = _fit(_data(frame), MicroSynthParams())
    synthetic = (dc * ref) @ Y[~treated]
    np.testing.assert_allclose(fit.tables["gaps"]["synthetic"], synthetic, rtol=0, atol=1e-6)
    np.testing.assert_allclose(
        fit.tables["gaps"]["treated"], dt @ Y[treated] / dt.sum(), atol=1e-12
    )


def test_weight_one_everywhere_is_the_unweighted_fit():
    frame, _ = _panel()
    frame["w"] = 1.0
    weighted, plain = _fit(_data(frame)), _fit(_data(frame, weight=None))
    np.testing.assert_allclose(weighted.estimates, plain.estimates, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        weighted.tables["balance"], plain.tables["balance"], rtol=1e-12, atol=1e-12
    )
    boot = Bootstrap(BootstrapParams(n_boot=49))
    se_w = boot.infer(weighted, np.random.default_rng(2)).se
    se_p = boot.infer(plain, np.random.default_rng(2)).se
    np.testing.assert_allclose(se_w, se_p, rtol=1e-12)


def test_zero_weight_is_dropping_the_unit():
    frame, w = _panel()
    d = w * np.random.default_rng(4).uniform(0.5, 1.5, w.size)
    d[::7] = 0.0  # treated and control units among them
    frame["w"] = np.repeat(d, N_PRE + N_POST)
    zero = _fit(_data(frame))
    kept = frame[frame["w"] > 0].reset_index(drop=True)
    dropped = _fit(_data(kept))
    np.testing.assert_array_equal(zero.estimates, dropped.estimates)
    assert zero.n == dropped.n == int((d > 0).sum())
    assert zero.diagnostics["n_zero_weight"] == int((d == 0).sum())
    boot = Bootstrap(BootstrapParams(n_boot=49))
    np.testing.assert_array_equal(
        boot.infer(zero, np.random.default_rng(2)).se,
        boot.infer(dropped, np.random.default_rng(2)).se,
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1.0, r"roles\.weight: expected non-negative weights"),
        (np.nan, r"roles\.weight: expected finite"),
    ],
)
def test_negative_and_missing_weights_are_one_line_errors(value, message):
    frame, _ = _panel(n=60)
    frame.loc[frame["unit"] == 3, "w"] = value
    with pytest.raises(DataError, match=message) as err:
        _fit(_data(frame))
    assert "\n" not in str(err.value)


def test_other_backends_and_permutation_are_refused_in_one_line():
    frame, _ = _panel(n=60)
    with pytest.raises(DataError, match=r"^estimator\.backend: expected backend=memory") as err:
        _fit(_data(frame), MicroSynthParams(backend="columnar"))
    assert "\n" not in str(err.value)
    fit = _fit(_data(frame))
    with pytest.raises(DataError, match=r"^inference=permutation: expected no weight role") as err:
        Permutation(PermutationParams(n_perm=19)).infer(fit, np.random.default_rng(0))
    assert "\n" not in str(err.value)


def test_clusters_and_weights_together_resample_clusters_carrying_weights():
    frame, _ = _panel()
    frame["cl"] = frame["unit"] // 3
    fit = _fit(_data(frame, cluster="cl"))
    assert fit.clusters is not None and fit.weights is not None
    out = Bootstrap(BootstrapParams(n_boot=49)).infer(fit, np.random.default_rng(1))
    assert np.isfinite(out.se).all() and (out.se > 0).all()


@pytest.mark.parametrize("estimand", ["ATT", "ITT", "CACE"])
def test_cross_section_estimands_equal_the_expanded_fit(estimand):
    """A cross-section (one row per unit) with both arms' roles: the CACE's numerator and
    compliance gap are both weighted contrasts (1e-9, as the panel)."""
    rng = np.random.default_rng(5)
    n = 200
    x = rng.standard_normal((n, 2))
    z = rng.random(n) < 0.4
    d = z & (rng.random(n) < 1 / (1 + np.exp(-x[:, 0])))
    y = x @ [1.0, 0.5] + 1.5 * d + rng.standard_normal(n)
    w = rng.integers(0, 4, n).astype(float)  # zeros too
    frame = pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "z": z, "d": d, "y": y, "w": w})
    frame[["z", "d"]] = frame[["z", "d"]].astype(int)
    roles = dict(outcome="y", treatment="d", assignment="z", covariates=("x1", "x2"))
    params = MicroSynthParams(estimand=estimand)
    weighted = _fit(Dataset(frame, Roles(**roles, weight="w")), params)
    expanded = frame.loc[frame.index.repeat(w.astype(int))].reset_index(drop=True)
    plain = _fit(Dataset(expanded, Roles(**roles)), params)
    np.testing.assert_allclose(weighted.estimates, plain.estimates, rtol=0, atol=1e-9)
    assert weighted.diagnostics["n_zero_weight"] == int((w == 0).sum())


def test_the_balance_table_describes_the_weighted_population():
    """Before balancing: weighted arm means, SMD on the weighted variances
    :math:`\\sum d (x - \\bar x)^2 / (V_1 - V_2/V_1)` (direct computation, 1e-12); after: the
    synthetic control's means equal the weighted treated means (exact balance, 1e-9)."""
    frame, _ = _panel()
    d = np.random.default_rng(6).uniform(0.3, 2.5, 150)
    frame["w"] = np.repeat(d, N_PRE + N_POST)
    table = _fit(_data(frame), MicroSynthParams()).tables["balance"]
    units = frame.drop_duplicates("unit")
    g = frame.groupby("unit")["treat"].max().to_numpy() == 1

    def moments(x: np.ndarray, w: np.ndarray) -> tuple[float, float]:
        m = float(np.average(x, weights=w))
        return m, float(w @ (x - m) ** 2 / (w.sum() - (w @ w) / w.sum()))

    for name in ("x1", "x2"):
        x = units[name].to_numpy()
        (m1, v1), (m0, v0) = moments(x[g], d[g]), moments(x[~g], d[~g])
        row = table.loc[name]
        np.testing.assert_allclose(
            row[["mean_treated_before", "mean_control_before", "var_ratio_before"]],
            [m1, m0, v1 / v0],
            rtol=1e-12,
        )
        np.testing.assert_allclose(
            row["smd_before"], (m1 - m0) / np.sqrt((v1 + v0) / 2), rtol=1e-12
        )
        np.testing.assert_allclose(row["mean_control_after"], m1, rtol=0, atol=1e-9)
