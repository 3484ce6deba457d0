"""The command line: every cell composed once and validated once into a plan, then launched by Hydra."""

from __future__ import annotations

import argparse
import contextlib
import copy
import itertools
import string
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from causalkit.composition import (
    CONF_DIR,
    app_config,
    check_composed,
    check_overrides,
    compose,
    compose_node,
    hydra_on_conf,
    is_hydra_override,
    mask_credentials,
    translate,
)
from causalkit.errors import CausalkitError, ConfigError, Interrupted
from causalkit.redact import Redactions, uri_credentials
from causalkit.registry import Registry, default_registry

if TYPE_CHECKING:
    from causalkit.config import RunConfig

__all__ = ["CONF_DIR", "main", "preflight", "compose", "Plan"]

# --------------------------------------------------------------------------------------------
# The plan: every cell composed once and validated once
# --------------------------------------------------------------------------------------------


class _ArgError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """Hydra's command-line flags that causalkit supports; a bad flag is one line (exit 2)."""

    def error(self, message: str) -> Any:  # noqa: D102 - argparse hook
        raise _ArgError(message)


def _parser() -> _Parser:
    p = _Parser(prog="python -m causalkit", add_help=False)
    p.add_argument(
        "overrides",
        nargs="*",
        help="Any key=value arguments to override config values (use dots for.nested=overrides)",
    )
    p.add_argument("--help", "-h", action="store_true", help="Application's help")
    p.add_argument("--hydra-help", action="store_true", help="Hydra's help")
    p.add_argument(
        "--cfg",
        "-c",
        choices=["job", "hydra", "all"],
        help="Show config instead of running [job|hydra|all]",
    )
    p.add_argument(
        "--resolve",
        action="store_true",
        help="Used in conjunction with --cfg, resolve config interpolations before printing.",
    )
    p.add_argument("--package", "-p", help="Config package to show")
    p.add_argument(
        "--multirun",
        "-m",
        action="store_true",
        help="Run multiple jobs with the configured launcher and sweeper",
    )
    return p


@dataclass(frozen=True)
class _Args:
    multirun: bool
    task: tuple[str, ...]
    hydra: tuple[str, ...]
    show: str | None = None
    resolve: bool = False
    package: str | None = None


def _parse(argv: Sequence[str]) -> _Args:
    try:
        ns = _parser().parse_intermixed_args(list(argv))
    except _ArgError as exc:
        raise ConfigError(
            "command line",
            "Hydra overrides and the flags -m, --cfg, --help, --hydra-help",
            str(exc),
        ) from None
    check_overrides(ns.overrides)
    task = tuple(o for o in ns.overrides if not is_hydra_override(o))
    hydra = tuple(o for o in ns.overrides if is_hydra_override(o))
    show = "help" if ns.help else "hydra_help" if ns.hydra_help else ns.cfg
    return _Args(ns.multirun, task, hydra, show, ns.resolve, ns.package)


def _sweep_jobs(items: Sequence[str]) -> list[tuple[str, ...]]:
    """Each job's overrides, as Hydra's basic sweeper makes them.

    One axis per key in order of first appearance, the last value given for a key winning
    (so command-line axes replace a preset's ``hydra.sweeper.params``); discrete sweeps
    (``a,b``, ``range()``, ``choice()``) expand; the jobs are the cartesian product.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(list(items))
    except Exception as exc:
        raise translate(exc, items) from None
    axes: dict[str, list[str]] = {}
    for o in parsed:
        key = o.get_key_element()
        if o.is_sweep_override():
            if not o.is_discrete_sweep():
                raise ConfigError(
                    key, "a list of values (a,b,c) or range() for a sweep", o.input_line
                )
            axes[key] = [f"{key}={v}" for v in o.sweep_string_iterator()]
        else:
            axes[key] = [f"{key}={o.get_value_element_as_str()}"]
    return [tuple(job) for job in itertools.product(*axes.values())]


@dataclass(frozen=True)
class Plan:
    """What a command runs: every cell composed once and validated once, before any work.

    Parameters
    ----------
    cells : tuple of RunConfig
        The validated cells, in launch order.
    jobs : tuple of tuple of str
        Each cell's overrides as Hydra's launcher receives them (its sweep axes).
    multirun : bool
        Whether the command is a sweep (``-m``).
    overrides : tuple of str
        The command's overrides of the application's config (URI credentials masked: a record).
    composed : tuple
        Each cell's composed config with its ``hydra`` node (what Hydra's launcher runs).
    """

    cells: tuple[RunConfig, ...]
    jobs: tuple[tuple[str, ...], ...]
    multirun: bool
    overrides: tuple[str, ...]
    composed: tuple[Any, ...] = field(repr=False, compare=False)


def preflight(argv: Sequence[str], registry: Registry | None = None) -> Plan:
    """Compose and validate every cell a command would run, before any work starts.

    Parameters
    ----------
    argv : sequence of str
        The command line after ``python -m causalkit`` (overrides and ``-m``).
    registry : Registry, optional
        Plugins to validate against (default: :func:`~causalkit.registry.default_registry`).

    Returns
    -------
    Plan
        The validated cells; a sweep's axes come from the command line and from a preset's
        ``hydra.sweeper.params``.

    Raises
    ------
    ConfigError
        The first cell that does not compose or validate, in one line.
    """
    from causalkit.composition import RUN_FOLDER_KEYS, without_run_folders
    from causalkit.config import validate

    args = _parse(argv)
    registry = registry if registry is not None else default_registry()
    hydra = [*args.hydra, f"hydra.mode={'MULTIRUN' if args.multirun else 'RUN'}"]
    jobs = _sweep_jobs(args.task) if args.multirun else [args.task]
    composed: list[Any] = []
    try:
        with hydra_on_conf():
            first = compose_node([*hydra, *jobs[0]], hydra_node=True)
            params = _sweeper_params(first) if args.multirun else []
            check_overrides(params)
            if params:
                jobs = _sweep_jobs([*params, *args.task])
                first = compose_node([*hydra, *jobs[0]], hydra_node=True)
            composed.append(first)
            composed.extend(compose_node([*hydra, *job], hydra_node=True) for job in jobs[1:])
            for c in composed:
                check_composed(c)
            apps = [app_config(c) for c in composed]
            for c in composed:
                mask_credentials(c)  # Hydra's run folders record these; the cells keep the URI
    except CausalkitError:
        raise
    except Exception as exc:
        raise translate(exc, [*args.hydra, *args.task]) from None
    cells = tuple(validate(app, registry) for app in apps)
    placed = any(o.lstrip("+~").split("=", 1)[0] in RUN_FOLDER_KEYS for o in args.hydra)
    if not placed and all(c.tracking.backend == "none" for c in cells):
        for c in composed:  # tracking=none keeps no record, Hydra's included
            without_run_folders(c)
    shown = tuple(uri_credentials(o) for o in args.task)
    return Plan(cells, tuple(jobs), args.multirun, shown, tuple(composed))


def _sweeper_params(cfg: Any) -> list[str]:
    from omegaconf import OmegaConf

    params = OmegaConf.select(cfg, "hydra.sweeper.params")
    if not params:
        return []
    # Unresolved: the axes name runs, and a ${oc.env:...} in them must stay an interpolation.
    raw = OmegaConf.to_container(params, resolve=False)
    assert isinstance(raw, dict)
    return [f"{k!s}={v!s}" for k, v in raw.items()]


# --------------------------------------------------------------------------------------------
# --help, --hydra-help, --cfg
# --------------------------------------------------------------------------------------------


def _show(args: _Args) -> None:
    """Print the help or the composed config as Hydra does, without running anything."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    with hydra_on_conf():
        try:
            cfg = compose_node([*args.hydra, *args.task], hydra_node=True)
        except Exception as exc:
            raise translate(exc, [*args.hydra, *args.task]) from None
        HydraConfig.instance().set_config(cfg)
        loader = GlobalHydra.instance().config_loader()
        shown = copy.deepcopy(cfg)
        for node in (shown, shown.hydra):
            OmegaConf.set_readonly(node, False)
            OmegaConf.set_struct(node, False)
        if args.show in ("job", "help"):
            del shown["hydra"]
        elif args.show in ("hydra", "hydra_help"):
            for key in [k for k in shown if k != "hydra"]:
                del shown[key]
            del shown.hydra["help"], shown.hydra["hydra_help"]
        if args.show in ("help", "hydra_help"):
            template = string.Template(cfg.hydra[args.show].template)
            print(
                template.substitute(
                    FLAGS_HELP="".join(
                        f"{','.join(a.option_strings)} : {a.help}\n"
                        for a in _parser()._actions
                        if a.option_strings
                    )
                    + "Overrides : "
                    + str(_parser()._actions[0].help),
                    HYDRA_CONFIG_GROUPS=_groups(loader, hydra=True),
                    APP_CONFIG_GROUPS=_groups(loader, hydra=False),
                    CONFIG=OmegaConf.to_yaml(shown, resolve=args.resolve),
                )
            )
            return
        node = (
            shown
            if args.package in (None, "_global_")
            else OmegaConf.select(shown, str(args.package))
        )
        if node is None:
            raise ConfigError("--package", "a package of the config", args.package)
        if args.package not in (None, "_global_") and OmegaConf.is_config(node):
            print(f"# @package {args.package}")
        if OmegaConf.is_config(node):
            sys.stdout.write(OmegaConf.to_yaml(node, resolve=args.resolve))
        else:
            print(node)


def _groups(loader: Any, hydra: bool, parent: str = "") -> str:
    """List config groups and their options, one line per group, as Hydra's help lists them."""
    from hydra.core.object_type import ObjectType

    # The loader's own search path, read directly: the loader's methods rebuild (deep-copy) a
    # caching repository on every call, ~90 calls here
    repo = loader.repository

    def walk(parent: str) -> list[str]:
        out = []
        for group in repo.get_group_options(parent, ObjectType.GROUP):
            name = f"{parent}/{group}" if parent else group
            if repo.get_group_options(name, ObjectType.CONFIG):
                out.append(name)
            if repo.get_group_options(name, ObjectType.GROUP):
                out.extend(walk(name))
        return out

    names = [g for g in walk(parent) if (g == "hydra" or g.startswith("hydra/")) == hydra]
    return "".join(
        f"{g}: {', '.join(sorted(repo.get_group_options(g, ObjectType.CONFIG)))}\n"
        for g in sorted(names)
    )


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------


def _fail(exc: BaseException, redactions: Redactions | None = None) -> None:
    """Print the error in one line (URI credentials and the run's environment values masked); exit 2."""
    shown = (redactions or Redactions()).text(str(exc))
    print(f"causalkit: error: {shown}", file=sys.stderr)
    sys.exit(2)


def main(argv: Sequence[str] | None = None) -> None:
    """Run ``python -m causalkit [flags] [overrides]``: plan, open the sweep's parent run, launch.

    Parameters
    ----------
    argv : sequence of str, optional
        The command line after the program name (default ``sys.argv[1:]``, which is only read).

    Notes
    -----
    Every cell is composed (Hydra's Compose API on ``conf/``) and validated once, before any
    work; a user mistake is one line on stderr and exit code 2. A sweep (``-m``) opens one
    MLflow parent run, whose id is handed to each cell with the plan; Hydra's configured
    launcher (``hydra/launcher=joblib`` included) runs the cells. Exit code 1 when a cell of
    a sweep failed. Ctrl-C (SIGINT) and SIGTERM print one line, how far the work got
    (:class:`~causalkit.errors.Interrupted`), close the open runs as KILLED and exit with
    130 and 143.
    """
    from causalkit.runner import install_sigterm_handler

    install_sigterm_handler()
    try:
        _main(list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt as exc:
        stopped = Interrupted.of(exc)
        if sys.stderr.isatty():
            print(file=sys.stderr)  # below a progress bar's line
        print(f"causalkit: {stopped}", file=sys.stderr)
        sys.exit(stopped.exit_code)


def _main(argv: list[str]) -> None:
    """Run the command (:func:`main`), leaving Ctrl-C and SIGTERM to it."""
    try:
        args = _parse(argv)
        if args.show is not None:
            _show(args)
            return
        from causalkit.session import Session  # after --help, which needs no plugins

        session = Session(default_registry())
        plan = preflight(argv, session.registry)
    except CausalkitError as exc:
        _fail(exc)
        return
    parent = None
    tracked = [c for c in plan.cells if c.tracking.backend == "mlflow"]
    if tracked:
        from causalkit.runner import sweep_name
        from causalkit.tracking import SWEEP_TAG, MlflowTracker

        try:
            tracker = MlflowTracker(tracked[0].tracking)
            tracker.experiment_id()  # create the store and experiment once, before any worker
            tracker.reap(f"tags.`{SWEEP_TAG}` = '1'")
            if plan.multirun:
                name = sweep_name(plan.jobs)
                hashes = ",".join(c.cell_hash for c in plan.cells)
                tags = {
                    SWEEP_TAG: "1",
                    "causalkit.cells": str(len(plan.cells)),
                    "causalkit.cell_hashes": hashes,
                }
                parent = (
                    tracker,
                    tracker.start_run(name, {"sweep": " ".join(plan.overrides)[:500]}, tags),
                )
        except CausalkitError as exc:
            _fail(exc, tracked[0].tracking.redactions)
            return
    from causalkit.launch import CellTask, launch

    task = CellTask(
        plan.cells, plan.jobs, plan.multirun, session, Path.cwd(), parent[1] if parent else None
    )
    status = "FINISHED"
    stopped: Interrupted | None = None
    failed = 0
    beat = parent[0].heartbeat(parent[1]) if parent is not None else contextlib.nullcontext()
    try:
        with beat:  # a sweep's parent shows it is alive to processes on other hosts
            launch(plan, task)
    except (
        CausalkitError
    ) as exc:  # a single run's failure (a sweep's cells report theirs and go on)
        status = "FAILED"
        _fail(exc, plan.cells[0].tracking.redactions)
    except OSError as exc:  # e.g. Hydra's run folder in a read-only runs/, a full disk: one line
        status = "FAILED"
        _fail(exc, plan.cells[0].tracking.redactions)
    except KeyboardInterrupt as exc:  # raised again below, once the parent run is closed
        status, stopped = "KILLED", Interrupted.of(exc)
    except BaseException:
        status = "FAILED"
        raise
    finally:
        if parent is not None:
            tracker_, run_id = parent
            try:
                failed = _failed_children(tracker_, run_id)
                tracker_.set_tags(run_id, {"causalkit.failed_cells": str(failed)})
                if stopped is not None:  # the sweep's one line, on its run and on stderr
                    tracker_.close_interrupted(run_id, stopped.signum)
                    stopped = stopped.in_sweep(len(plan.cells) - failed, len(plan.cells))
                tracker_.end_run(run_id, status, error=str(stopped) if stopped else None)
            except CausalkitError as exc:  # the store refuses writes: closed as far as it allows
                tracker_.end_run(run_id, "FAILED")
                _fail(exc, plan.cells[0].tracking.redactions)
    if stopped is not None:
        raise stopped
    if parent is not None and failed:
        print(
            f"causalkit: {failed} of {len(plan.cells)} cells FAILED (see the causalkit.error tag of their runs)",
            file=sys.stderr,
        )
        sys.exit(1)


def _failed_children(tracker: Any, run_id: str) -> int:
    from causalkit.report import sweep_table

    table = sweep_table(tracker, run_id)
    return int((table["status"] != "FINISHED").sum())
