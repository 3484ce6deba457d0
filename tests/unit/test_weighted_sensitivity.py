"""Sensitivity bounds with the ``weight`` role, end to end, for ``aipw`` and ``ipw``.

The weighted elements themselves are checked against DoubleML on repeated rows in
``tests/reference/test_aipw_sensitivity_weighted.py``. Here: the results reach ``to_dict``;
at ``cf_y = 0`` the CI bounds are the fit's own Wald limits (the bounds use the SE the fit
reports); weight 1 everywhere is the unweighted analysis; rows of weight 0 are dropped rows
(benchmarks, refitted with the weights, included); ``ipw``'s weighted leave-one-out residuals
are the brute-force weighted refits.

Tolerances: weight 1 everywhere is asserted bit for bit (observed: identical learners,
identical sums). Zero-weight rows vs dropped rows: 1e-12 relative (the logits are solved on
the same positive-weight rows, sums in another order; observed <= 1.2e-15). Wald limits: 1e-9
relative (the same SE through ``norm.ppf`` in two places; observed ~1e-15). Runtime: ~9 s in
all on the loaded 2-core machine, 5.5 s of it the first ``ck.fit`` (``--durations``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import causalkit as ck
from causalkit.contracts import Dataset, Roles
from causalkit_plugins.estimators.aipw.estimator import AIPW, AIPWParams
from causalkit_plugins.estimators.selection.ipw import IPW, IPWParams
from causalkit_plugins.estimators.selection.ipw_sensitivity import loo_residuals

N = 300
COVS = ("x1", "x2", "x3")
SCENARIO = {"cf_y": 0.04, "cf_d": 0.03}
KEYS = ("theta_lower", "theta_upper", "ci_lower", "ci_upper", "rv", "rva", "sigma2", "nu2")


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(21)
    x = rng.normal(size=(N, 3))
    d = (rng.random(N) < 1 / (1 + np.exp(-0.8 * x[:, 0] + 0.4 * x[:, 1]))).astype(int)
    y = 1.0 + (0.5 + 0.5 * x[:, 0]) * d + x @ np.array([1.0, -0.5, 0.3]) + rng.normal(size=N)
    s = rng.integers(0, 4, N).astype(np.float64)  # informative: zeros and 1..3
    return pd.DataFrame(
        {
            "y": y,
            "d": d,
            "x1": x[:, 0],
            "x2": x[:, 1],
            "x3": x[:, 2],
            "s": s,
            "f": np.arange(N) % 3,
            "f2": np.arange(N) // 100,
        }
    )


def _sens(fit) -> dict[str, float]:
    return {k: fit.diagnostics[f"sensitivity.{k}"] for k in KEYS}


@pytest.mark.parametrize("estimator", ["aipw", "ipw"])
def test_weighted_bounds_in_to_dict_and_ci_bounds_use_the_fits_se(frame, estimator):
    base = {"outcome_model": "linear", "propensity_model": "logit"} if estimator == "aipw" else {}
    common = dict(outcome="y", treatment="d", covariates=list(COVS), weight="s", **base)
    res = ck.fit(
        frame, estimator, sensitivity={**SCENARIO, "benchmark_covariates": ["x1"]}, **common
    )
    row = res.to_dict()
    assert row["sensitivity.ci_lower"] < row["sensitivity.theta_lower"] < row["estimate"]
    assert row["estimate"] < row["sensitivity.theta_upper"] < row["sensitivity.ci_upper"]
    assert 0 < row["sensitivity.rva"] < row["sensitivity.rv"] < 1
    assert list(res.tables["sensitivity.bounds"].index) == ["x1"]
    # no confounding: the bounds are the estimate and the CI bounds the fit's weighted Wald CI
    wald = ck.fit(
        frame, estimator, sensitivity={"cf_y": 0.0, "cf_d": 0.03, "level": 0.975}, **common
    )
    w = wald.to_dict()
    assert w["sensitivity.theta_lower"] == w["estimate"] == row["estimate"]
    assert w["sensitivity.ci_lower"] == pytest.approx(w["ci_lower"], rel=1e-9)
    assert w["sensitivity.ci_upper"] == pytest.approx(w["ci_upper"], rel=1e-9)
    unweighted = ck.fit(frame, estimator, sensitivity=SCENARIO, **{**common, "weight": None})
    assert unweighted.to_dict()["sensitivity.sigma2"] != pytest.approx(row["sensitivity.sigma2"])


def _fit(estimator, frame, weight, **params):
    fold = ("f", "f2") if params.get("n_rep", 1) > 1 else "f"
    roles = Roles(outcome="y", treatment="d", covariates=COVS, weight=weight, fold=fold)
    sens = {**SCENARIO, "benchmark_covariates": ["x1"]}
    if estimator == "aipw":
        p = AIPWParams(
            propensity_model="logit_unpenalized", outcome_model="linear", sensitivity=sens, **params
        )
        return AIPW(p).fit(Dataset(frame, roles), np.random.default_rng(0))
    roles = roles.model_copy(update={"fold": None})
    return IPW(IPWParams(sensitivity=sens, **params)).fit(
        Dataset(frame, roles), np.random.default_rng(0)
    )


@pytest.mark.parametrize("estimator", ["aipw", "ipw"])
def test_weight_one_everywhere_is_the_unweighted_analysis(frame, estimator):
    ones = frame.assign(s=1.0)
    a, b = _fit(estimator, ones, "s"), _fit(estimator, ones, None)
    assert a.estimate == b.estimate
    assert _sens(a) == _sens(b)  # bit for bit
    pd.testing.assert_frame_equal(
        a.tables["sensitivity.bounds"], b.tables["sensitivity.bounds"], check_exact=True
    )


@pytest.mark.parametrize(
    ("estimator", "params"),
    [("aipw", {"estimand": "ATT"}), ("aipw", {"n_rep": 2}), ("ipw", {"estimand": "ATE"})],
)
def test_zero_weight_rows_are_dropped_rows(frame, estimator, params):
    """Repeated cross-fitting (given fold columns) included: weights need no separate path."""
    zero = frame["s"] == 0
    a = _fit(estimator, frame, "s", **params)
    b = _fit(estimator, frame[~zero].reset_index(drop=True), "s", **params)
    assert zero.sum() > 50
    np.testing.assert_allclose(a.estimate, b.estimate, rtol=1e-12)
    for key, value in _sens(b).items():
        np.testing.assert_allclose(_sens(a)[key], value, rtol=1e-12, err_msg=key)
    pd.testing.assert_frame_equal(
        a.tables["sensitivity.bounds"], b.tables["sensitivity.bounds"], rtol=1e-12
    )


def test_weighted_loo_residuals_are_weighted_refits_without_the_row(frame):
    """Weighted least squares within each arm, row i left out with its whole weight."""
    sub = frame.iloc[:80]
    y, d, s = sub["y"].to_numpy(), sub["d"].to_numpy().astype(bool), sub["s"].to_numpy()
    X = sub[list(COVS)].to_numpy()
    Z = np.column_stack([np.ones(len(sub)), X])
    brute = np.empty_like(y)
    for i in range(y.size):
        rows = (d == d[i]) & (np.arange(y.size) != i)
        root = np.sqrt(s[rows])
        beta = np.linalg.lstsq(root[:, None] * Z[rows], root * y[rows], rcond=None)[0]
        brute[i] = y[i] - Z[i] @ beta
    np.testing.assert_allclose(loo_residuals(y, d, X, s), brute, rtol=1e-9, atol=1e-12)
