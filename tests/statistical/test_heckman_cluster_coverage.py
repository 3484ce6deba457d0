"""Clustered ``heckman`` SEs: nominal with the cluster role, too small without it.

The world is :data:`~causalkit_plugins.dgps.heckman_selection.CLUSTERED_1000` (Heckman's
model holds user by user; 100 clusters of 10 share exposure, taste, noise and covariates),
run as the coverage matrix runs a cell (``run_cell``, its seeds), R = 300 each, two-step with
analytic inference on the ATE (the treatment's coefficient):

* with the ``cluster`` role the 95% interval must cover within the matrix's band,
  :math:`0.95 \\pm 3\\sqrt{0.95\\cdot0.05/R}` = [0.912, 0.988], and the mean SE be within
  3 Monte Carlo SEs of the empirical SE;
* with ``dgp.cluster.role=false`` (the same world without the role: the corrected model SE) coverage
  must fall below the band's lower limit and the mean SE below 85% of the empirical SE.

Time: 25 s measured on the shared machine, about 20 s on an idle core (two cells of 300
two-step fits at n = 1,000).
"""

from __future__ import annotations

import math

import pytest

from causalkit.cli import compose
from causalkit.config import validate
from causalkit.coverage import rel_se_mcse
from causalkit.montecarlo import run_cell
from causalkit.registry import default_registry
from causalkit.session import Session
from causalkit_plugins.dgps.heckman_selection import CLUSTERED_1000

pytestmark = pytest.mark.statistical

R = 300


def _cell(role: bool):
    registry = default_registry()
    overrides = [
        "tracking=none",
        "estimator=heckman",
        "inference=analytic",
        *CLUSTERED_1000,
        f"dgp.cluster.role={str(role).lower()}",
        f"mc.reps={R}",
        "mc.n_jobs=1",
    ]
    return run_cell(validate(compose(overrides), registry), Session(registry))


def test_clustered_se_is_nominal_and_ignoring_clusters_undercovers():
    lower = 0.95 - 3 * math.sqrt(0.95 * 0.05 / R)
    clustered, ignored = _cell(True), _cell(False)
    m = clustered.metrics
    ok = clustered.replications
    rel, rel_mcse = rel_se_mcse(
        ok["se"].to_numpy(float), m["emp_se"], ok["estimate"].to_numpy(float)
    )
    print(f"clustered: coverage {m['coverage']:.3f}, SE rel. error {rel:+.3f} +- {rel_mcse:.3f}")
    assert abs(m["coverage"] - 0.95) <= 0.95 - lower
    assert abs(rel) <= 3 * rel_mcse
    u = ignored.metrics
    print(
        f"ignored: coverage {u['coverage']:.3f}, mean SE / emp SE {u['mean_se'] / u['emp_se']:.3f}"
    )
    assert u["coverage"] < lower
    assert u["mean_se"] < 0.85 * u["emp_se"]
