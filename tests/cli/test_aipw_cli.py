"""The aipw estimator as a user runs it: the Python API and the command line (small worlds).

Given folds are a data role (``data.roles.fold``): with them every inference AIPW pairs with,
the bootstrap included, runs; the old ``estimator.fold_column`` parameter fails at validation
(exit 2, one line), never at fit time.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import causalkit
from causalkit.testing import run_cli

ROOT = Path(__file__).resolve().parents[2]


def _frame(n: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n)
    d = rng.binomial(1, 1 / (1 + np.exp(-x)))
    return pd.DataFrame(
        {
            "x": x,
            "d": d,
            "y": x + d + rng.standard_normal(n),
            "g": rng.choice(["a", "b"], n),
            "fold": np.arange(n) % 3,
        }
    )


def test_api_fit_with_segments():
    res = causalkit.fit(
        _frame(2000),
        "aipw",
        outcome="y",
        treatment="d",
        covariates=["x"],
        segments=["g"],
        outcome_model="linear",
        inference={"name": "multiplier", "joint": True},
        seed=1,
    )
    assert abs(res.to_dict()["estimate"] - 1.0) < 0.3


def _cli(*overrides: str) -> subprocess.CompletedProcess[str]:
    return run_cli(ROOT, *overrides, "tracking=none", timeout=300)


@pytest.mark.cli
def test_cli_fold_role_with_bootstrap_runs_and_fold_column_fails_at_validation(tmp_path):
    path = tmp_path / "folds.csv"
    _frame().to_csv(path, index=False)
    data = [
        "data=csv",
        "dgp=none",
        f"data.path={path}",
        "data.roles.outcome=y",
        "data.roles.treatment=d",
        "data.roles.covariates=[x]",
        "data.roles.segments=[g]",
        "estimator=aipw",
        "estimator.outcome_model=linear",
        "inference=bootstrap",
        "inference.n_boot=20",
    ]
    proc = _cli(*data, "data.roles.fold=fold")
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert "segment[g=a]" in proc.stdout and "n_failed" in proc.stdout
    old = _cli(*data, "estimator.fold_column=fold")
    assert old.returncode == 2, old.stderr[-1500:]
    assert "estimator.fold_column" in old.stderr and "Traceback" not in old.stderr
    assert "n_treated" not in old.stdout  # nothing was fitted


@pytest.mark.cli
def test_cli_position_bias_aipw_runs():
    proc = _cli(
        "dgp=position_bias",
        "estimator=aipw",
        "dgp.n_rows=5000",
        "dgp.n_users=500",
        "dgp.n_items=800",
        "dgp.n_subcategories=40",
        "estimator.folds=2",
    )  # "tracking=none" last, as _cli adds it
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert "aipw" in proc.stdout and "truth (ATE)" in proc.stdout
