"""Simplex MicroSynth through the estimator: input checks, periods, lags, estimands, hooks."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

import causalkit
from causalkit.contracts import Capability, Dataset, Estimand, Roles
from causalkit.errors import ConfigError, DataError
from causalkit.registry import default_registry
from causalkit.testing import check_estimator
from causalkit_plugins.dgps.ad_holdout import AdHoldout, AdHoldoutParams
from causalkit_plugins.estimators.microsynth.estimator import MicroSynth, MicroSynthParams
from causalkit_plugins.inference.bootstrap import Bootstrap, BootstrapParams

COVS = ("x1", "x2")


def _panel(
    n: int = 400, n_pre: int = 3, n_post: int = 2, seed: int = 0, intercept: float = -0.5
) -> pd.DataFrame:
    """Long panel sorted by unit then period; selection on x1, x2; effect 2 in post periods.

    ``intercept`` of the treatment log-odds: -0.5 treats about 39% of units, -1.5 about 22%
    (then the controls supply placebo groups of the treated size, n_C >= 2 n_T).
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 2))
    d = rng.random(n) < 1 / (1 + np.exp(-(0.8 * x[:, 0] + intercept)))
    T = n_pre + n_post
    t = np.arange(T)
    y = (x @ [1.0, -0.5])[:, None] + 0.3 * t[None, :] + rng.standard_normal((n, T))
    y += 2.0 * (d[:, None] & (t[None, :] >= n_pre))
    y2 = y + rng.standard_normal((n, T))
    return pd.DataFrame(
        {
            "unit": np.repeat(np.arange(n), T),
            "time": np.tile(t, n),
            "x1": np.repeat(x[:, 0], T),
            "x2": np.repeat(x[:, 1], T),
            "treat": (d[:, None] & (t[None, :] >= n_pre)).astype(int).ravel(),
            "y": y.ravel(),
            "y2": y2.ravel(),
        }
    )


def _data(frame: pd.DataFrame, **roles) -> Dataset:
    base = dict(unit="unit", time="time", treatment="treat", outcome="y", covariates=COVS)
    base.update(roles)
    return Dataset(frame, Roles(**base))


def _fit(frame: pd.DataFrame, params: MicroSynthParams | None = None, **roles):
    return MicroSynth(params or MicroSynthParams()).fit(
        _data(frame, **roles), np.random.default_rng(0)
    )


def test_conformance_and_determinism():
    fit = check_estimator(MicroSynth, _data(_panel(intercept=-1.5)))
    assert fit.estimand is Estimand.ATT and fit.diagnostics["feasible"]


def test_several_periods_gap_table_and_att_is_mean_post_gap():
    fit = _fit(_panel())
    gaps = fit.tables["gaps"]
    assert list(gaps.columns) == ["period", "post", "treated", "synthetic", "gap"]
    assert (
        list(gaps["period"]) == [0, 1, 2, 3, 4] and list(gaps["post"]) == [False] * 3 + [True] * 2
    )
    assert fit.estimate == pytest.approx(gaps.loc[gaps["post"], "gap"].mean(), abs=1e-14)
    # the estimates vector: the headline, then each post period's effect
    assert fit.names == ("ATT", "ATT@3", "ATT@4")
    np.testing.assert_array_equal(fit.estimates[1:], gaps.loc[gaps["post"], "gap"].to_numpy())
    np.testing.assert_allclose(gaps["treated"] - gaps["synthetic"], gaps["gap"], atol=1e-12)
    assert fit.diagnostics["n_periods_post"] == 2


def test_outcome_lags_are_balanced_exactly():
    frame = _panel()
    fit = _fit(frame, MicroSynthParams(outcome_lag_periods=(0, 2)))
    bal = fit.tables["balance"]
    assert list(bal.index) == ["x1", "x2", "y@0", "y@2"]
    assert np.max(np.abs(bal["smd_after"])) < 1e-8
    gaps = fit.tables["gaps"].set_index("period")["gap"]
    assert abs(gaps[0]) < 1e-9 and abs(gaps[2]) < 1e-9  # the balanced pre periods have no gap


def test_match_outcomes_balances_all_outcomes_jointly():
    fit = _fit(_panel(), MicroSynthParams(outcome_lag_periods=(1,), match_outcomes=("y", "y2")))
    bal = fit.tables["balance"]
    assert list(bal.index) == ["x1", "x2", "y@1", "y2@1"]
    assert np.max(np.abs(bal["smd_after"])) < 1e-8


def test_sorted_fast_path_equals_general_reshape():
    """Shuffled rows take the framework's reshape; the estimate and tables are identical."""
    frame = _panel()
    shuffled = frame.sample(frac=1.0, random_state=1)
    p = MicroSynthParams(outcome_lag_periods=(0,), match_outcomes=("y", "y2"))
    a, b = _fit(frame, p), _fit(shuffled, p)
    assert a.estimate == pytest.approx(b.estimate, abs=1e-12)
    pd.testing.assert_frame_equal(a.tables["balance"], b.tables["balance"], atol=1e-10)


def test_per_period_effects_go_through_the_bootstrap_plugin():
    """The per-period band is the bootstrap plugin's (pointwise or joint) interval over the vector."""
    fit = _fit(_panel())
    rs = fit.resampler
    assert rs is not None and fit.capabilities == {Capability.RESAMPLE, Capability.PLACEBO}
    np.testing.assert_allclose(rs.refit(np.arange(fit.n)), fit.estimates, rtol=1e-10)
    pointwise = Bootstrap(BootstrapParams(n_boot=50)).infer(fit, np.random.default_rng(1))
    joint = Bootstrap(BootstrapParams(n_boot=50, joint=True)).infer(fit, np.random.default_rng(1))
    for out in (pointwise, joint):
        assert out.se.shape == (3,) and out.diagnostics["n_failed"] == 0
        assert (out.ci_lower < fit.estimates).all() and (fit.estimates < out.ci_upper).all()
    assert (joint.ci_upper - joint.ci_lower > pointwise.ci_upper - pointwise.ci_lower - 1e-12)[
        1:
    ].all()


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        ("staggered", "roles.treatment"),
        ("time_varying", "roles.covariates"),
        ("missing_period", "roles.time"),
        ("no_treated", "roles.treatment"),
        ("no_controls", "roles.treatment"),
        ("constant", "roles.covariates"),
    ],
)
def test_input_checks(mutate, field):
    frame = _panel(n=60)
    if mutate == "staggered":
        first = frame["unit"].isin(frame.loc[frame["treat"] == 1, "unit"].unique()[:3])
        frame.loc[first & (frame["time"] == 2), "treat"] = 1
    elif mutate == "time_varying":
        frame.loc[frame.index[::7], "x1"] += 1.0
    elif mutate == "missing_period":
        frame = frame.drop(index=frame.index[5])
    elif mutate == "no_treated":
        frame["treat"] = 0
    elif mutate == "no_controls":
        frame["treat"] = (frame["time"] >= 3).astype(int)
    elif mutate == "constant":
        frame["x2"] = 1.0
    with pytest.raises(DataError) as err:
        _fit(frame)
    assert str(err.value).startswith(field) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"match_outcomes": ("y2",)}, "match_outcomes\n.*without outcome_lag_periods"),
        ({"backend": "spark", "estimand": "itt"}, "backend\n.*backend=memory for estimand=ITT"),
        (
            {"backend": "columnar", "outcome_lag_periods": (0,)},
            "backend\n.*backend=memory with outcome_lag",
        ),
        ({"min_compliance_gap": 0.1}, "min_compliance_gap\n.*unless estimand=CACE"),
        ({"dtype": "float32"}, "dtype\n.*float64 unless backend=columnar"),
        ({"spark_master": "yarn"}, "spark_master\n.*no spark_master unless backend=spark"),
        ({"estimand": "ate"}, "one of ATT, ITT, CACE"),
        ({"weight_method": "panel"}, "extra"),  # panel mode is estimator=microsynth_panel
    ],
)
def test_parameter_combinations_fail_at_validation(values, message):
    with pytest.raises(ValidationError, match=message):
        MicroSynthParams(**values)


def test_estimand_spelling_and_capabilities_by_backend():
    assert MicroSynthParams(estimand="cace").estimand is Estimand.CACE
    assert MicroSynthParams(estimand="ITT", min_compliance_gap=None).estimand is Estimand.ITT
    caps = {
        b: MicroSynth.capabilities(MicroSynthParams(backend=b))
        for b in ("memory", "columnar", "spark")
    }
    assert caps == {
        "memory": {Capability.RESAMPLE, Capability.PLACEBO},
        "columnar": {Capability.RESAMPLE},
        "spark": {Capability.REPLICATES},
    }
    reg = default_registry()
    assert "permutation" in reg.pairings("microsynth", MicroSynthParams())
    spark = reg.pairings("microsynth", MicroSynthParams(backend="spark"))
    assert "bootstrap" in spark and "permutation" not in spark and "analytic" not in spark
    assert reg.default_inference("microsynth", MicroSynthParams(backend="spark")) == "bootstrap"


def test_config_checks():
    frame = _panel(n=60)
    with pytest.raises(ConfigError, match="outcome_lag_periods"):
        _fit(frame, MicroSynthParams(outcome_lag_periods=(3,)))  # a post period
    with pytest.raises(ConfigError, match="match_outcomes"):
        _fit(frame, MicroSynthParams(outcome_lag_periods=(0,), match_outcomes=("nope",)))
    with pytest.raises(DataError, match="roles.treatment"):
        sim = AdHoldout(AdHoldoutParams(n_per_arm=50)).simulate(np.random.default_rng(0))
        roles = sim.dataset.roles.model_copy(update={"treatment": None})
        MicroSynth(MicroSynthParams(estimand="cace")).fit(
            Dataset(sim.dataset.frame, roles), np.random.default_rng(0)
        )


def test_infeasible_target_is_flagged_not_returned_as_balanced():
    frame = _panel(n=200)
    treated_units = frame.loc[frame["treat"] == 1, "unit"].unique()
    frame.loc[frame["unit"].isin(treated_units), "x1"] += 50.0  # treated far outside the controls
    fit = _fit(frame)
    assert not fit.diagnostics["feasible"] and not fit.diagnostics["hull_feasible"]
    assert "outside" in str(fit.diagnostics["feasibility_message"])
    assert fit.warnings and "NOT achieved" in fit.warnings[0]


def test_estimands_on_ad_holdout():
    sim = AdHoldout(AdHoldoutParams(n_per_arm=1500)).simulate(np.random.default_rng(3))
    fits = {
        e: MicroSynth(MicroSynthParams(estimand=e)).fit(sim.dataset, np.random.default_rng(0))
        for e in ("att", "itt", "cace")
    }
    assert [fits[e].estimand for e in ("att", "itt", "cace")] == [
        Estimand.ATT,
        Estimand.ITT,
        Estimand.CACE,
    ]
    cace = fits["cace"]
    assert cace.estimate == pytest.approx(
        cace.diagnostics["itt"] / cace.diagnostics["compliance_gap"], rel=1e-12
    )
    assert cace.diagnostics["itt"] == pytest.approx(fits["itt"].estimate, rel=1e-12)
    # The balanced compliance gap is the weighted exposure contrast between the arms.
    assert 0.5 < cace.diagnostics["compliance_gap"] < 1.0


def test_cace_refit_recomputes_numerator_and_denominator():
    """A refit on resampled units equals a fresh CACE fit on the materialised resample (ratio, not ITT / fixed gap)."""
    sim = AdHoldout(AdHoldoutParams(n_per_arm=400, holdout_arm_logit=0.0)).simulate(
        np.random.default_rng(1)
    )
    est = MicroSynth(MicroSynthParams(estimand="cace"))
    fit = est.fit(sim.dataset, np.random.default_rng(0))
    rs = fit.resampler
    assert rs is not None and rs.refit is not None and rs.strata is not None
    assert rs.refit(np.arange(fit.n))[0] == pytest.approx(fit.estimate, rel=1e-10)
    rng = np.random.default_rng(2)
    strata = rs.strata
    idx = np.concatenate(
        [
            np.flatnonzero(strata == s)[rng.integers(0, (strata == s).sum(), (strata == s).sum())]
            for s in (0, 1)
        ]
    )
    frame = sim.dataset.frame
    units = frame["user_id"].unique()  # the estimator's unit order (sorted panel)
    parts = [frame[frame["user_id"] == units[i]].assign(user_id=k) for k, i in enumerate(idx)]
    resample = Dataset(pd.concat(parts, ignore_index=True), sim.dataset.roles)
    fresh = est.fit(resample, np.random.default_rng(0))
    assert rs.refit(idx)[0] == pytest.approx(fresh.estimate, rel=1e-9)
    assert fresh.diagnostics["compliance_gap"] != pytest.approx(
        fit.diagnostics["compliance_gap"], rel=1e-6
    )
    out = Bootstrap(BootstrapParams(n_boot=100)).infer(fit, np.random.default_rng(3))
    assert out.diagnostics["n_failed"] == 0 and out.ci_lower[0] < fit.estimate < out.ci_upper[0]


def test_placebo_hook_centred_near_zero():
    fit = _fit(_panel(n=600, intercept=-1.5))
    assert fit.placebo is not None
    every = np.array([fit.placebo(np.random.default_rng(i)) for i in range(40)])
    assert every.shape == (40, fit.k)
    np.testing.assert_allclose(every[:, 0], every[:, 1:].mean(axis=1), rtol=1e-9, atol=1e-12)
    draws = every[:, 0]
    assert abs(draws.mean()) < 4 * draws.std(ddof=1) / np.sqrt(draws.size) + 0.05
    assert abs(fit.estimate) > np.quantile(np.abs(draws), 0.95)  # effect 2 is far in the tail


def test_python_api_and_cli(workdir):
    sim = AdHoldout(AdHoldoutParams(n_per_arm=300)).simulate(np.random.default_rng(0))
    res = causalkit.fit(
        sim.dataset.frame,
        "microsynth",
        inference={"name": "bootstrap", "n_boot": 50},
        unit="user_id",
        time="time",
        treatment="D_att",
        assignment="D_itt",
        outcome="sales",
        covariates=["age", "income"],
        estimand="cace",
    )
    assert res.to_dict()["estimand"] == "CACE"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "causalkit",
            "experiment=ad_holdout",
            "mc.reps=2",
            "dgp.n_per_arm=300",
            "inference.n_boot=20",
            "tracking=none",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "CACE" in proc.stdout


def test_balance_moments_equal_framework_balance_table():
    from causalkit.balance import balance_table
    from causalkit_plugins.estimators.microsynth.simplex import (
        _balance_columns,
        _balance_frame,
        _standardise_split,
    )

    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, 3)) * [1.0, 10.0, 0.1] + [0.0, 50.0, -3.0]
    g = rng.random(500) < 0.3
    w = rng.random(int((~g).sum()))
    w /= w.sum()
    Zt, Zc, m, sd = _standardise_split(
        [X[:, :1], X[:, 1:]], ("a", "b", "c"), (np.flatnonzero(g), np.flatnonzero(~g))
    )
    ours = _balance_frame(("a", "b", "c"), _balance_columns(Zt, Zc, w, m, sd))
    ref = balance_table(("a", "b", "c"), X[g], X[~g], w_c=w)
    pd.testing.assert_frame_equal(ours, ref, rtol=1e-9, atol=1e-12)


def test_placebo_permutation_inference_for_simplex():
    from causalkit_plugins.inference.permutation import Permutation, PermutationParams

    fit = _fit(_panel(n=600, intercept=-1.5))
    out = Permutation(PermutationParams(n_perm=99)).infer(fit, np.random.default_rng(0))
    assert out.diagnostics["n_failed"] == 0
    # the effect (2.0) beats every placebo, the headline and each post period: add-one floor
    np.testing.assert_allclose(out.p_value, 1 / 100)
    assert (out.ci_lower < fit.estimates).all() and (fit.estimates < out.ci_upper).all()
