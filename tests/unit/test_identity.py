"""A cell's identity covers its input files and its code: no stale result is ever read back."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import causalkit as ck
from causalkit import identity
from causalkit.cli import compose
from causalkit.config import validate
from causalkit.registry import KINDS, Registry, default_registry
from causalkit.runner import execute
from causalkit.session import Session

ROLES = [f"data.roles.{k}" for k in ("unit=user_id", "time=week", "treatment=saw_ad")]
ROLES.append("data.roles.outcome=converted")


def test_small_files_are_hashed_whole_and_large_ones_sampled(tmp_path, monkeypatch):
    f = tmp_path / "d.csv"
    f.write_text("y,t\n1,0\n2,1\n")
    before = identity.file_fingerprint(f)
    os.utime(f, ns=(1, 1))  # a touch (or a copy) keeps the content, so the identity
    assert identity.file_fingerprint(f) == before
    f.write_text("y,t\n1,0\n3,1\n")
    assert identity.file_fingerprint(f) != before

    monkeypatch.setattr(identity, "FULL_HASH_LIMIT", 1 << 20)
    big = tmp_path / "big.parquet"
    big.write_bytes(bytes(4 << 20))
    sampled = identity.file_fingerprint(big)
    assert sampled.startswith("sample:")
    with big.open("r+b") as fh:  # same size: a changed footer byte (and mtime) is seen
        fh.seek((4 << 20) - 10)
        fh.write(b"\x01")
    assert identity.file_fingerprint(big) != sampled


def test_fifos_and_missing_files_are_never_opened(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    assert identity.file_fingerprint(tmp_path / "fifo").startswith("special:")
    assert identity.file_fingerprint(tmp_path / "missing.csv") == "missing"


def test_identity_names_data_and_code_but_seeds_stay(tmp_path):
    path = tmp_path / "d.csv"
    ck.simulate("contaminated_holdout", seed=1).dataset.frame.to_csv(path, index=False)
    cfg = validate(compose(["data=csv", f"data.path={path}", "dgp=none", *ROLES]))
    ident = identity.cell_identity(cfg, default_registry())
    assert ident.config_hash == cfg.cell_hash
    assert list(ident.inputs) == [str(path)]
    assert {"causalkit", "causalkit_plugins"} <= set(ident.code)
    assert ident.tags()["causalkit.identity"] == ident.key


def test_edited_csv_runs_the_cell_again(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    frame = ck.simulate("contaminated_holdout", seed=1).dataset.frame
    frame.to_csv("d.csv", index=False)
    args = ["data=csv", "data.path=d.csv", "dgp=none", *ROLES, "estimator=naive"]
    first = ck.run(args)
    frame.assign(converted=1 - frame["converted"]).to_csv("d.csv", index=False)
    second = ck.run(args)
    assert second.single.estimate == pytest.approx(-first.single.estimate, abs=1e-12)
    assert second.single.estimate != first.single.estimate  # not the stale result read back
    assert ck.run(args).single.estimate == second.single.estimate  # unchanged: read back


PLUGIN = """
from causalkit.contracts import Dataset
from causalkit_plugins.estimators.differences import ITT

OFFSET = {offset}


class Local(ITT):
    def fit(self, data, rng):
        f = data.frame.copy()
        f[data.roles.outcome] = f[data.roles.outcome] + OFFSET * f[data.roles.assignment]
        return super().fit(Dataset(frame=f, roles=data.roles), rng)
"""


def _registry(module) -> Registry:
    base, reg = default_registry(), Registry()
    for kind in KINDS:
        for name in base.names(kind):
            if (kind, name) != ("estimator", "itt"):
                reg.register(kind, base.get(kind, name))
    reg.register("estimator", module.Local, name="itt")
    return reg


def _metrics(start: Path, reg: Registry, *extra: str) -> tuple[np.ndarray, dict]:
    cfg = validate(compose(["estimator=itt", *extra]), reg)
    out = execute(cfg, {}, Session(reg), start)
    return out.replications["estimate"].to_numpy(), out.metrics


def test_code_change_never_mixes_old_rows(tmp_path, monkeypatch):
    """A bug fixed in an estimator: rows of the buggy code are never reused (checkpoint or run)."""
    pkg = tmp_path / "pkg"
    (pkg / "ck_local_fix").mkdir(parents=True)
    source = pkg / "ck_local_fix" / "__init__.py"
    source.write_text(PLUGIN.format(offset=0.25))
    monkeypatch.syspath_prepend(str(pkg))
    module = importlib.import_module("ck_local_fix")
    try:
        store = tmp_path / "store"
        _metrics(store, _registry(module), "mc.reps=20")  # the buggy code's result
        source.write_text(PLUGIN.format(offset=0.0))  # the fix
        module = importlib.reload(module)
        identity._package_source.cache_clear()  # as in a new process
        reg = _registry(module)
        fixed, m = _metrics(store, reg, "mc.reps=40")
        clean, m_clean = _metrics(tmp_path / "clean", reg, "mc.reps=40")
        np.testing.assert_array_equal(fixed, clean)
        assert m["mean_estimate"] == m_clean["mean_estimate"]
        other, _ = _metrics(store, reg, "mc.reps=40", "tracking.experiment=other")
        np.testing.assert_array_equal(other, clean)
    finally:
        sys.modules.pop("ck_local_fix", None)
        identity._package_source.cache_clear()


def test_a_copy_of_the_data_in_another_folder_draws_the_same_folds(tmp_path):
    """A data file seeds by its name alone (``FileParams.seed_dump``); its path stays in the identity."""
    sim = ck.simulate("selection_on_observables", seed=2, n=300)
    runs = []
    for folder in ("a", "b/c"):
        (tmp_path / folder).mkdir(parents=True)
        sim.dataset.frame.to_csv(tmp_path / folder / "obs.csv", index=False)
        runs.append(
            [
                "tracking=none",
                "data=csv",
                "dgp=none",
                f"data.path={tmp_path / folder / 'obs.csv'}",
                "data.roles.outcome=y",
                "data.roles.treatment=treat",
                "data.roles.covariates=[x1,x2]",
                "estimator=aipw",
            ]
        )
    a, b = (validate(compose(r)) for r in runs)
    assert a.cell_hash != b.cell_hash and a.seed_hash == b.seed_hash
    fit_a, fit_b = ck.run(runs[0]).single, ck.run(runs[1]).single
    assert fit_a.estimate == fit_b.estimate and fit_a.se == fit_b.se  # the same folds
