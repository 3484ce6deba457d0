"""``microsynth_panel`` with ``inference=linearisation`` reproduces R microsynth 2.0.51 on Seattle DMI.

Reference numbers: the package vignette "MicroSynth: A Tutorial" (cran/microsynth,
inst/doc/introduction.html, example 1, ``sea1``), printed by ``summary(sea1)``:
the weight balance table (6 decimals) and the results table. R's ``test = "lower"`` and
``confidence = 0.9`` are the linearisation plugin's ``test`` and ``level``; the same run is the
preset ``experiment=seattle_dmi``, whose composed config is checked to be this one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from causalkit.cli import compose
from causalkit.config import validate
from causalkit.contracts import Dataset, Roles
from causalkit_plugins.estimators.microsynth.panel_estimator import (
    MicroSynthPanel,
    MicroSynthPanelParams,
)
from causalkit_plugins.inference.linearisation import LinearisationParams, PanelLinearisation

pytestmark = pytest.mark.reference

DATA = Path(__file__).resolve().parents[1] / "data" / "seattledmi.csv.gz"
COV = (
    "TotalPop",
    "BLACK",
    "HISPANIC",
    "Males_1521",
    "HOUSEHOLDS",
    "FAMILYHOUS",
    "FEMALE_HOU",
    "RENTER_HOU",
    "VACANT_HOU",
)
OUT = ("i_felony", "i_misdemea", "i_drugs", "any_crime")

# R: Trt, Con, Pct.Chng (%), Linear.pVal, Linear.Lower (%), Linear.Upper (%)
R_RESULTS = {
    "i_felony": (46, "68.22", "-32.6", "0.0109", "-50.3", "-8.4"),
    "i_misdemea": (45, "71.80", "-37.3", "0.0019", "-52.8", "-16.7"),
    "i_drugs": (20, "23.76", "-15.8", "0.2559", "-46.4", "32.1"),
    "any_crime": (788, "986.44", "-20.1", "0.0146", "-32.9", "-4.9"),
}
# R: Weighted.Control column of the weight balance table (a selection of rows).
R_WEIGHTED = {
    "Intercept": 39.000239,
    "TotalPop": 2994.051921,
    "BLACK": 173.000957,
    "HISPANIC": 149.002632,
    "Males_1521": 49.000000,
    "HOUSEHOLDS": 1968.033976,
    "FAMILYHOUS": 519.010767,
    "FEMALE_HOU": 101.000957,
    "RENTER_HOU": 1868.020338,
    "VACANT_HOU": 160.011485,
    "i_felony.5": 20.000718,
    "i_misdemea.6": 16.000479,
    "i_drugs.1": 8.000239,
    "any_crime.12": 272.001196,
    "any_crime.7": 246.002393,
    "any_crime.1": 242.000957,
}
R_ALL_SCALED = {"TotalPop": 2384.7476665, "i_felony.12": 4.9023024, "any_crime.1": 55.1144991}


PARAMS = MicroSynthPanelParams(
    start_pre=1, end_pre=12, end_post=16, match_outcomes=OUT, result_outcomes=OUT
)
INFERENCE = LinearisationParams(level=0.9, test="lower")


@pytest.fixture(scope="module")
def fit():
    frame = pd.read_csv(DATA)
    roles = Roles(
        unit="ID", time="time", treatment="Intervention", outcome="i_felony", covariates=COV
    )
    return MicroSynthPanel(PARAMS).fit(Dataset(frame, roles), np.random.default_rng(0))


@pytest.fixture(scope="module")
def inference(fit):
    return PanelLinearisation(INFERENCE).infer(fit, np.random.default_rng(0))


def test_every_printed_digit_of_the_results_table(fit, inference):
    d = fit.diagnostics
    for o, (trt, con, pct, pval, lo, hi) in R_RESULTS.items():
        effect = fit.names.index("ATT" if o == "i_felony" else o)
        ratio = fit.names.index(f"{o}.log_ratio")
        assert d[f"{o}.trt"] == trt
        assert f"{d[f'{o}.con']:.2f}" == con
        assert f"{100 * d[f'{o}.pct_change']:.1f}" == pct
        assert f"{inference.p_value[effect]:.4f}" == pval
        assert f"{100 * np.expm1(inference.ci_lower[ratio]):.1f}" == lo
        assert f"{100 * np.expm1(inference.ci_upper[ratio]):.1f}" == hi


def test_the_preset_is_this_run():
    cfg = validate(compose(["experiment=seattle_dmi", "tracking=none"]))
    assert cfg.estimator.name == "microsynth_panel" and cfg.estimator.params == PARAMS
    assert cfg.inference.name == "linearisation" and cfg.inference.params == INFERENCE


def test_weight_balance_table_to_six_decimals(fit):
    totals = fit.tables["balance_totals"]
    assert len(totals) == 58  # R: "Exact Match: 58"
    for name, value in R_WEIGHTED.items():
        assert abs(totals.loc[name, "Weighted.Control"] - value) < 5e-7, name
    for name, value in R_ALL_SCALED.items():
        assert abs(totals.loc[name, "All.scaled"] - value) < 5e-8, name
    assert fit.diagnostics["weights_method"] == "calibration"
    assert fit.diagnostics["iterations"] >= 1 and fit.diagnostics["max_rel_misfit"] < 1e-4


def test_estimate_is_mean_post_gap_on_totals(fit, inference):
    d = fit.diagnostics
    assert fit.estimate == pytest.approx((d["i_felony.trt"] - d["i_felony.con"]) / 4, rel=1e-12)
    assert fit.names[:4] == ("ATT", "i_misdemea", "i_drugs", "any_crime")
    assert fit.names[-4:] == ("ATT@13", "ATT@14", "ATT@15", "ATT@16")
    assert np.all(inference.se > 0)
