"""The aipw estimator as a user runs it: the Python API and the command line (small worlds)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import causalkit

ROOT = Path(__file__).resolve().parents[2]


def test_api_fit_with_segments():
    rng = np.random.default_rng(0)
    n = 2000
    x = rng.standard_normal(n)
    d = rng.binomial(1, 1 / (1 + np.exp(-x)))
    frame = pd.DataFrame(
        {"x": x, "d": d, "y": x + d + rng.standard_normal(n), "g": rng.choice(["a", "b"], n)}
    )
    res = causalkit.fit(
        frame,
        "aipw",
        outcome="y",
        treatment="d",
        covariates=["x"],
        segments=["g"],
        outcome_model="linear",
        inference="multiplier",
        seed=1,
    )
    assert abs(res.to_dict()["estimate"] - 1.0) < 0.3


@pytest.mark.cli
def test_cli_position_bias_aipw_runs():
    cmd = [
        sys.executable,
        "-m",
        "causalkit",
        "dgp=position_bias",
        "estimator=aipw",
        "dgp.n_rows=5000",
        "dgp.n_users=500",
        "dgp.n_items=800",
        "dgp.n_subcategories=40",
        "estimator.folds=2",
        "tracking=none",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert "aipw" in proc.stdout and "truth (ATE)" in proc.stdout
