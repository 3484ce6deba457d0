"""Failed resamples: the inference plugins' ``max_failed`` policy, the Monte Carlo accounting of
replications whose inference refused, and the comparison of cells on common draws.

References: the policy is exact counting (F failed of B; refuse when F/B > max_failed), so the
tests are exact; the summaries on common draws must equal :func:`summarise` on the
intersection of successful replications, bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from causalkit.cli import compose
from causalkit.config import validate
from causalkit.contracts import Estimand, Fit, Resampler
from causalkit.errors import ConfigError
from causalkit.montecarlo import run_cell, summarise
from causalkit.report import common_draws, render_common_draws
from causalkit.results import build_result
from causalkit_plugins.inference.bootstrap import Bootstrap, BootstrapParams
from causalkit_plugins.inference.permutation import Permutation, PermutationParams

N = 200


def _fit(fail_every: int = 0, k: int = 1, nan_column: int | None = None) -> Fit:
    """Means of k N(0, 1) columns whose refit / placebo fails on every ``fail_every``-th call
    (raising, or with ``nan_column`` a NaN in that column only)."""
    from causalkit.errors import EstimationError

    y = np.random.default_rng(3).standard_normal((N, k))
    est = y.mean(axis=0)
    calls = {"n": 0}

    def failing(values: np.ndarray) -> np.ndarray:
        calls["n"] += 1
        if fail_every and calls["n"] % fail_every == 0:
            if nan_column is None:
                raise EstimationError("synthetic infeasible resample")
            values = values.copy()
            values[nan_column] = np.nan
        return values

    def refit(idx: np.ndarray) -> np.ndarray:
        return failing(y[idx].mean(axis=0))

    def placebo(rng: np.random.Generator) -> np.ndarray:
        return failing((y - est)[rng.integers(0, N, N)].mean(axis=0))

    return Fit(
        Estimand.DIFF,
        est,
        N,
        names=tuple(f"m{j}" for j in range(k)),
        resampler=Resampler(N, refit=refit),
        placebo=placebo,
    )


# 1 in 10 fails (10% > 5%: refused); 1 in 25 fails (4% <= 5%: reported with the count).
@pytest.mark.parametrize("every, refused", [(10, True), (25, False)])
def test_bootstrap_refuses_above_max_failed_and_reports_the_count_below(
    every: int, refused: bool
) -> None:
    fit = _fit(every)
    out = Bootstrap(BootstrapParams(n_boot=200)).infer(fit, np.random.default_rng(0))
    n_failed = 200 // every
    assert out.diagnostics["n_failed"] == n_failed
    assert out.diagnostics["n_boot"] == 200 - n_failed
    assert len(out.warnings) == 1 and f"{n_failed} of 200 resamples failed" in out.warnings[0]
    values = np.concatenate([out.se, out.ci_lower, out.ci_upper, out.p_value])
    if refused:
        assert np.isnan(values).all() and out.diagnostics["refused"] is True
        assert "no SE, interval or p-value" in out.warnings[0]
    else:
        assert np.isfinite(values).all() and "refused" not in out.diagnostics
    # The result and its summary show the count and the warning.
    text = str(build_result("test", fit, out).summary())
    assert f"inference.n_failed{' ' * 8}{n_failed}" in text and "WARNING: bootstrap:" in text


def test_max_failed_is_a_parameter_and_zero_failures_change_nothing() -> None:
    fit = _fit(10)
    lax = Bootstrap(BootstrapParams(n_boot=200, max_failed=0.1)).infer(
        fit, np.random.default_rng(0)
    )
    assert np.isfinite(lax.se).all() and lax.diagnostics["n_failed"] == 20
    a = Bootstrap(BootstrapParams(n_boot=100)).infer(_fit(), np.random.default_rng(1))
    b = Bootstrap(BootstrapParams(n_boot=100, max_failed=0.0)).infer(
        _fit(), np.random.default_rng(1)
    )
    assert (
        a.warnings == () and np.array_equal(a.se, b.se) and np.array_equal(a.ci_lower, b.ci_lower)
    )


def test_bootstrap_nan_in_one_estimate_fails_the_whole_resample() -> None:
    out = Bootstrap(BootstrapParams(n_boot=200)).infer(
        _fit(10, k=3, nan_column=2), np.random.default_rng(0)
    )
    assert out.diagnostics["n_failed"] == 20 and np.isnan(out.se).all()


def test_permutation_refuses_above_max_failed() -> None:
    out = Permutation(PermutationParams(n_perm=100)).infer(_fit(10), np.random.default_rng(0))
    assert out.diagnostics["n_failed"] == 10 and out.diagnostics["refused"] is True
    assert np.isnan([out.se[0], out.ci_lower[0], out.ci_upper[0], out.p_value[0]]).all()
    ok = Permutation(PermutationParams(n_perm=100)).infer(_fit(25), np.random.default_rng(0))
    assert ok.diagnostics["n_failed"] == 4 and np.isfinite(ok.se).all() and len(ok.warnings) == 1


def test_permutation_withholds_only_the_estimate_that_lost_draws() -> None:
    out = Permutation(PermutationParams(n_perm=100)).infer(
        _fit(10, k=2, nan_column=1), np.random.default_rng(0)
    )
    assert out.diagnostics["n_failed"] == 0 and out.diagnostics["n_perm_min"] == 90
    assert np.isfinite(out.se[0]) and np.isnan(out.se[1]) and np.isnan(out.p_value[1])
    assert "refused" not in out.diagnostics
    assert len(out.warnings) == 1 and out.warnings[0].startswith("m1: permutation: 10 of 100")


def _cfg(*overrides: str):
    return validate(compose(["tracking=none", *overrides]))


def test_monte_carlo_counts_refused_inference_as_failed(monkeypatch) -> None:
    """Every third replication's bootstrap loses 10% of its resamples: those replications are
    failed (error says why, estimate kept), the metrics come from the others."""
    real = Bootstrap._draws
    calls = {"n": 0}

    def lossy(self, fit, rng):  # type: ignore[no-untyped-def]
        draws = real(self, fit, rng)
        calls["n"] += 1
        if calls["n"] % 3 == 0:
            draws[: len(draws) // 10] = np.nan
        return draws

    monkeypatch.setattr(Bootstrap, "_draws", lossy)
    cell = run_cell(
        _cfg("estimator=itt", "inference=bootstrap", "inference.n_boot=20", "mc.reps=6")
    )
    table = cell.replications
    refused = table["error"].notna().to_numpy()
    assert refused.tolist() == [False, False, True, False, False, True]
    assert table["error"][refused].str.startswith("InferenceRefused: bootstrap: 2 of 20").all()
    assert table["estimate"].notna().all() and table["se"][refused].isna().all()
    assert cell.metrics["n_failed"] == 2 and len(cell.errors) == 2
    ok = table[~refused]
    want = summarise(
        *(ok[c].to_numpy(float) for c in ("estimate", "se", "ci_lower", "ci_upper")), cell.truth
    )
    assert all(
        cell.metrics[k] == v or (math.isnan(v) and math.isnan(cell.metrics[k]))
        for k, v in want.items()
    )
    assert math.isfinite(cell.metrics["mean_se"]) and math.isfinite(cell.metrics["coverage"])
    text = str(cell.summary())
    assert "6 (2 failed)" in text and "over the 4 replications that succeeded" in text
    assert "replication 2: InferenceRefused: bootstrap: 2 of 20 resamples failed" in text


def _replications(est: list[float], failed: set[int], truth: float = 0.0) -> pd.DataFrame:
    rows = []
    for r, e in enumerate(est):
        rows.append(
            {
                "replication": r,
                "estimate": e,
                "se": 0.5,
                "ci_lower": e - 1.0,
                "ci_upper": e + 1.0,
                "truth": truth,
                "error": "InferenceRefused: bootstrap: too many" if r in failed else None,
            }
        )
    return pd.DataFrame(rows)


def test_common_draws_compares_cells_on_the_intersection_of_successes() -> None:
    rng = np.random.default_rng(4)
    a = list(rng.standard_normal(12))
    b = [x + 0.1 + 0.01 * rng.standard_normal() for x in a]  # strongly paired with a
    cells = {"a": _replications(a, {1, 5}), "b": _replications(b, {5, 7, 9})}
    out = common_draws(cells)
    common = [r for r in range(12) if r not in {1, 5, 7, 9}]
    assert out["n_common"].tolist() == [8, 8] and out["n_failed"].tolist() == [2, 3]
    assert out["reps"].tolist() == [12, 12]
    for name, est in (("a", a), ("b", b)):
        e = np.array(est)[common]
        want = summarise(e, np.full(8, 0.5), e - 1.0, e + 1.0, 0.0)
        row = out.set_index("cell").loc[name]
        for k in ("bias", "bias_mcse", "emp_se", "coverage", "coverage_lower", "coverage_upper"):
            assert row[k] == want[k]
    diff = (np.array(b) - np.array(a))[common]
    row_b = out.set_index("cell").loc["b"]
    assert row_b["bias_diff"] == pytest.approx(diff.mean(), abs=1e-15)
    assert row_b["bias_diff_mcse"] == pytest.approx(diff.std(ddof=1) / math.sqrt(8))
    assert row_b["bias_diff_mcse"] < row_b["bias_mcse"] / 10  # pairing removes the shared noise
    text = render_common_draws(out)
    assert "on the 8 draws every one analysed" in text and len(text.splitlines()) == 4


def test_common_draws_on_a_crn_sweep_of_two_cells() -> None:
    """Two estimators on the same draws (``mc.common_random_numbers``): replication r is the
    same dataset in both, so their estimates are paired."""
    cells = {
        e: run_cell(
            _cfg(f"estimator={e}", "mc.reps=8", "mc.common_random_numbers=true")
        ).replications
        for e in ("naive", "itt")
    }
    out = common_draws(cells)
    assert out["n_common"].tolist() == [8, 8] and out["n_failed"].tolist() == [0, 0]
    assert out["bias_diff"].iloc[0] == 0.0 and math.isfinite(out["bias_diff_mcse"].iloc[1])


def test_default_max_failed_leaves_cell_hashes_alone() -> None:
    """``max_failed`` enters the cell hash (and so the seeds) only when set, so cells that
    keep the default draw the numbers they drew before the parameter existed."""
    default = _cfg("estimator=itt", "inference=bootstrap")
    strict = _cfg("estimator=itt", "inference=bootstrap", "inference.max_failed=0.01")
    assert "max_failed" not in default.cell_dict()["inference"]
    assert strict.cell_dict()["inference"]["max_failed"] == 0.01
    assert strict.cell_hash != default.cell_hash


def test_only_monte_carlo_cells_with_common_random_numbers_are_grouped_by_their_draws() -> None:
    from causalkit.report_common_draws import draw_key

    crn = _cfg("estimator=naive", "mc.reps=5", "mc.common_random_numbers=true").to_dict()
    other = _cfg(
        "estimator=itt", "inference=bootstrap", "mc.reps=5", "mc.common_random_numbers=true"
    )
    assert draw_key(crn) is not None and draw_key(crn) == draw_key(other.to_dict())
    moved = _cfg("estimator=naive", "mc.reps=5", "mc.common_random_numbers=true", "mc.seed=1")
    assert draw_key(moved.to_dict()) != draw_key(crn)
    assert draw_key(_cfg("estimator=naive", "mc.reps=5").to_dict()) is None
    single = _cfg("estimator=naive", "mc.common_random_numbers=true").to_dict()
    assert draw_key(single) is None


def test_common_draws_against_a_chosen_reference_with_paired_rmse_and_precision() -> None:
    rng = np.random.default_rng(5)
    a = rng.standard_normal(40)
    b = 0.5 * a + 0.2 * rng.standard_normal(40)  # more precise than a, correlated with it
    cells = {"a": _replications(list(a), set()), "b": _replications(list(b), set())}
    out = common_draws(cells, reference="b").set_index("cell")
    ea, eb = a - 0.0, b - 0.0
    assert out.loc["a", "bias_diff"] == pytest.approx((ea - eb).mean(), abs=1e-15)
    assert out.loc["a", "rmse_diff"] == pytest.approx(
        math.sqrt(np.mean(ea**2)) - math.sqrt(np.mean(eb**2)), abs=1e-15
    )
    want = 100 * (np.var(b, ddof=1) / np.var(a, ddof=1) - 1)
    assert out.loc["a", "rel_precision"] == pytest.approx(want, rel=1e-12)
    assert out.loc["b", "rel_precision"] == 0.0 and out.loc["b", "rmse_diff"] == 0.0
    sq = np.vstack([ea**2, eb**2])
    g = np.array([0.5 / math.sqrt(sq[0].mean()), -0.5 / math.sqrt(sq[1].mean())])
    want_mcse = math.sqrt(g @ np.cov(sq) @ g / 40)  # delta method on the paired squared errors
    assert out.loc["a", "rmse_diff_mcse"] == pytest.approx(want_mcse, rel=1e-12)
    with pytest.raises(ConfigError, match=r"^--reference: expected one of the cells a, b"):
        common_draws(cells, reference="c")
    assert "% precision" in render_common_draws(out.reset_index())
