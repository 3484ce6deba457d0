"""``cli.compose`` leaves Hydra's own configuration out; it must equal Hydra's public ``compose``.

Reference: ``hydra.compose(config_name="config", overrides=...)`` inside the same
``initialize_config_dir``, with its ``hydra`` node dropped as Hydra drops it. Exact equality
of the resolved containers, and the same one-line :class:`ConfigError` for bad overrides.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from omegaconf import OmegaConf

from causalkit import cli
from causalkit.errors import ConfigError

GROUPS = ("data", "dgp", "estimator", "inference", "tracking", "experiment")


def _choices() -> Iterator[list[str]]:
    yield []
    for group in GROUPS:
        for path in sorted((cli.CONF_DIR / group).glob("*.yaml")):
            yield [f"{group}={path.stem}"]
    yield ["experiment=contaminated_holdout", "estimator=itt", "inference=none", "mc.reps=7"]
    yield ["experiment=seattle_dmi", "estimator.test=twosided", "mc.seed=3"]
    yield ["estimator=microsynth", "+estimator.outcome_lag_periods=[1]", "tracking=none"]
    yield ["dgp.n_users=500", "~mc.target"]


def _public(overrides: list[str]) -> Any:
    from hydra import compose as hydra_compose

    return hydra_compose(config_name="config", overrides=overrides)


def _both(overrides: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    def outcome() -> Any:
        try:
            return cli.compose(overrides)
        except ConfigError as exc:
            return f"ConfigError: {exc}"

    ours = outcome()
    with monkeypatch.context() as m:
        m.setattr(cli, "_compose_app", _public)
        ref = outcome()
    return ours, ref


@pytest.mark.parametrize("overrides", list(_choices()), ids=lambda o: " ".join(o) or "defaults")
def test_same_config_as_hydra_compose(overrides: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    ours, ref = _both(overrides, monkeypatch)
    if isinstance(ref, str) and "ConfigError" in ref:  # an override this preset does not accept
        assert ours == ref
        return
    assert isinstance(ours, dict)
    assert ours == ref
    assert "hydra" not in ours


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
    ],
    ids=lambda o: " ".join(o),
)
def test_same_errors_as_hydra_compose(overrides: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    ours, ref = _both(overrides, monkeypatch)
    assert isinstance(ref, str) and ref.startswith("ConfigError"), ref
    assert ours == ref


def test_struct_mode_like_hydra() -> None:
    raw = cli._compose_raw(["estimator=itt"])
    assert OmegaConf.is_struct(raw)
    assert "hydra" not in raw
