"""Hints appended to one-line errors: a known wrong key, a key of another plugin, a refused pairing.

Every hint is a clause of the one line an error prints; nothing here raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel

    from causalkit.registry import Kind, Registry

__all__ = ["KEY_HINTS", "key_hint", "owners_hint", "pairing_hint", "QUOTE_HINT"]


def _role_hint(role: str, what: str, example: str, fit_example: str) -> str:
    return (
        f"{what} the {role} role: data.roles.{role}={example} (ck.fit(..., {role}={fit_example}))"
    )


_FOLD = _role_hint("fold", "the fold columns are", "[f1,f2]", "[...]")
_CLUSTER = _role_hint("cluster", "the cluster column is", "g", "'g'")

KEY_HINTS: Mapping[str, str] = MappingProxyType(
    {
        "estimator.fold_column": _FOLD,
        "estimator.fold_columns": _FOLD,
        "estimator.fold": _FOLD,
        "estimator.cluster": _CLUSTER,
        "estimator.cluster_column": _CLUSTER,
        "estimator.weight": _role_hint("weight", "the sampling weight column is", "w", "'w'"),
    }
)
"""Keys users reach for that causalkit spells otherwise, by dotted field, with where it lives."""

QUOTE_HINT = (
    "a formula or a value with spaces or parentheses must be quoted: "
    "'data.roles.covariates=\"age + I(age**2)\"'"
)
"""Appended when Hydra's override grammar fails on an unquoted value."""


def key_hint(field: str) -> str | None:
    """Return the known hint for an unknown dotted ``field`` (``estimator.fold_column``), if any."""
    return KEY_HINTS.get(field)


def owners_hint(registry: Registry, kind: Kind, plugin: str, key: str) -> str | None:
    """Say which other plugins of ``kind`` take ``key`` when ``plugin`` does not.

    Read from each registered plugin's ``Params`` model, e.g. ``"sensitivity is a parameter
    of aipw, ipw, ols, not of naive"``; ``None`` when no plugin has it (or one is broken).
    """
    try:
        registry.load_all([kind])
        owners = [
            name
            for name in registry.names(kind)
            if name != plugin and key in registry.get(kind, name).Params.model_fields
        ]
    except Exception:  # a hint must never hide the error it explains
        return None
    if not owners:
        return None
    return f"{key} is a parameter of {', '.join(owners)}, not of {plugin}"


def pairing_hint(registry: Registry, estimator: str, params: BaseModel, inference: str) -> str:
    """Name the parameters that take ``inference`` away from ``estimator``, if they do.

    Generic: when ``inference`` is valid at the estimator's default parameters, each
    parameter that differs from its default is put back to the default alone; those that
    restore the pairing are named (``n_rep=3``, with the default that allows it). Empty
    when the estimator never offers ``inference``.
    """
    try:
        default = type(params)()
        if inference not in registry.pairings(estimator, default):
            return ""
        given: dict[str, Any] = dict(params)
        base: dict[str, Any] = dict(default)
        culprits = [
            k
            for k in given
            if given[k] != base.get(k)
            and inference in registry.pairings(estimator, params.model_copy(update={k: base[k]}))
        ]
    except Exception:  # a hint must never hide the error it explains
        return ""
    if not culprits:
        return ""
    ruled = ", ".join(f"estimator.{k}={given[k]!r}" for k in culprits)
    offered = ", ".join(f"{k}={base[k]!r}" for k in culprits)
    return f" ({inference} is ruled out by {ruled}; it is offered at the default {offered})"
