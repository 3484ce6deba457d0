"""``cli.compose`` is Hydra's public Compose API on ``conf/``; its shortcuts change nothing.

Reference: ``hydra.compose(config_name="config", overrides=...)`` inside
``initialize_config_dir`` on ``conf/``, with its ``hydra`` node dropped as Hydra drops it.
``compose`` deletes Hydra's own groups from the defaults list (it drops their output anyway)
and keeps compositions per overrides and per state of ``conf/``: exact equality of the
resolved containers, the same one-line :class:`ConfigError` for bad overrides, and a
changed YAML file composed afresh. No Hydra private module is imported by causalkit.
"""

from __future__ import annotations

import ast
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from causalkit import cli, composition
from causalkit.errors import ConfigError

GROUPS = ("data", "dgp", "estimator", "inference", "tracking", "experiment")


def _choices() -> Iterator[list[str]]:
    yield []
    for group in GROUPS:
        for path in sorted((cli.CONF_DIR / group).glob("*.yaml")):
            yield [f"{group}={path.stem}"]
    yield ["experiment=contaminated_holdout", "estimator=itt", "inference=none", "mc.reps=7"]
    yield ["experiment=seattle_dmi", "inference.level=0.9", "mc.seed=3"]
    yield ["estimator=microsynth", "+estimator.outcome_lag_periods=[1]", "tracking=none"]
    yield ["dgp.n_users=500", "~mc.target"]


def _reference(overrides: list[str]) -> Any:
    """Hydra's public compose, untouched: the resolved config, or the error as ``compose`` words it."""
    from hydra import compose as hydra_compose

    try:
        with composition.hydra_on_conf():
            cfg = hydra_compose(config_name="config", overrides=overrides)
            return OmegaConf.to_container(cfg, resolve=True)
    except Exception as exc:
        return f"ConfigError: {composition.translate(exc, overrides)}"


def _ours(overrides: list[str]) -> Any:
    try:
        return cli.compose(overrides)
    except ConfigError as exc:
        return f"ConfigError: {exc}"


@pytest.mark.parametrize("overrides", list(_choices()), ids=lambda o: " ".join(o) or "defaults")
def test_same_config_as_hydra_compose(overrides: list[str]) -> None:
    ours, ref = _ours(overrides), _reference(overrides)
    assert ours == ref
    if isinstance(ours, dict):
        assert "hydra" not in ours
        assert _ours(overrides) == ours  # from the cache: equal


@pytest.mark.parametrize(
    "overrides",
    [
        ["estimator=nope"],
        ["mc.nope=1"],
        ["estimator.nope=1"],
        ["+mc.reps=3"],
        ["mc.reps"],
        ["estimator=[a"],
        ["experiment=nope"],
        ["mc.reps=${oops}"],
        ["estimator=naive,itt"],
    ],
    ids=lambda o: " ".join(o),
)
def test_same_errors_as_hydra_compose(overrides: list[str]) -> None:
    ours, ref = _ours(overrides), _reference(overrides)
    assert isinstance(ref, str) and ref.startswith("ConfigError"), ref
    assert ours == ref and "\n" not in ours


def test_cli_cell_equals_compose() -> None:
    """The command line's plan composes each cell with its hydra node: the same application config."""
    plan = cli.preflight(
        ["-m", "experiment=contaminated_holdout", "estimator=naive,itt", "tracking=none"]
    )
    for job, composed in zip(plan.jobs, plan.composed, strict=True):
        assert "hydra" in composed
        assert composition.app_config(composed) == cli.compose(list(job))
    assert plan.jobs == (
        ("experiment=contaminated_holdout", "estimator=naive", "tracking=none"),
        ("experiment=contaminated_holdout", "estimator=itt", "tracking=none"),
    )


def test_cached_composition_is_a_fresh_copy_and_follows_conf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = cli.compose(["estimator=itt"])
    first["mc"]["reps"] = 99
    assert cli.compose(["estimator=itt"])["mc"]["reps"] == 1
    conf = tmp_path / "conf"
    shutil.copytree(cli.CONF_DIR, conf)
    monkeypatch.setattr(composition, "CONF_DIR", conf)
    assert cli.compose(["estimator=itt"])["mc"]["seed"] == 20261123
    text = (conf / "config.yaml").read_text().replace("seed: 20261123", "seed: 7")
    (conf / "config.yaml").write_text(text)
    assert cli.compose(["estimator=itt"])["mc"]["seed"] == 7  # a changed file is composed afresh


def test_no_hydra_private_api() -> None:
    """causalkit imports nothing from ``hydra._internal`` (Hydra's private modules)."""
    for path in Path(composition.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("hydra._"), f"{path.name}: from {node.module}"
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("hydra._") for a in node.names), path.name
