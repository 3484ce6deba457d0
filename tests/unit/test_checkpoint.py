"""Checkpoints: plain data with a checksum, appended per chunk, never executed, never wrong rows."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest

from causalkit.checkpoint import Checkpoint, CheckpointWarning
from causalkit.cli import compose
from causalkit.config import validate
from causalkit.identity import cell_identity
from causalkit.montecarlo import run_cell
from causalkit.registry import default_registry
from causalkit.runner import execute


def _rows(reps: int = 4) -> list[tuple[int, dict, str | None]]:
    table = run_cell(validate(compose(["estimator=itt", f"mc.reps={reps}"]))).replications
    out = []
    for rec in table.to_dict("records"):
        r, error = int(rec.pop("replication")), rec.pop("error")
        out.append((r, rec, error))
    out[-1] = (out[-1][0], {}, "EstimationError: no controls")
    return out


def test_every_single_bit_flip_is_caught(tmp_path):
    ckpt = Checkpoint.for_cell(tmp_path, "abc123")
    rows = _rows(3)
    ckpt.save(rows)
    expected = {r: (v, e) for r, v, e in rows}
    assert ckpt.load() == expected
    (path,) = ckpt.folder.iterdir()
    blob = bytearray(path.read_bytes())
    changed = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CheckpointWarning)
        for i in range(len(blob) * 8):
            flipped = bytearray(blob)
            flipped[i // 8] ^= 1 << (i % 8)
            path.write_bytes(bytes(flipped))
            got = ckpt.load()
            assert got in ({}, expected), i  # never other rows
            changed += got == {}
    assert changed == len(blob) * 8


def test_chunks_are_appended_not_rewritten_and_other_cells_ignored(tmp_path):
    rows = _rows(4)
    ckpt = Checkpoint.for_cell(tmp_path, "cell-a")
    ckpt.save(rows[:2])
    (first,) = ckpt.folder.iterdir()
    before = (first.read_bytes(), first.stat().st_mtime_ns)
    ckpt.save(rows[2:])
    assert len(list(ckpt.folder.iterdir())) == 2
    assert (first.read_bytes(), first.stat().st_mtime_ns) == before
    assert sorted(ckpt.load()) == [0, 1, 2, 3]
    other = Checkpoint(ckpt.folder, "cell-b")  # a file naming another identity is not used
    with pytest.warns(CheckpointWarning, match="written for cell 'cell-a'"):
        assert other.load() == {}
    ckpt.clear()
    assert not ckpt.folder.exists() and ckpt.load() == {}


class _Planted:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_planted_pickles_are_never_loaded(tmp_path):
    cfg = validate(compose(["estimator=itt", "mc.reps=20"]))
    marker = tmp_path / "pwned"
    bomb = pickle.dumps(_Planted(marker))
    folder = tmp_path / "runs" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / f"{cfg.cell_hash}.pkl").write_bytes(bomb)  # where 0.1 read its pickles
    key = cell_identity(cfg, default_registry()).key
    (folder / key).mkdir()
    (folder / key / "000000000-000000019.ckpt").write_bytes(bomb)
    with pytest.warns(CheckpointWarning, match="ignored"):
        out = execute(cfg, {}, start_dir=tmp_path)
    assert not marker.exists()
    clean = run_cell(cfg)
    np.testing.assert_array_equal(out.replications["estimate"], clean.replications["estimate"])
    assert not (folder / key).exists()  # removed when the cell finished


def test_a_pickled_table_in_the_store_is_never_read_back(tmp_path):
    cfg = validate(compose(["estimator=ipw", "dgp=selection_on_observables"]))
    first = execute(cfg, {}, start_dir=tmp_path)
    (table,) = (tmp_path / "runs" / "artifacts").rglob("result/tables/0.parquet")
    marker = tmp_path / "pwned"
    table.unlink()
    table.with_suffix(".pkl").write_bytes(pickle.dumps(_Planted(marker)))
    notes: list[str] = []
    again = execute(cfg, {}, start_dir=tmp_path, notice=notes.append)
    assert not marker.exists()
    assert "pickled table" in notes[0]  # run again instead of read back
    assert again.single.estimate == first.single.estimate
