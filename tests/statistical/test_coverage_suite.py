"""Coverage self-test of the inference methods: nominal 95% within 3 MCSE over 1,000 replications.

Each cell is an (estimator, inference) pair on a world where it is valid, run through the CLI
config path (``compose`` -> ``validate`` -> ``run_cell``): exposure randomised
(``n_contaminated=0``) for the as-treated contrast and MicroSynth, the randomised arm for ITT,
and for AIPW the ``selection_on_observables`` world with ``x1_sq=0``, where the logistic
propensity and the per-arm linear outcome models are both correctly specified (so the
influence-function SE, which treats the cross-fitted nuisances as known, is first-order valid).

Placebo-permutation inference is checked for what it guarantees: under exchangeable treatment
and no effect, the add-one two-sided p-value with R placebo draws, R + 1 a multiple of 20,
rejects at 5% with probability exactly 0.05. Its placebo-inversion CI ``[est - q_hi, est - q_lo]``
(linearly interpolated placebo quantiles) is *not* a 95% CI at small R: with a shift effect
and exchangeable draws, the estimate's error falls below the interpolated lower quantile with
probability between (floor(h)+1)/(R+1) and (ceil(h)+1)/(R+1), h = (R-1) alpha/2, so its
coverage lies in [1 - 2(ceil(h)+1)/(R+1), 1 - 2(floor(h)+1)/(R+1)] = [0.80, 0.90] for R = 19;
the test checks that bracket, and at R = 199 (bracket [0.94, 0.95]) nominal coverage too. The estimator-specific suites (heckman, ols, ipw, psm, aipw
segments, microsynth panel) live in their own statistical tests; the README's "Coverage
self-test" table collects all of them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from causalkit.cli import compose
from causalkit.config import validate
from causalkit.montecarlo import run_cell

pytestmark = pytest.mark.statistical

REPS = 1000
RANDOMISED = ["dgp.n_contaminated=0", "dgp.n_users=600", "dgp.n_exposed=300"]
AIPW_WORLD = [
    "estimator=aipw",
    "estimator.folds=2",
    "dgp=selection_on_observables",
    "dgp.n=1000",
    "dgp.outcome.x1_sq=0",
    "mc.target=ATE",
]
CELLS = {
    "naive/analytic": ["estimator=naive", "inference=analytic", "mc.target=ATE", *RANDOMISED],
    "naive/bootstrap": [
        "estimator=naive",
        "inference=bootstrap",
        "inference.n_boot=199",
        "mc.target=ATE",
        *RANDOMISED,
    ],
    "itt/analytic": [
        "estimator=itt",
        "inference=analytic",
        "mc.target=ITT",
        "dgp.n_users=600",
        "dgp.n_exposed=300",
        "dgp.n_contaminated=100",
    ],
    "itt/bootstrap": [
        "estimator=itt",
        "inference=bootstrap",
        "inference.n_boot=199",
        "mc.target=ITT",
        "dgp.n_users=600",
        "dgp.n_exposed=300",
        "dgp.n_contaminated=100",
    ],
    "microsynth/bootstrap": [
        "estimator=microsynth",
        "inference=bootstrap",
        "inference.n_boot=199",
        "mc.target=ATT",
        *RANDOMISED,
    ],
    "aipw/analytic": [*AIPW_WORLD, "inference=analytic"],
    "aipw/multiplier": [*AIPW_WORLD, "inference=multiplier", "inference.n_boot=1000"],
}

# (R, overrides). R + 1 a multiple of 20 makes the two-sided 5% test exact. With R = 19 only
# the size is nominal; with R = 199 the placebo-inversion CI's bracket is [0.94, 0.95], so its
# coverage is also checked against the nominal 0.95 +- 3 MCSE.
PERMUTATION_CELLS = {
    "microsynth-panel/permutation": (
        19,
        [
            "estimator=microsynth_panel",
            "dgp=area_panel",
            "dgp.n_units=200",
            "dgp.n_treated=10",
            "dgp.n_pre=4",
            "dgp.n_post=2",
            "dgp.n_covariates=2",
            "dgp.selection=0",
            "dgp.effect=0",
            "mc.target=ATT",
        ],
    ),
    "microsynth-simplex/permutation": (
        199,
        [
            "estimator=microsynth",
            "dgp.n_contaminated=0",
            "dgp.n_users=600",
            "dgp.n_exposed=40",
            "dgp.lift=0",
            "mc.target=ATT",
        ],
    ),
}


def _run(overrides: list[str]):
    cfg = validate(compose(["tracking=none", f"mc.reps={REPS}", "mc.n_jobs=2", *overrides]))
    return run_cell(cfg)


@pytest.mark.parametrize("cell", list(CELLS), ids=list(CELLS))
def test_nominal_coverage_and_no_bias(cell):
    out = _run(CELLS[cell])
    m = out.metrics
    print(
        f"{cell}: coverage {m['coverage']:.3f} ± {m['coverage_mcse']:.3f}, bias {m['bias']:+.5f} ± "
        f"{m['bias_mcse']:.5f}, emp SE {m['emp_se']:.4f}, mean SE {m['mean_se']:.4f}, {out.seconds:.0f} s"
    )
    band = 3 * math.sqrt(0.95 * 0.05 / REPS)
    assert m["n_failed"] == 0
    assert abs(m["coverage"] - 0.95) <= band, (
        f"coverage {m['coverage']:.3f} outside 0.95 ± {band:.3f}"
    )
    assert abs(m["bias"]) <= 3 * m["bias_mcse"], (
        f"bias {m['bias']:+.5f} beyond 3 MCSE {m['bias_mcse']:.5f}"
    )


def _interpolated_quantile_coverage(r: int, level: float) -> tuple[float, float]:
    """Distribution-free bracket of the placebo-inversion CI's coverage with ``r`` exchangeable draws."""
    h = (r - 1) * (1 - level) / 2
    return 1 - 2 * (math.ceil(h) + 1) / (r + 1), 1 - 2 * (math.floor(h) + 1) / (r + 1)


@pytest.mark.parametrize("cell", list(PERMUTATION_CELLS), ids=list(PERMUTATION_CELLS))
def test_permutation_size_and_no_bias(cell):
    n_perm, overrides = PERMUTATION_CELLS[cell]
    out = _run(
        [
            "inference=permutation",
            f"inference.n_perm={n_perm}",
            "inference.test=twosided",
            *overrides,
        ]
    )
    m, reps = out.metrics, out.replications
    rate = float(np.mean(reps["p_value"].to_numpy(float) <= 0.05 + 1e-12))
    se = math.sqrt(0.05 * 0.95 / REPS)
    lo, hi = _interpolated_quantile_coverage(n_perm, 0.95)
    print(
        f"{cell} (R={n_perm}): rejection at 5% {rate:.3f} ± {se:.3f}, bias {m['bias']:+.5f} ± "
        f"{m['bias_mcse']:.5f}, CI coverage {m['coverage']:.3f} ± {m['coverage_mcse']:.3f} "
        f"(bracket [{lo:.3f}, {hi:.3f}]), {out.seconds:.0f} s"
    )
    assert m["n_failed"] == 0
    assert int(reps["inference.n_failed"].sum()) == 0, (
        "an infeasible placebo draw makes 5% unattainable"
    )
    assert abs(rate - 0.05) <= 3 * se, f"size {rate:.3f} outside 0.05 ± {3 * se:.3f}"
    assert abs(m["bias"]) <= 3 * m["bias_mcse"], (
        f"bias {m['bias']:+.5f} beyond 3 MCSE {m['bias_mcse']:.5f}"
    )
    band = 3 * m["coverage_mcse"]
    assert lo - band <= m["coverage"] <= hi + band, (
        f"CI coverage {m['coverage']:.3f} outside [{lo}, {hi}]"
    )
    if lo >= 0.94:  # large R: the interval itself must be a nominal 95% CI
        nominal = 3 * math.sqrt(0.95 * 0.05 / REPS)
        assert abs(m["coverage"] - 0.95) <= nominal, (
            f"CI coverage {m['coverage']:.3f} outside 0.95 ± {nominal:.3f}"
        )
