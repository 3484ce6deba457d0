"""Every config group composes and validates; typos and bad values fail with one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from causalkit.cli import CONF_DIR, compose, preflight
from causalkit.config import validate
from causalkit.errors import ConfigError
from causalkit.registry import default_registry


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))


def test_default_config_is_the_contamination_study():
    cfg = validate(compose([]))
    assert (cfg.data.name, cfg.dgp.name, cfg.estimator.name, cfg.inference.name) == (
        "synthetic",
        "contaminated_holdout",
        "microsynth",
        "bootstrap",
    )
    assert cfg.mc.reps == 1 and cfg.tracking.backend == "mlflow"


@pytest.mark.parametrize("group", ["estimator", "inference", "dgp", "data", "tracking"])
def test_every_option_of_every_group_composes(group):
    for option in _options(group):
        raw = compose([f"{group}={option}"])
        assert raw[group] is not None
        if group == "estimator":
            # the estimator's YAML must list exactly its params with their defaults
            cls = default_registry().get("estimator", option)
            declared = {k: v for k, v in raw["estimator"].items() if k != "name"}
            assert set(declared) == set(cls.Params.model_fields), option


@pytest.mark.parametrize("group", ["estimator", "dgp", "inference"])
def test_yaml_defaults_equal_params_defaults(group):
    reg = default_registry()
    for option in _options(group):
        if option == "auto":
            continue
        raw = compose([f"{group}={option}"])[group]
        if raw["name"] != option:
            continue  # a named parameterisation (e.g. heckman_selection_valid), not the defaults file
        cls = reg.get(group, raw["name"])
        values = {k: v for k, v in raw.items() if k != "name"}
        assert cls.Params.model_validate(values) == cls.Params(), (
            f"{group}/{option}.yaml defaults drift from its Params"
        )


def test_experiment_preset_composes_and_cli_overrides_win():
    cfg = validate(compose(["experiment=contaminated_holdout", "estimator=itt"]))
    assert cfg.estimator.name == "itt" and cfg.mc.target == "ATT"


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["estimator.weight_methd=x"], "estimator.weight_methd: expected one of the keys"),
        (["estimator=nope"], "estimator: expected one of"),
        (["estimator.balance_tol=-1"], "estimator.balance_tol: expected greater than 0, got -1"),
        (["mc.reps=0"], "mc.reps: expected greater than or equal to 1, got 0"),
        (["inference=analytic"], "inference: expected one of bootstrap"),
        (["dgp=none"], "data: expected a data source with a table"),
        (["data=csv", "dgp=none", "mc.reps=5"], "mc.reps: expected 1 for a real analysis"),
    ],
)
def test_validation_errors_are_one_line(overrides, needle):
    with pytest.raises(ConfigError) as info:
        preflight(overrides)
    message = str(info.value)
    assert needle in message and "\n" not in message


def test_sweep_preflight_validates_every_cell():
    plan = preflight(["-m", "estimator=naive,itt", "mc.reps=3", "tracking=none"])
    assert plan.multirun and [c.estimator.name for c in plan.cells] == ["naive", "itt"]
    with pytest.raises(ConfigError, match="estimator: expected one of"):
        preflight(["-m", "estimator=naive,bogus"])


def test_cell_hash_ignores_reps_jobs_and_tracking():
    a = validate(compose(["mc.reps=3", "mc.n_jobs=1", "tracking=none"]))
    b = validate(compose(["mc.reps=9", "mc.n_jobs=2"]))
    c = validate(compose(["mc.seed=1"]))
    assert a.cell_hash == b.cell_hash != c.cell_hash


def test_a_real_analysis_needs_an_outcome_but_a_plasmode_world_does_not(tmp_path):
    """``dgp=none`` analyses the table's outcome: naming none is a one-line error before any
    run; a DGP that simulates the outcome over the table's covariates needs no outcome role."""
    path = tmp_path / "x.csv"
    base = ["data=csv", f"data.path={path}", "data.roles.covariates=[a,b]", "estimator=ipw"]
    with pytest.raises(ConfigError, match=r"^data\.roles\.outcome: expected a column name"):
        validate(compose([*base, "dgp=none"]))
    assert validate(compose([*base, "dgp=plasmode"])).dgp.name == "plasmode"
