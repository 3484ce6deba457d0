"""causalkit: declarative, config-driven causal-effect experiments."""

from causalkit.api import fit, run, simulate
from causalkit.contracts import Dataset, Estimand, Fit, Roles
from causalkit.errors import CausalkitError, ConfigError, DataError, EstimationError
from causalkit.performance import PerformanceSummary
from causalkit.performance import summarise_table as summarise
from causalkit.registry import Registry, default_registry
from causalkit.results import CellResult, EffectResult, compare
from causalkit.summary import Summary

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
