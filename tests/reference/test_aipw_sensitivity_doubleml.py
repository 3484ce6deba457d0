"""AIPW sensitivity bounds vs DoubleML 0.11 ``DoubleMLIRM.sensitivity_analysis`` / ``sensitivity_benchmark``.

401(k) data (SIPP 1991), the folds and learners of ``test_aipw_doubleml.py``; DoubleML runs side
by side with the folds passed through ``set_sample_splitting``. Reference: Chernozhukov,
Cinelli, Newey, Sharma & Syrgkanis (2022), as implemented in DoubleML.

Tolerances: theta bounds, CI bounds and the benchmark's cf_y, cf_d, rho 1e-8 relative
(observed ~1e-12). RV and RVa: 1e-9 absolute against the root of DoubleML's own bound
function (``_calc_sensitivity_analysis`` at cf_y = cf_d = v, solved by Brent); DoubleML's
``sensitivity_analysis`` itself finds them with a bounded minimiser of the squared distance
(``xatol`` 1e-5) and is 1e-5 from ours (observed 1.3e-6). One documented difference: DoubleML's ``scaled_psi`` is
minus the effect's influence function, so its lower CI bound takes the SE of the upper effect
bound and vice versa. The CI bounds and RVa are therefore compared with DoubleML run on the
influence function itself (``scaled_psi`` negated, every other line DoubleML's own), and the
test shows that the unpatched DoubleML differs exactly by that swap.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq
from scipy.stats import norm

from causalkit.contracts import Dataset, Roles
from causalkit_plugins.estimators.aipw.estimator import AIPW, AIPWParams
from causalkit_plugins.estimators.aipw.folds import stratified_folds

dml = pytest.importorskip("doubleml")
from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

pytestmark = pytest.mark.reference

DATA = Path(__file__).resolve().parents[1] / "data" / "sipp1991.csv.gz"
X = ["age", "inc", "educ", "fsize", "marr", "twoearn", "db", "pira", "hown"]
RTOL = 1e-8
RV_ATOL = 1e-9
DOUBLEML_XATOL = 1e-5
# (cf_y, cf_d, rho, level, null_hypothesis): the brief's scenario, and one whose RV and RVa
# are interior (the 401(k) effect with these learners is not significant at 0).
SCENARIOS = [(0.04, 0.03, 1.0, 0.95, 0.0), (0.02, 0.05, -0.6, 0.9, -15_000.0)]
SCORES = {"ATE": "ATE", "ATT": "ATTE"}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    df = pd.read_csv(DATA)
    df["fold"] = stratified_folds(df["e401"].to_numpy().astype(bool), 5, np.random.default_rng(11))
    return df


@pytest.fixture(scope="module")
def doubleml(frame):
    """DoubleML's fitted IRM per estimand (fitted once)."""
    smpls = [
        (np.flatnonzero(frame["fold"] != k), np.flatnonzero(frame["fold"] == k)) for k in range(5)
    ]
    out = {}
    for estimand, score in SCORES.items():
        model = dml.DoubleMLIRM(
            dml.DoubleMLData(frame, "net_tfa", "e401", X),
            LinearRegression(),
            make_pipeline(StandardScaler(), LogisticRegression()),
            score=score,
            ps_processor_config=dml.utils.PSProcessorConfig(clipping_threshold=0.01),
            draw_sample_splitting=False,
        )
        model.set_sample_splitting([smpls])
        out[estimand] = model.fit()
    return out


def _ours(frame, estimand, scenario, benchmarks=()):
    cf_y, cf_d, rho, level, null = scenario
    params = AIPWParams(
        estimand=estimand,
        propensity_model="logit",
        outcome_model="linear",
        clip=0.01,
        sensitivity={
            "cf_y": cf_y,
            "cf_d": cf_d,
            "rho": rho,
            "level": level,
            "null_hypothesis": null,
            "benchmark_covariates": list(benchmarks),
        },
    )
    roles = Roles(outcome="net_tfa", treatment="e401", covariates=tuple(X), fold="fold")
    return AIPW(params).fit(Dataset(frame, roles), np.random.default_rng(0))


def _fixed(model):
    """A copy of DoubleML's framework whose ``scaled_psi`` is the influence function."""
    framework = copy.deepcopy(model.framework)
    core = framework._dml_core
    core.scaled_psi = -core.scaled_psi
    return framework


def _analysis(model, scenario, *, influence_sign: bool):
    """DoubleML's ``sensitivity_params``; with ``influence_sign`` on ``-scaled_psi``."""
    cf_y, cf_d, rho, level, null = scenario
    framework = _fixed(model) if influence_sign else model.framework
    framework.sensitivity_analysis(cf_y=cf_y, cf_d=cf_d, rho=rho, level=level, null_hypothesis=null)
    return framework.sensitivity_params


def _root(framework, param, scenario):
    """The smallest v = cf_y = cf_d at which DoubleML's ``param`` bound reaches the null (exactly)."""
    _, _, rho, level, null = scenario
    side = "upper" if null > framework.thetas[0] else "lower"
    sign = 1.0 if side == "upper" else -1.0

    def gap(v):
        res = framework._calc_sensitivity_analysis(cf_y=v, cf_d=v, rho=rho, level=level)
        return sign * (res[param][side][0] - null)

    return 0.0 if gap(0.0) >= 0 else brentq(gap, 0.0, 0.9999, xtol=1e-15)


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("estimand", ["ATE", "ATT"])
def test_bounds_and_robustness_values_match_doubleml(frame, doubleml, estimand, scenario):
    fit = _ours(frame, estimand, scenario)
    diag = fit.diagnostics
    ref = _analysis(doubleml[estimand], scenario, influence_sign=True)
    np.testing.assert_allclose(fit.estimate, doubleml[estimand].coef[0], rtol=RTOL)
    for ours, theirs in [
        ("theta_lower", ref["theta"]["lower"]),
        ("theta_upper", ref["theta"]["upper"]),
        ("ci_lower", ref["ci"]["lower"]),
        ("ci_upper", ref["ci"]["upper"]),
    ]:
        np.testing.assert_allclose(diag[f"sensitivity.{ours}"], theirs[0], rtol=RTOL, err_msg=ours)
    fixed = _fixed(doubleml[estimand])
    for ours, param in [("rv", "theta"), ("rva", "ci")]:
        value = diag[f"sensitivity.{ours}"]
        np.testing.assert_allclose(value, _root(fixed, param, scenario), atol=RV_ATOL)
        np.testing.assert_allclose(value, ref[ours][0], atol=DOUBLEML_XATOL)
    elements = doubleml[estimand].sensitivity_elements
    np.testing.assert_allclose(diag["sensitivity.sigma2"], elements["sigma2"][0, 0, 0], rtol=RTOL)
    np.testing.assert_allclose(diag["sensitivity.nu2"], elements["nu2"][0, 0, 0], rtol=RTOL)


@pytest.mark.parametrize("estimand", ["ATE", "ATT"])
def test_unpatched_doubleml_swaps_the_ses_of_the_ci_bounds(frame, doubleml, estimand):
    """Plain DoubleML: theta bounds and RV equal ours; its CI bounds are ours with the SEs swapped."""
    scenario = SCENARIOS[0]
    level = scenario[3]
    fit = _ours(frame, estimand, scenario)
    diag = fit.diagnostics
    framework = doubleml[estimand].framework
    framework.sensitivity_analysis(*scenario)
    plain = framework.sensitivity_params
    fixed = _analysis(doubleml[estimand], scenario, influence_sign=True)
    np.testing.assert_allclose(
        diag["sensitivity.theta_lower"], plain["theta"]["lower"][0], rtol=RTOL
    )
    np.testing.assert_allclose(
        diag["sensitivity.theta_upper"], plain["theta"]["upper"][0], rtol=RTOL
    )
    np.testing.assert_allclose(
        diag["sensitivity.rv"], _root(framework, "theta", scenario), atol=RV_ATOL
    )
    z = norm.ppf(level)
    se_lower = (diag["sensitivity.theta_lower"] - diag["sensitivity.ci_lower"]) / z
    se_upper = (diag["sensitivity.ci_upper"] - diag["sensitivity.theta_upper"]) / z
    np.testing.assert_allclose(plain["se"]["lower"][0], se_upper, rtol=RTOL)
    np.testing.assert_allclose(plain["se"]["upper"][0], se_lower, rtol=RTOL)
    np.testing.assert_allclose(fixed["se"]["lower"][0], se_lower, rtol=RTOL)
    assert abs(se_lower - se_upper) > 1e-3 * se_lower  # the swap is visible on these data


@pytest.mark.parametrize("estimand", ["ATE", "ATT"])
def test_benchmark_matches_doubleml_sensitivity_benchmark(frame, doubleml, estimand):
    scenario = SCENARIOS[0]
    fit = _ours(frame, estimand, scenario, benchmarks=("inc", "age+educ"))
    table = fit.tables["sensitivity.bounds"]
    assert list(table.index) == ["inc", "age+educ"]
    for name, group in [("inc", ["inc"]), ("age+educ", ["age", "educ"])]:
        ref = doubleml[estimand].sensitivity_benchmark(benchmarking_set=group)
        for col in ("cf_y", "cf_d", "rho", "delta_theta"):
            np.testing.assert_allclose(
                table.loc[name, col], ref[col].iloc[0], rtol=RTOL, err_msg=col
            )
        row = table.loc[name]
        b = _analysis(
            doubleml[estimand],
            (min(row["cf_y"], 0.9999), row["cf_d"], float(row["rho"]), scenario[3], 0.0),
            influence_sign=True,
        )
        np.testing.assert_allclose(row["theta_lower"], b["theta"]["lower"][0], rtol=RTOL)
        np.testing.assert_allclose(row["ci_upper"], b["ci"]["upper"][0], rtol=RTOL)
