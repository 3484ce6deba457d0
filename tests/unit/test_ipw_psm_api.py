"""``ipw`` and ``psm`` through ``causalkit.fit`` and the command line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import causalkit
from causalkit_plugins.dgps.selection_on_observables import (
    SelectionOnObservables,
    SelectionOnObservablesParams,
)
from causalkit_plugins.estimators.selection.ipw import IPW, IPWParams


@pytest.fixture(scope="module")
def frame():
    sim = SelectionOnObservables(SelectionOnObservablesParams(n=800)).simulate(
        np.random.default_rng(2), None
    )
    return sim.dataset.frame


def test_api_fit_equals_direct_plugin_call(frame):
    res = causalkit.fit(
        frame,
        estimator="ipw",
        outcome="y",
        treatment="treat",
        covariates=["x1", "x2"],
        seed=0,
        estimand="att",
    )
    d = res.to_dict()
    direct = IPW(IPWParams(estimand="att")).fit(
        causalkit.contracts.Dataset(
            frame,
            causalkit.contracts.Roles(outcome="y", treatment="treat", covariates=("x1", "x2")),
        ),
        np.random.default_rng(0),
    )
    assert d["estimate"] == pytest.approx(direct.estimate, rel=1e-12)
    assert "e_value" in d and "max_abs_smd_after" in d


def test_api_psm_with_caliper(frame):
    res = causalkit.fit(
        frame,
        estimator="psm",
        outcome="y",
        treatment="treat",
        covariates=["x1", "x2"],
        seed=0,
        caliper=0.1,
        k=2,
    )
    d = res.to_dict()
    assert np.isfinite(d["estimate"]) and d["se"] > 0


@pytest.mark.cli
@pytest.mark.parametrize("estimator", ["ipw", "psm"])
def test_cli_runs_on_selection_on_observables(workdir, estimator):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "causalkit",
            f"estimator={estimator}",
            "dgp=selection_on_observables",
            "tracking=none",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "balance" in out.stdout
