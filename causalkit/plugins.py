"""``python -m causalkit.plugins``: list registered plugins, their parameters and what they need.

For each plugin: its parameters with defaults and, for choice parameters, the allowed values;
for an estimator also the data roles it requires and the optional ones it accounts for, and
its default and supported inference; for an inference the fit capabilities it needs.
``--json`` prints the same content as one JSON document.

The listing of the installed plugins is cached by :mod:`causalkit.plugin_cache` (keyed on the
installed code), so a repeated listing imports no plugin, pandas or pydantic; ``--no-cache``
rebuilds it.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
import typing
from collections.abc import Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any

from causalkit import plugin_cache
from causalkit.errors import CausalkitError
from causalkit.registry import ENTRY_POINT_GROUPS, KINDS, Registry, default_registry

if TYPE_CHECKING:
    from pydantic import BaseModel, TypeAdapter
    from pydantic.fields import FieldInfo

__all__ = ["catalogue", "describe", "format_listing", "installed_catalogue", "main"]

_DESIGN_ROLES = ("cluster", "weight")  # causalkit.clusters.DESIGN_ROLES, without its imports


def _choices(model: type[BaseModel], name: str, info: FieldInfo) -> list[Any] | None:
    """Return the allowed values of a ``Literal`` or ``Enum`` field (``None`` when optional).

    Enum members are kept only when the model accepts them with its other fields at their
    defaults (an estimator may take a subset of :class:`~causalkit.contracts.Estimand`), or,
    for a model without defaults for every field, when the field's own validators do; other
    types: ``None``.
    """
    from pydantic import TypeAdapter

    ann = info.annotation
    args = typing.get_args(ann) if _is_union(ann) else (ann,)
    optional = type(None) in args
    out: list[Any] = []
    for arg in args:
        if typing.get_origin(arg) is typing.Literal:
            out += list(typing.get_args(arg))
        elif isinstance(arg, type) and issubclass(arg, Enum):
            if _accepts(model, {}):
                out += [m.value for m in arg if _accepts(model, {name: m.value})]
            else:
                field: TypeAdapter[Any] = TypeAdapter(typing.Annotated[arg, info])
                out += [m.value for m in arg if _accepts(field, m.value)]
        elif arg is not type(None):
            return None
    return [*out, None] if out and optional else out or None


def _accepts(model: type[BaseModel] | TypeAdapter[Any], value: Any) -> bool:
    from pydantic import TypeAdapter, ValidationError

    try:
        if isinstance(model, TypeAdapter):
            model.validate_python(value)
        else:
            model.model_validate(value)
    except (ValidationError, ValueError, CausalkitError):
        return False
    return True


def _is_union(ann: Any) -> bool:
    return typing.get_origin(ann) in (typing.Union, types.UnionType)


def _type_name(ann: Any) -> str:
    if isinstance(ann, type) and not typing.get_args(ann):
        return ann.__name__
    return str(ann).replace("typing.", "").replace("NoneType", "None")


def _submodel(ann: Any) -> type[BaseModel] | None:
    """Return the parameter model of a nested (possibly optional) block, else ``None``."""
    from pydantic import BaseModel

    args = typing.get_args(ann) if _is_union(ann) else (ann,)
    models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
    return models[0] if len(models) == 1 else None


def _params(model: type[BaseModel]) -> list[dict[str, Any]]:
    """One entry per field: name, default, type, choices, description (nested blocks: params)."""
    from pydantic import BaseModel
    from pydantic_core import to_jsonable_python

    out = []
    for name, info in model.model_fields.items():
        entry: dict[str, Any] = {"name": name, "description": info.description}
        sub = _submodel(info.annotation)
        default = info.get_default(call_default_factory=True)
        if sub is not None and (default is None or isinstance(default, BaseModel)):
            entry["default"] = None if default is None else "{...}"
            entry["optional"] = default is None
            entry["params"] = _params(sub)
        else:
            entry["required"] = info.is_required()
            entry["default"] = (
                None if entry["required"] else to_jsonable_python(default, fallback=repr)
            )
            entry["type"] = _type_name(info.annotation)
            entry["choices"] = _choices(model, name, info)
        out.append(entry)
    return out


def _estimator(registry: Registry, name: str, cls: Any) -> dict[str, Any]:
    handled = sorted(getattr(cls, "handles_roles", frozenset()))
    entry: dict[str, Any] = {
        "roles": {
            "required": list(cls.required_roles),
            "optional": handled,
            "refused": [r for r in _DESIGN_ROLES if r not in handled],
        }
    }
    try:
        entry["inference"] = {
            "default": registry.default_inference(name),
            "supported": list(registry.pairings(name)),
        }
    except CausalkitError as exc:
        entry["inference"] = {"error": str(exc)}
    return entry


def catalogue(registry: Registry, kinds: Sequence[str] = KINDS) -> dict[str, list[dict[str, Any]]]:
    """Every plugin of the given kinds as plain data (what ``--json`` prints).

    Parameters
    ----------
    registry : Registry
        The plugins to list.
    kinds : sequence of str
        Plugin kinds, in order (default: all).

    Returns
    -------
    dict
        ``{kind: [plugin, ...]}``; a plugin has ``name``, ``summary`` (its docstring's first
        line), ``module`` and ``params``; an estimator also ``roles`` (``required``,
        ``optional``: the design roles it accounts for, ``refused``) and ``inference``
        (``default``, ``supported``); an inference ``requires_any`` (fit capabilities, empty:
        any fit).
    """
    out: dict[str, list[dict[str, Any]]] = {}
    for kind in kinds:
        out[kind] = []
        for name in registry.names(kind):  # type: ignore[arg-type]
            cls = registry.get(kind, name)  # type: ignore[arg-type]
            doc = (cls.__doc__ or "").strip()
            entry: dict[str, Any] = {
                "name": name,
                "summary": doc.splitlines()[0] if doc else "",
                "module": cls.__module__,
            }
            if kind == "estimator":
                entry.update(_estimator(registry, name, cls))
            elif kind == "inference":
                entry["requires_any"] = sorted(str(c) for c in cls.requires_any)
            entry["params"] = _params(cls.Params)
            out[kind].append(entry)
    return out


def _param_lines(params: list[dict[str, Any]], indent: str = "    ") -> list[str]:
    lines = []
    for p in params:
        desc = f"  # {p['description']}" if p["description"] else ""
        if "params" in p:
            optional = "  (optional block, default null)" if p["optional"] else ""
            lines.append(f"{indent}{p['name']}:{optional}{desc}")
            lines += _param_lines(p["params"], indent + "  ")
            continue
        shown = f"one of {', '.join(repr(c) for c in p['choices'])}" if p["choices"] else p["type"]
        value = "(required)" if p["required"] else repr(p["default"])
        lines.append(f"{indent}{p['name']} = {value}  [{shown}]{desc}")
    return lines


def installed_catalogue(kinds: Sequence[str] = KINDS, use_cache: bool = True) -> dict[str, Any]:
    """:func:`catalogue` of the installed plugins (:func:`default_registry`), cached.

    The whole listing is cached under the fingerprint of the installed code
    (:func:`causalkit.plugin_cache.fingerprint`); a registry with broken plugins is not
    cached, so their errors are shown again once fixed. ``use_cache=False`` rebuilds it (and
    refreshes the cache).
    """
    key = plugin_cache.fingerprint(ENTRY_POINT_GROUPS.values())
    listing = plugin_cache.read(key) if use_cache else None
    if listing is None:
        registry = default_registry()
        listing = json.loads(json.dumps(catalogue(registry)))
        if not registry.broken:
            plugin_cache.write(key, listing)
    return {kind: listing[kind] for kind in kinds}


def describe(registry: Registry, kinds: Sequence[str] = KINDS) -> str:
    """Plain-text listing of every plugin of the given kinds (the content of :func:`catalogue`)."""
    return format_listing(catalogue(registry, kinds))


def format_listing(listing: dict[str, Any]) -> str:
    """Plain-text form of a :func:`catalogue` (``{kind: [plugin, ...]}``)."""
    out = []
    for kind, plugins in listing.items():
        out.append(f"{kind}:")
        for p in plugins:
            extra = ""
            if kind == "estimator":
                inf = p["inference"]
                extra = (
                    f" (inference: unavailable: {inf['error']})"
                    if "error" in inf
                    else f" (inference: {', '.join(inf['supported']) or '(none)'}; default {inf['default']})"
                )
            elif kind == "inference":
                extra = (
                    f" (requires any of: {', '.join(p['requires_any'])})"
                    if p["requires_any"]
                    else " (any fit)"
                )
            out.append(f"  {p['name']} — {p['summary']}{extra}  [{p['module']}]")
            if kind == "estimator":
                roles = p["roles"]
                out.append(
                    f"    roles: required {', '.join(roles['required'])}; "
                    f"optional {', '.join(roles['optional']) or '(none)'}"
                    + (f"; refused {', '.join(roles['refused'])}" if roles["refused"] else "")
                )
            out += _param_lines(p["params"])
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the listing of the kinds named on the command line (default: all); return 0."""
    parser = argparse.ArgumentParser(
        prog="python -m causalkit.plugins", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument(
        "kind", nargs="*", choices=[*KINDS, []], help="kinds to list (default: all)"
    )
    parser.add_argument("--json", action="store_true", help="print the listing as JSON")
    parser.add_argument(
        "--no-cache", action="store_true", help="rebuild the listing from the plugins' code"
    )
    args = parser.parse_args(argv)
    listing = installed_catalogue(args.kind or KINDS, use_cache=not args.no_cache)
    print(json.dumps(listing, indent=2) if args.json else format_listing(listing))
    return 0


if __name__ == "__main__":
    sys.exit(main())
