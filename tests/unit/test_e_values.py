"""Every effect estimator reports its E-value with the conversion it used (issue 18, part 4).

Each fit's ``e_value.*`` diagnostics are compared with an independent computation here:
:math:`E = RR + \\sqrt{RR(RR-1)}` (after :math:`RR \\to 1/RR` below 1), with
:math:`RR = \\exp(0.91\\,\\hat\\tau/s)` and the pooled within-arm SD :math:`s` computed with numpy
(weighted: the weights scaled to mean 1 over the units of positive weight, divisor
:math:`m - 2`), or :math:`RR = (p_0 + \\hat\\tau)/p_0` for a 0/1 outcome with the estimator's
own untreated mean :math:`p_0` recomputed here (VanderWeele & Ding 2017, *Ann. Intern. Med.*
167(4), 268-274). Tolerance 1e-12 relative: the same few floating-point operations in another
order; a baseline that comes from a least squares fit is compared to 1e-9 (two solvers of the
same normal equations agree to about the condition number times machine epsilon). Every fit
is on a few hundred simulated units (milliseconds).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import causalkit as ck
from causalkit.evalue import pooled_sd

REL = 1e-12
LSQ = 1e-9


def _e(rr: float) -> float:
    rr = 1 / rr if rr < 1 else rr
    return rr + math.sqrt(rr * (rr - 1))


def _sd(y: np.ndarray, d: np.ndarray, w: np.ndarray | None = None) -> float:
    """Pooled within-arm SD, written out arm by arm."""
    d = d.astype(bool)
    if w is None:
        v1, v0 = np.var(y[d], ddof=1), np.var(y[~d], ddof=1)
        return math.sqrt(((d.sum() - 1) * v1 + ((~d).sum() - 1) * v0) / (d.size - 2))
    pos = w > 0
    m = int(pos.sum())
    scaled = w / w.mean() * (w.size / m)  # mean 1 over the m positive weights
    ss = 0.0
    for arm in (d, ~d):
        mu = np.average(y[arm], weights=w[arm])
        ss += float(np.sum(scaled[arm] * (y[arm] - mu) ** 2))
    return math.sqrt(ss / (m - 2))


def _check_smd(diag: dict, estimate: float, sd: float, weighted: bool) -> None:
    rr = math.exp(0.91 * estimate / sd)
    assert diag["e_value.conversion"] == "smd_0.91" and "e_value.baseline" not in diag
    assert diag["e_value.sd"] == pytest.approx(sd, rel=REL)
    assert diag["e_value.rr"] == pytest.approx(rr, rel=REL)
    assert diag["e_value"] == pytest.approx(_e(rr), rel=REL)
    basis = diag["e_value.basis"]
    assert "VanderWeele-Ding approximation" in basis and "exp(0.91 * estimate / SD)" in basis
    assert ("weighted pooled within-arm SD" in basis) is weighted
    assert "pooled within-arm SD" in basis


def _check_rr(diag: dict, estimate: float, p0: float, rel: float = REL) -> None:
    rr = (p0 + estimate) / p0
    assert diag["e_value.conversion"] == "risk_ratio" and "e_value.sd" not in diag
    assert diag["e_value.baseline"] == pytest.approx(p0, rel=rel)
    assert diag["e_value.rr"] == pytest.approx(rr, rel=rel)
    assert diag["e_value"] == pytest.approx(_e(rr), rel=rel)
    assert "(p0 + estimate) / p0" in diag["e_value.basis"]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 300
    x1, x2 = rng.standard_normal(n), rng.standard_normal(n)
    d = (rng.random(n) < 1 / (1 + np.exp(-0.7 * x1))).astype(int)
    z = (rng.random(n) < 0.5).astype(int)  # a randomised assignment for itt
    return pd.DataFrame(
        {
            "x1": x1,
            "x2": x2,
            "d": d,
            "z": z,
            "y": 1 + x1 - 0.5 * x2 + 0.6 * d + rng.standard_normal(n),
            "yb": (rng.random(n) < 0.25 + 0.15 * d + 0.1 * (x1 > 0)).astype(int),
            "w": rng.uniform(0.3, 3.0, n),
        }
    )


COVS = ["x1", "x2"]


def test_pooled_sd_weighted_reduces_to_unweighted_and_is_scale_free(frame):
    y, d = frame["y"].to_numpy(), frame["d"].to_numpy().astype(bool)
    w = frame["w"].to_numpy()
    assert pooled_sd(y, d) == pytest.approx(_sd(y, d), rel=REL)
    assert pooled_sd(y, d, w) == pytest.approx(_sd(y, d, w), rel=REL)
    assert pooled_sd(y, d, np.full(y.size, 2.5)) == pytest.approx(pooled_sd(y, d), rel=REL)
    assert pooled_sd(y, d, 7 * w) == pytest.approx(pooled_sd(y, d, w), rel=REL)
    w0 = w.copy()
    w0[:10] = 0.0  # a zero weight is a unit left out
    keep = w0 > 0
    assert pooled_sd(y, d, w0) == pytest.approx(pooled_sd(y[keep], d[keep], w[keep]), rel=REL)


@pytest.mark.parametrize("weighted", [False, True])
def test_naive_continuous(frame, weighted):
    w = frame["w"].to_numpy() if weighted else None
    res = ck.fit(frame, "naive", outcome="y", treatment="d", weight="w" if weighted else None)
    y, d = frame["y"].to_numpy(), frame["d"].to_numpy()
    _check_smd(res.diagnostics, res.estimate, _sd(y, d, w), weighted)


def test_naive_binary_baseline_is_the_control_mean(frame):
    res = ck.fit(frame, "naive", outcome="yb", treatment="d")
    yb, d = frame["yb"].to_numpy(), frame["d"].to_numpy()
    _check_rr(res.diagnostics, res.estimate, yb[d == 0].mean())


def test_itt_binary_weighted_baseline_is_the_assigned_control_mean(frame):
    res = ck.fit(frame, "itt", outcome="yb", assignment="z", weight="w")
    yb, z, w = frame["yb"].to_numpy(), frame["z"].to_numpy(), frame["w"].to_numpy()
    p0 = (w[z == 0] @ yb[z == 0]) / w[z == 0].sum()
    p1 = (w[z == 1] @ yb[z == 1]) / w[z == 1].sum()
    assert res.estimate == pytest.approx(p1 - p0, rel=REL)
    _check_rr(res.diagnostics, res.estimate, p0)


def test_ols_per_arm_weighted_continuous(frame):
    res = ck.fit(frame, "ols", outcome="y", treatment="d", covariates=COVS, weight="w")
    y, d, w = frame["y"].to_numpy(), frame["d"].to_numpy(), frame["w"].to_numpy()
    _check_smd(res.diagnostics, res.estimate, _sd(y, d, w), True)


def test_ols_att_binary_baseline_is_the_treated_mean_control_prediction(frame):
    res = ck.fit(frame, "ols", outcome="yb", treatment="d", covariates=COVS, estimand="ATT")
    yb, d = frame["yb"].to_numpy(), frame["d"].to_numpy().astype(bool)
    Z = np.column_stack([np.ones(len(frame)), frame[COVS].to_numpy()])
    b0 = np.linalg.lstsq(Z[~d], yb[~d], rcond=None)[0]
    p0 = float((Z[d] @ b0).mean())
    assert res.estimate == pytest.approx(yb[d].mean() - p0, rel=LSQ)
    _check_rr(res.diagnostics, res.estimate, p0, rel=LSQ)


def test_ols_mean_estimand_has_no_e_value(frame):
    res = ck.fit(frame, "ols", outcome="y", treatment="d", covariates=COVS, estimand="MEAN1")
    assert not any(k.startswith("e_value") for k in res.diagnostics)


def test_ols_pooled_binary_baseline_is_the_prediction_without_treatment(frame):
    res = ck.fit(frame, "ols", outcome="yb", treatment="d", covariates=COVS, model="pooled")
    yb = frame["yb"].to_numpy()
    X = frame[COVS].to_numpy()
    Z = np.column_stack([np.ones(len(frame)), frame["d"].to_numpy(), X])
    b = np.linalg.lstsq(Z, yb, rcond=None)[0]
    assert res.estimate == pytest.approx(b[1], rel=LSQ)
    _check_rr(res.diagnostics, res.estimate, float(np.mean(b[0] + X @ b[2:])), rel=LSQ)


def test_ols_pooled_weighted_continuous(frame):
    res = ck.fit(
        frame, "ols", outcome="y", treatment="d", covariates=COVS, model="pooled", weight="w"
    )
    y, d, w = frame["y"].to_numpy(), frame["d"].to_numpy(), frame["w"].to_numpy()
    _check_smd(res.diagnostics, res.estimate, _sd(y, d, w), True)


@pytest.mark.parametrize("weighted", [False, True])
def test_ipw_and_psm_use_the_sampling_weights_in_the_sd(frame, weighted):
    w = frame["w"].to_numpy() if weighted else None
    y, d = frame["y"].to_numpy(), frame["d"].to_numpy()
    role = {"weight": "w"} if weighted else {}
    ipw = ck.fit(frame, "ipw", outcome="y", treatment="d", covariates=COVS, **role)
    _check_smd(ipw.diagnostics, ipw.estimate, _sd(y, d, w), weighted)
    psm = ck.fit(
        frame, "psm", outcome="y", treatment="d", covariates=COVS, match_on="covariates", **role
    )
    _check_smd(psm.diagnostics, psm.estimate, _sd(y, d, w), weighted)


def test_aipw_ate_binary_baseline_is_its_own_untreated_mean(frame):
    opts = dict(outcome="yb", treatment="d", covariates=COVS, folds=2, seed=3)
    res = ck.fit(frame, "aipw", **opts)
    # same seed, same folds and nuisances: the MEAN0 fit is the ATE fit's E[Y(0)]
    mean0 = ck.fit(frame, "aipw", estimand="MEAN0", **opts)
    assert not any(k.startswith("e_value") for k in mean0.diagnostics)
    _check_rr(res.diagnostics, res.estimate, mean0.estimate)


def test_aipw_att_weighted_binary_and_continuous(frame):
    w, d = frame["w"].to_numpy(), frame["d"].to_numpy()
    opts = dict(treatment="d", covariates=COVS, folds=2, estimand="ATT", weight="w")
    res = ck.fit(frame, "aipw", outcome="yb", **opts)
    yb = frame["yb"].to_numpy()
    p0 = (w[d == 1] @ yb[d == 1]) / w[d == 1].sum() - res.estimate  # treated mean minus ATT
    _check_rr(res.diagnostics, res.estimate, p0)
    cont = ck.fit(frame, "aipw", outcome="y", **opts)
    _check_smd(cont.diagnostics, cont.estimate, _sd(frame["y"].to_numpy(), d, w), True)


def test_aipw_repeated_cross_fitting_uses_the_median_estimate(frame):
    res = ck.fit(frame, "aipw", outcome="y", treatment="d", covariates=COVS, folds=2, n_rep=3)
    y, d = frame["y"].to_numpy(), frame["d"].to_numpy()
    _check_smd(res.diagnostics, res.estimate, _sd(y, d), False)


def test_heckman_treatment_coefficient(frame):
    rng = np.random.default_rng(11)
    f = frame.copy()
    f["s"] = (0.3 + f["x1"] + 0.8 * f["z"] + rng.standard_normal(len(f)) > 0).astype(int)
    f.loc[f["s"] == 0, "y"] = np.nan
    res = ck.fit(
        f, "heckman", outcome="y", selected="s", treatment="d", covariates=["x1"],
        selection_covariates=["x1", "z", "d"],
    )  # fmt: skip
    sel = f["s"].to_numpy() == 1
    y, d = f["y"].to_numpy()[sel], f["d"].to_numpy()[sel]
    assert res.estimate == res.diagnostics["coef.d"]
    _check_smd(res.diagnostics, res.estimate, _sd(y, d), False)


def _microsynth_panel(binary: bool) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    n, T, pre = 200, 4, 3
    x = rng.standard_normal((n, 2))
    d = rng.random(n) < 1 / (1 + np.exp(-(0.8 * x[:, 0] - 0.7)))
    t = np.arange(T)
    y = (x @ [1.0, -0.5])[:, None] + 0.3 * t + rng.standard_normal((n, T))
    y += 1.0 * (d[:, None] & (t >= pre))
    if binary:
        y = (y > 0.5).astype(float)
    return pd.DataFrame(
        {
            "unit": np.repeat(np.arange(n), T),
            "time": np.tile(t, n),
            "x1": np.repeat(x[:, 0], T),
            "x2": np.repeat(x[:, 1], T),
            "treat": (d[:, None] & (t >= pre)).astype(int).ravel(),
            "y": y.ravel(),
            "w": np.repeat(1.0 + (x[:, 0] > 0), T),
        }
    )


def test_microsynth_weighted_continuous_and_binary():
    roles = dict(unit="unit", time="time", treatment="treat", outcome="y", covariates=COVS)
    panel = _microsynth_panel(binary=False)
    res = ck.fit(panel, "microsynth", weight="w", **roles)
    last = panel[panel["time"] == 3]  # the one post period
    d = last["treat"].to_numpy()
    _check_smd(
        res.diagnostics, res.estimate, _sd(last["y"].to_numpy(), d, last["w"].to_numpy()), True
    )
    binary = ck.fit(_microsynth_panel(binary=True), "microsynth", **roles)
    gaps = binary.tables["gaps"]
    p0 = float(gaps.loc[gaps["post"], "synthetic"].mean())  # the synthetic control's risk
    _check_rr(binary.diagnostics, binary.estimate, p0)
