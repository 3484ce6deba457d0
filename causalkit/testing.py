"""Conformance checks every plugin must pass; third-party packages run them on their own plugins."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from pydantic import BaseModel, ValidationError

from causalkit.contracts import Dataset, Estimand, Fit, InferenceOutcome
from causalkit.registry import KINDS, Registry

__all__ = ["check_plugin_class", "check_estimator", "check_inference", "check_dgp", "check_registry"]


def check_plugin_class(kind: str, cls: type) -> None:
    """Static checks: registrable, params construct from defaults, unknown keys are rejected."""
    Registry().register(kind, cls)  # type: ignore[arg-type]
    params = cls.Params()
    assert isinstance(params, BaseModel)
    try:
        cls.Params(**{"__not_a_param__": 1})
    except ValidationError:
        pass
    else:  # pragma: no cover - a failing plugin
        raise AssertionError(f"{cls.__name__}.Params accepts unknown keys")
    cls(params)
    if kind == "estimator":
        assert isinstance(cls.supported_inference, tuple) and cls.default_inference in cls.supported_inference


def check_estimator(cls: type, data: Dataset, seed: int = 0) -> Fit:
    """Fit twice with the same seed: a frozen Fit, an Estimand label, identical estimates."""
    check_plugin_class("estimator", cls)
    est = cls(cls.Params())
    a = est.fit(data, np.random.default_rng(seed))
    b = est.fit(data, np.random.default_rng(seed))
    assert isinstance(a, Fit) and isinstance(a.estimand, Estimand)
    assert dataclasses.is_dataclass(a) and a.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert a.estimate == b.estimate or (math.isnan(a.estimate) and math.isnan(b.estimate)), "fit is not deterministic given the rng"
    if a.influence is not None:
        assert a.influence.shape == (a.n,), "influence must have one value per unit"
    for key, value in a.diagnostics.items():
        assert isinstance(value, (int, float, bool, str)), f"diagnostic {key!r} is not a scalar"
    return a


def check_inference(cls: type, fit: Fit, seed: int = 0) -> InferenceOutcome:
    """Infer twice with the same seed: identical outcomes, the fit untouched, ordered CI."""
    check_plugin_class("inference", cls)
    before = (fit.estimate, None if fit.influence is None else fit.influence.copy())
    inf = cls(cls.Params())
    a = inf.infer(fit, np.random.default_rng(seed))
    b = inf.infer(fit, np.random.default_rng(seed))
    assert (a.se, a.ci_lower, a.ci_upper) == (b.se, b.ci_lower, b.ci_upper) or math.isnan(a.se)
    assert fit.estimate == before[0]
    if before[1] is not None:
        assert np.array_equal(fit.influence, before[1]), "inference mutated the fit"
    if not math.isnan(a.se):
        assert a.ci_lower <= a.ci_upper
    return a


def check_dgp(cls: type, seed: int = 0) -> None:
    """Same seed, same table; truth is a mapping of estimand labels to floats."""
    check_plugin_class("dgp", cls)
    if cls.needs_base:
        return
    dgp = cls(cls.Params())
    a = dgp.simulate(np.random.default_rng(seed), None)
    b = dgp.simulate(np.random.default_rng(seed), None)
    assert a.dataset.frame.equals(b.dataset.frame), "DGP is not deterministic given the rng"
    for col in a.dataset.roles.columns():
        assert col in a.dataset.frame.columns, f"role column {col!r} missing from the simulated table"
    for key, value in a.truth.values.items():
        assert isinstance(key, str) and math.isfinite(float(value))
    if a.dataset.panel is not None:
        check_panel_arrays(a.dataset)


def check_panel_arrays(data: Dataset) -> None:
    """Panel arrays and the long table they stand for give the same per-unit tables."""
    from causalkit.panel import unit_table

    table_only = Dataset(data.frame, data.roles)
    for role in ("treatment", "assignment"):
        if getattr(data.roles, role) is None:
            continue
        a, b = unit_table(data, group_role=role), unit_table(table_only, group_role=role)  # type: ignore[arg-type]
        for name in ("units", "group", "treatment", "assignment", "X", "y_pre", "y_post", "pre_periods",
                     "post_periods"):
            x, y = getattr(a, name), getattr(b, name)
            assert (x is None) == (y is None), f"panel arrays disagree with the table on {name}"
            if x is not None:
                assert np.array_equal(np.asarray(x), np.asarray(y)), f"panel arrays disagree with the table on {name}"
        assert a.covariates == b.covariates


def check_registry(registry: Registry) -> None:
    """Every registered plugin passes the static checks, and none is broken."""
    assert not registry.broken, "broken plugins: " + "; ".join(registry.broken.values())
    for kind in KINDS:
        for name in registry.names(kind):
            check_plugin_class(kind, registry.get(kind, name))
