r"""Conformance checks every plugin must pass; third-party packages run them on their own plugins.

The checks make their own small data: a simulated long panel or cross-section for estimators
(:func:`conformance_data`), a two-estimate fit offering every capability for inference
(:func:`conformance_fit`), the panel written to files for data sources. Run them over a
whole registry with :func:`parametrize_with_checks` (scikit-learn's idea)::

    from causalkit.registry import default_registry
    from causalkit.testing import parametrize_with_checks

    @parametrize_with_checks(default_registry())
    def test_plugin(check):
        check()

Every registered plugin gets its checks, and every valid (estimator, inference) pairing
(:meth:`~causalkit.registry.Registry.pairings`) is run on the estimator's fit.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ValidationError

from causalkit.contracts import (
    Capability,
    Dataset,
    Estimand,
    Fit,
    InferenceOutcome,
    Linearisation,
    Resampler,
    Roles,
)
from causalkit.errors import CausalkitError, DataError
from causalkit.registry import KINDS, Kind, Registry

__all__ = [
    "conformance_data",
    "conformance_fit",
    "small_params",
    "check_plugin_class",
    "check_data_source",
    "check_dgp",
    "check_panel_arrays",
    "check_estimator",
    "check_inference",
    "check_pairing",
    "check_registry",
    "plugin_checks",
    "parametrize_with_checks",
    "run_cli",
]

_N_UNITS = 200
_PERIODS = 6
_ONSET = 4  # periods 1-3 pre, 4-6 post
_DRAWS = 20  # what a conformance check asks of a resampling plugin (or its minimum)


# --------------------------------------------------------------------------------------------
# Data made by the checks
# --------------------------------------------------------------------------------------------


def _units(seed: int, n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x1 = rng.standard_normal(n)
    x2 = (rng.random(n) < 0.4).astype(np.float64)
    w = rng.standard_normal(n)
    assigned = np.arange(n) % 2 == 0  # half the units, alternating: both arms in every subset
    treated = assigned & (rng.random(n) < 0.85)
    selected = (0.4 + 0.8 * w + 0.4 * x1 + rng.standard_normal(n)) > 0
    return {
        "x1": x1,
        "x2": x2,
        "w": w,
        "assigned": assigned,
        "treated": treated,
        "selected": selected,
        "alpha": rng.standard_normal(n) * 0.5,
        "eps": rng.standard_normal((n, _PERIODS)),
    }


def _roles(panel: bool, required: tuple[str, ...], optional: bool) -> Roles:
    roles: dict[str, Any] = {
        "treatment": "treated",
        "assignment": "assigned",
        "outcome": "y",
        "covariates": ("x1", "x2"),
    }
    if optional or "fold" in required or "segments" in required:
        roles.update(fold="fold", segments=("segment",))
    if panel or "unit" in required:
        roles["unit"] = "unit"
    if panel:
        roles["time"] = "time"
    if "selected" in required or "selection_covariates" in required:
        roles.update(selected="selected", selection_covariates=("x1", "w"))
    return Roles(**roles)


def conformance_data(
    required_roles: tuple[str, ...] = (),
    panel: bool | None = None,
    seed: int = 0,
    n: int = _N_UNITS,
    optional_roles: bool = False,
) -> Dataset:
    r"""Simulate a small dataset for an estimator with the given required roles.

    ``n`` units with covariates :math:`x_1\sim N(0,1)`, :math:`x_2\sim\mathrm{Bern}(0.4)`, an
    excluded selection covariate :math:`w\sim N(0,1)`, a randomised arm (every other unit) and
    one-sided non-compliance (85% of the arm treated); the outcome is
    :math:`y_{it} = 1 + 0.5x_{1i} + 0.3x_{2i} + \alpha_i + 0.1t + 0.4D_{it} + \varepsilon_{it}`,
    :math:`D_{it}` on from period 4 of 6 for treated units; ``selected`` follows a probit in
    :math:`(w, x_1)`; ``fold`` is the unit number modulo 3, ``segment`` is ``a``/``b`` by
    :math:`x_2`.

    Parameters
    ----------
    required_roles : tuple of str
        The estimator's required roles: ``selected``/``selection_covariates`` add the selection
        roles; ``unit`` or ``time`` ask for the long panel.
    panel : bool, optional
        Force a long panel (roles ``unit`` and ``time``) or a cross-section (one row per unit,
        the outcome of the last period); default: a panel when ``unit`` or ``time`` is required.
    seed, n : int
        Seed of the draws and number of units.
    optional_roles : bool
        Also set the roles an estimator may take but need not (``fold``, ``segments``): a
        role given must not take away a declared capability.

    Returns
    -------
    Dataset
        Roles: treatment, assignment, outcome, covariates ``(x1, x2)`` always; unit and time
        in a panel; selected and selection covariates ``(x1, w)`` when required; fold and
        segments when asked or required.
    """
    u = _units(seed, n)
    if panel is None:
        panel = "unit" in required_roles or "time" in required_roles
    t = np.arange(1, _PERIODS + 1)
    on = (t >= _ONSET)[None, :]
    base = 1 + 0.5 * u["x1"] + 0.3 * u["x2"] + u["alpha"]
    y = base[:, None] + 0.1 * t[None, :] + 0.4 * (u["treated"][:, None] & on) + u["eps"]
    roles = _roles(panel, required_roles, optional_roles)
    extra = {
        "fold": np.arange(n) % 3,
        "segment": np.where(u["x2"] > 0, "b", "a"),
        "cluster": np.arange(n) % 7,
        "sweight": 0.5 + 0.5 * (np.arange(n) % 4),
    }
    if panel:
        frame = pd.DataFrame(
            {
                "unit": np.repeat(np.arange(n), _PERIODS),
                "time": np.tile(t, n),
                "treated": (u["treated"][:, None] & on).ravel().astype(np.int64),
                "assigned": (u["assigned"][:, None] & on).ravel().astype(np.int64),
                "y": y.ravel(),
                **{c: np.repeat(u[c], _PERIODS) for c in ("x1", "x2", "w")},
                "selected": np.repeat(u["selected"], _PERIODS).astype(np.int64),
                **{c: np.repeat(v, _PERIODS) for c, v in extra.items()},
            }
        )
    else:
        frame = pd.DataFrame(
            {
                "unit": np.arange(n),
                "treated": u["treated"].astype(np.int64),
                "assigned": u["assigned"].astype(np.int64),
                "y": y[:, -1],
                **{c: u[c] for c in ("x1", "x2", "w")},
                "selected": u["selected"].astype(np.int64),
                **extra,
            }
        )
    return Dataset(frame, roles)


def conformance_fit(offers: frozenset[Capability] | None = None, seed: int = 0, n: int = 80) -> Fit:
    r"""Build a two-estimate fit (the means of two columns) offering the given capabilities.

    With :math:`x_i\in\mathbb R^2` the estimates are :math:`\bar x`, the influence values
    :math:`\psi_i = x_i-\bar x`, the model SEs :math:`s_j/\sqrt n`, the refit the means of
    resampled rows, the replicates Poisson(1)-weighted means, the placebo the mean of
    sign-flipped centred rows, the linearisation terms :math:`\psi_i/n`.

    Parameters
    ----------
    offers : frozenset of Capability, optional
        Capabilities to offer (default: all).
    seed, n : int
        Seed of the data and number of units.
    """
    offers = frozenset(Capability) if offers is None else offers
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 2)) + np.array([0.4, 0.0])
    est = x.mean(axis=0)
    psi = x - est

    def refit_batch(index_sets: list[np.ndarray]) -> np.ndarray:
        return np.stack([x[idx].mean(axis=0) for idx in index_sets])

    def replicates(gen: np.random.Generator, b: int) -> np.ndarray:
        w = gen.poisson(1.0, size=(b, n)).astype(np.float64)
        return (w @ x) / w.sum(axis=1, keepdims=True)

    def placebo(gen: np.random.Generator) -> np.ndarray:
        return (psi * gen.choice([-1.0, 1.0], size=n)[:, None]).mean(axis=0)

    resample, replicate = Capability.RESAMPLE in offers, Capability.REPLICATES in offers
    return Fit(
        Estimand.DIFF,
        est,
        n,
        names=("first", "second"),
        influence=psi if Capability.INFLUENCE in offers else None,
        model_se=x.std(axis=0, ddof=1) / math.sqrt(n) if Capability.MODEL_SE in offers else None,
        resampler=Resampler(
            n,
            strata=np.arange(n) % 2,
            refit=(lambda idx: x[idx].mean(axis=0)) if resample else None,
            refit_batch=refit_batch if resample else None,
            replicates=replicates if replicate else None,
        )
        if resample or replicate
        else None,
        placebo=placebo if Capability.PLACEBO in offers else None,
        linearisation=Linearisation(psi / n) if Capability.LINEARISATION in offers else None,
        diagnostics={"n_rows": n},
    )


def small_params(cls: type[Any], **values: Any) -> BaseModel:
    """``cls.Params`` with every count of draws (an ``int`` field named ``n_*``) made small.

    Small means ``min(default, max(20, the field's lower bound))``; ``values`` override.
    """
    small: dict[str, Any] = {}
    for name, info in cls.Params.model_fields.items():
        default = info.get_default(call_default_factory=True)
        if not (
            name.startswith("n_") and info.annotation in (int, "int") and isinstance(default, int)
        ):
            continue
        low = 1
        for bound in info.metadata:
            low = max(low, int(getattr(bound, "ge", low)), int(getattr(bound, "gt", low - 1)) + 1)
        small[name] = min(default, max(_DRAWS, low))
    return cls.Params(**{**small, **values})


# --------------------------------------------------------------------------------------------
# Checks of one plugin
# --------------------------------------------------------------------------------------------


def check_plugin_class(kind: str, cls: type[Any]) -> None:
    """Check statically: registrable, params construct from defaults, unknown keys rejected."""
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
        declared = cls.capabilities(params)
        assert isinstance(declared, frozenset) and all(
            isinstance(c, Capability) for c in declared
        ), (
            f"{cls.__name__}.capabilities(params) must be a frozenset of Capability, got {declared!r}"
        )
        assert isinstance(cls.default_inference, str)
    if kind == "inference":
        assert isinstance(cls.requires_any, frozenset) and all(
            isinstance(c, Capability) for c in cls.requires_any
        )
        for common in ("level", "joint"):
            assert common in cls.Params.model_fields, (
                f"{cls.__name__}.Params has no {common!r} (derive from InferenceParams)"
            )


def check_data_source(cls: type[Any]) -> None:
    """Load twice: the same table both times, every role column present.

    A source that takes a ``path`` reads the conformance panel written as parquet or CSV.
    """
    check_plugin_class("data", cls)
    fields = cls.Params.model_fields
    if "path" not in fields:
        a, b = cls(cls.Params()).load(), cls(cls.Params()).load()
        assert (a is None) == (b is None) and (a is None or a.frame.equals(b.frame)), (
            "load is not deterministic"
        )
        return
    data = conformance_data(panel=True)
    roles = Roles(
        unit="unit", time="time", treatment="treated", outcome="y", covariates=("x1", "x2")
    )
    errors = []
    with tempfile.TemporaryDirectory() as tmp:
        for suffix, write in ((".parquet", data.frame.to_parquet), (".csv", data.frame.to_csv)):
            path = Path(tmp) / f"panel{suffix}"
            write(path, index=False)
            values = {"path": str(path), **({"roles": roles} if "roles" in fields else {})}
            try:
                a = cls(cls.Params(**values)).load()
            except Exception as exc:  # this format is not the source's: try the next
                errors.append(f"{suffix}: {type(exc).__name__}: {exc}")
                continue
            b = cls(cls.Params(**values)).load()
            assert isinstance(a, Dataset) and isinstance(b, Dataset)
            assert a.frame.equals(b.frame), "load is not deterministic"
            for col in a.roles.columns():
                assert col in a.frame.columns, f"role column {col!r} missing from the loaded table"
            return
    raise AssertionError(
        f"{cls.__name__} loads neither the CSV nor the parquet panel: " + "; ".join(errors)
    )


def check_dgp(cls: type[Any], seed: int = 0) -> None:
    """Simulate twice: same table; role columns present; truth labels map to finite floats.

    A DGP that needs a base dataset gets the conformance cross-section.
    """
    check_plugin_class("dgp", cls)
    dgp = cls(cls.Params())
    base = conformance_data() if cls.needs_base else None
    a = dgp.simulate(np.random.default_rng(seed), base)
    b = dgp.simulate(np.random.default_rng(seed), base)
    assert a.dataset.frame.equals(b.dataset.frame), "DGP is not deterministic given the rng"
    for col in a.dataset.roles.columns():
        assert col in a.dataset.frame.columns, (
            f"role column {col!r} missing from the simulated table"
        )
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
        a, b = unit_table(data, group_role=role), unit_table(table_only, group_role=role)
        for name in (
            "units",
            "group",
            "treatment",
            "assignment",
            "X",
            "y_pre",
            "y_post",
            "pre_periods",
            "post_periods",
        ):
            x, y = getattr(a, name), getattr(b, name)
            assert (x is None) == (y is None), f"panel arrays disagree with the table on {name}"
            if x is not None:
                assert np.array_equal(np.asarray(x), np.asarray(y)), (
                    f"panel arrays disagree with the table on {name}"
                )
        assert a.covariates == b.covariates


def _same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is b
    return bool(np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True))


def check_estimator(
    cls: type[Any], data: Dataset | None = None, seed: int = 0, params: BaseModel | None = None
) -> Fit:
    """Fit twice with one seed and check the fit against the estimator's declarations.

    Checks: a frozen :class:`Fit` with an :class:`Estimand`; identical estimates; the fit
    offers every capability ``cls.capabilities(params)`` declares and its hooks answer in
    shape (``refit`` (k,), ``refit_batch`` (B, k), ``replicates`` (B, k), ``placebo`` (k,));
    influence (n, k); k string names; scalar diagnostics; string warnings.

    Parameters
    ----------
    cls : type
        The estimator class.
    data : Dataset, optional
        Default: :func:`conformance_data` for ``cls.required_roles``, with and without the
        optional roles, and with each of the ``cluster``/``weight`` roles the class lists in
        ``handles_roles`` (which the fit must carry); the fit without them is returned.
    seed : int
        Seed of both fits.
    params : BaseModel, optional
        Default: ``cls.Params()``.
    """
    params = params if params is not None else cls.Params()
    if data is None:
        required = tuple(cls.required_roles)
        _check_fit(cls, conformance_data(required, optional_roles=True), seed, params)
        data = conformance_data(required)
        for role, column in (("cluster", "cluster"), ("weight", "sweight")):
            if role in getattr(cls, "handles_roles", frozenset()):
                with_role = Dataset(data.frame, data.roles.model_copy(update={role: column}))
                try:
                    fit = _check_fit(cls, with_role, seed, params)
                except CausalkitError as exc:  # refused under these params (e.g. psm's score
                    # matching with weights): allowed, in one line naming a parameter
                    assert "\n" not in str(exc) and str(exc).startswith("estimator."), (
                        f"{cls.name}: roles.{role} refused, not in one line naming a parameter"
                    )
                    continue
                carried = fit.clusters if role == "cluster" else fit.weights
                assert carried is not None, f"{cls.name}: handles roles.{role} but ignored it"
    return _check_fit(cls, data, seed, params)


def _check_fit(cls: type[Any], data: Dataset, seed: int, params: BaseModel) -> Fit:
    check_plugin_class("estimator", cls)
    est = cls(params)
    a = est.fit(data, np.random.default_rng(seed))
    b = est.fit(data, np.random.default_rng(seed))
    name = getattr(cls, "name", cls.__name__)
    assert isinstance(a, Fit) and isinstance(a.estimand, Estimand)
    assert dataclasses.is_dataclass(a) and a.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert _same(a.estimates, b.estimates), f"{name}: fit is not deterministic given the rng"
    k = a.k
    missing = cls.capabilities(params) - a.capabilities
    assert not missing, (
        f"{name}: declares {', '.join(sorted(map(str, missing)))} but the fit does not offer it"
    )
    assert len(a.names) == k and all(isinstance(s, str) for s in a.names) and len(set(a.names)) == k
    if a.influence is not None:
        assert a.influence.shape == (a.n, k), (
            f"{name}: influence has shape {a.influence.shape}, expected ({a.n}, {k})"
        )
    if a.linearisation is not None:
        assert a.linearisation.terms.ndim == 2 and a.linearisation.terms.shape[1] == k
    _check_hooks(a, name)
    for key, value in a.diagnostics.items():
        assert isinstance(value, (int, float, bool, str)), (
            f"{name}: diagnostic {key!r} is not a scalar"
        )
    assert isinstance(a.warnings, tuple) and all(isinstance(w, str) for w in a.warnings)
    return a


def _check_hooks(fit: Fit, name: str) -> None:
    """Each resampling / placebo hook of ``fit`` answers in shape, the same twice for one input."""
    k, rs = fit.k, fit.resampler
    calls: list[tuple[str, Callable[[], Any], tuple[int, ...]]] = []
    if rs is not None:
        idx = np.random.default_rng(1).integers(0, rs.n, rs.n)
        if rs.refit is not None:
            calls.append(("refit", functools.partial(rs.refit, idx), (k,)))
        if rs.refit_batch is not None:
            calls.append(("refit_batch", functools.partial(rs.refit_batch, [idx, idx]), (2, k)))
        if rs.replicates is not None:
            replicates = rs.replicates
            calls.append(("replicates", lambda: replicates(np.random.default_rng(2), 3), (3, k)))
    if fit.placebo is not None:
        placebo = fit.placebo
        calls.append(("placebo", lambda: placebo(np.random.default_rng(3)), (k,)))
    for hook, call, shape in calls:
        try:
            a, b = np.asarray(call()), np.asarray(call())
        except DataError as exc:  # the design refuses these data (e.g. too few placebo controls)
            assert "\n" not in str(exc), f"{name}: {hook} refused in more than one line"
            continue
        assert a.shape == shape, f"{name}: {hook} returned shape {a.shape}, expected {shape}"
        assert _same(a, b), f"{name}: {hook} is not deterministic given its input"


def _snapshot(fit: Fit) -> tuple[Any, ...]:
    lin = None if fit.linearisation is None else fit.linearisation.terms.copy()
    return (
        fit.estimates.copy(),
        None if fit.influence is None else fit.influence.copy(),
        None if fit.model_se is None else fit.model_se.copy(),
        lin,
        dict(fit.diagnostics),
    )


def _check_outcome(out: InferenceOutcome, fit: Fit, params: BaseModel, who: str) -> None:
    k = fit.k
    assert isinstance(out, InferenceOutcome), f"{who}: infer must return an InferenceOutcome"
    for name in ("se", "ci_lower", "ci_upper", "p_value"):
        assert getattr(out, name).shape == (k,), (
            f"{who}: {name} has shape {getattr(out, name).shape}, expected ({k},)"
        )
    level = getattr(params, "level", None)
    assert out.level == level, f"{who}: level {out.level} is not the parameter's {level}"
    lo, hi, se, p = out.ci_lower, out.ci_upper, out.se, out.p_value
    ok = np.isfinite(lo) & np.isfinite(hi)
    assert np.all(lo[ok] <= hi[ok]), f"{who}: an interval with lower > upper"
    assert np.all(se[np.isfinite(se)] >= 0), f"{who}: a negative standard error"
    fp = p[np.isfinite(p)]
    assert np.all((fp >= 0) & (fp <= 1)), f"{who}: a p-value outside [0, 1]"
    if out.p_value_raw is not None:
        assert np.shape(out.p_value_raw) == (k,)
    for key, value in out.diagnostics.items():
        assert isinstance(value, (int, float, bool, str)), (
            f"{who}: diagnostic {key!r} is not a scalar"
        )


def _infer(
    cls: type[Any], params: BaseModel, fit: Fit, seed: int, who: str, twice: bool = True
) -> InferenceOutcome:
    """Infer (twice: the same outcome) and check the outcome and that the fit is untouched."""
    before = _snapshot(fit)
    inf = cls(params)
    a = inf.infer(fit, np.random.default_rng(seed))
    after = _snapshot(fit)
    assert all(
        _same(x, y) if not isinstance(x, dict) else x == y
        for x, y in zip(before, after, strict=True)
    ), f"{who}: inference mutated the fit"
    _check_outcome(a, fit, params, who)
    if twice:
        b = inf.infer(fit, np.random.default_rng(seed))
        for name in ("se", "ci_lower", "ci_upper", "p_value"):
            assert _same(getattr(a, name), getattr(b, name)), (
                f"{who}: {name} is not deterministic given the rng"
            )
    return a


def check_inference(cls: type[Any], fit: Fit | None = None, seed: int = 0) -> InferenceOutcome:
    """Infer with one seed twice on a fit and check the outcome and the declarations.

    Checks: identical outcomes, the fit untouched, (k,) arrays, the parameter's level,
    ordered intervals, p-values in [0, 1]. Without a ``fit`` (the conformance run), also:
    each capability in ``requires_any`` alone suffices (any fit when it is empty); ``joint``
    widens the intervals to bands and raises the p-values (Holm); a higher ``level`` gives
    intervals that contain the lower level's.

    Parameters
    ----------
    cls : type
        The inference class.
    fit : Fit, optional
        Default: :func:`conformance_fit` with every capability.
    seed : int
        Seed of the inference's generator.
    """
    check_plugin_class("inference", cls)
    name = getattr(cls, "name", cls.__name__)
    if fit is not None:
        return _infer(cls, small_params(cls), fit, seed, name)
    full = conformance_fit()
    out = _infer(cls, small_params(cls), full, seed, name)
    for cap in sorted(cls.requires_any, key=str) or [None]:
        offers = frozenset() if cap is None else frozenset({cap})
        _infer(
            cls,
            small_params(cls),
            conformance_fit(offers),
            seed,
            f"{name} on a fit offering only {cap}",
        )
    if not np.isfinite(out.se).all():
        return out  # no intervals to compare (e.g. inference=none)
    joint = cls(small_params(cls, joint=True)).infer(full, np.random.default_rng(seed))
    assert joint.joint and joint.p_value_raw is not None, (
        f"{name}: joint=true must report joint and p_value_raw"
    )
    tol = 1e-12
    assert np.all(joint.ci_lower <= out.ci_lower + tol) and np.all(
        joint.ci_upper >= out.ci_upper - tol
    ), f"{name}: the joint band is narrower than the pointwise interval"
    assert np.all(joint.p_value >= joint.p_value_raw - tol), (
        f"{name}: Holm-adjusted p-values below the raw ones"
    )
    low = cls(small_params(cls, level=0.8)).infer(full, np.random.default_rng(seed))
    assert np.all(out.ci_lower <= low.ci_lower + tol) and np.all(
        out.ci_upper >= low.ci_upper - tol
    ), f"{name}: the {out.level:.0%} interval does not contain the 80% one"
    assert np.any(out.ci_upper - out.ci_lower > low.ci_upper - low.ci_lower + tol), (
        f"{name}: the 80% intervals are as wide as the {out.level:.0%} ones (level ignored?)"
    )
    return out


def check_pairing(
    registry: Registry, estimator: str, inference: str, seed: int = 0
) -> InferenceOutcome | None:
    """Run a valid pairing on the estimator's conformance fit and build its result.

    ``None`` when the inference refuses the conformance data with a one-line
    :class:`~causalkit.errors.DataError` (a data-dependent refusal, e.g. simplex MicroSynth's
    placebo needs twice as many controls as treated units).

    The fit is on :func:`conformance_data` with the optional roles (segments: a vector of
    estimates where the estimator supports them). The inference (with :func:`small_params`)
    runs once: its determinism is checked by :func:`check_inference`, that of the estimator's
    hooks by :func:`check_estimator`. The result's summary renders as text, HTML and LaTeX.
    """
    from causalkit.results import build_result

    est_cls, inf_cls = registry.get("estimator", estimator), registry.get("inference", inference)
    params = est_cls.Params()
    assert inference in registry.pairings(estimator, params), (
        f"{estimator} + {inference} is not a valid pairing"
    )
    data = conformance_data(tuple(est_cls.required_roles), optional_roles=True)
    fit = est_cls(params).fit(data, np.random.default_rng(seed))
    try:
        out = _infer(
            inf_cls, small_params(inf_cls), fit, seed, f"{estimator} + {inference}", twice=False
        )
    except DataError as exc:  # a refusal the data decide (one line), not a broken pairing
        assert "\n" not in str(exc), f"{estimator} + {inference}: refused in more than one line"
        return None
    summary = build_result(estimator, fit, out).summary()
    assert str(summary) and summary._repr_html_() and summary.as_latex()
    return out


def check_registry(registry: Registry) -> None:
    """Check every plugin statically, that none is broken, and every estimator's default inference.

    The default inference must be one of the estimator's valid pairings.
    """
    registry.load_all()
    assert not registry.broken, "broken plugins: " + "; ".join(registry.broken.values())
    for kind in KINDS:
        for name in registry.names(kind):
            check_plugin_class(kind, registry.get(kind, name))
    for name in registry.names("estimator"):
        registry.default_inference(name)


# --------------------------------------------------------------------------------------------
# Every check of a registry, for pytest
# --------------------------------------------------------------------------------------------

_KIND_CHECK: dict[Kind, Callable[[type], Any]] = {
    "data": check_data_source,
    "dgp": check_dgp,
    "estimator": check_estimator,
    "inference": check_inference,
}


def _fail(message: str) -> None:
    raise AssertionError(message)


def plugin_checks(registry: Registry) -> Iterator[tuple[str, Callable[[], Any]]]:
    """``(id, check)`` for every plugin of ``registry`` and every valid pairing.

    A broken plugin, or an estimator whose pairings cannot be derived, yields a failing check.
    """
    registry.load_all()
    for (kind, name), message in sorted(registry.broken.items()):
        yield f"{kind}:{name}", functools.partial(_fail, message)
    for kind in KINDS:
        for name in registry.names(kind):
            cls = registry.get(kind, name)
            yield f"{kind}:{name}", functools.partial(_KIND_CHECK[kind], cls)
    for name in registry.names("estimator"):
        try:
            valid = registry.pairings(name)
            registry.default_inference(name)
        except Exception as exc:
            yield (
                f"pairing:{name}",
                functools.partial(_fail, f"{name}: {type(exc).__name__}: {exc}"),
            )
            continue
        for inf in valid:
            yield f"pairing:{name}+{inf}", functools.partial(check_pairing, registry, name, inf)


def parametrize_with_checks(registry: Registry) -> Any:
    """Parametrize a test with ``check`` over :func:`plugin_checks` of ``registry``.

    Examples
    --------
    >>> @parametrize_with_checks(default_registry())  # doctest: +SKIP
    ... def test_plugin(check):
    ...     check()
    """
    import pytest

    checks = list(plugin_checks(registry))
    return pytest.mark.parametrize("check", [c for _, c in checks], ids=[i for i, _ in checks])


def run_cli(
    cwd: str | os.PathLike[str],
    *args: str,
    module: str = "causalkit",
    timeout: float = 600.0,
    unset: Iterable[str] = (),
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m module *args`` in ``cwd`` and return what it printed and its exit code.

    For testing a plugin's command line as a user runs it, in a fresh interpreter; third-party
    packages use it for their own plugins too. A non-zero exit does not raise: the test asserts
    on ``returncode``, ``stdout`` and ``stderr``.

    Parameters
    ----------
    cwd : str or os.PathLike
        Working directory of the command (where its outputs, e.g. ``runs/``, are written).
    *args : str
        Command-line arguments, e.g. Hydra overrides such as ``"estimator=ols"``.
    module : str, default "causalkit"
        Module run with ``python -m``, e.g. ``"causalkit.report"``.
    timeout : float, default 600.0
        Seconds before the command is killed and :class:`subprocess.TimeoutExpired` is raised.
    unset : iterable of str, default ()
        Environment variables removed for the command (e.g. ``"MLFLOW_TRACKING_URI"``); the
        rest of the environment is inherited.

    Returns
    -------
    subprocess.CompletedProcess of str
        The finished command, with ``returncode`` and text ``stdout`` and ``stderr``.
    """
    drop = set(unset)
    env = {k: v for k, v in os.environ.items() if k not in drop} if drop else None
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
