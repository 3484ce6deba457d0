"""Cell summaries with one truth per replication (sample estimands such as a plasmode SATE)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from causalkit.montecarlo import cell_result
from causalkit.performance import summarise


def test_each_replication_is_judged_against_its_own_truth() -> None:
    rng = np.random.default_rng(7)
    truth = 1.0 + 0.5 * rng.standard_normal(400)  # the sample's truth moves with the draw
    est = truth + 0.1 * rng.standard_normal(400)  # unbiased for its own sample's truth
    se = np.full(400, 0.1)
    lo, hi = est - 1.96 * se, est + 1.96 * se
    m = summarise(est, se, lo, hi, truth)
    err = est - truth
    assert m["bias"] == pytest.approx(err.mean(), abs=1e-15)
    assert m["bias_mcse"] == pytest.approx(err.std(ddof=1) / math.sqrt(400), rel=1e-12)
    assert m["coverage"] == np.mean((lo <= truth) & (truth <= hi))
    assert m["rel_bias"] == pytest.approx(err.mean() / truth.mean(), rel=1e-12)
    assert m["mse"] == pytest.approx(np.mean(err**2), rel=1e-12)
    assert abs(m["bias"]) < 3 * m["bias_mcse"] and m["coverage"] > 0.9
    # against the first replication's truth alone the same estimates look biased and miss
    first = summarise(est, se, lo, hi, float(truth[0]))
    assert first["coverage"] < 0.5


def test_a_cell_uses_the_truths_its_replications_report() -> None:
    rng = np.random.default_rng(8)
    truth = 2.0 + rng.standard_normal(50)
    est = truth + 0.2 * rng.standard_normal(50)
    table = pd.DataFrame(
        {
            "replication": range(50), "estimate": est, "se": 0.2, "ci_lower": est - 0.392,
            "ci_upper": est + 0.392, "truth": truth, "inference": "analytic", "estimand": "ATE",
            "truth_estimand": "ATE", "level": 0.95, "error": None,
        }
    )  # fmt: skip
    from causalkit.cli import compose
    from causalkit.config import validate

    cell = cell_result(validate(compose(["estimator=itt", "mc.reps=50"])), table, 1.0)
    assert cell.truth == pytest.approx(truth.mean(), abs=1e-15)
    assert cell.metrics["bias"] == pytest.approx((est - truth).mean(), abs=1e-15)
    constant = table.assign(truth=2.0)
    same = cell_result(validate(compose(["estimator=itt", "mc.reps=50"])), constant, 1.0)
    assert same.truth == 2.0 and same.metrics["bias"] == float(np.mean(est - 2.0))
