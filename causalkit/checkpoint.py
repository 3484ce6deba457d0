"""Checkpoints of finished replications, so a killed Monte Carlo cell resumes where it stopped.

A checkpoint is a folder per cell identity, ``runs/checkpoints/<identity>/``, holding one file
per finished chunk of replications (appended, never rewritten). Each file is plain data, never
executable: a one-line JSON header, then the rows as JSON::

    {"format": "causalkit-checkpoint/1", "identity": ..., "rows": n, "sha256": <payload hex>}
    [[r, {column: value, ...}, error or null], ...]

JSON keeps every value as it was (a float's shortest repr round-trips exactly; ints, bools,
strings and ``null`` stay themselves; NaN and infinities are written as ``NaN``/``Infinity``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Checkpoint", "CheckpointWarning", "FORMAT"]

FORMAT = "causalkit-checkpoint/1"
Row = tuple[int, dict[str, Any], "str | None"]
"""One replication: its index, its values and its error (``None`` when it succeeded)."""


class CheckpointWarning(UserWarning):
    """A checkpoint file could not be used; its replications are computed again."""


def _scalar(value: object) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


@dataclass(frozen=True)
class Checkpoint:
    """Replication rows of one cell identity, saved chunk by chunk as they finish.

    Replication ``r`` always draws from the same seed, so rows computed before a kill are exactly
    the rows an uninterrupted run computes: resuming reproduces its final metrics bit for bit.
    A file whose header names another identity, whose checksum or structure is wrong, or that
    cannot be read is skipped with a :class:`CheckpointWarning` (its replications are run again):
    loading never raises and never returns rows other than the ones saved.
    """

    folder: Path
    identity: str

    @classmethod
    def for_cell(cls, root: Path, identity: str) -> Checkpoint:
        """Return the checkpoint of the cell with identity ``identity`` under ``root/runs/checkpoints``."""
        return cls(root / "runs" / "checkpoints" / identity, identity)

    def save(self, rows: Iterable[Row]) -> bool:
        """Append one chunk's rows as a new file (temporary name, then an atomic rename).

        Returns whether they were saved: a failure to write (full disk, removed folder) is a
        warning, and the run goes on without them.
        """
        rows = list(rows)
        if not rows:
            return True
        try:
            payload = json.dumps(
                [[int(r), values, error] for r, values, error in rows], separators=(",", ":")
            ).encode()
            header = {
                "format": FORMAT,
                "identity": self.identity,
                "rows": len(rows),
                "sha256": hashlib.sha256(payload).hexdigest(),
            }
            self.folder.mkdir(parents=True, exist_ok=True)
            name = f"{min(r for r, _, _ in rows):09d}-{max(r for r, _, _ in rows):09d}.ckpt"
            tmp = self.folder / f".{name}.{os.getpid()}.tmp"
            tmp.write_bytes(json.dumps(header, separators=(",", ":")).encode() + b"\n" + payload)
            os.replace(tmp, self.folder / name)
        except (OSError, TypeError, ValueError) as exc:
            warnings.warn(
                f"checkpoint {self.folder}: not saved ({exc}); the run goes on without it",
                CheckpointWarning,
                stacklevel=2,
            )
            return False
        return True

    def load(self) -> dict[int, tuple[dict[str, Any], str | None]]:
        """Return the saved rows by replication index (empty when there is no usable checkpoint)."""
        out: dict[int, tuple[dict[str, Any], str | None]] = {}
        try:
            files = sorted(p for p in self.folder.iterdir() if p.suffix == ".ckpt")
        except OSError:
            return out
        for path in files:
            try:
                rows = self._read(path)
            except (OSError, ValueError, TypeError, KeyError, IndexError) as exc:
                warnings.warn(
                    f"checkpoint file {path} ignored ({exc}); its replications run again",
                    CheckpointWarning,
                    stacklevel=2,
                )
                continue
            for r, values, error in rows:
                out.setdefault(r, (values, error))
        return out

    def _read(self, path: Path) -> list[Row]:
        head, sep, payload = path.read_bytes().partition(b"\n")
        if not sep:
            raise ValueError("no header")
        header = json.loads(head)
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ValueError("not a causalkit checkpoint")
        if header.get("identity") != self.identity:
            raise ValueError(f"written for cell {header.get('identity')!r}")
        if hashlib.sha256(payload).hexdigest() != header["sha256"]:
            raise ValueError("checksum mismatch")
        rows = json.loads(payload)
        if not isinstance(rows, list) or len(rows) != header["rows"]:
            raise ValueError("row count differs from its header")
        out: list[Row] = []
        for item in rows:
            r, values, error = item
            if (
                type(r) is not int
                or r < 0
                or not isinstance(values, dict)
                or not all(isinstance(k, str) and _scalar(v) for k, v in values.items())
                or not (error is None or isinstance(error, str))
            ):
                raise ValueError("malformed row")
            out.append((r, values, error))
        return out

    def clear(self) -> None:
        """Delete the checkpoint (the cell finished, or runs afresh)."""
        shutil.rmtree(self.folder, ignore_errors=True)
