"""E-values that say which conversion they use: risk ratio (0/1 outcome) or 0.91 x SMD (continuous).

References: VanderWeele & Ding (2017), *Ann. Intern. Med.* 167(4), 268-274: the worked example
(RR 3.9, 95% CI 1.8 to 8.7: E-values 7.26 and 3.0, to the two decimals printed, hence
``abs=0.005``); Table 2's :math:`RR \\approx \\exp(0.91 d)` for a standardised mean difference.
Hand computations are compared to 1e-12 relative (the same few floating-point operations).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import causalkit as ck
from causalkit.evalue import (
    EValue,
    e_value,
    e_value_ci,
    e_value_difference,
    e_value_interval,
)

REL = 1e-12


def _e(rr: float) -> float:
    rr = 1 / rr if rr < 1 else rr
    return rr + math.sqrt(rr * (rr - 1))


def test_risk_ratio_worked_example_of_vanderweele_ding():
    # a 0/1 outcome with baseline risk 0.1 and a difference of 0.29: RR = 0.39 / 0.1 = 3.9
    y, d = np.array([0.0, 1.0, 1.0, 0.0]), np.array([True, True, False, False])
    ev = e_value(0.29, y, d, baseline=0.1)
    assert ev.conversion == "risk_ratio" and ev.rr == pytest.approx(3.9, rel=REL)
    assert ev.value == pytest.approx(7.26, abs=0.005)
    # CI on the difference scale (0.08, 0.77): risk ratios 1.8 and 8.7
    assert ev.interval(0.08, 0.77) == pytest.approx(3.0, abs=0.005)
    assert ev.interval(-0.01, 0.5) == 1.0
    # protective: RR 0.05 / 0.1 = 0.5 -> 1/RR = 2, E = 2 + sqrt(2)
    assert e_value(-0.05, y, d, 0.1).value == pytest.approx(2 + math.sqrt(2), rel=REL)
    diag = ev.diagnostics()
    assert diag["e_value.conversion"] == "risk_ratio" and diag["e_value.baseline"] == 0.1
    assert (
        "e_value.sd" not in diag
        and "risk ratio 3.9 = (p0 + estimate) / p0" in diag["e_value.basis"]
    )
    assert e_value_ci(diag, 0.08, 0.77) == ev.interval(0.08, 0.77)


def test_continuous_outcome_uses_the_pooled_sd_and_says_so():
    y = np.array([1.0, 3.0, 2.0, 6.0, 4.0, 5.0])
    d = np.array([True, True, True, False, False, False])
    sd = math.sqrt(((1 + 1 + 0) + (1 + 1 + 0)) / 4)  # arm means 2 and 5
    ev = e_value(-3.0, y, d, baseline=5.0)
    assert ev.conversion == "smd_0.91" and ev.sd == pytest.approx(sd, rel=REL)
    assert ev.rr == pytest.approx(math.exp(-0.91 * 3.0 / sd), rel=REL)
    assert ev.value == pytest.approx(_e(math.exp(-0.91 * 3.0 / sd)), rel=REL)
    assert ev.value == e_value_difference(-3.0, ev.sd)  # the older helper, bit for bit
    assert ev.interval(-5.0, -1.0) == e_value_interval(-5.0, -1.0, ev.sd)
    assert ev.interval(-5.0, -1.0) == pytest.approx(_e(math.exp(-0.91 / sd)), rel=REL)
    diag = ev.diagnostics()
    assert diag["e_value.sd"] == ev.sd and math.isnan(ev.baseline)
    assert "VanderWeele-Ding approximation for a continuous outcome" in diag["e_value.basis"]
    assert "pooled within-arm SD" in diag["e_value.basis"]
    assert math.isnan(EValue(math.nan, "smd_0.91", math.nan, math.nan, 0.0).ratio(1.0))
    with pytest.raises(ValueError, match="e_value.conversion"):
        e_value_ci({**diag, "e_value.conversion": "odds"}, 0.0, 1.0)


@pytest.fixture(scope="module")
def binary() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 1500
    x = rng.normal(size=(n, 2))
    d = (rng.random(n) < 1 / (1 + np.exp(-0.7 * x[:, 0]))).astype(int)
    risk = 1 / (1 + np.exp(-(-1.0 + 0.8 * d + 0.6 * x[:, 0] - 0.4 * x[:, 1])))
    y = (rng.random(n) < risk).astype(int)
    return pd.DataFrame({"y": y, "d": d, "x1": x[:, 0], "x2": x[:, 1]})


def test_ipw_binary_outcome_reports_the_risk_ratio_of_its_weighted_means(binary):
    res = ck.fit(binary, "ipw", outcome="y", treatment="d", covariates=["x1", "x2"])
    diag = res.diagnostics
    Z = sm.add_constant(binary[["x1", "x2"]].to_numpy())
    d, y = binary["d"].to_numpy(), binary["y"].to_numpy()
    e = sm.Logit(d, Z).fit(disp=0, tol=1e-12).predict(Z)
    w1, w0 = d / e, (1 - d) / (1 - e)
    p1, p0 = (w1 @ y) / w1.sum(), (w0 @ y) / w0.sum()  # Hajek means
    assert res.estimate == pytest.approx(p1 - p0, rel=1e-9)
    assert diag["e_value.conversion"] == "risk_ratio"
    assert diag["e_value.baseline"] == pytest.approx(p0, rel=1e-9)
    assert diag["e_value.rr"] == pytest.approx(p1 / p0, rel=1e-9)
    assert diag["e_value"] == pytest.approx(_e(p1 / p0), rel=1e-9)
    lo = (p0 + res.ci_lower) / p0
    assert e_value_ci(diag, res.ci_lower, res.ci_upper) == pytest.approx(_e(lo), rel=1e-9)
    assert lo > 1  # the interval excludes the null, so its E-value is that of its lower limit
    assert "E-value" in str(res.summary()) and "risk ratio" in str(res.summary())


def test_psm_reports_its_conversion(binary):
    res = ck.fit(binary, "psm", outcome="y", treatment="d", covariates=["x1", "x2"])
    diag = res.diagnostics
    assert diag["e_value.conversion"] == "risk_ratio"
    # ATT with one match each: the baseline is the treated mean minus the effect
    treated = binary.loc[binary["d"] == 1, "y"].mean()
    assert diag["e_value.baseline"] == pytest.approx(treated - res.estimate, rel=1e-12)
    assert diag["e_value"] == pytest.approx(_e(treated / (treated - res.estimate)), rel=1e-12)
    cont = ck.fit(
        binary.assign(y=binary["y"] + binary["x2"]),
        "psm",
        outcome="y",
        treatment="d",
        covariates=["x1", "x2"],
    )
    assert cont.diagnostics["e_value.conversion"] == "smd_0.91"
    assert cont.diagnostics["e_value.sd"] == cont.diagnostics["outcome_sd"]
    assert cont.diagnostics["e_value"] == e_value_difference(
        cont.estimate, cont.diagnostics["outcome_sd"]
    )
