"""IPW on Cattaneo (2010) birth weights against Stata ``teffects ipw`` and statsmodels.

Data: ``cataneo2.csv`` from statsmodels' ``statsmodels/treatment/tests/results/`` folder,
copied to ``tests/data/cattaneo2.csv.gz``. Reference numbers: Stata's output stored in
statsmodels' ``results_teffects.py`` (``results_ipw``: ``table`` for the ATE, ``table_t``
for the ATT), from::

    teffects ipw (bweight) (mbsmoke mmarried c.mage##c.mage fbaby medu, probit)         // ATE
    teffects ipw (bweight) (mbsmoke mmarried c.mage##c.mage fbaby medu, probit), atet  // ATT

ATE -230.68863779526 (SE 25.815243801554); ATT -225.17726054799 (SE 23.664582726945).
Stata normalises the weights and reports the sandwich SE of the stacked estimating
equations. Required agreement: 1e-6 relative. Stata's run has no ATC; it is checked
against statsmodels' GMM ``TreatmentEffect.ipw(effect_group=0)``, whose optimiser stops
near 1e-6 relative in the estimate and 1e-4 in the SE (its ATE SE is 6e-5 off Stata's),
so those are the tolerances there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from statsmodels.treatment.treatment_effects import TreatmentEffect

from causalkit.contracts import Dataset, Estimand, Roles
from causalkit_plugins.estimators.selection.ipw import IPW, IPWParams
from causalkit_plugins.inference.basic import Analytic

pytestmark = pytest.mark.reference

DATA = Path(__file__).resolve().parents[1] / "data" / "cattaneo2.csv.gz"
PS_COVARIATES = ("mmarried", "mage", "mage2", "fbaby", "medu")
STATA = {"ate": (-230.68863779526, 25.815243801554), "att": (-225.17726054799, 23.664582726945)}
RTOL = 1e-6


@pytest.fixture(scope="module")
def births() -> pd.DataFrame:
    df = pd.read_csv(DATA)
    # string-coded factors in the CSV; mage^2 built as a column (Stata's c.mage#c.mage)
    out = pd.DataFrame({
        "bweight": df["bweight"].astype(float),
        "mbsmoke": (df["mbsmoke"] == "smoker").astype(int),
        "mmarried": (df["mmarried"] == "married").astype(int),
        "mage": df["mage"].astype(float),
        "fbaby": (df["fbaby"] == "Yes").astype(int),
        "medu": df["medu"].astype(float),
    })  # fmt: skip
    out["mage2"] = out["mage"] ** 2
    assert (out["mbsmoke"] == df["mbsmoke_"]).all()
    return out


def _fit(births: pd.DataFrame, estimand: str):
    roles = Roles(outcome="bweight", treatment="mbsmoke", covariates=PS_COVARIATES)
    params = IPWParams(estimand=estimand, propensity_model="probit")
    fit = IPW(params).fit(Dataset(births, roles), np.random.default_rng(0))
    return fit, Analytic().infer(fit, np.random.default_rng(0))


@pytest.mark.parametrize("estimand", ["ate", "att"])
def test_ipw_matches_stata_teffects(births, estimand):
    fit, inf = _fit(births, estimand)
    est, se = STATA[estimand]
    assert fit.estimand is (Estimand.ATE if estimand == "ate" else Estimand.ATT)
    assert fit.estimate == pytest.approx(est, rel=RTOL)
    assert inf.se == pytest.approx(se, rel=RTOL)
    assert fit.diagnostics["propensity_converged"] is True


def test_ipw_atc_matches_statsmodels_gmm(births):
    fit, inf = _fit(births, "atc")
    Z = sm.add_constant(births[list(PS_COVARIATES)].astype(float))
    d = births["mbsmoke"].to_numpy()
    y = births["bweight"].to_numpy()
    probit = sm.Probit(d, Z).fit(disp=0)
    te = TreatmentEffect(sm.OLS(y, np.ones((len(y), 1))), d, results_select=probit, method="ipw")
    ref = te.ipw(return_results=True, effect_group=0, disp=False)
    assert fit.estimand is Estimand.ATC
    assert fit.estimate == pytest.approx(ref.effect[0], rel=1e-6)
    assert inf.se == pytest.approx(ref.results_gmm.bse[0], rel=1e-4)
