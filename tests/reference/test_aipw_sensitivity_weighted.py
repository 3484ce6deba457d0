r"""Sensitivity bounds with sampling weights vs DoubleML 0.11 on the rows repeated (frequency weights).

Target (:func:`~causalkit_plugins.estimators.aipw.sensitivity.riesz_elements`): the bounds of
Chernozhukov, Cinelli, Newey, Sharma & Syrgkanis (2022) in the weighted population
:math:`dP_s \propto s\,dP`, with :math:`\hat\sigma^2_s`, :math:`\hat\nu^2_s` weighted means and
influence values :math:`(s_i/\bar s)(f_i - \bar f_s)`.

Independent reference: integer frequency weights. Row :math:`i` repeated :math:`s_i` times,
each copy carrying its row's nuisance predictions, is an unweighted sample whose plain means are
our weighted means, so DoubleML's ``DoubleMLIRM`` fitted on it with ``external_predictions``
(``ml_g0``, ``ml_g1``, ``ml_m``) must give our effect, :math:`\hat\sigma^2`, :math:`\hat\nu^2`,
the effect's bounds and RV exactly. The CI bounds and RVa differ by design: our SE counts each
weighted row as one draw (the fit's SE), the copies count as :math:`s_i` draws. Rescaling every
influence value by :math:`1/\sqrt{s_i}` turns :math:`\sum_i s_i^2e_i^2` into the copies'
:math:`\sum_i s_ie_i^2`, so our CI bounds and RVa on the rescaled influence values must equal
DoubleML's; with 0/1 weights both variances coincide and the unscaled ones must.

DoubleML's own ``weights=`` is not the reference: it is a policy-weighted effect in the
unweighted population (:math:`\hat\sigma^2` unweighted, :math:`\hat\nu^2` with :math:`s^2`),
shown to differ below.

Tolerances: 1e-10 relative for effects, bounds, CI bounds, :math:`\hat\sigma^2`,
:math:`\hat\nu^2` (the same numbers summed in another order; observed ~1e-15); 1e-10 absolute
for RV and RVa against the root of DoubleML's own bound function at :math:`c_Y = c_D = v`
(Brent, ``xtol`` 1e-15), as in ``test_aipw_sensitivity_doubleml.py`` (DoubleML's
``sensitivity_analysis`` minimises with ``xatol`` 1e-5 and is compared at 1e-5). DoubleML's
``scaled_psi`` is minus the influence function (see that file): its CI bounds are taken with
``scaled_psi`` negated. Runtime ~1 s (no learner is fitted).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from causalkit.contracts import Estimand
from causalkit_plugins.estimators.aipw.scores import aipw_scores, ratio_effect
from causalkit_plugins.estimators.aipw.sensitivity import (
    Repetition,
    SensitivityParams,
    elements,
    outcome_variance,
    report,
)

dml = pytest.importorskip("doubleml")
from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402

# DoubleML with scaled_psi negated, and the exact root of its bound function
from .test_aipw_sensitivity_doubleml import _fixed, _root  # noqa: E402

pytestmark = pytest.mark.reference

N = 300
RTOL = 1e-10
RV_ATOL = 1e-10
DOUBLEML_XATOL = 1e-5
# (cf_y, cf_d, rho, level, null_hypothesis); the second has interior RV and RVa
SCENARIOS = [(0.04, 0.03, 1.0, 0.95, 0.0), (0.05, 0.08, -0.7, 0.9, 0.9)]
SCORES = {"ATE": "ATE", "ATT": "ATTE"}


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    """Outcome, treatment, fixed nuisance predictions and integer weights 0..3."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(N, 2))
    d = (rng.random(N) < 1 / (1 + np.exp(-0.9 * x[:, 0]))).astype(np.float64)
    y = 1.0 + x @ np.array([1.0, 0.5]) + d * (1.0 + 0.6 * x[:, 1]) + rng.normal(size=N)
    # deliberately imperfect predictions (any fixed predictions serve)
    m = np.clip(1 / (1 + np.exp(-0.7 * x[:, 0] - 0.1)), 0.05, 0.95)
    g0 = 0.9 + x @ np.array([0.9, 0.4])
    g1 = g0 + 1.1 + 0.5 * x[:, 1]
    s = rng.integers(0, 4, size=N).astype(np.float64)
    return {"x": x, "y": y, "d": d, "m": m, "g0": g0, "g1": g1, "s": s}


def _ours(data, estimand, scenario, s, *, frequency=False):
    """Our weighted analysis on the compact rows; ``frequency`` rescales the influence values."""
    cf_y, cf_d, rho, level, null = scenario
    est = Estimand(estimand)
    y, d, g0, g1, m = (data[k] for k in ("y", "d", "g0", "g1", "m"))
    sc = aipw_scores(y, d, g0, g1, m, est, s)
    theta, psi = ratio_effect(sc.num, sc.den)
    el = elements(y, d, g0, g1, m, est, s)
    if frequency:
        root = np.sqrt(s)
        scale = np.divide(1.0, root, out=np.zeros_like(root), where=root > 0)
        psi = psi * scale
        el = dataclasses.replace(el, psi_sigma2=el.psi_sigma2 * scale, psi_nu2=el.psi_nu2 * scale)
    sens = SensitivityParams(cf_y=cf_y, cf_d=cf_d, rho=rho, level=level, null_hypothesis=null)
    diag, _, _ = report(
        "aipw",
        [Repetition(theta, psi, el)],
        sens,
        var_y=outcome_variance(y, s),
        shorts={},
        sigma2_source="outcome_model",
    )
    return theta, diag


def _doubleml(data, estimand, s, weights=None):
    """DoubleML on the rows repeated ``s`` times, predictions given (no learner fitted)."""
    rep = np.repeat(np.arange(N), s.astype(np.int64))
    frame = pd.DataFrame(
        {"y": data["y"][rep], "d": data["d"][rep], "x1": data["x"][rep, 0], "x2": data["x"][rep, 1]}
    )
    model = dml.DoubleMLIRM(
        dml.DoubleMLData(frame, "y", "d", ["x1", "x2"]),
        LinearRegression(),
        LogisticRegression(),
        score=SCORES[estimand],
        n_folds=2,
        weights=weights,
    )
    preds = {k: data[k][rep][:, None] for k in ("g0", "g1", "m")}
    model.fit(external_predictions={"d": {f"ml_{k}": v for k, v in preds.items()}})
    return model


def _analysis(framework, scenario):
    cf_y, cf_d, rho, level, null = scenario
    framework.sensitivity_analysis(cf_y=cf_y, cf_d=cf_d, rho=rho, level=level, null_hypothesis=null)
    return framework.sensitivity_params


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("estimand", ["ATE", "ATT"])
def test_frequency_weights_equal_doubleml_on_repeated_rows(data, estimand, scenario):
    s = data["s"]
    model = _doubleml(data, estimand, s)
    theta, diag = _ours(data, estimand, scenario, s)
    np.testing.assert_allclose(theta, model.coef[0], rtol=RTOL)
    el = model.sensitivity_elements
    np.testing.assert_allclose(diag["sensitivity.sigma2"], el["sigma2"][0, 0, 0], rtol=RTOL)
    np.testing.assert_allclose(diag["sensitivity.nu2"], el["nu2"][0, 0, 0], rtol=RTOL)
    plain = _analysis(model.framework, scenario)
    for side in ("lower", "upper"):
        np.testing.assert_allclose(
            diag[f"sensitivity.theta_{side}"], plain["theta"][side][0], rtol=RTOL
        )
    fixed = _fixed(model)
    np.testing.assert_allclose(
        diag["sensitivity.rv"], _root(fixed, "theta", scenario), atol=RV_ATOL
    )
    np.testing.assert_allclose(diag["sensitivity.rv"], plain["rv"][0], atol=DOUBLEML_XATOL)

    # CI bounds and RVa: the copies' variance is ours with influence values / sqrt(s)
    _, freq = _ours(data, estimand, scenario, s, frequency=True)
    ref = _analysis(fixed, scenario)
    for side in ("lower", "upper"):
        np.testing.assert_allclose(freq[f"sensitivity.ci_{side}"], ref["ci"][side][0], rtol=RTOL)
    np.testing.assert_allclose(freq["sensitivity.rva"], _root(fixed, "ci", scenario), atol=RV_ATOL)
    # ... and the fit's own (each weighted row one draw) are wider: weights 2 and 3 count more
    assert diag["sensitivity.ci_lower"] < freq["sensitivity.ci_lower"]
    assert diag["sensitivity.ci_upper"] > freq["sensitivity.ci_upper"]


@pytest.mark.parametrize("estimand", ["ATE", "ATT"])
def test_zero_one_weights_equal_doubleml_on_the_kept_rows_ci_included(data, estimand):
    """With 0/1 weights each weighted row is one draw either way: every figure is DoubleML's."""
    scenario = SCENARIOS[1]
    s = (data["s"] > 1).astype(np.float64)
    model = _doubleml(data, estimand, s)
    _, diag = _ours(data, estimand, scenario, s)
    fixed = _fixed(model)
    ref = _analysis(fixed, scenario)
    for key in ("theta", "ci"):
        for side in ("lower", "upper"):
            np.testing.assert_allclose(
                diag[f"sensitivity.{key}_{side}"], ref[key][side][0], rtol=RTOL
            )
    for ours, param in (("rv", "theta"), ("rva", "ci")):
        np.testing.assert_allclose(
            diag[f"sensitivity.{ours}"], _root(fixed, param, scenario), atol=RV_ATOL
        )


@pytest.mark.parametrize("estimand", ["ATE", "ATT"])
def test_zero_weights_are_dropped_rows(data, estimand):
    """Rows of weight 0 change nothing: the analysis of the other rows alone (1e-12 relative)."""
    scenario = SCENARIOS[1]
    s = data["s"]
    _, with_zeros = _ours(data, estimand, scenario, s)
    pos = s > 0
    kept = {k: (v[pos] if k != "x" else v) for k, v in data.items()}
    _, dropped = _ours(kept, estimand, scenario, s[pos])
    assert (s == 0).sum() > 50
    for key in ("theta_lower", "theta_upper", "ci_lower", "ci_upper", "rv", "rva", "sigma2", "nu2"):
        np.testing.assert_allclose(
            with_zeros[f"sensitivity.{key}"], dropped[f"sensitivity.{key}"], rtol=1e-12, err_msg=key
        )


def test_doubleml_weights_argument_is_another_target(data):
    """DoubleML's ``weights=`` (ATE): sigma2 unweighted, nu2 with s^2; not the weighted population."""
    s = data["s"]
    ones = np.ones(N)
    theirs = _doubleml(data, "ATE", ones, weights=s).sensitivity_elements
    _, ours = _ours(data, "ATE", SCENARIOS[0], s)
    _, unweighted = _ours(data, "ATE", SCENARIOS[0], ones)
    np.testing.assert_allclose(
        theirs["sigma2"][0, 0, 0], unweighted["sensitivity.sigma2"], rtol=RTOL
    )
    r = data["d"] / data["m"] - (1 - data["d"]) / (1 - data["m"])
    nu2_policy = np.mean(s**2 * (2 * (1 / data["m"] + 1 / (1 - data["m"])) - r**2))
    np.testing.assert_allclose(theirs["nu2"][0, 0, 0], nu2_policy, rtol=RTOL)
    assert abs(ours["sensitivity.sigma2"] / unweighted["sensitivity.sigma2"] - 1) > 1e-3
    assert abs(ours["sensitivity.nu2"] / nu2_policy - 1) > 0.1
