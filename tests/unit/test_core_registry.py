"""The registry: validation at registration, clear unknown-name errors, entry-point discovery."""

from __future__ import annotations

from importlib.metadata import EntryPoint, EntryPoints
from typing import ClassVar

import numpy as np
import pytest

from causalkit import testing
from causalkit.contracts import Capability, Dataset, Estimand, Fit, Params, Roles
from causalkit.errors import PluginError
from causalkit.registry import Registry, default_registry


class ThirdPartyParams(Params):
    shrink: float = 0.5


class ThirdPartyEstimator:
    """A third-party estimator: a shrunk difference in means."""

    name: ClassVar[str] = "shrunk"
    Params: ClassVar[type[Params]] = ThirdPartyParams
    required_roles: ClassVar[tuple[str, ...]] = ("outcome", "treatment")
    default_inference: ClassVar[str] = "none"

    @classmethod
    def capabilities(cls, params: Params) -> frozenset[Capability]:
        return frozenset()

    def __init__(self, params: ThirdPartyParams | None = None) -> None:
        self.params = params or ThirdPartyParams()

    def fit(self, data: Dataset, rng: np.random.Generator) -> Fit:
        y = data.frame[data.roles.outcome].to_numpy(float)
        d = data.frame[data.roles.treatment].to_numpy(bool)
        return Fit(Estimand.ATE, self.params.shrink * (y[d].mean() - y[~d].mean()), len(y))


def test_builtins_pass_the_conformance_checks():
    testing.check_registry(default_registry())


def test_unknown_name_lists_registered():
    with pytest.raises(
        PluginError, match=r"estimator: expected one of .*itt.*microsynth.*naive.*got 'nope'"
    ):
        default_registry().get("estimator", "nope")


def test_registration_rejects_malformed_plugins():
    class NoParams:
        name = "bad"

    with pytest.raises(PluginError, match="missing"):
        Registry().register("estimator", NoParams)

    class Loose(ThirdPartyEstimator):
        class Params(Params):  # type: ignore[no-redef]
            model_config = {"extra": "allow"}

    with pytest.raises(PluginError, match="forbid unknown keys"):
        Registry().register("estimator", Loose)


def test_third_party_plugin_through_entry_points(monkeypatch):
    ep = EntryPoint(
        name="shrunk", value=f"{__name__}:ThirdPartyEstimator", group="causalkit.estimator"
    )
    import causalkit.registry as registry_module

    real = registry_module.entry_points

    def fake():  # everything installed, plus one more (as a third-party package would add it)
        advertised = real()
        return EntryPoints(
            [*(e for g in advertised.groups for e in advertised.select(group=g)), ep]
        )

    monkeypatch.setattr(registry_module, "entry_points", fake)
    reg = Registry().load_entry_points()
    assert reg.get("estimator", "shrunk") is ThirdPartyEstimator
    assert "microsynth" in reg.names("estimator")  # built-ins arrive the same way
    frame = __import__("pandas").DataFrame({"y": [1.0, 2.0, 3.0, 5.0], "d": [0, 0, 1, 1]})
    fit = testing.check_estimator(
        ThirdPartyEstimator, Dataset(frame, Roles(outcome="y", treatment="d"))
    )
    assert fit.estimate == pytest.approx(0.5 * 2.5)

    import causalkit as ck

    assert reg.pairings("shrunk") == ("none",)  # no capability: only inference=none serves it
    res = ck.fit(frame, estimator="shrunk", outcome="y", treatment="d", shrink=1.0, registry=reg)
    assert res.estimate == pytest.approx(2.5) and res.inference == "none"


def test_plugin_listing_shows_valid_inference_and_default():
    from causalkit.plugins import describe

    reg = default_registry()
    lines = describe(reg, ["estimator", "inference"]).splitlines()
    for name in reg.names("estimator"):
        line = next(s for s in lines if s.startswith(f"  {name} — "))
        want = (
            f"(inference: {', '.join(reg.pairings(name))}; default {reg.default_inference(name)})"
        )
        assert want in line
    psm = next(s for s in lines if s.startswith("  psm — "))
    assert "(inference: analytic, none; default analytic)" in psm  # matching: no bootstrap
    assert any(
        s.startswith("  multiplier — ") and "(requires any of: influence)" in s for s in lines
    )
    assert any(s.startswith("  none — ") and "(any fit)" in s for s in lines)
