"""``ipw`` and ``psm`` through ``causalkit.fit`` and the command line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import causalkit
from causalkit.contracts import Dataset, Roles
from causalkit.registry import Registry
from causalkit_plugins.dgps.selection_on_observables import (
    SelectionOnObservables,
    SelectionOnObservablesParams,
)
from causalkit_plugins.estimators.differences import Naive
from causalkit_plugins.estimators.selection.ipw import IPW, IPWParams
from causalkit_plugins.estimators.selection.ols import OLS
from causalkit_plugins.estimators.selection.psm import PSM


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


# The registry's pairings follow from the declared capabilities; multiplier is valid wherever
# the fit carries influence values (naive, itt and ols gained it with the capability contract).
PAIRINGS = {
    "naive": ("analytic", "bootstrap", "multiplier", "none"),
    "itt": ("analytic", "bootstrap", "multiplier", "none"),
    "ols": ("analytic", "bootstrap", "multiplier", "none"),
    "ipw": ("analytic", "bootstrap", "multiplier", "none"),
    "psm": ("analytic", "none"),  # Abadie-Imbens SE; the bootstrap is invalid for matching
    "heckman": ("analytic", "bootstrap", "multiplier", "none"),
}


def test_pairings_follow_from_capabilities():
    registry = Registry().load_entry_points()
    for name, expected in PAIRINGS.items():
        assert registry.pairings(name) == expected, name
        assert registry.default_inference(name) == "analytic"


@pytest.mark.parametrize(
    ("cls", "params"),
    [
        (IPW, {"estimand": "ATT", "propensity_model": "probit"}),
        (IPW, {"estimand": "atc", "weights": "unnormalized", "trim": 0.05}),
        (OLS, {"estimand": "ATT"}),
        (PSM, {"estimand": "ATE", "match_on": "covariates", "bias_adjust": True}),
        (PSM, {"replace": False, "order": "random", "caliper": 0.5}),
        (Naive, {}),
    ],
)
def test_every_fit_offers_exactly_the_declared_capabilities(frame, cls, params):
    p = cls.Params(**params)
    roles = Roles(outcome="y", treatment="treat", covariates=("x1", "x2"))
    fit = cls(p).fit(Dataset(frame, roles), np.random.default_rng(0))
    assert fit.capabilities == cls.capabilities(p)
    if fit.resampler is not None:
        assert fit.resampler.refit(np.arange(fit.n)).shape == (fit.k,)
        np.testing.assert_array_equal(fit.resampler.strata, frame["treat"].to_numpy())
