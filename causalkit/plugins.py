"""``python -m causalkit.plugins``: list registered plugins and their parameters with defaults."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from enum import Enum
from typing import Any

from pydantic import BaseModel

from causalkit.errors import CausalkitError
from causalkit.registry import KINDS, Registry, default_registry

__all__ = ["describe", "main"]


def _params(model: type[BaseModel], indent: str = "    ") -> list[str]:
    lines = []
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            lines.append(f"{indent}{name}:")
            lines += _params(ann, indent + "  ")
            continue
        default: Any = info.get_default(call_default_factory=True)
        if isinstance(default, Enum):
            default = default.value
        desc = f"  # {info.description}" if info.description else ""
        shown = getattr(ann, "__name__", None) or str(ann).replace("typing.", "")
        lines.append(f"{indent}{name} = {default!r}  [{shown}]{desc}")
    return lines


def _pairings(registry: Registry, estimator: str) -> str:
    """`` (inference: <valid pairings>; default <name>)`` under the estimator's default params."""
    try:
        valid = registry.pairings(estimator)
        default = registry.default_inference(estimator)
    except CausalkitError as exc:
        return f" (inference: unavailable: {exc})"
    return f" (inference: {', '.join(valid) or '(none)'}; default {default})"


def describe(registry: Registry, kinds: Sequence[str] = KINDS) -> str:
    """Plain-text listing of every plugin of the given kinds."""
    out = []
    for kind in kinds:
        out.append(f"{kind}:")
        for name in registry.names(kind):  # type: ignore[arg-type]
            cls = registry.get(kind, name)  # type: ignore[arg-type]
            doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
            extra = ""
            if kind == "estimator":
                extra = _pairings(registry, name)
            elif kind == "inference":
                extra = (
                    f" (requires any of: {', '.join(sorted(map(str, cls.requires_any)))})"
                    if cls.requires_any
                    else " (any fit)"
                )
            out.append(f"  {name} — {doc}{extra}  [{cls.__module__}]")
            out += _params(cls.Params)
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the listing of the kinds named on the command line (default: all); return 0."""
    parser = argparse.ArgumentParser(prog="python -m causalkit.plugins", description=__doc__)
    parser.add_argument(
        "kind", nargs="*", choices=[*KINDS, []], help="kinds to list (default: all)"
    )
    args = parser.parse_args(argv)
    print(describe(default_registry(), args.kind or KINDS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
