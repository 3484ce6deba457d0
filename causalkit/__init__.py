"""causalkit: declarative, config-driven causal-effect experiments.

The public names are imported on first use (:pep:`562`), so that ``python -m causalkit.plugins``
and ``python -m causalkit --help`` do not pay for pandas, the results layer and the estimators.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from causalkit.api import fit, run, simulate
    from causalkit.contracts import Dataset, Estimand, Fit, Roles
    from causalkit.errors import CausalkitError, ConfigError, DataError, EstimationError
    from causalkit.performance import PerformanceSummary
    from causalkit.performance import summarise_table as summarise
    from causalkit.registry import Registry, default_registry
    from causalkit.results import CausalkitWarning, CellResult, EffectResult, compare
    from causalkit.summary import Summary

# public name -> (module, attribute)
_EXPORTS: dict[str, tuple[str, str]] = {
    "fit": ("causalkit.api", "fit"),
    "run": ("causalkit.api", "run"),
    "simulate": ("causalkit.api", "simulate"),
    "compare": ("causalkit.results", "compare"),
    "summarise": ("causalkit.performance", "summarise_table"),
    "PerformanceSummary": ("causalkit.performance", "PerformanceSummary"),
    "Dataset": ("causalkit.contracts", "Dataset"),
    "Estimand": ("causalkit.contracts", "Estimand"),
    "Fit": ("causalkit.contracts", "Fit"),
    "Roles": ("causalkit.contracts", "Roles"),
    "CausalkitError": ("causalkit.errors", "CausalkitError"),
    "CausalkitWarning": ("causalkit.results", "CausalkitWarning"),
    "ConfigError": ("causalkit.errors", "ConfigError"),
    "DataError": ("causalkit.errors", "DataError"),
    "EstimationError": ("causalkit.errors", "EstimationError"),
    "Registry": ("causalkit.registry", "Registry"),
    "default_registry": ("causalkit.registry", "default_registry"),
    "CellResult": ("causalkit.results", "CellResult"),
    "EffectResult": ("causalkit.results", "EffectResult"),
    "Summary": ("causalkit.summary", "Summary"),
}

__all__ = [
    "fit",
    "run",
    "simulate",
    "compare",
    "summarise",
    "PerformanceSummary",
    "Dataset",
    "Estimand",
    "Fit",
    "Roles",
    "CausalkitError",
    "CausalkitWarning",
    "ConfigError",
    "DataError",
    "EstimationError",
    "Registry",
    "default_registry",
    "CellResult",
    "EffectResult",
    "Summary",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """Import a public name's module on first access and cache the name here."""
    try:
        module, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'causalkit' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
