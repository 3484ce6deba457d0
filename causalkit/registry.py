"""The plugin registry: one object holding every data source, DGP, estimator and inference."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, Literal

from causalkit.errors import PluginError

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = ["Kind", "KINDS", "ENTRY_POINT_GROUPS", "Registry", "default_registry"]

Kind = Literal["data", "dgp", "estimator", "inference"]
KINDS: tuple[Kind, ...] = ("data", "dgp", "estimator", "inference")
ENTRY_POINT_GROUPS: dict[Kind, str] = {kind: f"causalkit.{kind}" for kind in KINDS}

_REQUIRED_ATTRS: dict[Kind, tuple[str, ...]] = {
    "data": ("name", "Params", "load"),
    "dgp": ("name", "Params", "simulate", "needs_base"),
    "estimator": (
        "name",
        "Params",
        "fit",
        "required_roles",
        "default_inference",
        "capabilities",
    ),
    "inference": ("name", "Params", "infer", "requires_any"),
}


@dataclass
class Registry:
    """Plugins by kind and name.

    Built-in plugins are registered through the same entry-point groups a third-party
    package uses (``causalkit.data``, ``causalkit.dgp``, ``causalkit.estimator``,
    ``causalkit.inference``). Tests build a fresh ``Registry()`` and register by hand.

    With ``load_entry_points(lazy=True)`` an advertised plugin's module is imported when the
    plugin is first asked for (:meth:`get`, :meth:`pairings`, :meth:`load_all`), so a run
    imports only the plugins it uses; :attr:`broken` then lists the failures met so far.
    """

    _plugins: dict[str, dict[str, type]] = field(
        default_factory=lambda: {kind: {} for kind in KINDS}
    )
    broken: dict[tuple[str, str], str] = field(default_factory=dict)
    _pending: dict[str, dict[str, list[EntryPoint]]] = field(
        default_factory=lambda: {kind: {} for kind in KINDS}
    )

    def register(self, kind: Kind, plugin: Any, name: str | None = None) -> Any:
        """Validate and add ``plugin`` under ``kind``; returns the plugin (usable as decorator)."""
        if kind not in KINDS:
            raise PluginError(f"plugin kind: expected one of {', '.join(KINDS)}, got {kind!r}")
        missing = [a for a in _REQUIRED_ATTRS[kind] if not hasattr(plugin, a)]
        if missing:
            raise PluginError(
                f"{kind} plugin {getattr(plugin, '__name__', plugin)!r}: missing {', '.join(missing)}"
            )
        from pydantic import BaseModel

        params = plugin.Params
        if not (isinstance(params, type) and issubclass(params, BaseModel)):
            raise PluginError(f"{kind} plugin {plugin.name!r}: Params must be a pydantic model")
        if params.model_config.get("extra") != "forbid":
            raise PluginError(f"{kind} plugin {plugin.name!r}: Params must forbid unknown keys")
        key = name or plugin.name
        existing = self._plugins[kind].get(key)
        if existing is not None and existing is not plugin:
            raise PluginError(
                f"{kind} plugin {key!r}: registered twice ({existing.__module__} and {plugin.__module__})"
            )
        self._plugins[kind][key] = plugin
        return plugin

    def get(self, kind: Kind, name: str) -> Any:
        """Return the plugin class; unknown names fail listing the registered ones."""
        if kind in self._pending and name in self._pending[kind]:
            self._load(kind, self._pending[kind].pop(name))
        if (kind, name) in self.broken:
            raise PluginError(self.broken[(kind, name)])
        try:
            return self._plugins[kind][name]
        except KeyError:
            known = ", ".join(self.names(kind)) or "(none)"
            raise PluginError(f"{kind}: expected one of {known}, got {name!r}") from None

    def pairings(self, estimator: str, params: BaseModel | None = None) -> tuple[str, ...]:
        """Inference methods valid for ``estimator`` under ``params`` (default params if None).

        Derived from declarations only: the estimator's :meth:`capabilities` for these params
        and each inference plugin's ``requires_any``. Sorted by name.
        """
        est = self.get("estimator", estimator)
        offered = frozenset(est.capabilities(params if params is not None else est.Params()))
        self.load_all(["inference"])
        inference: dict[str, Any] = self._plugins["inference"]
        return tuple(
            name
            for name in self.names("inference")
            if _satisfies(offered, inference[name].requires_any)
        )

    def default_inference(self, estimator: str, params: BaseModel | None = None) -> str:
        """Return the estimator's declared default inference, which must be a valid pairing."""
        est = self.get("estimator", estimator)
        valid = self.pairings(estimator, params)
        if est.default_inference not in valid:
            raise PluginError(
                f"estimator plugin {estimator!r}: its default inference {est.default_inference!r} "
                f"is not valid for its parameters (valid: {', '.join(valid) or '(none)'})"
            )
        return str(est.default_inference)

    def names(self, kind: Kind) -> list[str]:
        """Return the registered (and advertised, not yet loaded) names of one kind, sorted."""
        return sorted({*self._plugins[kind], *self._pending[kind]})

    def load_entry_points(self, groups: Iterable[Kind] = KINDS, lazy: bool = False) -> Registry:
        """Register every plugin advertised under the causalkit entry-point groups.

        A plugin that fails to import or to validate is recorded in :attr:`broken` and raises
        :class:`PluginError` with the cause when it is requested. With ``lazy``, each plugin's
        module is imported when the plugin is first requested.
        """
        advertised = entry_points()  # one scan of the installed distributions for every group
        for kind in groups:
            for ep in advertised.select(group=ENTRY_POINT_GROUPS[kind]):
                self._pending[kind].setdefault(ep.name, []).append(ep)
        if not lazy:
            self.load_all(groups)
        return self

    def load_all(self, kinds: Iterable[Kind] = KINDS) -> Registry:
        """Import every advertised plugin of ``kinds`` not imported yet (see :attr:`broken`)."""
        for kind in kinds:
            for name in list(self._pending[kind]):
                self._load(kind, self._pending[kind].pop(name))
        return self

    def _load(self, kind: Kind, advertised: list[EntryPoint]) -> None:
        for ep in advertised:  # one name advertised twice fails as registered twice
            # A broken package must not take the others down: it fails when asked for.
            try:
                self.register(kind, ep.load(), name=ep.name)
            except Exception as exc:
                self.broken[(kind, ep.name)] = (
                    f"{kind} plugin {ep.name!r} ({ep.value}) is broken: {exc}"
                )


def _satisfies(offered: frozenset[Any], requires_any: Iterable[Any]) -> bool:
    required = frozenset(requires_any)
    return not required or bool(offered & required)


@functools.cache
def default_registry() -> Registry:
    """Return the built-in and installed plugins: ``Registry().load_entry_points(lazy=True)``.

    A cached constructor (one per process; the entry points do not change while it runs). It
    is only the default of the entry points (``causalkit.fit``, ``causalkit.run``, the command
    line, :func:`~causalkit.session.default_session`); below them the registry travels
    explicitly in the run's :class:`~causalkit.session.Session`. Tests that need other plugins
    build a fresh ``Registry()`` and pass it.
    """
    return Registry().load_entry_points(lazy=True)
