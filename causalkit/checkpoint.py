"""Checkpoints of finished replications, so a killed Monte Carlo cell resumes where it stopped."""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Checkpoint"]


@dataclass(frozen=True)
class Checkpoint:
    """Replication rows of one cell (keyed by its config hash), saved atomically as they finish.

    Replication ``r`` always draws from the same seed, so rows computed before a kill are exactly
    the rows an uninterrupted run computes: resuming reproduces its final metrics bit for bit.
    """

    path: Path

    @classmethod
    def for_cell(cls, root: Path, cell_hash: str) -> Checkpoint:
        """Return the checkpoint of cell ``cell_hash`` under ``root/runs/checkpoints``."""
        return cls(root / "runs" / "checkpoints" / f"{cell_hash}.pkl")

    def load(self) -> dict[int, Any]:
        """Return the saved rows by replication index (empty when there is no usable checkpoint)."""
        try:
            with self.path.open("rb") as fh:
                rows = pickle.load(fh)
        except (OSError, EOFError, pickle.UnpicklingError):
            return {}
        return rows if isinstance(rows, dict) else {}

    def save(self, rows: dict[int, Any]) -> None:
        """Write all rows so far: to a temporary file, then an atomic rename."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        with tmp.open("wb") as fh:
            pickle.dump(rows, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, self.path)

    def clear(self) -> None:
        """Delete the checkpoint (a fresh run of the cell)."""
        self.path.unlink(missing_ok=True)
