"""``python -m causalkit.plugins``: list registered plugins, their parameters and what they need.

For each plugin: its parameters with defaults and, for choice parameters, the allowed values;
for an estimator also the data roles it requires and the optional ones it accounts for, and
its default and supported inference; for an inference the fit capabilities it needs.
``--json`` prints the same content as one JSON document.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
import typing
from collections.abc import Sequence
from enum import Enum
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import to_jsonable_python

from causalkit.errors import CausalkitError
from causalkit.registry import KINDS, Registry, default_registry

__all__ = ["catalogue", "describe", "main"]

_DESIGN_ROLES = ("cluster", "weight")  # causalkit.clusters.DESIGN_ROLES, without its imports


def _choices(model: type[BaseModel], name: str, info: FieldInfo) -> list[Any] | None:
    """Return the allowed values of a ``Literal`` or ``Enum`` field (``None`` when optional).

    Enum members are kept only when the model accepts them with its other fields at their
    defaults (an estimator may take a subset of :class:`~causalkit.contracts.Estimand`), or,
    for a model without defaults for every field, when the field's own validators do; other
    types: ``None``.
    """
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
    args = typing.get_args(ann) if _is_union(ann) else (ann,)
    models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
    return models[0] if len(models) == 1 else None


def _params(model: type[BaseModel]) -> list[dict[str, Any]]:
    """One entry per field: name, default, type, choices, description (nested blocks: params)."""
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


def describe(registry: Registry, kinds: Sequence[str] = KINDS) -> str:
    """Plain-text listing of every plugin of the given kinds (the content of :func:`catalogue`)."""
    out = []
    for kind, plugins in catalogue(registry, kinds).items():
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
    args = parser.parse_args(argv)
    kinds = args.kind or KINDS
    if args.json:
        print(json.dumps(catalogue(default_registry(), kinds), indent=2))
    else:
        print(describe(default_registry(), kinds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
