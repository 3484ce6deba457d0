"""Replications planned from a target MCSE: deterministic boundaries, the stop, the cap, resume."""

from __future__ import annotations

import math

import pytest

from causalkit.checkpoint import Checkpoint
from causalkit.cli import compose
from causalkit.config import validate
from causalkit.errors import ConfigError
from causalkit.identity import cell_identity
from causalkit.montecarlo import run_cell
from causalkit.planning import FIRST_BATCH, Plan, checked_mcse
from causalkit.registry import default_registry
from causalkit.runner import execute

# itt stops after a few boundaries (20 -> ... -> about 180 replications) in well under a second.
PLANNED = [
    "estimator=itt",
    "mc.reps=20",
    "mc.target_mcse.emp_se=0.004",
    "mc.target_mcse.coverage=0.03",
    "mc.max_reps=400",
]


def _cfg(*extra: str):
    return validate(compose([*PLANNED, *extra]))


def _metrics(out) -> dict[str, float]:
    return {k: v for k, v in out.metrics.items() if k != "seconds"}


def test_the_stop_is_deterministic_and_meets_every_target():
    first, again = run_cell(_cfg()), run_cell(_cfg())
    m = first.metrics
    assert _metrics(first) == _metrics(again)
    assert m["targets_met"] == 1.0 and m["reps_capped"] == 0.0
    assert 20 < m["reps"] < 400 and len(first.replications) == m["reps"]
    # the achieved MCSEs are summarise's own, and meet their targets
    assert m["achieved_mcse.emp_se"] == m["emp_se_mcse"] <= 0.004
    assert m["achieved_mcse.coverage"] == m["coverage_mcse"] <= 0.03
    assert m["target_mcse.coverage"] == 0.03 and m["max_reps"] == 400.0
    # the boundary before the stop had not met them: the cell did not run on needlessly
    plan = Plan.of(first.config.mc)
    assert plan is not None
    reps, boundaries = 20, [20]
    while reps < m["reps"]:
        rows = run_cell(validate(compose(["estimator=itt", f"mc.reps={reps}"])))
        reps = plan.next_boundary(reps, rows.metrics)
        boundaries.append(reps)
    assert boundaries[-1] == m["reps"]
    assert "every target met at" in str(first)


def test_replications_are_those_of_a_fixed_cell_and_the_seeds_do_not_change():
    planned = run_cell(_cfg())
    n = int(planned.metrics["reps"])
    fixed_cfg = validate(compose(["estimator=itt", f"mc.reps={n}"]))
    assert planned.config.cell_hash == fixed_cfg.cell_hash  # seeds: the plan is not in the hash
    fixed = run_cell(fixed_cfg)
    assert planned.replications.equals(fixed.replications)
    # a config without targets logs (and hashes) exactly what it did before the fields existed
    assert "target_mcse" not in fixed_cfg.to_dict()["mc"]
    assert "max_reps" not in fixed_cfg.to_dict()["mc"]
    # but the planned cell is another identity: it never reads back or resumes a fixed one
    reg = default_registry()
    assert cell_identity(planned.config, reg).key != cell_identity(fixed_cfg, reg).key


def test_workers_give_bit_identical_metrics():
    one = run_cell(_cfg())
    two = run_cell(_cfg("mc.n_jobs=2"))
    assert _metrics(one) == _metrics(two)


def _planned(*overrides: str):
    return run_cell(validate(compose(["estimator=itt", "mc.reps=20", *overrides])))


def test_the_cap_stops_it_and_says_so():
    out = _planned("mc.target_mcse.bias=0.0001", "mc.max_reps=60")
    m = out.metrics
    assert m["reps"] == 60 and m["reps_capped"] == 1.0 and m["targets_met"] == 0.0
    assert m["achieved_mcse.bias"] == m["bias_mcse"] > 0.0001
    assert "the cap of 60 replications, a target unmet" in str(out)


def test_an_undefined_target_stops_at_the_first_boundary():
    out = _planned("inference=none", "mc.target_mcse.coverage=0.01", "mc.max_reps=400")
    m = out.metrics
    assert m["reps"] == 20 and m["targets_met"] == 0.0 and m["reps_capped"] == 0.0
    assert math.isnan(m["achieved_mcse.coverage"])
    assert "undefined at 20 replications" in str(out)


class _Stop(Exception):
    pass


def test_resume_after_an_interruption_mid_batch(tmp_path):
    cfg = _cfg()
    ref = run_cell(cfg)
    ckpt = Checkpoint.for_cell(tmp_path, cell_identity(cfg, default_registry()).key)
    seen: list[int] = []

    def interrupt(done: int, total: int) -> None:
        seen.append(done)
        if done > 40:  # inside the second batch (20 -> at least 80)
            raise _Stop

    with pytest.raises(_Stop):
        run_cell(cfg, progress=interrupt, checkpoint=ckpt)
    saved = ckpt.load()
    assert 40 < len(saved) < ref.metrics["reps"]
    resumed = run_cell(cfg, checkpoint=ckpt)
    assert _metrics(resumed) == _metrics(ref)
    assert resumed.replications.equals(ref.replications)


def test_a_finished_planned_cell_is_read_back_and_never_confused_with_a_fixed_one(tmp_path):
    fixed = execute(validate(compose(["estimator=itt", "mc.reps=20"])), start_dir=tmp_path)
    notes: list[str] = []
    planned = execute(_cfg(), start_dir=tmp_path, notice=notes.append)
    assert not notes  # the fixed 20-replication run is not this cell
    assert planned.metrics["reps"] > fixed.metrics["reps"]
    again = execute(_cfg(), start_dir=tmp_path, notice=notes.append)
    assert "already finished" in notes[0]
    assert _metrics(again) == _metrics(planned)  # read back, plan report included


def test_first_batch_and_plan_checks():
    cfg = validate(compose(["estimator=itt", "mc.target_mcse.bias=0.01", "mc.max_reps=5000"]))
    assert cfg.mc.reps == FIRST_BATCH  # left at 1: the documented first batch
    small = validate(compose(["estimator=itt", "mc.target_mcse.bias=0.01", "mc.max_reps=30"]))
    assert small.mc.reps == 30
    bad = {
        "mc.target_mcse.foo=1": "mc.target_mcse.foo: expected one of the keys bias, coverage",
        "mc.target_mcse.rmse=0": "mc.target_mcse.rmse: expected greater than 0",
        "mc.target_mcse.emp_se=-0.1": "mc.target_mcse.emp_se: expected greater than 0",
        "mc.target_mcse.bias=0.1 mc.reps=50 mc.max_reps=10": "mc.max_reps: expected at least mc.reps (50)",
        "mc.target_mcse.bias=0.1": "mc.max_reps: expected a cap",
        "mc.max_reps=100": "mc.max_reps: expected null without mc.target_mcse",
    }
    for overrides, message in bad.items():
        with pytest.raises(ConfigError) as err:
            validate(compose(["estimator=itt", *overrides.split()]))
        assert str(err.value).startswith(message) and "\n" not in str(err.value), overrides
    with pytest.raises(ConfigError, match=r"^mc\.target_mcse\.coverage: expected"):
        validate({**compose(["estimator=itt"]), "mc": {"target_mcse": {"coverage": "x"}}})


def test_boundaries_grow_within_bounds_and_stop_at_the_cap():
    plan = Plan((("bias", 0.01),), 100, 1000)
    base = {"reps": 100.0, "n_failed": 0.0}
    assert plan.next_boundary(100, {**base, "bias_mcse": 0.0099}) is None  # met
    assert plan.next_boundary(100, {**base, "bias_mcse": 0.0101}) == 110  # at least 1.1 R
    assert plan.next_boundary(100, {**base, "bias_mcse": 0.015}) == math.ceil(1.05 * 225)
    assert plan.next_boundary(100, {**base, "bias_mcse": 0.1}) == 400  # at most 4 R
    assert plan.next_boundary(400, {**base, "reps": 400.0, "bias_mcse": 0.1}) == 1000  # the cap
    assert plan.next_boundary(1000, {**base, "reps": 1000.0, "bias_mcse": 0.1}) is None
    assert plan.next_boundary(100, {**base, "bias_mcse": math.nan}) is None  # undefined


def test_full_coverage_is_not_taken_as_exact():
    # every interval covered: summarise's MCSE is 0, the check uses one miss in R instead
    m = {"coverage": 1.0, "coverage_mcse": 0.0, "reps": 100.0, "n_failed": 0.0}
    assert checked_mcse("coverage", m) == pytest.approx(math.sqrt(0.01 * 0.99 / 100))
    m = {"coverage": 0.9, "coverage_mcse": math.sqrt(0.09 / 100), "reps": 100.0, "n_failed": 0.0}
    assert checked_mcse("coverage", m) == m["coverage_mcse"]
