"""The Python API for notebook users: ``fit`` a frame, ``run`` a configured cell, ``simulate`` a DGP."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from causalkit.config import check_pairing, validate, validate_params
from causalkit.contracts import Dataset, Roles, Simulated
from causalkit.errors import ConfigError, PluginError
from causalkit.inputs import checked_fit
from causalkit.registry import Registry, default_registry
from causalkit.results import CellResult, EffectResult, build_result
from causalkit.session import Session, default_session

__all__ = ["fit", "run", "simulate"]

_ROLE_FIELDS = frozenset(Roles.model_fields)


def _plugin(registry: Registry, kind: str, name: str) -> Any:
    try:
        return registry.get(kind, name)  # type: ignore[arg-type]
    except PluginError:
        raise ConfigError(kind, f"one of {', '.join(registry.names(kind))}", name) from None  # type: ignore[arg-type]


def fit(
    frame: pd.DataFrame,
    estimator: str,
    *,
    inference: str | Mapping[str, Any] | None = None,
    seed: int = 0,
    registry: Registry | None = None,
    **options: Any,
) -> EffectResult:
    """Estimate an effect on ``frame``.

    Parameters
    ----------
    frame : DataFrame
        The data (long panel with ``unit``/``time`` roles, or one row per unit).
    estimator : str
        Registered estimator name, e.g. ``"microsynth"``.
    inference : str or mapping, optional
        Inference method name, or ``{"name": ..., **params}``; default: the estimator's.
    seed : int
        Root seed of the estimator's and the inference's random generators.
    **options
        Roles as keywords (``unit``, ``time``, ``treatment``, ``assignment``, ``outcome``,
        ``covariates``, ``cluster``, ...) or as one mapping ``roles={...}``, and the
        estimator's parameters as further keywords. A covariate role (``covariates``,
        ``selection_covariates``, ``propensity_covariates``) takes a list of columns or one
        formula, e.g. ``covariates="age + I(age**2) + C(education)"``
        (:mod:`causalkit.formulas`).

    Returns
    -------
    EffectResult
        The same immutable result the command line produces.
    """
    registry = registry or default_registry()
    est_cls = _plugin(registry, "estimator", estimator)
    given = options.pop("roles", None) or {}
    if not isinstance(given, Mapping):
        raise ConfigError("roles", "a mapping from role to column name(s) or a formula", given)
    keywords = {k: v for k, v in options.items() if k in _ROLE_FIELDS}
    twice = sorted(set(given) & set(keywords))
    if twice:
        raise ConfigError(f"roles.{twice[0]}", "each role once (a keyword or in roles=)", "both")
    roles = validate_params("roles", Roles, {**keywords, **given})
    params = validate_params(
        "estimator", est_cls.Params, {k: v for k, v in options.items() if k not in _ROLE_FIELDS}
    )
    default_inf = registry.default_inference(estimator, params)
    inf_params: dict[str, Any]
    if inference is None:
        inf_name, inf_params = default_inf, {}
    elif isinstance(inference, str):
        inf_name, inf_params = inference, {}
    else:
        inf_params = dict(inference)
        inf_name = str(inf_params.pop("name", default_inf))
    check_pairing(registry, estimator, params, inf_name)
    inf_cls = _plugin(registry, "inference", inf_name)
    inf = inf_cls(validate_params("inference", inf_cls.Params, inf_params))
    assert isinstance(roles, Roles)
    ss_est, ss_inf = np.random.SeedSequence(seed).spawn(2)
    result = checked_fit(
        est_cls(params), Dataset(frame, roles), np.random.Generator(np.random.PCG64(ss_est))
    )
    outcome = inf.infer(result, np.random.Generator(np.random.PCG64(ss_inf)))
    from causalkit.results import emit_warnings

    res = build_result(estimator, result, outcome, roles=roles)
    emit_warnings(res)  # once, as fit returns: a notebook shows them
    return res


def run(
    overrides: Sequence[str] = (),
    registry: Registry | None = None,
    *,
    session: Session | None = None,
) -> CellResult:
    """Run one cell composed from ``conf/`` with Hydra-style overrides.

    Parameters
    ----------
    overrides : sequence of str
        As on the command line, e.g. ``["estimator=itt", "mc.reps=50"]``.
    registry : Registry, optional
        The plugins to run with; every replication (in worker processes too) uses them.
    session : Session, optional
        Registry, draw cache and thread policy together. Default: a new session around
        ``registry`` when one is given, else :func:`~causalkit.session.default_session`
        (whose draw cache lets consecutive cells share common-random-number draws).

    Returns
    -------
    CellResult
        The cell's result, always: a cell that already finished in the MLflow store (same
        config hash and replications) is read back from it, so calling ``run`` twice returns
        equal results. ``mc.resume=false`` runs it afresh.
    """
    from causalkit.cli import compose
    from causalkit.runner import execute

    if session is None:
        session = Session(registry) if registry is not None else default_session()
    elif registry is not None and registry is not session.registry:
        raise ConfigError(
            "registry", "the session's registry (pass one or the other)", "another registry"
        )
    cfg = validate(compose(overrides, source="overrides"), session.registry)
    axes = dict(o.lstrip("+~").split("=", 1) for o in overrides if "=" in o)
    from causalkit.results import emit_warnings

    cell = execute(cfg, axes, session)
    emit_warnings(cell)  # once per cell, replications aggregated
    return cell


def simulate(dgp: str, seed: int = 0, registry: Registry | None = None, **params: Any) -> Simulated:
    """Draw one dataset (and its truth) from a registered DGP with the given parameters."""
    registry = registry or default_registry()
    cls = _plugin(registry, "dgp", dgp)
    model = cls(validate_params("dgp", cls.Params, params))
    return model.simulate(np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed))), None)
