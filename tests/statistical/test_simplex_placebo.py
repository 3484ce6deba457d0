"""Simplex MicroSynth placebo permutation: refused where the controls cannot supply it, nominal where they can.

A placebo draw takes :math:`n_T` controls as a pseudo-treated group and refits the weights
on the other :math:`n_C - n_T` controls. Under exchangeable exposure and no lift the add-one
two-sided test with R = 19 draws rejects at 5% with probability 1/20; the Monte Carlo rate is
checked within 3 binomial standard errors. Where :math:`n_C < 2 n_T` (the contaminated
holdout's default sizes: 1,500 exposed vs 500 controls for the ATT, 1,200 assigned vs 800
held out for the ITT) every replication's inference is refused with a one-line reason and
counted as failed by the Monte Carlo loop. (Before, the placebo group shrank to
:math:`n_C // 2` units, whose null distribution is wider than the estimate's: the test
rejected 0.000 and 0.005 of the time at those sizes.)
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from causalkit.cli import compose
from causalkit.config import validate
from causalkit.montecarlo import run_cell
from causalkit_plugins.dgps.contaminated_holdout import (
    ContaminatedHoldout,
    ContaminatedHoldoutParams,
)
from causalkit_plugins.estimators.microsynth.estimator import MicroSynth, MicroSynthParams
from causalkit_plugins.inference.permutation import Permutation, PermutationParams

pytestmark = pytest.mark.statistical


@pytest.mark.parametrize(
    ("estimand", "n_t", "n_c"), [("ATT", 1500, 500), ("ITT", 1200, 800)], ids=["ATT", "ITT"]
)
def test_refused_at_the_default_study_sizes(estimand, n_t, n_c):
    cfg = validate(
        compose(
            [
                "tracking=none",
                "mc.reps=3",
                "mc.n_jobs=1",
                "estimator=microsynth",
                f"estimator.estimand={estimand}",
                f"mc.target={estimand}",
                "dgp=contaminated_holdout",
                "dgp.lift=0",
                "inference=permutation",
                "inference.n_perm=19",
            ]
        )
    )
    out = run_cell(cfg)
    assert out.metrics["n_failed"] == 3
    errors = set(out.replications["error"])
    assert errors == {
        f"DataError: inference=permutation: expected at least 2 x n_T = {2 * n_t} control units "
        f"for placebo groups of the treated size (use inference=bootstrap), got {n_c} controls "
        f"for {n_t} treated"
    }


def test_size_is_nominal_where_the_controls_supply_placebo_groups():
    # 40 exposed, 560 controls (n_C = 14 n_T), exposure randomised, no lift.
    world = ContaminatedHoldout(
        ContaminatedHoldoutParams(n_users=600, n_exposed=40, n_contaminated=0, lift=0.0)
    )
    perm = Permutation(PermutationParams(n_perm=19, test="twosided"))
    reps, rejections = 400, 0
    for r in range(reps):
        rng = np.random.default_rng([20261130, r])
        fit = MicroSynth(MicroSynthParams()).fit(world.simulate(rng).dataset, rng)
        out = perm.infer(fit, rng)
        assert out.diagnostics["n_failed"] == 0
        rejections += out.p_value[0] <= 0.05 + 1e-12
    rate = rejections / reps
    band = 3 * math.sqrt(0.05 * 0.95 / reps)
    assert abs(rate - 0.05) <= band, f"size {rate:.3f} outside 0.05 ± {band:.3f}"
