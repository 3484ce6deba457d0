"""Shared fixtures: a small contaminated-holdout panel and an isolated working directory."""

from __future__ import annotations

import numpy as np
import pytest

from causalkit_plugins.dgps.contaminated_holdout import ContaminatedHoldout


@pytest.fixture
def holdout_panel():
    """One draw of the default contaminated-holdout DGP (seed 42, the document's demo draw)."""
    return ContaminatedHoldout().simulate(np.random.default_rng(42), None)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run in a fresh directory so runs/mlflow.db is private to the test."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path
