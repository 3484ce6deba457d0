"""Run names for people: the estimator and replications, the file analysed, what a sweep varies."""

from __future__ import annotations

from dataclasses import replace

import pytest

from causalkit.cli import preflight
from causalkit.config import PluginChoice
from causalkit.launch import _axes
from causalkit.runner import run_name, sweep_name, varying_axes
from causalkit_plugins.data.files import FileParams

SWEEP = ["-m", "estimator=naive,itt", "dgp.n_users=2000,3000", "mc.reps=200", "mc.resume=false"]


@pytest.fixture(scope="module")
def plan():
    return preflight([*SWEEP, "tracking.experiment=names"])


def test_single_cells_say_estimator_and_reps_or_the_file(plan):
    cell = plan.cells[2]
    assert run_name(cell, _axes(plan.jobs[2])) == "itt · 200 reps"
    one = replace(cell, mc=cell.mc.model_copy(update={"reps": 1}))
    assert run_name(one, {"mc.resume": "false"}) == "itt · 1 rep"
    csv = PluginChoice("data", "csv", FileParams(path="/some/where/panel.csv"))
    real = replace(one, data=csv, dgp=PluginChoice("dgp", "none", cell.dgp.params))
    axes = {"data": "csv", "data.path": "/some/where/panel.csv", "data.roles.unit": "store"}
    assert run_name(real, axes) == "itt on panel.csv"
    placebo = replace(cell, data=csv)  # a DGP that resamples the user's table
    assert run_name(placebo, axes) == "itt · 200 reps on panel.csv"


def test_sweep_cells_name_only_what_varies_and_short(plan):
    varying = varying_axes(plan.jobs)
    assert list(varying) == ["estimator", "dgp.n_users"]  # mc.reps is constant, mc.resume noise
    names = [run_name(c, _axes(j), varying) for c, j in zip(plan.cells, plan.jobs, strict=True)]
    assert names == [
        "estimator=naive · n_users=2000",
        "estimator=naive · n_users=3000",
        "estimator=itt · n_users=2000",
        "estimator=itt · n_users=3000",
    ]
    assert sweep_name(plan.jobs) == "sweep: estimator ∈ {naive, itt} × n_users ∈ {2000, 3000}"


def test_names_never_show_tracking_or_resume_and_run_name_wins(plan):
    jobs = [
        ("estimator=itt", "mc.resume=false", "tracking.experiment=a"),
        ("estimator=itt", "mc.resume=true", "tracking.experiment=b"),
    ]
    assert varying_axes(jobs) == {}
    assert sweep_name(jobs) == "sweep"
    cell = plan.cells[2]
    axes = _axes(jobs[0])
    assert run_name(cell, axes, ["mc.resume", "tracking.experiment"]) == "itt · 200 reps"
    named = replace(cell, tracking=cell.tracking.model_copy(update={"run_name": "mine"}))
    assert run_name(named, axes, ["estimator"]) == "mine"


def test_colliding_short_keys_stay_whole():
    jobs = [("dgp.n=1", "estimator.n=1"), ("dgp.n=2", "estimator.n=3")]
    assert sweep_name(jobs) == "sweep: dgp.n ∈ {1, 2} × estimator.n ∈ {1, 3}"
