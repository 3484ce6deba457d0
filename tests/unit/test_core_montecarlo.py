"""Seeds, determinism across workers, the result object and Monte Carlo metrics."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

import causalkit as ck
from causalkit.cli import compose
from causalkit.config import validate
from causalkit.montecarlo import replication_seed, replication_stream, run_cell, summarise


def _cfg(*overrides: str):
    return validate(compose(["tracking=none", *overrides]))


def test_replication_seed_depends_on_seed_hash_and_index_only():
    a = replication_seed(7, "00ff00ff00ff00ff", 3).generate_state(4)
    b = replication_seed(7, "00ff00ff00ff00ff", 3).generate_state(4)
    c = replication_seed(7, "00ff00ff00ff00fe", 3).generate_state(4)
    d = replication_seed(7, "00ff00ff00ff00ff", 4).generate_state(4)
    assert np.array_equal(a, b) and not np.array_equal(a, c) and not np.array_equal(a, d)


def test_replication_stream_is_the_spawned_child():
    for seed, cell_hash, r in [(7, "00ff00ff00ff00ff", 3), (2**40 + 5, "9" * 64, 0), (0, "1", 199)]:
        children = replication_seed(seed, cell_hash, r).spawn(3)
        for k, child in enumerate(children):
            ours = replication_stream(seed, cell_hash, r, k)
            ref = np.random.Generator(np.random.PCG64(child))
            assert np.array_equal(ours.random(50), ref.random(50))
            assert ours.bit_generator.state == ref.bit_generator.state


def test_results_bit_identical_for_one_and_two_jobs():
    one = run_cell(_cfg("estimator=itt", "mc.reps=12", "mc.n_jobs=1"))
    two = run_cell(_cfg("estimator=itt", "mc.reps=12", "mc.n_jobs=2"))
    pd.testing.assert_frame_equal(one.replications, two.replications, check_exact=True)
    assert one.metrics["bias"] == two.metrics["bias"]


def test_shorter_run_is_a_prefix_of_a_longer_one_and_cells_are_order_free():
    short = run_cell(_cfg("estimator=naive", "mc.reps=4")).replications
    long = run_cell(_cfg("estimator=naive", "mc.reps=8")).replications
    assert np.array_equal(short["estimate"].to_numpy(), long["estimate"].to_numpy()[:4])


def test_summarise_matches_direct_formulas():
    rng = np.random.default_rng(0)
    est = 1 + rng.standard_normal(400) * 0.1
    se = np.full(400, 0.1)
    lo, hi = est - 1.96 * se, est + 1.96 * se
    m = summarise(est, se, lo, hi, truth=1.0)
    assert m["bias"] == pytest.approx(est.mean() - 1)
    assert m["bias_mcse"] == pytest.approx(est.std(ddof=1) / 20)
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean((est - 1) ** 2)))
    cov = np.mean((lo <= 1) & (hi >= 1))
    assert m["coverage"] == pytest.approx(cov) and m["coverage_mcse"] == pytest.approx(
        math.sqrt(cov * (1 - cov) / 400)
    )
    assert m["ci_width"] == pytest.approx(2 * 1.96 * 0.1)


def test_failed_replications_are_counted_not_fatal(monkeypatch):
    from causalkit_plugins.estimators import differences

    real = differences.difference_in_means
    calls = {"n": 0}

    def flaky(y, g, **kwargs):
        calls["n"] += 1
        if calls["n"] % 3 == 0:
            raise ck.EstimationError("synthetic failure")
        return real(y, g, **kwargs)

    monkeypatch.setattr(differences, "difference_in_means", flaky)
    out = run_cell(_cfg("estimator=itt", "mc.reps=9"))
    assert out.metrics["n_failed"] == 3 and len(out.errors) == 3
    assert out.replications["error"].notna().sum() == 3


def test_fit_api_returns_immutable_result(holdout_panel):
    frame = holdout_panel.dataset.frame
    res = ck.fit(
        frame,
        estimator="microsynth",
        unit="user_id",
        time="week",
        treatment="saw_ad",
        outcome="converted",
        covariates=["age", "device", "gender", "country_tier", "prior_engagement"],
        inference={"name": "bootstrap", "n_boot": 50},
        seed=1,
    )
    d = res.to_dict()
    for key in (
        "estimate",
        "se",
        "ci_lower",
        "ci_upper",
        "p_value",
        "n",
        "max_abs_smd_before",
        "max_abs_smd_after",
        "ess",
        "max_weight",
        "feasible",
    ):
        assert key in d
    assert d["max_abs_smd_after"] < 1e-8 and d["feasible"] is True and d["n"] == 2000
    assert res.ci_lower < res.estimate < res.ci_upper
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.estimate = 0.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        res.diagnostics["ess"] = 1.0  # type: ignore[index]
    assert isinstance(res.to_frame(), pd.DataFrame) and "estimate" in str(res.summary())
    # the document's demo draw (seed 42): MicroSynth ATT +0.0410, ESS 417.1 of 500
    assert res.estimate == pytest.approx(0.0410, abs=5e-5) and d["ess"] == pytest.approx(
        417.1, abs=0.05
    )


def test_fit_api_rejects_bad_parameters(holdout_panel):
    frame = holdout_panel.dataset.frame
    with pytest.raises(ck.ConfigError, match="estimator.weight_methd: expected one of the keys"):
        ck.fit(frame, estimator="microsynth", unit="user_id", outcome="converted", weight_methd="x")
    with pytest.raises(ck.ConfigError, match="inference: expected one of bootstrap"):
        ck.fit(
            frame, estimator="microsynth", unit="user_id", outcome="converted", inference="analytic"
        )


def test_lazy_tables_build_once_on_first_read_and_stay_read_only():
    from causalkit.contracts import LazyTables

    calls: list[str] = []

    def build(name: str) -> pd.DataFrame:
        calls.append(name)
        return pd.DataFrame({"x": [1.0]})

    tables = LazyTables({"a": lambda: build("a"), "b": lambda: build("b")})
    assert list(tables) == ["a", "b"] and len(tables) == 2 and not calls
    first = tables["a"]
    assert tables["a"] is first and calls == ["a"]
    assert dict(tables).keys() == {"a", "b"} and calls == ["a", "b"]
    with pytest.raises(TypeError):
        tables["c"] = first  # type: ignore[index]
    res = ck.fit(
        pd.DataFrame(
            {
                "y": [1.0, 2.0, 3.0, 4.0, 2.0, 5.0],
                "d": [0, 0, 0, 1, 1, 1],
                "x": [0.1, 0.4, 0.3, 0.2, 0.35, 0.25],
            }
        ),
        estimator="microsynth",
        outcome="y",
        treatment="d",
        covariates=["x"],
        inference="none",
    )
    assert isinstance(res.tables, LazyTables)
    assert res.tables["balance"].loc["x", "smd_after"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("covered", [0, 1, 183, 200])
def test_coverage_carries_a_wilson_interval_that_stays_open_at_the_boundary(covered):
    """Reference: statsmodels' ``proportion_confint(method="wilson")``. At 200 of 200 the
    binomial MCSE is 0 but the true coverage may be as low as 200/(200 + 1.96^2) = 0.981."""
    from statsmodels.stats.proportion import proportion_confint

    R = 200
    est = np.zeros(R)
    lo = np.where(np.arange(R) < covered, -1.0, 0.5)  # the first ``covered`` intervals cover 0
    m = summarise(est, np.ones(R), lo, lo + 2.0, truth=0.0)
    want = proportion_confint(covered, R, alpha=0.05, method="wilson")
    assert m["coverage"] == covered / R
    assert m["coverage_lower"] == pytest.approx(want[0], abs=1e-12)
    assert m["coverage_upper"] == pytest.approx(want[1], abs=1e-12)
    assert m["coverage_lower"] < m["coverage"] or covered == 0
    assert m["coverage_upper"] > m["coverage"] or covered == R
    if covered == R:
        assert m["coverage_mcse"] == 0 and m["coverage_lower"] == pytest.approx(
            R / (R + 1.959964**2)
        )


def test_summary_and_report_flag_coverage_at_the_boundary():
    from causalkit.report import COLUMNS, render
    from causalkit.results import coverage_text

    m = summarise(np.zeros(50), np.ones(50), -np.ones(50), np.ones(50), truth=0.0)
    assert m["coverage"] == 1.0 and m["coverage_mcse"] == 0.0
    text = coverage_text(m)
    assert text == "1.0000  (MCSE 0.0000, at the boundary: not exact; 95% Wilson [0.9287, 1.0000])"
    inner = summarise(np.zeros(4), np.ones(4), np.array([-1, -1, -1, 1.0]), np.full(4, 2.0), 0.0)
    assert "at the boundary" not in coverage_text(inner) and "Wilson" in coverage_text(inner)
    row = {"cell": "c", "status": "FINISHED", **{c: m.get(c, 1.0) for c in COLUMNS[3:]}}
    assert "1.000 [0.929, 1.000]" in render(pd.DataFrame([row]))
