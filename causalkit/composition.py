"""Composition of ``conf/`` with Hydra's public Compose API: one cell's config, resolved."""

from __future__ import annotations

import copy
import functools
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from causalkit.errors import CausalkitError, ConfigError
from causalkit.hints import QUOTE_HINT, key_hint, owners_hint
from causalkit.redact import MASK, Path_, Redactions, Resolved, uri_credentials

__all__ = [
    "CONF_DIR",
    "compose",
    "compose_node",
    "hydra_on_conf",
    "app_config",
    "translate",
    "is_hydra_override",
    "check_overrides",
    "check_composed",
    "mask_credentials",
    "without_run_folders",
    "RUN_FOLDER_KEYS",
]

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
# Hydra's own groups, left out of the defaults list where only the application's config is
# wanted (``compose``): dropping them from the list skips composing what would be dropped.
_HYDRA_GROUPS = (
    "output",
    "launcher",
    "sweeper",
    "help",
    "hydra_help",
    "hydra_logging",
    "job_logging",
    "env",
)


# Hydra settings a command line must not reach: each runs code or writes files of its choosing.
_GUARDED = {
    "hydra.callbacks": "Hydra callbacks run code",
    "hydra.job_logging": "logging handlers open files and load code; choose hydra/job_logging=<option>",
    "hydra.hydra_logging": "logging handlers open files and load code; choose hydra/hydra_logging=<option>",
    "hydra.searchpath": "configs come from conf/ only",
    "hydra.job.env_set": "it sets the environment of worker processes; set variables in the shell",
}
# Where Hydra's own configs carry ``_target_`` (the launcher and sweeper plugins chosen by group).
_TARGETS_ALLOWED = (("hydra", "launcher"), ("hydra", "sweeper"))
# ``${oc.env:NAME}`` is resolved a second time as ``${ck_env_mark:NAME}``: the marks show which
# values came from the environment, however indirectly.
_ENV = re.compile(r"\boc\.env\s*:")
_MARK = re.compile("\u2983([^\u2984]*)\u2984")


def _register_resolvers() -> None:
    """Register ``${ck_root:}``, the causalkit checkout (for presets' data paths), and the environment mark."""
    from omegaconf import OmegaConf

    OmegaConf.register_new_resolver("ck_root", lambda: str(CONF_DIR.parent), replace=True)
    OmegaConf.register_new_resolver(
        "ck_env_mark", lambda key, default=None: f"\u2983{key}\u2984", replace=True
    )


_register_resolvers()


# --------------------------------------------------------------------------------------------
# Composition (Hydra's public Compose API on conf/)
# --------------------------------------------------------------------------------------------


@contextmanager
def hydra_on_conf() -> Iterator[None]:
    """Initialise Hydra's Compose API on ``conf/`` for the block (any earlier initialisation cleared)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="causalkit"):
        yield


def compose_node(overrides: Sequence[str], hydra_node: bool) -> Any:
    """Compose ``conf/`` with ``overrides`` (inside :func:`hydra_on_conf`); the ``hydra`` node only if asked.

    Without it, Hydra's own groups are deleted from its defaults list (``~hydra/launcher``
    and so on: override grammar), which gives the same application config ~30% faster; a
    Hydra whose defaults list differs is composed as it is.
    """
    from hydra import compose as hydra_compose
    from hydra.errors import ConfigCompositionException

    if hydra_node:
        return hydra_compose(
            config_name="config", overrides=list(overrides), return_hydra_config=True
        )
    trimmed = [*overrides, *(f"~hydra/{g}" for g in _HYDRA_GROUPS)]
    try:
        return hydra_compose(config_name="config", overrides=trimmed)
    except ConfigCompositionException as exc:
        if "Could not delete from config. 'hydra/" not in str(exc):
            raise
    return hydra_compose(config_name="config", overrides=list(overrides))


def app_config(cfg: Any) -> Resolved:
    """Return the application's part of a composed config (no ``hydra`` node), resolved to plain values.

    The values that came from the environment (``${oc.env:NAME}``, directly or through other
    interpolations) are recorded in its ``redactions``, to be shown as their interpolation
    wherever the config is logged.
    """
    from omegaconf import OmegaConf

    app = (
        OmegaConf.masked_copy(cfg, [str(k) for k in cfg if k != "hydra"]) if "hydra" in cfg else cfg
    )
    raw = OmegaConf.to_container(app, resolve=True)
    assert isinstance(raw, dict)
    return Resolved({str(k): v for k, v in raw.items()}, _env_redactions(app))


def _leaves(node: Any, path: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaves(v, (*path, i))
    else:
        yield path, node


def _map_strings(node: Any, fn: Any) -> Any:
    if isinstance(node, dict):
        return {k: _map_strings(v, fn) for k, v in node.items()}
    if isinstance(node, list):
        return [_map_strings(v, fn) for v in node]
    return fn(node) if isinstance(node, str) else node


def _env_redactions(app: Any) -> Redactions:
    """Find the values of ``app`` resolved from the environment, and how to show them instead."""
    from omegaconf import OmegaConf

    raw = OmegaConf.to_container(app, resolve=False)
    if not any(isinstance(v, str) and _ENV.search(v) for _, v in _leaves(raw)):
        return Redactions()
    marked = _map_strings(raw, lambda s: _ENV.sub("ck_env_mark:", s))
    try:
        shown = OmegaConf.to_container(OmegaConf.create(marked), resolve=True)
    except Exception:  # cannot follow the interpolations: hide every interpolated value
        shown = _map_strings(raw, lambda s: "\u2983\u2984" if "${" in s else s)
    paths: list[tuple[Path_, str]] = []
    names: set[str] = set()
    for path, value in _leaves(shown):
        if isinstance(value, str) and _MARK.search(value):
            names.update(n for n in _MARK.findall(value) if n)
            paths.append(
                (path, _MARK.sub(lambda m: f"${{oc.env:{m[1]}}}" if m[1] else MASK, value))
            )
    env = [(os.environ[n], f"${{oc.env:{n}}}") for n in sorted(names) if n in os.environ]
    return Redactions(tuple(paths), tuple((v, s) for v, s in env if len(v) >= 4))


def _conf_signature() -> tuple[tuple[str, int, int], ...]:
    """Return path, size and mtime of every file under ``conf/`` (what a cached composition depends on)."""
    out = []
    for root, _, files in os.walk(CONF_DIR):
        for name in files:
            st = os.stat(os.path.join(root, name))
            out.append((os.path.join(root, name), st.st_size, st.st_mtime_ns))
    return tuple(sorted(out))


@functools.lru_cache(maxsize=256)
def _compose_cached(
    overrides: tuple[str, ...], signature: tuple[tuple[str, int, int], ...]
) -> dict[str, Any]:
    with hydra_on_conf():
        return app_config(compose_node(overrides, hydra_node=False))


def compose(overrides: Sequence[str] = (), source: str = "command line") -> dict[str, Any]:
    """Compose ``conf/`` with Hydra overrides into a plain dict (no ``hydra`` node; ``hydra.*`` overrides ignored).

    Parameters
    ----------
    overrides : sequence of str
        Hydra overrides as typed on the command line (``estimator=itt``, ``mc.reps=50``).
    source : str
        Where the overrides came from, as a grammar error names it (``overrides`` for
        :func:`causalkit.run`).

    Returns
    -------
    dict
        The resolved configuration, ready for :func:`causalkit.config.validate`.

    Notes
    -----
    Compositions are kept per overrides and per state of the files under ``conf/`` (a
    changed YAML file is composed afresh); overrides with interpolations are never kept.
    Each call returns a fresh copy. Overrides that would run code are refused first
    (:func:`check_overrides`), ``hydra.*`` ones included.
    """
    check_overrides(overrides)
    items = tuple(o for o in overrides if not is_hydra_override(o))
    try:
        if any("${" in o for o in items):
            with hydra_on_conf():
                return app_config(compose_node(items, hydra_node=False))
        return copy.deepcopy(_compose_cached(items, _conf_signature()))
    except CausalkitError:
        raise
    except Exception as exc:
        raise translate(exc, overrides, source) from None


def is_hydra_override(item: str) -> bool:
    """Tell whether an override sets Hydra's own config (``hydra.*``, ``hydra/<group>``)."""
    key = item.lstrip("+~").split("=", 1)[0]
    return key == "hydra" or key.startswith(("hydra.", "hydra/"))


def check_overrides(items: Sequence[str]) -> None:
    """Refuse overrides that would hand Hydra code to run or files to write, in one line.

    Parameters
    ----------
    items : sequence of str
        Overrides as typed (``key=value``, ``+key=value``, ``group@package=option``).

    Raises
    ------
    ConfigError
        On any ``_target_`` (causalkit builds its objects from the registry, never from a
        config), and on ``hydra.callbacks``, ``hydra.job_logging``, ``hydra.hydra_logging``,
        ``hydra.searchpath`` and ``hydra.job.env_set`` or a node holding them (``hydra``,
        ``hydra.job``). Group choices such as ``hydra/launcher=joblib`` or
        ``hydra/job_logging=disabled`` stay allowed: they choose among installed configs.
    """
    for item in items:
        key = item.split("=", 1)[0].strip().lstrip("+~")
        if "_target_" in item:
            raise ConfigError(
                key,
                "no _target_ (causalkit builds objects from its registry, not from config)",
                item,
            )
        group, _, package = key.partition("@")
        dests = [package] if package else [] if "/" in group else [group]
        for dest in dests:
            for guarded, why in _GUARDED.items():
                if dest == guarded or dest.startswith(f"{guarded}."):
                    raise ConfigError(dest, f"no override of {guarded} ({why})", item)
                if guarded.startswith(f"{dest}."):
                    raise ConfigError(
                        dest, f"single keys under {dest}, not all of it (it holds {guarded})", item
                    )


def check_composed(cfg: Any) -> None:
    """Refuse a composed config (``hydra`` node included) that Hydra would turn into code, or a changed folder.

    Parameters
    ----------
    cfg : DictConfig
        A config composed with its ``hydra`` node.

    Raises
    ------
    ConfigError
        When ``hydra.callbacks`` is set, ``hydra.job.chdir`` is true (every cell would get its
        own store under its run folder: nothing found again, nothing reported), or a
        ``_target_`` appears outside the launcher and sweeper Hydra's groups chose.
    """
    from omegaconf import OmegaConf

    if OmegaConf.select(cfg, "hydra.job.chdir", default=False):
        raise ConfigError(
            "hydra.job.chdir",
            "false (causalkit keeps one store under the start directory; with true every cell "
            "would get its own under its run folder)",
            True,
        )
    callbacks = OmegaConf.select(cfg, "hydra.callbacks", default=None)
    if callbacks:
        raise ConfigError(
            "hydra.callbacks", "none (Hydra callbacks run code)", ", ".join(callbacks)
        )
    for path, value in _leaves(OmegaConf.to_container(cfg, resolve=False)):
        if "_target_" in path and path[:2] not in _TARGETS_ALLOWED:
            raise ConfigError(
                ".".join(map(str, path)),
                "no _target_ (causalkit builds objects from its registry, not from config)",
                value,
            )


def mask_credentials(cfg: Any) -> None:
    """Mask URI credentials in every string of a composed config, in place.

    For the copy Hydra writes into its run folders (``.hydra/``, ``multirun.yaml``): the
    cells run from their validated configs, which keep the real URI.
    """
    from omegaconf import OmegaConf, open_dict, read_write

    for path, value in _leaves(OmegaConf.to_container(cfg, resolve=False)):
        if isinstance(value, str) and uri_credentials(value) != value:
            node = cfg
            for part in path[:-1]:
                node = node[part]
            with read_write(node), open_dict(node):
                node[path[-1]] = uri_credentials(value)


RUN_FOLDER_KEYS = ("hydra.run.dir", "hydra.sweep.dir", "hydra.sweep.subdir", "hydra.output_subdir")
"""Hydra settings that place its run folders; a command that sets one keeps Hydra's folders."""


def without_run_folders(cfg: Any) -> None:
    """Make Hydra write nothing for a composed config, in place (for ``tracking=none``).

    No ``.hydra/`` record (``output_subdir`` null), the run and sweep folders the start
    directory itself (which exists: nothing is created), and no logging handler that writes
    a file (Hydra's ``<job>.log``); console logging stays. A submitit launcher keeps its
    folders: its jobs' pickles and logs live in the sweep folder.
    """
    from omegaconf import OmegaConf, open_dict, read_write

    node = cfg.hydra
    if "submitit" in str(OmegaConf.select(node, "launcher._target_", default="")):
        return
    with read_write(node), open_dict(node):
        node.output_subdir = None
        node.run.dir = node.sweep.dir = node.sweep.subdir = "."
        logging = OmegaConf.select(node, "job_logging")
        if logging is None or "handlers" not in logging:
            return
        files = [k for k, h in logging.handlers.items() if "filename" in h]
        for key in files:
            del logging.handlers[key]
        root = OmegaConf.select(logging, "root.handlers")
        if root is not None:
            logging.root.handlers = [h for h in root if h not in files]


def translate(
    exc: Exception, overrides: Sequence[str], source: str = "command line"
) -> ConfigError:
    """Turn Hydra's multi-line composition errors into one line.

    ``source`` names where the overrides came from in a grammar error (``command line``, or
    ``overrides`` for :func:`causalkit.run`). An unknown key gets the hint of
    :data:`causalkit.hints.KEY_HINTS`, or the other plugins of its group that take it.
    """
    msg = str(exc)
    m = re.search(r"Ambiguous value for argument '([^=']+)=([^']*)'", msg)
    if m:  # a comma list without brackets is a sweep, which a single run cannot take
        key, value = m.group(1).lstrip("+~"), m.group(2)
        return ConfigError(
            key, f"a list in brackets, {key}=[{value}] (or -m to sweep over the values)", value
        )
    m = re.search(r"Could not find '([^']+)/([^']+)'", msg)
    if m:
        group, choice = m.group(1), m.group(2)
        options = re.findall(r"^\t(\S+)$", msg, flags=re.M)
        if not options:
            options = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
        return ConfigError(group, f"one of {', '.join(options)}", choice)
    m = re.search(r"Could not override '([^']+)'", msg) or re.search(
        r"Could not append to config\. An item is already at '([^']+)'", msg
    )
    if m:
        key = m.group(1)
        tree = _composed([o for o in overrides if not o.lstrip("+~").startswith(key)])
        if tree:  # report the first level that is missing (estimator.sensitivity of .cf_y)
            parts = key.split(".")
            key = next(
                (
                    ".".join(parts[:i])
                    for i in range(1, len(parts))
                    if _node(tree, ".".join(parts[:i])) is _MISSING
                ),
                key,
            )
        parent, _, leaf = key.rpartition(".")
        node = _node(tree, parent)
        allowed = sorted(str(k) for k in node) if isinstance(node, dict) else []
        shown = ", ".join(allowed) if allowed else "(see the group's YAML)"
        hint = _owners(tree, key) or key_hint(key)  # a plugin's own key is the truest hint
        return ConfigError(key, f"one of the keys {shown}" + (f"; {hint}" if hint else ""), leaf)
    m = re.search(r"Key '([^']+)' (?:is not in struct|not in)", msg)
    if m:
        return ConfigError(m.group(1), "an existing key", "unknown key")
    first = msg.strip().splitlines()[0] if msg.strip() else type(exc).__name__
    expected = "valid Hydra overrides (key=value)"
    if "mismatched input" in first or "extraneous input" in first or "no viable" in first:
        expected += f" ({QUOTE_HINT})"
    return ConfigError(source, expected, first)


def _composed(overrides: Sequence[str]) -> dict[str, Any]:
    """Compose ``overrides`` for an error's hint; empty when that fails too."""
    try:
        return compose(overrides)
    except Exception:
        return {}


_MISSING = object()


def _node(tree: Any, dotted: str) -> Any:
    """Return the node at ``dotted`` in a composed tree; ``_MISSING`` when a level is missing."""
    for part in dotted.split(".") if dotted else []:
        if not isinstance(tree, dict) or part not in tree:
            return _MISSING
        tree = tree[part]
    return tree


def _owners(tree: dict[str, Any], key: str) -> str | None:
    """For ``<group>.<param>`` the chosen plugin lacks: which other plugins of the group take it."""
    from causalkit.registry import KINDS, default_registry

    group, *rest = key.split(".")
    name = _node(tree, f"{group}.name")
    kind = next((k for k in KINDS if k == group), None)
    if kind is None or len(rest) != 1 or not isinstance(name, str):
        return None  # only a missing parameter of the plugin itself, not a sub-key of one it has
    return owners_hint(default_registry(), kind, name, rest[0])
