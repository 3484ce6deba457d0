"""Monte Carlo on the ad_holdout world: ITT and CACE recover their truths and cover them; as-treated is biased.

The MicroSynth document ("When Balancing Is Not Enough", n_per_arm=8000, delta=1) reports
as-treated 1.286, ITT 0.806 (truth 0.779), CACE 1.035 (truth 1.0) for one draw. Our draws
differ; the pattern is checked here across replications, against the DGP's population truths.
"""

from __future__ import annotations

import numpy as np
import pytest

from causalkit_plugins.dgps.ad_holdout import AdHoldout, AdHoldoutParams
from causalkit_plugins.estimators.microsynth.estimator import MicroSynth, MicroSynthParams
from causalkit_plugins.inference.bootstrap import Bootstrap, BootstrapParams

pytestmark = pytest.mark.statistical


def _estimates(
    reps: int, n_per_arm: int, seed: int
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    dgp = AdHoldout(AdHoldoutParams(n_per_arm=n_per_arm))
    out: dict[str, list[float]] = {"att": [], "itt": [], "cace": []}
    truth: dict[str, float] = {}
    for child in np.random.SeedSequence(seed).spawn(reps):
        sim = dgp.simulate(np.random.default_rng(child))
        truth = dict(sim.truth.values)
        for e in out:
            out[e].append(
                MicroSynth(MicroSynthParams(estimand=e))
                .fit(sim.dataset, np.random.default_rng(0))
                .estimate
            )
    return {k: np.asarray(v) for k, v in out.items()}, truth


def test_pattern_itt_and_cace_unbiased_as_treated_biased():
    """200 replications at n_per_arm=1000: |bias| of ITT and CACE within 4 MCSE; as-treated bias > 0.15."""
    est, truth = _estimates(200, 1000, 11)
    for e, key in (("itt", "ITT"), ("cace", "CACE")):
        mcse = est[e].std(ddof=1) / np.sqrt(est[e].size)
        assert abs(est[e].mean() - truth[key]) < 4 * mcse, (e, est[e].mean(), truth[key], mcse)
    # The document's draw: as-treated overstates the per-exposure effect by ~29%.
    assert est["att"].mean() - truth["ATT"] > 0.15
    assert np.mean(est["att"] > est["cace"]) > 0.9


@pytest.mark.slow
def test_bootstrap_ci_of_itt_and_cace_cover():
    """150 replications, n_per_arm=500, 100 paired-bootstrap draws: 95% percentile CIs cover in [0.89, 0.99]."""
    dgp = AdHoldout(AdHoldoutParams(n_per_arm=500))
    boot = Bootstrap(BootstrapParams(n_boot=100))
    hits: dict[str, list[bool]] = {"itt": [], "cace": []}
    failed = 0
    for child in np.random.SeedSequence(5).spawn(150):
        rng = np.random.default_rng(child)
        sim = dgp.simulate(rng)
        for e, key in (("itt", "ITT"), ("cace", "CACE")):
            fit = MicroSynth(MicroSynthParams(estimand=e)).fit(sim.dataset, rng)
            out = boot.infer(fit, rng)
            failed += int(out.diagnostics["n_failed"])
            hits[e].append(bool(out.ci_lower[0] <= sim.truth.values[key] <= out.ci_upper[0]))
    assert failed == 0
    for e, h in hits.items():
        # 150 Bernoulli(0.95) draws: SD 0.018; the band is about +-2.5 SD around 0.95 (0.94 for
        # the percentile interval's known slight under-coverage at B=100, n=1000).
        assert 0.89 <= np.mean(h) <= 0.99, (e, np.mean(h))
