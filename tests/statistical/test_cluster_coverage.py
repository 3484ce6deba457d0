"""Ignoring clusters undercovers: the coverage matrix's clustered world without the cluster role.

The matrix's ``clustered`` cells (``naive``, ``ols``, ``ipw`` x analytic/multiplier, and the
``naive`` cluster bootstrap) must reach nominal coverage with the ``cluster`` role. Here the
same world is drawn with ``dgp.cluster.role=false`` (identical draws, no role), so inference
treats the 600 units as independent: the analytic SE is about a quarter too small and the
95% intervals cover about 84% of the time (measured at R = 300). The test requires coverage
below the matrix's lower acceptance limit, :math:`0.95 - 3\\sqrt{0.95\\cdot0.05/R}`, and a mean
SE at most 85% of the empirical SE.
"""

from __future__ import annotations

import math

import pytest

from causalkit.cli import compose
from causalkit.config import validate
from causalkit.montecarlo import run_cell
from causalkit.registry import default_registry
from causalkit.session import Session
from causalkit_plugins.dgps.selection_on_observables import CLUSTERED_600

pytestmark = pytest.mark.statistical

R = 300
WORLDS = {
    "naive": ("dgp.propensity.x1=0", "dgp.propensity.x2=1.0", "dgp.outcome.x2=0"),
    "ols": ("dgp.outcome.x1_sq=0",),
    "ipw": ("dgp.outcome.x1_sq=0",),
}


@pytest.mark.parametrize("estimator", sorted(WORLDS))
def test_unclustered_inference_undercovers_in_the_clustered_world(estimator):
    registry = default_registry()
    overrides = [
        "tracking=none",
        f"estimator={estimator}",
        "inference=analytic",
        *CLUSTERED_600,
        *WORLDS[estimator],
        "dgp.cluster.role=false",
        f"mc.reps={R}",
        "mc.n_jobs=1",
    ]
    result = run_cell(validate(compose(overrides), registry), Session(registry))
    m = result.metrics
    lower = 0.95 - 3 * math.sqrt(0.95 * 0.05 / R)
    print(f"{estimator}: coverage {m['coverage']:.3f}, mean SE / empirical SE "
          f"{m['mean_se'] / m['emp_se']:.3f}")  # fmt: skip
    assert m["coverage"] < lower
    assert m["mean_se"] < 0.85 * m["emp_se"]
