"""``python -m causalkit.plugins``: choices, roles and inference per plugin, as text and JSON;
the registry imports a plugin's module only when the plugin is asked for."""

from __future__ import annotations

import json
from enum import Enum
from importlib.metadata import EntryPoint, EntryPoints
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from causalkit.contracts import Estimand, EstimandName
from causalkit.errors import PluginError
from causalkit.plugins import _params, catalogue, describe, main
from causalkit.registry import Registry, default_registry
from causalkit_plugins.estimators.selection.estimands import estimand_in


def _entry(listing: dict[str, list[dict[str, Any]]], kind: str, name: str) -> dict[str, Any]:
    return next(p for p in listing[kind] if p["name"] == name)


def test_listing_shows_choices_roles_and_inference() -> None:
    text = describe(default_registry(), ["estimator", "inference"])
    lines = text.splitlines()
    assert "[Literal" not in text and "PydanticUndefined" not in text
    ms = lines.index(next(s for s in lines if s.startswith("  microsynth — ")))
    assert "(inference: bootstrap, none, permutation; default bootstrap)" in lines[ms]
    assert lines[ms + 1] == "    roles: required outcome, covariates; optional cluster, weight"
    # an Enum field lists only the members the estimator accepts
    assert "    estimand = 'ATT'  [one of 'ATT', 'ITT', 'CACE']" in lines[ms + 2]
    assert any(
        s.startswith("    match_on = 'propensity'  [one of 'propensity', 'logit', 'covariates']")
        for s in lines
    )
    assert "    roles: required outcome, treatment; optional cluster, weight" in lines
    assert any(
        s.startswith("      cf_y = 0.03  [float]") for s in lines
    )  # aipw.sensitivity default
    assert any(
        s.startswith("    ci = 'percentile'  [one of 'percentile', 'normal']") for s in lines
    )


def test_json_listing_carries_the_same_content(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json", "estimator", "inference"]) == 0
    shown = json.loads(capsys.readouterr().out)
    want = catalogue(default_registry(), ["estimator", "inference"])
    assert shown == json.loads(json.dumps(want))
    psm = _entry(shown, "estimator", "psm")
    assert psm["roles"] == {
        "required": ["outcome", "treatment"],
        "optional": ["cluster", "weight"],
        "refused": [],
    }
    assert psm["inference"] == {"default": "analytic", "supported": ["analytic", "none"]}
    estimand = next(p for p in psm["params"] if p["name"] == "estimand")
    assert (estimand["default"], estimand["choices"]) == ("ATT", ["ATE", "ATT", "ATC"])
    assert _entry(shown, "inference", "multiplier")["requires_any"] == ["influence"]
    assert _entry(shown, "inference", "none")["requires_any"] == []


class _Colour(str, Enum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


class _Toy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    needed: float  # no default: the model cannot be built from defaults alone
    estimand: Annotated[EstimandName, estimand_in(Estimand.ATE, Estimand.ATT)] = Estimand.ATE
    colour: _Colour | None = Field(None, description="a colour")


def test_enum_choices_fall_back_to_the_field_validators() -> None:
    params = {p["name"]: p for p in _params(_Toy)}
    assert params["needed"]["required"] and params["needed"]["choices"] is None
    assert params["estimand"]["choices"] == ["ATE", "ATT"]
    assert params["colour"]["choices"] == ["red", "green", "blue", None]


def test_registry_imports_a_plugin_when_it_is_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    advertised = EntryPoints(
        [
            EntryPoint("gone", "causalkit_no_such_module:Gone", "causalkit.dgp"),
            EntryPoint(
                "itt", "causalkit_plugins.estimators.differences:ITT", "causalkit.estimator"
            ),
        ]
    )
    monkeypatch.setattr("causalkit.registry.entry_points", lambda: advertised)
    lazy = Registry().load_entry_points(lazy=True)
    assert lazy.names("dgp") == ["gone"] and lazy.names("estimator") == ["itt"]
    assert not lazy.broken  # nothing imported yet
    assert lazy.get("estimator", "itt").name == "itt"
    with pytest.raises(PluginError, match="'gone' .* is broken"):
        lazy.get("dgp", "gone")
    assert list(lazy.broken) == [("dgp", "gone")]
    eager = Registry().load_entry_points()  # every module imported now, failures recorded
    assert list(eager.broken) == [("dgp", "gone")] and eager.names("estimator") == ["itt"]


def test_listing_is_cached_under_the_fingerprint_of_the_installed_code(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import causalkit.plugins as plugins_module
    from causalkit import plugin_cache

    monkeypatch.setenv("CAUSALKIT_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["estimator"]) == 0
    built = capsys.readouterr().out
    assert built.strip() == describe(default_registry(), ["estimator"])
    [cached] = (tmp_path / "cache").glob("plugins-*.json")

    def no_registry() -> Registry:
        raise AssertionError("the cached listing was not used")

    monkeypatch.setattr(plugins_module, "default_registry", no_registry)
    assert main(["estimator"]) == 0
    assert capsys.readouterr().out == built
    # a corrupt cache file is rebuilt, not shown
    cached.write_text("{")
    monkeypatch.undo()
    monkeypatch.setenv("CAUSALKIT_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["estimator"]) == 0
    assert capsys.readouterr().out == built
    assert json.loads(cached.read_text())["estimator"]

    # an edited, added or removed module file changes the signature the fingerprint hashes
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "plugin.py").write_text("X = 1\n")
    before = plugin_cache.files_signature([pkg])
    (pkg / "plugin.py").write_text("X = 22\n")
    edited = plugin_cache.files_signature([pkg])
    (pkg / "other.py").write_text("")
    added = plugin_cache.files_signature([pkg])
    assert before != edited != added and len(added) == 2


def test_a_registry_with_broken_plugins_is_not_cached(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import causalkit.plugins as plugins_module

    broken = Registry()
    broken.broken[("estimator", "bad")] = "estimator plugin 'bad' (x:Y) is broken: boom"
    monkeypatch.setenv("CAUSALKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(plugins_module, "default_registry", lambda: broken)
    plugins_module.installed_catalogue(["estimator"])
    assert not list((tmp_path / "cache").glob("plugins-*.json"))
