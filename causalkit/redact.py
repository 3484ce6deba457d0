"""What never reaches a log, a tag or an error: environment values, URI credentials, file contents."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Redactions", "Resolved", "uri_credentials", "read_error", "MASK"]

MASK = "***"

# ``scheme://`` then the authority up to its last ``@`` (a password may hold ``@`` unencoded).
_AUTHORITY = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<auth>[^/\s?#]*)@")
_SECRET_QUERY = re.compile(
    r"(?P<key>[?&;](?:password|passwd|pwd|pass|token|secret|api[_-]?key|access[_-]?key|"
    r"secret[_-]?key|key|auth|authorization|sig|signature|credentials?)=)[^&;#\s]*",
    re.IGNORECASE,
)
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")

Path_ = tuple[str | int, ...]
"""A value's place in a config: its keys and list indexes from the root."""


def uri_credentials(text: str) -> str:
    """Mask the credentials of every URI in ``text``.

    Parameters
    ----------
    text : str
        Any text: a tracking URI, an error message quoting one.

    Returns
    -------
    str
        ``text`` with each URI's password (``user:***@``), a bare user-info token (``***@``)
        and secret query parameters (``?password=***``, ``token``, ``key``, ...) masked.
    """

    def authority(m: re.Match[str]) -> str:
        user, sep, _ = m["auth"].partition(":")
        return f"{m['scheme']}{user}:{MASK}@" if sep else f"{m['scheme']}{MASK}@"

    return _SECRET_QUERY.sub(lambda m: m["key"] + MASK, _AUTHORITY.sub(authority, text))


def read_error(exc: BaseException) -> str:
    """Describe why a reader failed without quoting what it read.

    Parameters
    ----------
    exc : BaseException
        The reader's exception (pandas, pyarrow, the codec).

    Returns
    -------
    str
        The exception's kind and first line, anything quoted in it replaced by ``'...'``
        (parsers quote the text they choke on); a decoding error names the encoding and the
        byte's position only.
    """
    if isinstance(exc, UnicodeDecodeError):
        return f"not {exc.encoding} text (undecodable byte at position {exc.start})"
    lines = str(exc).strip().splitlines()
    first = _QUOTED.sub("'...'", lines[0])[:240] if lines else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


@dataclass(frozen=True)
class Redactions:
    """What must be hidden when a config, or text about it, is logged.

    Parameters
    ----------
    paths : tuple of (path, str)
        Config values resolved from the environment (``${oc.env:NAME}``), each with how it
        is shown instead: its interpolation, e.g. ``"${oc.env:MY_SECRET}"``.
    values : tuple of (str, str)
        The environment values those interpolations resolved to (4 characters or more) and
        their interpolation, replaced wherever they occur in free text (error messages).
    """

    paths: tuple[tuple[Path_, str], ...] = ()
    values: tuple[tuple[str, str], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.paths or self.values)

    def shown(self, path: Path_) -> str | None:
        """Return how the value at ``path`` is shown, or ``None`` when it is shown as it is."""
        return dict(self.paths).get(path)

    def text(self, text: str) -> str:
        """Return ``text`` with environment values and URI credentials masked."""
        for value, shown in sorted(self.values, key=lambda p: -len(p[0])):
            text = text.replace(value, shown)
        return uri_credentials(text)

    def config(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Return a copy of a config's plain values with environment values shown as interpolations."""
        out: dict[str, Any] = copy.deepcopy(dict(values))
        for path, shown in self.paths:
            node: Any = out
            for part in path[:-1]:
                try:
                    node = node[part]
                except (KeyError, IndexError, TypeError):
                    break
            else:
                if isinstance(node, (dict, list)) and _has(node, path[-1]):
                    node[path[-1]] = shown  # type: ignore[index]
        return out


def _has(node: dict[Any, Any] | list[Any], key: str | int) -> bool:
    if isinstance(node, dict):
        return key in node
    return isinstance(key, int) and -len(node) <= key < len(node)


class Resolved(dict[str, Any]):
    """A composed config resolved to plain values, with what must be hidden when it is logged.

    Parameters
    ----------
    values : mapping
        The resolved config.
    redactions : Redactions
        Its values that came from the environment.
    """

    def __init__(self, values: Mapping[str, Any], redactions: Redactions | None = None) -> None:
        super().__init__(values)
        self.redactions = redactions or Redactions()
