"""The core input check and the numerics it guards (issue 16, finding 3).

Each test fails on commit 28bbc4a (noted per test): the numbers there were returned without a
word, or were wrong.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import causalkit as ck
from causalkit.contracts import Dataset, Roles
from causalkit.inputs import FEW_UNITS, check_inputs
from causalkit_plugins.estimators.selection.ols import regression_adjustment
from causalkit_plugins.estimators.selection.probit import fit_probit
from causalkit_plugins.estimators.selection.psm_match import MatchSpec, match_with_replacement
from causalkit_plugins.inference.basic import influence_se

XS = dict(outcome="y", treatment="d", covariates=["x1", "x2"])


def _xs(n: int = 1000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    d = (rng.random(n) < 1 / (1 + np.exp(-x1))).astype(int)
    y = d + x1 + 0.5 * x2 + rng.normal(size=n)
    return pd.DataFrame({"y": y, "d": d, "x1": x1, "x2": x2})


def test_ols_nearly_collinear_is_solved_stably_and_warned():
    """28bbc4a inverted Z'Z: 2.9995 (p ~ 1e-140) at condition number 7e8; QR gives 1.0118."""
    rng = np.random.default_rng(3)
    n = 2000
    x1, e = rng.normal(size=n), rng.normal(size=n)
    d = rng.random(n) < 1 / (1 + np.exp(-x1))
    y = 1.0 * d + x1 + rng.normal(size=n)
    stable = regression_adjustment(y, d, np.column_stack([x1, e]))  # same column space
    frame = pd.DataFrame({"y": y, "d": d.astype(int), "x1": x1 * 1e3, "x2": (x1 + 3e-9 * e) * 1e3})
    res = ck.fit(frame, "ols", **XS)
    assert res.estimate == pytest.approx(stable.estimate, abs=1e-6)
    assert res.se == pytest.approx(np.sqrt(np.sum(stable.influence**2)) / n, rel=1e-4)
    assert res.diagnostics["condition_number"] > 1e8
    assert any("nearly collinear" in w for w in res.warnings)


def test_ols_refuses_a_numerically_singular_design():
    f = _xs()
    f["x2"] = f["x1"] * (1 + 1e-15)
    with pytest.raises(ck.EstimationError, match="rank deficient or nearly so"):
        ck.fit(f, "ols", **XS)


def test_ols_perfect_predictor_is_flagged():
    """28bbc4a: a covariate separating the arms gave an extrapolated estimate without a word."""
    rng = np.random.default_rng(3)
    n = 2000
    z = rng.normal(size=n)
    d = (z > 0).astype(int)
    y = d + np.exp(2 * z) + rng.normal(size=n)
    f = pd.DataFrame({"y": y, "d": d, "x1": z, "x2": rng.normal(size=n)})
    res = ck.fit(f, "ols", **XS)
    assert any("'x1' alone predicts the treatment" in w for w in res.warnings)


def test_separating_regressor_flags_the_probit():
    x = np.linspace(-1, 1, 200)
    d = x > 0.05
    fit = fit_probit(np.column_stack([np.ones_like(x), x]), d, max_iter=3)
    assert fit.separation


@pytest.mark.parametrize("scale", [1e300, 1e-300])
@pytest.mark.parametrize("estimator", ["ols", "ipw", "naive"])
def test_se_at_extreme_scales_is_exact(estimator, scale):
    """28bbc4a: SE = inf at 1e300 and SE = 0 (a zero-width CI) at 1e-300."""
    f = _xs()
    ref = ck.fit(f, estimator, **XS)
    res = ck.fit(f.assign(y=f.y * scale), estimator, **XS)
    assert res.se / scale == pytest.approx(ref.se, rel=1e-9)
    assert res.p_value == pytest.approx(ref.p_value, rel=1e-6)


def test_influence_se_is_bit_identical_on_ordinary_values():
    psi = np.random.default_rng(0).normal(size=(500, 3))
    plain = np.array([np.sqrt(np.sum(psi[:, j] ** 2)) / 500 for j in range(3)])
    assert np.array_equal(influence_se(psi), plain)


def test_zero_se_is_warned():
    psi = np.zeros((10, 1))
    fit = ck.Fit(ck.Estimand.ATE, 0.0, 10, influence=psi)
    from causalkit_plugins.inference.basic import Analytic

    out = Analytic().infer(fit, np.random.default_rng(0))
    assert out.diagnostics["se_degenerate"] == 1 and "standard error of ATE is 0" in out.warnings[0]
    assert np.isnan(out.p_value[0])


@pytest.mark.parametrize("estimator", ["ipw", "ols", "naive"])
def test_constant_outcome_is_refused(estimator):
    """28bbc4a: p = 5.6e-89 (ipw) and 9e-30 (ols) for an effect that is exactly zero."""
    with pytest.raises(ck.DataError, match="roles.outcome: expected an outcome that varies"):
        ck.fit(_xs().assign(y=3.0), estimator, **XS)


def test_one_treated_among_many_is_flagged():
    """28bbc4a: IPW returned a tiny SE for one treated unit among 200k rows without a word."""
    f = _xs(20_000)
    f["d"] = 0
    f.loc[0, "d"] = 1
    res = ck.fit(f, "ipw", **XS)
    assert res.diagnostics["input.n_smaller_group"] == 1
    assert any("only 1 treated unit among 20000 rows" in w for w in res.warnings)
    assert FEW_UNITS > 1


def test_ordinary_data_have_no_input_notes():
    notes = check_inputs(Dataset(_xs(), Roles(**XS)))
    assert not notes.diagnostics and not notes.warnings


def test_aipw_imputes_only_when_asked_and_says_so():
    """28bbc4a: aipw imputed 30% missing values silently (and every other estimator refused)."""
    f = _xs(600)
    f.loc[f.index % 3 == 0, "x1"] = np.nan
    with pytest.raises(ck.DataError, match="roles.covariates: expected no missing values in 'x1'"):
        ck.fit(f, "aipw", folds=2, **XS)
    res = ck.fit(f, "aipw", folds=2, impute="median", **XS)
    assert res.diagnostics["input.n_imputed"] == 200
    assert any("imputed" in w and "'x1' (200)" in w for w in res.warnings)


def _weeks(order: str) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    weeks = ["2024-W8", "2024-W9", "2024-W10"]
    rows = [
        {
            "unit": u,
            "week": w,
            "d": int(u < 10 and t == 2),
            "y": rng.normal() + 2.0 * (u < 10 and t == 2) + t,
        }
        for u in range(40)
        for t, w in enumerate(weeks)
    ]
    f = pd.DataFrame(rows)
    if order == "alphabetical":  # rows sorted by unit, then by the label's text
        f = f.sort_values(["unit", "week"]).reset_index(drop=True)
    return f


def test_text_period_labels_are_refused_with_the_fix():
    """28bbc4a ordered `2024-W10` before `2024-W9` and put the onset in the wrong period."""
    with pytest.raises(ck.DataError) as info:
        ck.fit(_weeks("time"), "naive", unit="unit", time="week", treatment="d", outcome="y")
    msg = str(info.value)
    assert msg.startswith("roles.time: expected numbers, dates or an ordered categorical")
    assert "pd.to_datetime" in msg and "ordered=True" in msg and "'2024-W8'" in msg


def test_date_period_labels_are_accepted():
    f = _weeks("time")
    start = {
        w: pd.Timestamp(2024, 2, 19) + pd.Timedelta(weeks=i)
        for i, w in enumerate(["2024-W8", "2024-W9", "2024-W10"])
    }
    kw = dict(unit="unit", time="week", treatment="d", outcome="y")
    as_dates = ck.fit(f.assign(week=f.week.map(start)), "naive", **kw)
    as_objects = ck.fit(f.assign(week=f.week.map(lambda w: start[w].date())), "naive", **kw)
    assert as_dates.estimate == as_objects.estimate


@pytest.mark.parametrize("order", ["time", "alphabetical"])
def test_ordered_categorical_periods_follow_their_categories(order):
    """28bbc4a: rows sorted by the label's text took the text order (0.396 instead of 1.302)."""
    f = _weeks(order)
    weeks = ["2024-W8", "2024-W9", "2024-W10"]
    kw = dict(unit="unit", time="week", treatment="d", outcome="y")
    numbered = ck.fit(f.assign(week=f.week.map({w: i for i, w in enumerate(weeks)})), "naive", **kw)
    cat = f.assign(week=pd.Categorical(f.week, categories=weeks, ordered=True))
    assert ck.fit(cat, "naive", **kw).estimate == pytest.approx(numbered.estimate, rel=1e-12)


def test_psm_exact_ties_over_most_of_the_pool_are_refused_in_bounded_memory():
    """28bbc4a kept every tie: 36M pairs here, n^2 in general (24 GB at 2M rows)."""
    rng = np.random.default_rng(0)
    n = 6000
    X = rng.normal(size=(n, 2))
    d = np.zeros(n, int)
    d[np.argmax(X[:, 0])] = 1  # one treated unit, separated: every control's score is ~0
    f = pd.DataFrame(
        {"y": X.sum(axis=1) + rng.normal(size=n), "d": d, "x1": X[:, 0], "x2": X[:, 1]}
    )
    with pytest.raises(ck.EstimationError, match="keeping every tie would make"):
        ck.fit(f, "psm", **XS)


def test_psm_tie_radius_is_never_below_the_coordinate_resolution():
    spec = MatchSpec(k=1, ties=True, tol=1e-8, caliper=None)
    pool = np.array([[1e-6], [5e-6]])
    far = np.array([[1e3]])  # radius sqrt(eps) * 1e3 = 1.5e-5: both pool units tie
    pairs = match_with_replacement(far, pool + 1e3, far, pool + 1e3, spec)
    assert sorted(pairs.pool.tolist()) == [0, 1]
    near = np.array([[0.0]])  # radius tol = 1e-8: the nearest only
    assert match_with_replacement(near, pool, near, pool, spec).pool.tolist() == [0]
