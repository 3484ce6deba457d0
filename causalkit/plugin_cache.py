"""A cache of the plugin listing, keyed on the installed code it was built from.

Listing every plugin (``python -m causalkit.plugins``) imports every plugin module and, with
them, pandas and the estimation stack; the listing itself is plain data that changes only when
the installed code does. It is kept as JSON in causalkit's cache directory
(:func:`causalkit.store.cache_dir`: ``$CAUSALKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/causalkit``,
else ``~/.cache/causalkit``),
named by a fingerprint of

- the Python and pydantic versions (the listing is read from the plugins' pydantic models);
- every entry point advertised under the causalkit groups: group, name, target, and the name
  and version of the distribution that advertises it;
- every ``.py`` file of the top-level packages those targets live in, and of ``causalkit``
  itself: relative path, size and modification time (nanoseconds), so an edit in an editable
  install, an upgrade or a newly installed third-party plugin gives another fingerprint.

Computing the fingerprint imports none of the plugins (``importlib.util.find_spec`` on a
top-level name locates a package without importing it). An unwritable cache directory only
costs the speed-up.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
import tempfile
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points, version
from pathlib import Path
from typing import Any

from causalkit.store import cache_dir

__all__ = ["fingerprint", "files_signature", "read", "write"]

_PREFIX = "plugins-"


def files_signature(roots: Iterable[Path]) -> list[tuple[str, str, int, int]]:
    """Return ``(root, relative path, size, mtime_ns)`` of every ``.py`` file under ``roots``."""
    out = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            st = path.stat()
            out.append((str(root), str(path.relative_to(root)), st.st_size, st.st_mtime_ns))
    return out


def _package_roots(modules: Iterable[str]) -> list[Path]:
    roots: set[Path] = set()
    for top in sorted({m.split(".")[0] for m in modules}):
        spec = importlib.util.find_spec(top)
        if spec is None:
            continue
        if spec.submodule_search_locations:
            roots.update(Path(p) for p in spec.submodule_search_locations)
        elif spec.origin:
            roots.add(Path(spec.origin).parent)
    return sorted(roots)


def fingerprint(groups: Iterable[str]) -> str:
    """Return the fingerprint of the installed code behind the plugins of ``groups``.

    Parameters
    ----------
    groups : iterable of str
        Entry-point groups (``causalkit.estimator``, ...).

    Returns
    -------
    str
        A SHA-256 hex digest (see the module docstring for what it covers).
    """
    advertised: list[EntryPoint] = []
    found = entry_points()
    for group in groups:
        advertised += found.select(group=group)
    eps = sorted(
        (
            ep.group,
            ep.name,
            ep.value,
            ep.dist.name if ep.dist else "",
            ep.dist.version if ep.dist else "",
        )
        for ep in advertised
    )
    modules = ["causalkit", *(ep.value.split(":")[0] for ep in advertised)]
    key = {
        "python": platform.python_version(),
        "pydantic": version("pydantic"),
        "entry_points": eps,
        "files": files_signature(_package_roots(modules)),
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def read(key: str) -> Any | None:
    """Return the listing cached under ``key``, or ``None`` (absent or unreadable)."""
    try:
        return json.loads((cache_dir() / f"{_PREFIX}{key}.json").read_text())
    except (OSError, ValueError):
        return None


def write(key: str, listing: Any) -> None:
    """Cache ``listing`` under ``key`` (atomically) and drop listings of other fingerprints."""
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(listing, fh)
            os.replace(tmp, folder / f"{_PREFIX}{key}.json")
        finally:
            Path(tmp).unlink(missing_ok=True)
        for old in folder.glob(f"{_PREFIX}*.json"):
            if old.name != f"{_PREFIX}{key}.json":
                old.unlink(missing_ok=True)
    except OSError:
        return
