"""Run-level configuration models and the one function that validates a composed config."""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from causalkit.clusters import require_handled
from causalkit.contracts import Estimand, Params, Roles
from causalkit.errors import ConfigError, PluginError
from causalkit.hints import key_hint, pairing_hint
from causalkit.planning import FIRST_BATCH, MEASURES
from causalkit.redact import Redactions, Resolved, uri_credentials
from causalkit.registry import Kind, Registry, default_registry

__all__ = [
    "MCConfig",
    "TargetMCSE",
    "TrackingConfig",
    "PluginChoice",
    "RunConfig",
    "validate",
    "validate_params",
    "check_pairing",
    "format_validation_error",
]


class TargetMCSE(Params):
    """Monte Carlo SEs wanted (``mc.target_mcse``); ``None`` leaves a measure untargeted."""

    bias: float | None = Field(None, gt=0, allow_inf_nan=False, description="MCSE of the bias")
    coverage: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="MCSE of the coverage"
    )
    rmse: float | None = Field(None, gt=0, allow_inf_nan=False, description="MCSE of the RMSE")
    emp_se: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="MCSE of the empirical SE"
    )

    def targets(self) -> dict[str, float]:
        """Return the targeted measures and their MCSEs, in :data:`causalkit.planning.MEASURES` order."""
        return {m: v for m in MEASURES if (v := getattr(self, m)) is not None}


class MCConfig(Params):
    """Monte Carlo settings of a cell."""

    added_fields = frozenset({"target_mcse", "max_reps", "executor", "address"})

    reps: int = Field(1, ge=1, description="replications (fresh DGP draws)")
    seed: int = Field(20261123, ge=0, description="root seed; combined with the cell's config hash")
    n_jobs: int = Field(
        1,
        ge=1,
        description="worker processes for replications (mc.executor=dask: workers of the local cluster)",
    )
    executor: Literal["local", "dask"] = Field(
        "local",
        description="where replications run: local (this machine, mc.n_jobs processes) or dask "
        "(a Dask cluster; results bit-identical to local)",
    )
    address: str = Field(
        "",
        description="Dask scheduler of mc.executor=dask (tcp://HOST:8786); empty: a local cluster "
        "of mc.n_jobs single-threaded workers on 127.0.0.1",
    )
    resume: bool = Field(
        True, description="skip finished cells and resume checkpointed ones (false: run afresh)"
    )
    common_random_numbers: bool = Field(
        False,
        description="every estimator and inference of a study analyses the same simulated datasets (draws seeded "
        "from data, dgp and seed only; reused across cells in one process): paired comparisons, as in the "
        "MicroSynth document's own study",
    )
    target: Literal["auto", "ATE", "ATT", "ATC", "ITT", "CACE", "MEAN1", "MEAN0"] = Field(
        "auto",
        description="estimand whose truth bias is measured against (auto: the DGP's study target, else the estimator's own)",
    )
    target_mcse: TargetMCSE = Field(
        TargetMCSE(),
        description="MCSEs wanted (bias, coverage, rmse, emp_se): replications run in batches, from "
        f"mc.reps ({FIRST_BATCH} when left at 1), until every target is met or mc.max_reps",
    )
    max_reps: int | None = Field(
        None, ge=2, description="cap on the replications of a cell with mc.target_mcse"
    )

    @field_validator("target_mcse", mode="before")
    @classmethod
    def _no_targets(cls, value: Any) -> Any:
        return {} if value is None else value

    @model_validator(mode="wrap")
    @classmethod
    def _plan(cls, data: Any, handler: ModelWrapValidatorHandler[MCConfig]) -> MCConfig:
        """Check the plan's fields together; a planned cell left at one replication starts at FIRST_BATCH."""
        mc = handler(data)
        if mc.address and mc.executor != "dask":
            raise ConfigError("mc.address", "empty unless mc.executor=dask", mc.address)
        if mc.address and not re.fullmatch(r"(tcp|tls|inproc|ucx)://\S+", mc.address):
            raise ConfigError(
                "mc.address", "a Dask scheduler address like tcp://HOST:8786", mc.address
            )
        planned = bool(mc.target_mcse.targets())
        if planned and mc.max_reps is None:
            raise ConfigError("mc.max_reps", "a cap (an integer >= 2) with mc.target_mcse", None)
        if not planned and mc.max_reps is not None:
            raise ConfigError(
                "mc.max_reps", "null without mc.target_mcse (it caps a planned cell)", mc.max_reps
            )
        if mc.max_reps is not None and mc.max_reps < mc.reps:
            raise ConfigError("mc.max_reps", f"at least mc.reps ({mc.reps})", mc.max_reps)
        if planned and mc.reps == 1:
            assert mc.max_reps is not None
            return mc.model_copy(update={"reps": min(FIRST_BATCH, mc.max_reps)})
        return mc


class TrackingConfig(Params):
    """Where results are logged."""

    backend: Literal["mlflow", "none"] = "mlflow"
    uri: str | None = Field(
        None,
        description="MLflow tracking URI; default sqlite:///runs/mlflow.db under the start directory",
    )
    experiment: str = Field("causalkit", min_length=1)
    run_name: str | None = None
    _redactions: Redactions = PrivateAttr(default_factory=Redactions)

    @property
    def redactions(self) -> Redactions:
        """What the run's logs must not show: its values from the environment, URI credentials."""
        return self._redactions


@dataclass(frozen=True)
class PluginChoice:
    """A plugin's registry name and its validated parameters."""

    kind: Kind
    name: str
    params: BaseModel

    def build(self, registry: Registry) -> Any:
        """Instantiate the plugin from ``registry`` with the validated parameters."""
        return registry.get(self.kind, self.name)(self.params)

    def as_dict(self) -> dict[str, Any]:
        """Return the name and parameters as plain JSON-able values."""
        return {"name": self.name, **self.params.model_dump(mode="json")}

    def seed_dict(self) -> dict[str, Any]:
        """Return :meth:`as_dict` without the parameters that never change a draw (``seed_neutral``)."""
        seed_dump = getattr(self.params, "seed_dump", None)
        return {"name": self.name, **seed_dump()} if seed_dump else self.as_dict()


def _hash(obj: Mapping[str, Any]) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RunConfig:
    """A fully validated run: four plugins, Monte Carlo settings and tracking."""

    data: PluginChoice
    dgp: PluginChoice
    estimator: PluginChoice
    inference: PluginChoice
    mc: MCConfig
    tracking: TrackingConfig

    def cell_dict(self) -> dict[str, Any]:
        """Return what defines a cell's results: everything but tracking, n_jobs and reps."""
        return {
            "data": self.data.as_dict(),
            "dgp": self.dgp.as_dict(),
            "estimator": self.estimator.as_dict(),
            "inference": self.inference.as_dict(),
            # A key only when set, so the hashes (and seeds) of studies without it never change.
            "mc": {"seed": self.mc.seed, "target": self.mc.target}
            | ({"common_random_numbers": True} if self.mc.common_random_numbers else {}),
        }

    def to_dict(self) -> dict[str, Any]:
        """Return the whole run (cell, Monte Carlo settings and tracking) as plain values."""
        out = self.cell_dict()
        out["mc"] = self.mc.model_dump(mode="json")
        out["tracking"] = self.tracking.model_dump(mode="json")
        return out

    def logged_dict(self) -> dict[str, Any]:
        """Return :meth:`to_dict` as it may be logged.

        Values resolved from the environment are shown as their interpolation
        (``${oc.env:NAME}``) and the tracking URI's credentials are masked.
        """
        out = self.tracking.redactions.config(self.to_dict())
        if isinstance(out["tracking"].get("uri"), str):
            out["tracking"]["uri"] = uri_credentials(out["tracking"]["uri"])
        return out

    @functools.cached_property
    def cell_hash(self) -> str:
        """Stable SHA-256 (hex, 16 chars) of :meth:`cell_dict` in canonical JSON."""
        return _hash(self.cell_dict())

    @functools.cached_property
    def seed_hash(self) -> str:
        """Hash that seeds the cell's random streams: :attr:`cell_hash` without ``seed_neutral`` fields.

        Equal to :attr:`cell_hash` unless a plugin's ``seed_neutral`` parameter is set, so
        every earlier study keeps its seeds; with one set (e.g. ``estimator.sensitivity``),
        the cell draws exactly what it draws without it. A data file counts by its name
        alone (``FileParams.seed_dump``): the same file in another folder draws the same.
        """
        d = self.cell_dict()
        for key in ("data", "dgp", "estimator", "inference"):
            d[key] = getattr(self, key).seed_dict()
        return _hash(d)

    @functools.cached_property
    def draw_hash(self) -> str:
        """Hash that seeds the simulated datasets.

        The cell hash, or with common random numbers only what defines the draws (data, dgp,
        seed), shared by every estimator and inference.
        """
        if not self.mc.common_random_numbers:
            return self.seed_hash
        return _hash(
            {
                "data": self.data.seed_dict(),
                "dgp": self.dgp.as_dict(),
                "seed": self.mc.seed,
                "crn": True,
            }
        )

    @property
    def target(self) -> Estimand | None:
        """Estimand whose truth bias is measured against (``None``: automatic)."""
        return None if self.mc.target == "auto" else Estimand(self.mc.target)


def _expected(err: Mapping[str, Any]) -> str:
    msg = str(err.get("msg", "a valid value"))
    for prefix in ("Input should be ", "Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    return msg


def format_validation_error(
    prefix: str, exc: ValidationError, model: type[BaseModel]
) -> ConfigError:
    """Turn the first pydantic error into a one-line :class:`ConfigError`."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    field = f"{prefix}.{loc}" if loc else prefix
    if err["type"] == "extra_forbidden":
        node: Any = model
        for part in err["loc"][:-1]:
            info = getattr(node, "model_fields", {}).get(part)
            node = getattr(info, "annotation", None) if info else None
        allowed = sorted(getattr(node, "model_fields", {})) if node is not None else []
        hint = key_hint(field)
        expected = f"one of the keys {', '.join(allowed)}" if allowed else "no such key"
        return ConfigError(field, f"{expected}; {hint}" if hint else expected, err["loc"][-1])
    if err["type"] == "missing":
        return ConfigError(field, "a value (required)", "nothing")
    return ConfigError(field, _expected(err), err.get("input"))


def validate_params(prefix: str, model: type[BaseModel], values: Mapping[str, Any]) -> BaseModel:
    """Validate ``values`` against a plugin's params model with one-line errors."""
    try:
        return model.model_validate(dict(values))
    except ValidationError as exc:
        raise format_validation_error(prefix, exc, model) from None


def check_pairing(registry: Registry, estimator: str, params: BaseModel, inference: str) -> None:
    """Fail with one line naming the valid methods when ``inference`` cannot serve ``estimator``."""
    valid = registry.pairings(estimator, params)
    if inference not in valid:
        raise ConfigError(
            "inference",
            f"one of {', '.join(valid) or '(none)'} for estimator {estimator} with these parameters"
            + pairing_hint(registry, estimator, params, inference),
            inference,
        )


def _choice(kind: Kind, group: str, raw: Any, registry: Registry) -> PluginChoice:
    if not isinstance(raw, Mapping) or "name" not in raw:
        raise ConfigError(group, "a mapping with a 'name' key", raw)
    values = dict(raw)
    name = values.pop("name")
    try:
        plugin = registry.get(kind, str(name))
    except PluginError as exc:
        raise ConfigError(
            f"{group}.name", f"one of {', '.join(registry.names(kind))}", name
        ) from exc
    return PluginChoice(kind, str(name), validate_params(group, plugin.Params, values))


def validate(raw: Mapping[str, Any], registry: Registry | None = None) -> RunConfig:
    """Validate a composed (resolved, plain-container) config into a :class:`RunConfig`.

    Each plugin's parameters are checked by its own params model (unknown keys forbidden);
    ``inference: auto`` becomes the estimator's default; unsupported pairings, a real-data
    run without a table, and replications without a simulator are rejected here, before any
    work is done. A config from :func:`~causalkit.composition.compose` carries the values it
    took from the environment: errors show them as their interpolation, as does the run's
    name, and the tracking config keeps them to hide them from everything logged.
    """
    redactions = raw.redactions if isinstance(raw, Resolved) else Redactions()
    try:
        cfg = _validate(raw, registry or default_registry())
    except ConfigError as exc:
        if not redactions:
            raise
        got = redactions.text(exc.got) if isinstance(exc.got, str) else exc.got
        raise ConfigError(exc.field, redactions.text(exc.expected), got) from None
    if not redactions:
        return cfg
    name = redactions.shown(("tracking", "run_name"))
    tracking = cfg.tracking.model_copy(update={"run_name": name} if name else {})
    tracking._redactions = redactions
    return replace(cfg, tracking=tracking)


def _validate(raw: Mapping[str, Any], registry: Registry) -> RunConfig:
    allowed_top = {"data", "dgp", "estimator", "inference", "mc", "tracking", "experiment"}
    extra = sorted(set(raw) - allowed_top)
    if extra:
        raise ConfigError(
            extra[0], f"one of the top-level keys {', '.join(sorted(allowed_top))}", "unknown key"
        )
    for key in ("data", "dgp", "estimator", "inference"):
        if key not in raw:
            raise ConfigError(key, "a config group choice", "nothing")
    data = _choice("data", "data", raw["data"], registry)
    dgp = _choice("dgp", "dgp", raw["dgp"], registry)
    estimator = _choice("estimator", "estimator", raw["estimator"], registry)

    inf_raw = dict(raw["inference"]) if isinstance(raw["inference"], Mapping) else raw["inference"]
    if isinstance(inf_raw, Mapping) and inf_raw.get("name") == "auto":
        rest = {k: v for k, v in inf_raw.items() if k != "name"}
        if rest:
            raise ConfigError(
                f"inference.{next(iter(rest))}",
                "no parameters with inference=auto (choose a method)",
                "a parameter",
            )
        inf_raw = {"name": registry.default_inference(estimator.name, estimator.params)}
    inference = _choice("inference", "inference", inf_raw, registry)
    check_pairing(registry, estimator.name, estimator.params, inference.name)

    mc = validate_params("mc", MCConfig, raw.get("mc") or {})
    tracking = validate_params("tracking", TrackingConfig, raw.get("tracking") or {})
    assert isinstance(mc, MCConfig) and isinstance(tracking, TrackingConfig)

    dgp_cls = registry.get("dgp", dgp.name)
    data_cls = registry.get("data", data.name)
    data_roles = getattr(data.params, "roles", None)
    if isinstance(data_roles, Roles):
        require_handled(registry.get("estimator", estimator.name), data_roles, "data.roles")
    synthetic = data.name == "synthetic" or getattr(data_cls, "synthetic", False)
    if dgp_cls.needs_base and synthetic:
        raise ConfigError(
            "data", f"a data source with a table (csv, parquet) for dgp={dgp.name}", data.name
        )
    if not dgp_cls.needs_base and not synthetic:
        # The simulator would replace the user's table: the data source would be read and ignored.
        raise ConfigError(
            "dgp",
            f"none (a real analysis of data={data.name}) or a DGP that uses the table",
            dgp.name,
        )
    if dgp.name == "none" and mc.target_mcse.targets():
        raise ConfigError(
            "mc.target_mcse",
            "no targets for a real analysis (dgp=none has no replications to plan)",
            ",".join(mc.target_mcse.targets()),
        )
    if dgp.name == "none" and mc.reps > 1:
        raise ConfigError(
            "mc.reps", "1 for a real analysis (dgp=none has no truth to replicate)", mc.reps
        )
    if dgp.name == "none" and isinstance(data_roles, Roles) and data_roles.outcome is None:
        raise ConfigError("data.roles.outcome", "a column name (the outcome analysed)", "nothing")
    return RunConfig(data, dgp, estimator, inference, mc, tracking)
