"""Common random numbers: every cell of a study analyses the same draws; the cache changes nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd

from causalkit.cli import compose
from causalkit.config import validate
from causalkit.drawcache import DrawCache
from causalkit.montecarlo import replication_seed, run_cell
from causalkit.registry import default_registry
from causalkit.session import Session
from causalkit_plugins.dgps.contaminated_holdout import ContaminatedHoldout


def _cfg(*overrides: str):
    return validate(compose(["tracking=none", "inference=none", *overrides]))


def _direct(cfg, r: int, group: str) -> float:
    """Difference in post-period means by ``group`` on replication r's draw, computed by hand."""
    ss = replication_seed(cfg.mc.seed, cfg.draw_hash, r)
    frame = (
        ContaminatedHoldout().simulate(np.random.Generator(np.random.PCG64(ss)), None).dataset.frame
    )
    post = frame[frame["week"] == 1]
    means = post.groupby(group)["converted"].mean()
    return float(means[1] - means[0])


def test_default_hashes_and_seeds_unchanged():
    cfg = _cfg("estimator=naive")
    assert "common_random_numbers" not in cfg.cell_dict()["mc"]
    assert cfg.draw_hash == cfg.cell_hash
    crn = _cfg("estimator=naive", "mc.common_random_numbers=true")
    assert crn.cell_hash != cfg.cell_hash


def test_cells_share_draws_and_cache_changes_nothing():
    session = Session(default_registry())  # its own draw cache: nothing global to clear
    naive = _cfg("estimator=naive", "mc.reps=6", "mc.common_random_numbers=true")
    itt = _cfg("estimator=itt", "mc.reps=6", "mc.common_random_numbers=true")
    assert naive.draw_hash == itt.draw_hash and naive.cell_hash != itt.cell_hash
    a = run_cell(naive, session).replications
    assert len(session.draws) == 6
    cached = session.draws.get((naive.draw_hash, 0))
    assert cached is not None and not cached.dataset.panel.columns["converted"].flags.writeable
    b = run_cell(itt, session).replications  # every draw from the cache
    for r in range(6):
        assert a["estimate"][r] == _direct(naive, r, "saw_ad")
        assert b["estimate"][r] == _direct(itt, r, "assigned_exposed")
    fresh = Session(session.registry)
    b_fresh = run_cell(itt, fresh).replications  # no cache: simulated again from the same seeds
    assert len(fresh.draws) == 6
    pd.testing.assert_frame_equal(
        b.drop(columns="seconds", errors="ignore"),
        b_fresh.drop(columns="seconds", errors="ignore"),
        check_exact=True,
    )
    two = run_cell(
        _cfg("estimator=itt", "mc.reps=6", "mc.common_random_numbers=true", "mc.n_jobs=2"), fresh
    )
    pd.testing.assert_frame_equal(b_fresh, two.replications, check_exact=True)


def test_cache_is_bounded():
    cache = DrawCache(max_bytes=400_000)  # room for two 160 kB draws
    sim = [ContaminatedHoldout().simulate(np.random.default_rng(i), None) for i in range(3)]
    for i, s in enumerate(sim):
        cache.put(("h", i), s)
    assert len(cache) == 2 and cache.get(("h", 0)) is None and cache.get(("h", 2)) is sim[2]
