"""A cell's identity: its config hash, a fingerprint of the files it reads and the code that runs it.

What produced a result is more than its configuration: the same ``data.path`` with an edited
file, or the same estimator after a bug fix, gives other numbers. Finished runs are found, and
checkpointed replications reused, by the identity; the config hash alone still seeds the
replications (seeds never change with a file or a code edit).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import stat
import sys
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from causalkit.config import PluginChoice, RunConfig
from causalkit.planning import Plan
from causalkit.registry import Registry

__all__ = ["CellIdentity", "cell_identity", "file_fingerprint", "code_fingerprint"]

FULL_HASH_LIMIT = 32 * 1024 * 1024
"""Files up to this size are hashed whole; larger ones by :func:`file_fingerprint`'s sample."""
_SAMPLE_BLOCKS = 16
_BLOCK = 64 * 1024
_EDGE = 1024 * 1024
_DIR_LIMIT = 100_000


def _digest(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=256)
def _regular_file(path: str, size: int, mtime_ns: int, ino: int) -> str:
    """Fingerprint of one regular file (cached per process while size, mtime and inode hold)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            if size <= FULL_HASH_LIMIT:
                while block := fh.read(1 << 20):
                    h.update(block)
                return "sha256:" + h.hexdigest()
            h.update(f"{size}:{mtime_ns}".encode())
            offsets = [0, size - _EDGE]
            step = (size - 2 * _EDGE) // (_SAMPLE_BLOCKS + 1)
            offsets += [_EDGE + step * (i + 1) for i in range(_SAMPLE_BLOCKS)]
            for off in offsets:
                fh.seek(off)
                h.update(fh.read(_EDGE if off in (0, size - _EDGE) else _BLOCK))
    except OSError as exc:
        return f"unreadable:{exc.errno}"
    return "sample:" + h.hexdigest()


def file_fingerprint(path: Path) -> str:
    """Fingerprint of an input file or dataset directory.

    Parameters
    ----------
    path : Path
        The file as the cell names it (relative to the working directory).

    Returns
    -------
    str
        A short text that changes when the content does.

    Notes
    -----
    A regular file up to :data:`FULL_HASH_LIMIT` bytes: the SHA-256 of its content (a copy or
    a ``touch`` keeps the identity; any edit changes it). A larger one: size, ``mtime_ns``,
    its first and last MiB (a parquet file's footer with its schema, row-group offsets and
    column statistics) and 16 blocks of 64 KiB spread evenly, so a rewrite is always seen
    (its mtime changes) and reading a multi-GB file costs about 3 MiB. A directory (a parquet
    dataset): the relative name, size and ``mtime_ns`` of each file below it; above 100,000
    files a directory is not fingerprinted and the cell is never read back or resumed.
    A missing path, a FIFO or a device is fingerprinted by its kind only (never opened); the
    data source reports the problem when the cell runs.
    """
    try:
        st = path.stat()
    except OSError:
        return "missing"
    if stat.S_ISREG(st.st_mode):
        return _regular_file(str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    if stat.S_ISDIR(st.st_mode):
        entries = []
        for i, (rel, size, mtime) in enumerate(_walk(path)):
            if i >= _DIR_LIMIT:  # not fingerprinted: never the same cell twice
                return f"dir-unbounded:{uuid.uuid4().hex}"
            entries.append((rel, size, mtime))
        return "dir:" + _digest(entries)
    return f"special:{stat.S_IFMT(st.st_mode)}"


def _walk(root: Path) -> Iterator[tuple[str, int, int]]:
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(folder, name)
            try:
                st = os.stat(full)
            except OSError:
                continue
            yield os.path.relpath(full, root), st.st_size, st.st_mtime_ns


def _input_paths(choice: PluginChoice, plugin: object) -> list[str]:
    """Files a plugin reads: its ``inputs()`` when it has one, else its ``path``/``*_path`` params."""
    hook = getattr(plugin, "inputs", None)
    if callable(hook):
        return [str(p) for p in hook()]
    found = []
    for key, value in choice.params.model_dump().items():
        if (key == "path" or key.endswith("_path")) and isinstance(value, (str, os.PathLike)):
            found.append(str(value))
    return found


@functools.lru_cache(maxsize=64)
def _package_source(top: str) -> str:
    """SHA-256 of the ``.py`` files of top-level package (or module) ``top``, once per process."""
    module = sys.modules.get(top)
    if module is None:
        return "unknown"
    files: list[tuple[str, Path]] = []
    for root in map(Path, getattr(module, "__path__", [])):
        files += [(str(f.relative_to(root)), f) for f in sorted(root.rglob("*.py"))]
    if not files and getattr(module, "__file__", None):
        files = [(top, Path(str(module.__file__)))]
    if not files:
        return "unknown"
    h = hashlib.sha256()
    for rel, f in files:  # names relative to the package: a copied checkout keeps its hash
        try:
            data = f.read_bytes()
        except OSError:
            continue
        h.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=64)
def _distribution(top: str) -> str:
    dists = importlib.metadata.packages_distributions().get(top, [])
    if not dists:
        return f"{top} (no distribution)"
    name = dists[0]
    try:
        return f"{name}=={importlib.metadata.version(name)}"
    except importlib.metadata.PackageNotFoundError:
        return f"{name} (no version)"


def code_fingerprint(modules: Iterable[str]) -> dict[str, str]:
    """Distribution version and source hash of the top-level package of each module.

    Parameters
    ----------
    modules : iterable of str
        Module names (``causalkit`` and each plugin class's module).

    Returns
    -------
    dict of str to str
        ``{top-level package: "dist==version source-hash"}``. The source hash (every ``.py``
        file under the package, computed once per process) covers editable installs and
        local edits, where the version number stays the same.
    """
    out = {}
    for mod in modules:
        top = mod.split(".")[0]
        if top not in out:
            out[top] = f"{_distribution(top)} {_package_source(top)}"
    return out


@dataclass(frozen=True)
class CellIdentity:
    """What a cell's result depends on; its :attr:`key` names finished runs and checkpoints.

    Attributes
    ----------
    config_hash : str
        :attr:`RunConfig.cell_hash` (the seeds derive from it alone).
    inputs : dict of str to str
        Input file (as the cell names it) to :func:`file_fingerprint`.
    code : dict of str to str
        :func:`code_fingerprint` of causalkit and the cell's plugins.
    plan : str or None
        :attr:`causalkit.planning.Plan.key` of a cell with ``mc.target_mcse`` (its
        replications depend on the plan, not on ``mc.reps`` alone), else ``None``.
    """

    config_hash: str
    inputs: dict[str, str]
    code: dict[str, str]
    plan: str | None = None

    @functools.cached_property
    def key(self) -> str:
        """16 hex characters: the hash of the config hash, the inputs, the code (and the plan)."""
        parts = {"config": self.config_hash, "inputs": self.inputs, "code": self.code}
        return _digest(parts if self.plan is None else parts | {"plan": self.plan})

    def tags(self) -> dict[str, str]:
        """MLflow tags recording the identity and its parts."""
        return {
            "causalkit.identity": self.key,
            "causalkit.inputs": json.dumps(self.inputs, sort_keys=True),
            "causalkit.code": json.dumps(self.code, sort_keys=True),
        } | ({"causalkit.plan": self.plan} if self.plan is not None else {})


def cell_identity(cfg: RunConfig, registry: Registry) -> CellIdentity:
    """Return the identity of cell ``cfg`` with plugins from ``registry``.

    Parameters
    ----------
    cfg : RunConfig
        The validated cell.
    registry : Registry
        Where its plugins come from (their modules are fingerprinted).

    Returns
    -------
    CellIdentity
        Config hash, input fingerprints (:func:`file_fingerprint`) and code fingerprint
        (:func:`code_fingerprint`).
    """
    inputs: dict[str, str] = {}
    modules = ["causalkit"]
    for choice in (cfg.data, cfg.dgp, cfg.estimator, cfg.inference):
        cls = registry.get(choice.kind, choice.name)
        modules.append(cls.__module__)
        try:
            plugin = cls(choice.params)
        except Exception:  # the run reports a plugin that cannot be built
            plugin = None
        for p in _input_paths(choice, plugin):
            inputs[p] = file_fingerprint(Path(p).expanduser())
    plan = Plan.of(cfg.mc)
    return CellIdentity(
        cfg.cell_hash, inputs, code_fingerprint(modules), plan.key if plan is not None else None
    )
