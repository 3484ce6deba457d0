"""Propensity-score matching on Cattaneo (2010) birth weights against Stata ``teffects psmatch``.

Data: ``cataneo2.csv`` from statsmodels' ``statsmodels/treatment/tests/results/`` folder,
copied to ``tests/data/cattaneo2.csv.gz``. Reference numbers: the Stata manual's example
([TE] teffects psmatch, example 1; logit score, one match, ATE, ``vce(robust, nn(2))``)::

    teffects psmatch (bweight) (mbsmoke mmarried c.mage##c.mage fbaby medu), caliper(0.1)
        ATE -210.9683, AI robust SE 32.021
    ... nneighbor(4)
        ATE -224.006

Agreement required: the printed digits (half a unit of the last printed digit).

What it takes to reproduce them:

- **Ties.** Stata matches on the estimated probability and keeps every control tied with
  the nearest one, ties being exact up to rounding. Most covariates here are discrete, so
  many units share a score, and distinct scores on either side of a unit can be nearly
  equidistant. A tolerance of 1e-5 standardised units (R ``Matching``'s
  ``distance.tolerance``, our former default) turns two such near-ties into ties and gives
  -211.287; any tolerance below about 1e-7 on the probability scale gives Stata's
  -210.9683. ``psm`` now defaults to ``sqrt(machine eps)`` for a score.
- **SE.** Stata's default ``vce(robust, nn(2))`` estimates the conditional variances from
  sets of two units of the same arm *counting the unit itself* (``var_matches=1`` here,
  whose sets are the unit and its nearest neighbour) and adds the Abadie & Imbens (2016)
  adjustment for the estimated score, with local covariances from the two nearest units of
  each arm (``se="ai2016"``, the default). Without the adjustment the SE is 32.123.
- **Caliper.** ``caliper(0.1)`` is a distance on the probability scale; no unit's nearest
  opposite-arm score is that far (asserted below), so it does not bind and the run
  without a caliper is the same estimator.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from causalkit.contracts import Dataset, Estimand, Roles
from causalkit_plugins.estimators.selection.psm import PSM, PSMParams
from causalkit_plugins.inference.basic import Analytic

pytestmark = pytest.mark.reference

DATA = Path(__file__).resolve().parents[1] / "data" / "cattaneo2.csv.gz"
ROLES = Roles(
    outcome="bweight",
    treatment="mbsmoke_",
    covariates=("mmarried_", "mage", "mage2", "fbaby_", "medu"),
)
STATA = {1: (-210.9683, 4), 4: (-224.006, 3)}  # matches -> (ATE, printed decimals)
STATA_SE = (32.021, 3)


@pytest.fixture(scope="module")
def births() -> Dataset:
    return Dataset(pd.read_csv(DATA), ROLES)


def _fit(births: Dataset, **params):
    est = PSM(PSMParams(estimand="ate", var_matches=1, **params))
    return est.fit(births, np.random.default_rng(0))


@pytest.mark.parametrize("k", [1, 4])
def test_psmatch_estimate_matches_stata(births, k):
    fit = _fit(births, k=k)
    value, decimals = STATA[k]
    assert fit.estimand is Estimand.ATE
    assert abs(fit.estimate - value) <= 0.5 * 10.0**-decimals
    assert fit.diagnostics["n_unmatched"] == 0


def test_psmatch_ai2016_se_matches_stata(births):
    fit = _fit(births)
    se = Analytic().infer(fit, np.random.default_rng(0)).se[0]
    value, decimals = STATA_SE
    assert abs(se - value) <= 0.5 * 10.0**-decimals
    assert fit.diagnostics["ps_estimation_ignored_in_se"] is False
    assert fit.diagnostics["se_score_adjustment"] < 0  # the ATE adjustment is never positive
    unadjusted = _fit(births, se="ai2006").model_se[0]
    assert unadjusted == pytest.approx(32.123, abs=5e-4)


def test_stata_caliper_does_not_bind(births):
    overlap = _fit(births).tables["overlap"]
    e, t = overlap["score"].to_numpy(), overlap["treated"].to_numpy() == 1
    for focal, pool in ((e[t], np.sort(e[~t])), (e[~t], np.sort(e[t]))):
        pos = np.clip(np.searchsorted(pool, focal), 1, pool.size - 1)
        gap = np.minimum(np.abs(focal - pool[pos - 1]), np.abs(focal - pool[pos]))
        assert gap.max() < 0.1


def test_near_ties_within_1e5_give_the_old_estimate(births):
    """The former default tolerance (1e-5 SD) merges two near-ties: not Stata's estimate."""
    assert _fit(births, tie_tolerance=1e-5).estimate == pytest.approx(-211.287, abs=5e-4)
