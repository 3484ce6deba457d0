"""Coverage self-test of the core inference methods: nominal 95% within 3 MCSE over 1,000 replications.

Each cell is an (estimator, inference) pair on a world where it is valid: exposure randomised
(``n_contaminated=0``) for the as-treated contrast and MicroSynth, the randomised arm for ITT.
The estimator-specific suites (heckman, ols, ipw, psm, aipw, microsynth panel) live in their own
statistical tests; the README's "Coverage self-test" table collects all of them.
"""

from __future__ import annotations

import math

import pytest

from causalkit.cli import compose
from causalkit.config import validate
from causalkit.montecarlo import run_cell

pytestmark = pytest.mark.statistical

REPS = 1000
RANDOMISED = ["dgp.n_contaminated=0", "dgp.n_users=600", "dgp.n_exposed=300"]
CELLS = {
    "naive/analytic": ["estimator=naive", "inference=analytic", "mc.target=ATE", *RANDOMISED],
    "naive/bootstrap": ["estimator=naive", "inference=bootstrap", "inference.n_boot=199", "mc.target=ATE", *RANDOMISED],
    "itt/analytic": ["estimator=itt", "inference=analytic", "mc.target=ITT", "dgp.n_users=600", "dgp.n_exposed=300", "dgp.n_contaminated=100"],
    "itt/bootstrap": ["estimator=itt", "inference=bootstrap", "inference.n_boot=199", "mc.target=ITT", "dgp.n_users=600", "dgp.n_exposed=300", "dgp.n_contaminated=100"],
    "microsynth/bootstrap": ["estimator=microsynth", "inference=bootstrap", "inference.n_boot=199", "mc.target=ATT", *RANDOMISED],
}


@pytest.mark.parametrize("cell", list(CELLS), ids=list(CELLS))
def test_nominal_coverage_and_no_bias(cell):
    cfg = validate(compose(["tracking=none", f"mc.reps={REPS}", "mc.n_jobs=2", *CELLS[cell]]))
    m = run_cell(cfg).cell.metrics
    print(f"{cell}: coverage {m['coverage']:.3f} ± {m['coverage_mcse']:.3f}, bias {m['bias']:+.5f} ± {m['bias_mcse']:.5f}")
    band = 3 * math.sqrt(0.95 * 0.05 / REPS)
    assert m["n_failed"] == 0
    assert abs(m["coverage"] - 0.95) <= band, f"coverage {m['coverage']:.3f} outside 0.95 ± {band:.3f}"
    assert abs(m["bias"]) <= 3 * m["bias_mcse"], f"bias {m['bias']:+.5f} beyond 3 MCSE {m['bias_mcse']:.5f}"
