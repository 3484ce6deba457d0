"""Coverage of cross-fitted AIPW CIs for the overall and the segment effects on ``position_bias``.

Known truth: the simulator's ATE and per-segment effects (mean of p1 - p0 over the rows of the
replication). A small world (6,000 impressions rows, short candidate sets, higher click rate)
keeps 200 replications affordable (marked slow). The estimator returns the vector (ATE, segment
effects) and its influence matrix; the intervals come from ``analytic`` inference, pointwise and
with ``joint=True`` (one sup-t band over the whole vector). Pass: pointwise coverage of the ATE
and of the segment effects, and simultaneous coverage of the whole vector, each within 3 Monte
Carlo SEs of 0.95; the naive lift's normal CI must miss the truth in most replications
(confounded ranking).
"""

from __future__ import annotations

import numpy as np
import pytest

from causalkit.contracts import Dataset, Roles
from causalkit_plugins.dgps.position_bias import PositionBias, PositionBiasParams
from causalkit_plugins.estimators.aipw.estimator import AIPW, AIPWParams
from causalkit_plugins.estimators.differences import difference_in_means
from causalkit_plugins.inference.basic import Analytic, AnalyticParams

pytestmark = [pytest.mark.statistical, pytest.mark.slow]

REPS = 200
LEVEL = 0.95
COVS = ("log_history_len", "log_candidate_set_size", "log_item_exposures", "category")
SEGMENT = "candidate_set_bucket"


def _world() -> PositionBias:
    return PositionBias(
        PositionBiasParams(
            n_rows=6000,
            n_users=2000,
            n_items=1500,
            n_subcategories=40,
            size_median=8.0,
            size_sigma=0.5,
            click_intercept=-2.2,
            rank_noise=2.0,
        )
    )


def _replication(ss: np.random.SeedSequence) -> tuple[bool, bool, list[bool], bool]:
    world = _world()
    est = AIPW(
        AIPWParams(
            folds=2,
            clip=0.01,
            min_segment_rows=300,
            min_segment_treated=30,
            min_segment_controls=30,
        )
    )
    rng = np.random.default_rng(ss)
    sim = world.simulate(rng, None)
    roles = Roles(treatment="is_top_3", outcome="clicked", covariates=COVS, segments=(SEGMENT,))
    fit = est.fit(Dataset(sim.dataset.frame, roles), rng)
    point = Analytic(AnalyticParams(level=LEVEL)).infer(fit, rng)
    band = Analytic(AnalyticParams(level=LEVEL, joint=True)).infer(fit, rng)
    frame = sim.dataset.frame
    nv, psi = difference_in_means(
        frame["clicked"].to_numpy(float), frame["is_top_3"].to_numpy(bool)
    )
    se = np.sqrt(np.sum(psi**2)) / psi.size
    table = fit.tables[f"segments.{SEGMENT}"].set_index("estimate")
    truth = np.array(
        [sim.truth.values["ATE"]]
        + [
            sim.truth.values[f"segment.{SEGMENT}.{table.loc[name, 'segment']}"]
            for name in fit.names[1:]
        ]
    )
    covered = (point.ci_lower <= truth) & (truth <= point.ci_upper)
    return (
        bool(covered[0]),
        bool(abs(nv - truth[0]) <= 1.96 * se),
        covered[1:].tolist(),
        bool(np.all((band.ci_lower <= truth) & (truth <= band.ci_upper))),
    )


def test_overall_and_segment_coverage():
    from joblib import Parallel, delayed

    seeds = np.random.SeedSequence(20261123).spawn(REPS)
    rows = Parallel(n_jobs=2)(delayed(_replication)(ss) for ss in seeds)
    hit = [r[0] for r in rows]
    naive_hit = [r[1] for r in rows]
    seg_hits = [h for r in rows for h in r[2]]
    seg_joint = [r[3] for r in rows]
    for name, h in (("ATE", hit), ("segments", seg_hits), ("joint", seg_joint)):
        cov = float(np.mean(h))
        mcse = np.sqrt(LEVEL * (1 - LEVEL) / len(h))
        print(name, cov, len(h), mcse)
        assert abs(cov - LEVEL) <= 3 * mcse, (
            f"{name} coverage {cov:.3f} over {len(h)} (MCSE {mcse:.4f})"
        )
    assert np.mean(naive_hit) < 0.5, (
        f"naive lift covers the truth in {np.mean(naive_hit):.2f} of replications"
    )
