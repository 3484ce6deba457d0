"""The command line: pre-flight validation of every cell, the sweep's parent run, Hydra's main."""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from causalkit.config import RunConfig, validate
from causalkit.errors import CausalkitError, ConfigError

__all__ = ["CONF_DIR", "main", "preflight", "compose", "Plan"]

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
_PASSTHROUGH_FLAGS = {"--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--shell-completion", "-sc"}
_MAX_PREFLIGHT = 5000


def _register_resolvers() -> None:
    """``${ck_root:}`` is the causalkit checkout (the folder holding ``conf/``), for presets' data paths."""
    from omegaconf import OmegaConf

    OmegaConf.register_new_resolver("ck_root", lambda: str(CONF_DIR.parent), replace=True)


_register_resolvers()


@dataclass(frozen=True)
class Plan:
    """What pre-flight found: the validated cells and whether this is a sweep."""

    cells: tuple[RunConfig, ...]
    multirun: bool
    overrides: tuple[str, ...]


def _is_hydra_override(item: str) -> bool:
    key = item.lstrip("+~").split("=", 1)[0]
    return key == "hydra" or key.startswith(("hydra.", "hydra/"))


def _translate(exc: Exception, overrides: Sequence[str]) -> ConfigError:
    """One line for Hydra's multi-line composition errors."""
    msg = str(exc)
    m = re.search(r"Could not find '([^']+)/([^']+)'", msg)
    if m:
        group, choice = m.group(1), m.group(2)
        options = re.findall(r"^\t(\S+)$", msg, flags=re.M)
        if not options:
            options = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
        return ConfigError(group, f"one of {', '.join(options)}", choice)
    m = re.search(r"Could not override '([^']+)'", msg) or re.search(r"Could not append to config\. An item is already at '([^']+)'", msg)
    if m:
        key = m.group(1)
        parent, _, leaf = key.rpartition(".")
        allowed = _allowed_keys(parent, [o for o in overrides if not o.lstrip("+~").startswith(key)])
        shown = ", ".join(allowed) if allowed else "(see the group's YAML)"
        return ConfigError(key, f"one of the keys {shown}", leaf)
    m = re.search(r"Key '([^']+)' (?:is not in struct|not in)", msg)
    if m:
        return ConfigError(m.group(1), "an existing key", "unknown key")
    first = msg.strip().splitlines()[0] if msg.strip() else type(exc).__name__
    return ConfigError("command line", "valid Hydra overrides (key=value)", first)


def _allowed_keys(parent: str, overrides: Sequence[str]) -> list[str]:
    try:
        from omegaconf import OmegaConf

        cfg = _compose_raw(overrides)
        node = OmegaConf.select(cfg, parent) if parent else cfg
        return sorted(str(k) for k in node.keys()) if node is not None and hasattr(node, "keys") else []
    except Exception:
        return []


def _compose_raw(overrides: Sequence[str]) -> Any:
    """``conf/`` composed with ``overrides``, without the ``hydra`` node.

    Hydra's ``compose`` builds its own configuration (launcher, sweeper, logging, help, ...)
    beside the application's and then drops it; that costs more than composing ``conf/``
    (~0.07 s of ~0.13 s per cell). The application's part goes through Hydra's own steps
    (override parsing, defaults list, merge, overrides applied in struct mode) with the
    Hydra defaults left out; ``tests/unit/test_compose.py`` checks both give the same
    configuration and the same errors for every preset and group choice.
    """
    with _conf_dir():
        return _compose_app(list(overrides))


def _conf_dir() -> Any:
    """Hydra initialised on ``conf/`` (a context manager; any earlier initialisation cleared)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    return initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="causalkit")


def _compose_app(overrides: list[str]) -> Any:
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf, open_dict
    from omegaconf.errors import OmegaConfBaseException

    try:
        from hydra._internal.config_loader_impl import ConfigLoaderImpl
        from hydra._internal.defaults_list import create_defaults_list
        from hydra.errors import ConfigCompositionException
        from hydra.types import RunMode
    except ImportError:  # a Hydra without these internals: its public compose
        from hydra import compose as hydra_compose

        return hydra_compose(config_name="config", overrides=overrides)

    loader = GlobalHydra.instance().config_loader()
    assert isinstance(loader, ConfigLoaderImpl)
    try:
        loader.ensure_main_config_source_available()
        parsed, repo = loader._parse_overrides_and_create_caching_repo("config", overrides)
        loader.validate_sweep_overrides_legal(overrides=parsed, run_mode=RunMode.RUN, from_shell=False)
        defaults = create_defaults_list(repo=repo, config_name="config", overrides_list=parsed,
                                        prepend_hydra=False, skip_missing=False)
        cfg = loader._compose_config_from_defaults_list(defaults=defaults.defaults, repo=repo)
        OmegaConf.set_struct(cfg, True)
        ConfigLoaderImpl._apply_overrides_to_config(defaults.config_overrides, cfg)
    except OmegaConfBaseException as exc:
        raise ConfigCompositionException().with_traceback(exc.__traceback__) from exc
    with open_dict(cfg):
        cfg.pop("hydra", None)
    return cfg


def compose(overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Compose ``conf/`` with Hydra overrides into a plain dict (no ``hydra`` node)."""
    from omegaconf import OmegaConf

    try:
        cfg = _compose_raw([o for o in overrides if not _is_hydra_override(o)])
        raw = OmegaConf.to_container(cfg, resolve=True)
    except CausalkitError:
        raise
    except Exception as exc:
        raise _translate(exc, overrides) from None
    assert isinstance(raw, dict)
    return raw


def _expand(overrides: Sequence[str]) -> list[list[str]]:
    """The cartesian product of sweep overrides, as lists of plain overrides."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception as exc:
        raise _translate(exc, overrides) from None
    axes: list[list[str]] = []
    for o in parsed:
        prefix = {OverrideType.ADD: "+", OverrideType.FORCE_ADD: "++", OverrideType.DEL: "~"}.get(o.type, "")
        key = f"{prefix}{o.get_key_element()}"
        if o.is_sweep_override():
            if not o.is_discrete_sweep():
                raise ConfigError(key, "a list of values (a,b,c) or range() for a sweep", o.input_line)
            axes.append([f"{key}={v}" for v in o.sweep_string_iterator()])
        else:
            axes.append([o.input_line])
    return [list(combo) for combo in itertools.product(*axes)]


def _preset_sweep(overrides: Sequence[str]) -> list[str]:
    """Sweep axes an experiment preset declares under ``hydra.sweeper.params`` (CLI axes win)."""
    from hydra import compose as hydra_compose
    from omegaconf import OmegaConf

    plain = [o for o in overrides if "," not in o.split("=", 1)[-1] and not _is_hydra_override(o)]
    try:
        with _conf_dir():
            cfg = hydra_compose(config_name="config", overrides=plain, return_hydra_config=True)
        params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
    except Exception as exc:
        raise _translate(exc, overrides) from None
    given = {o.lstrip("+~").split("=", 1)[0] for o in overrides}
    return [f"{k}={v}" for k, v in dict(params).items() if k not in given]


def preflight(argv: Sequence[str]) -> Plan:
    """Validate every cell a command would run, before any work starts."""
    multirun = any(a in ("-m", "--multirun") for a in argv)
    overrides = [a for a in argv if not a.startswith("-") and not _is_hydra_override(a)]
    if multirun:
        overrides = [*overrides, *_preset_sweep(overrides)]
    combos = _expand(overrides) if multirun else [list(overrides)]
    cells = []
    for combo in combos[:_MAX_PREFLIGHT]:
        cells.append(validate(compose(combo)))
    return Plan(tuple(cells), multirun, tuple(overrides))


def _fail(exc: BaseException) -> None:
    print(f"causalkit: error: {exc}", file=sys.stderr)
    sys.exit(2)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m causalkit [overrides]``: validate, open the sweep's parent run, hand over to Hydra."""
    from causalkit.runner import install_sigterm_handler

    argv = list(sys.argv[1:] if argv is None else argv)
    install_sigterm_handler()
    if any(a.split("=", 1)[0] in _PASSTHROUGH_FLAGS for a in argv):
        _hydra_main(argv)
        return
    try:
        plan = preflight(argv)
    except CausalkitError as exc:
        _fail(exc)
        return
    parent = None
    tracked = [c for c in plan.cells if c.tracking.backend == "mlflow"]
    if tracked:
        from causalkit.tracking import SWEEP_TAG, MlflowTracker

        try:
            tracker = MlflowTracker(tracked[0].tracking)
            tracker.experiment_id()  # create the store and experiment once, before any worker
        except CausalkitError as exc:
            _fail(exc)
            return
        tracker.reap(f"tags.`{SWEEP_TAG}` = '1'")
        if plan.multirun:
            name = "sweep: " + " ".join(plan.overrides) if plan.overrides else "sweep"
            hashes = ",".join(c.cell_hash for c in plan.cells)
            tags = {SWEEP_TAG: "1", "causalkit.cells": str(len(plan.cells)), "causalkit.cell_hashes": hashes}
            parent = (tracker, tracker.start_run(name, {"sweep": " ".join(plan.overrides)[:500]}, tags))
            argv = [*argv, f"tracking.parent_run_id={parent[1]}"]
    status = "FINISHED"
    try:
        _hydra_main(argv)
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except BaseException:
        status = "FAILED"
        raise
    finally:
        if parent is not None:
            tracker_, run_id = parent
            failed = _failed_children(tracker_, run_id)
            tracker_.set_tags(run_id, {"causalkit.failed_cells": str(failed)})
            tracker_.end_run(run_id, status)
    if parent is not None and failed:
        print(f"causalkit: {failed} of {len(plan.cells)} cells FAILED (see the causalkit.error tag of their runs)",
              file=sys.stderr)
        sys.exit(1)


def _failed_children(tracker: Any, run_id: str) -> int:
    from causalkit.report import sweep_table

    table = sweep_table(tracker, run_id)
    return int((table["status"] != "FINISHED").sum())


def _hydra_main(argv: Sequence[str]) -> None:
    import hydra

    sys.argv = [sys.argv[0], *argv]
    app = hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")(_task)
    app()


def _task(dcfg: Any) -> None:
    """Hydra's task function: one cell."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from causalkit.runner import execute

    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    axes = {}
    for item in hc.overrides.task:
        key, _, value = item.partition("=")
        axes[key.lstrip("+~")] = value
    try:
        cfg = validate(OmegaConf.to_container(dcfg, resolve=True))
        outcome = execute(cfg, axes, start_dir=Path.cwd())
    except KeyboardInterrupt:
        raise
    except CausalkitError as exc:
        if multirun:
            print(f"causalkit: cell {hc.job.num} FAILED: {exc}", file=sys.stderr)
            return
        _fail(exc)
        return
    except Exception as exc:
        if multirun:
            print(f"causalkit: cell {hc.job.num} FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
            return
        raise
    header = f"[cell {hc.job.num}] " + ", ".join(f"{k}={v}" for k, v in axes.items() if not k.startswith("tracking.")) if multirun else ""
    if header:
        print(header)
    print(outcome.summary())
