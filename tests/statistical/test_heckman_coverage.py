"""Coverage of the Heckman two-step corrected SE and the OLS regression-adjustment SE.

Each check runs 1,000 replications of a world where the estimator is valid and asks the 95%
Wald interval to cover the truth at a rate within 3 Monte Carlo SEs of 0.95
(MCSE = sqrt(0.95 * 0.05 / 1000) = 0.0069, so the band is [0.929, 0.971]).
"""

from __future__ import annotations

import numpy as np
import pytest

from causalkit_plugins.dgps.heckman_selection import (
    HeckmanSelection,
    HeckmanSelectionParams,
    OutcomeCoefficients,
    SelectionCoefficients,
    TreatmentCoefficients,
)
from causalkit_plugins.estimators.selection.heckman import Heckman
from causalkit_plugins.estimators.selection.ols import OLS, OLSParams
from causalkit_plugins.inference.basic import Analytic

pytestmark = pytest.mark.statistical

REPS = 1000
LEVEL = 0.95
MCSE = np.sqrt(LEVEL * (1 - LEVEL) / REPS)


def _rngs(seed: int) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(REPS)]


def _assert_coverage(hits: np.ndarray, label: str) -> None:
    rate = float(np.mean(hits))
    assert abs(rate - LEVEL) < 3 * MCSE, (
        f"{label}: coverage {rate:.3f} outside {LEVEL} ± 3·{MCSE:.4f}"
    )


def test_heckman_twostep_corrected_se_covers():
    # Heckman's model holds: probit selection, exogenous exposure, z excluded from spend
    sel = SelectionCoefficients(link="probit", u=0.7, z=0.8)
    out = OutcomeCoefficients(u=0.8, noise_sd=1.0)
    dgp = HeckmanSelection(
        HeckmanSelectionParams(
            n=600, treatment=TreatmentCoefficients(u=0.0), selection=sel, outcome=out
        )
    )
    # selection term: beta_lambda = cov(outcome error, selection error) / sd(selection error)
    beta_lambda = out.u * sel.u / np.sqrt(sel.u**2 + 1.0)
    est = Heckman()
    hits_tau, hits_lambda = np.empty(REPS, bool), np.empty(REPS, bool)
    for r, rng in enumerate(_rngs(20240401)):
        sim = dgp.simulate(rng)
        fit = est.fit(sim.dataset, rng)
        inf = Analytic().infer(fit, rng)  # estimates: the treatment effect, then lambda
        hits_tau[r] = inf.ci_lower[0] <= sim.truth.values["ATE"] <= inf.ci_upper[0]
        hits_lambda[r] = inf.ci_lower[1] <= beta_lambda <= inf.ci_upper[1]
    _assert_coverage(hits_tau, "heckman treat coefficient")
    _assert_coverage(hits_lambda, "heckman lambda coefficient")


@pytest.mark.parametrize("estimand", ["ate", "att"])
def test_ols_ra_influence_se_covers(estimand):
    # no sample selection, exposure ignorable given (x1, x2), heterogeneous effect in x1
    params = HeckmanSelectionParams(
        n=400,
        treatment=TreatmentCoefficients(u=0.0),
        outcome=OutcomeCoefficients(tau_x1=1.0),
        outcome_observed="all",
    )
    dgp = HeckmanSelection(params)
    est = OLS(OLSParams(estimand=estimand))
    hits = np.empty(REPS, bool)
    key = estimand.upper()
    for r, rng in enumerate(_rngs(20240402)):
        sim = dgp.simulate(rng)
        inf = Analytic().infer(est.fit(sim.dataset, rng), rng)
        hits[r] = inf.ci_lower[0] <= sim.truth.values[key] <= inf.ci_upper[0]
    _assert_coverage(hits, f"ols {estimand}")
