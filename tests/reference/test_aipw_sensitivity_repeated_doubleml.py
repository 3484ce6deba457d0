"""AIPW sensitivity with repeated cross-fitting vs DoubleML 0.11 ``DoubleMLIRM(n_rep=3)``.

401(k) data, learners and tolerances of ``test_aipw_sensitivity_doubleml.py``; three fold splits
drawn here, given to us as three fold columns and to DoubleML through ``set_sample_splitting``.
DoubleML aggregates (``_calc_sensitivity_analysis``, ``gain_statistics``): the median over the
repetitions of each effect bound, each CI bound and each benchmark statistic; RV and RVa are
found on those median bounds. As with one split, the CI bounds and RVa are compared with
DoubleML run on the influence function (``scaled_psi`` negated), the effect bounds and RV with
plain DoubleML too. Tolerances: 1e-8 relative (the issue asks 1e-6; observed ~1e-12); RV and RVa
1e-9 absolute against the exact root of DoubleML's median bound, 1e-5 against its own
bounded minimiser (``xatol`` 1e-5).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from causalkit.contracts import Dataset, Roles
from causalkit_plugins.estimators.aipw.estimator import AIPW, AIPWParams
from causalkit_plugins.estimators.aipw.folds import stratified_folds

from .test_aipw_repeated_doubleml import _doubleml
from .test_aipw_sensitivity_doubleml import (
    DATA,
    DOUBLEML_XATOL,
    RTOL,
    RV_ATOL,
    SCENARIOS,
    SCORES,
    X,
    _analysis,
    _fixed,
    _root,
)

pytestmark = pytest.mark.reference

N_REP = 3
FOLDS = tuple(f"fold{r}" for r in range(N_REP))
BENCHMARKS = {"inc": ["inc"]}  # the age+educ group is checked with one split


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    df = pd.read_csv(DATA)
    rng = np.random.default_rng(21)
    for col in FOLDS:
        df[col] = stratified_folds(df["e401"].to_numpy().astype(bool), 5, rng)
    return df


def _ours(frame, estimand, scenario, benchmarks=()):
    cf_y, cf_d, rho, level, null = scenario
    sens = {"cf_y": cf_y, "cf_d": cf_d, "rho": rho, "level": level, "null_hypothesis": null}
    params = AIPWParams(
        estimand=estimand,
        propensity_model="logit",
        outcome_model="linear",
        clip=0.01,
        n_rep=N_REP,
        sensitivity={**sens, "benchmark_covariates": list(benchmarks)},
    )
    roles = Roles(outcome="net_tfa", treatment="e401", covariates=tuple(X), fold=FOLDS)
    return AIPW(params).fit(Dataset(frame, roles), np.random.default_rng(0))


@pytest.mark.parametrize("estimand,scenario", [("ATE", SCENARIOS[0]), ("ATT", SCENARIOS[1])])
def test_repeated_bounds_match_doubleml_n_rep(frame, estimand, scenario):
    model = _doubleml(frame, SCORES[estimand], [frame[c].to_numpy() for c in FOLDS])
    benchmarks = BENCHMARKS if scenario is SCENARIOS[0] else {}
    fit = _ours(frame, estimand, scenario, benchmarks)
    diag = fit.diagnostics
    assert model.n_rep == N_REP and diag["n_rep"] == N_REP
    np.testing.assert_allclose(fit.tables["repetitions"]["estimate"], model.all_coef[0], rtol=RTOL)
    assert np.ptp(model.all_coef[0]) > 1.0  # the repetitions differ, so the medians matter
    fixed = _analysis(model, scenario, influence_sign=True)
    plain = _analysis(model, scenario, influence_sign=False)
    worst = 0.0
    for key, ref in [
        ("theta_lower", plain["theta"]["lower"]),
        ("theta_upper", plain["theta"]["upper"]),
        ("ci_lower", fixed["ci"]["lower"]),
        ("ci_upper", fixed["ci"]["upper"]),
    ]:
        np.testing.assert_allclose(diag[f"sensitivity.{key}"], ref[0], rtol=RTOL, err_msg=key)
        worst = max(worst, abs(diag[f"sensitivity.{key}"] / ref[0] - 1))
    for key, param, framework, ref in [
        ("rv", "theta", model.framework, plain),
        ("rva", "ci", _fixed(model), fixed),
    ]:
        value, root = diag[f"sensitivity.{key}"], _root(framework, param, scenario)
        np.testing.assert_allclose(value, root, atol=RV_ATOL)
        np.testing.assert_allclose(value, ref[key][0], atol=DOUBLEML_XATOL)
        print(
            f"{key} {value:.6f}: root {abs(value - root):.1e}, minimiser {abs(value - ref[key][0]):.1e}"
        )
    elements = model.sensitivity_elements
    per_rep = fit.tables["sensitivity.repetitions"]
    np.testing.assert_allclose(per_rep["sigma2"], np.ravel(elements["sigma2"]), rtol=RTOL)
    np.testing.assert_allclose(per_rep["nu2"], np.ravel(elements["nu2"]), rtol=RTOL)
    np.testing.assert_allclose(diag["sensitivity.sigma2"], np.median(elements["sigma2"]), rtol=RTOL)
    table = fit.tables.get("sensitivity.bounds")
    for name, group in benchmarks.items():
        ref = model.sensitivity_benchmark(benchmarking_set=group)
        for col in ("cf_y", "cf_d", "rho", "delta_theta"):
            np.testing.assert_allclose(
                table.loc[name, col], ref[col].iloc[0], rtol=RTOL, err_msg=f"{name} {col}"
            )
            worst = max(worst, abs(table.loc[name, col] / ref[col].iloc[0] - 1))
        row = table.loc[name]
        b = _analysis(
            model,
            (min(row["cf_y"], 0.9999), row["cf_d"], float(row["rho"]), scenario[3], 0.0),
            influence_sign=True,
        )
        np.testing.assert_allclose(row["theta_lower"], b["theta"]["lower"][0], rtol=RTOL)
        np.testing.assert_allclose(row["ci_upper"], b["ci"]["upper"][0], rtol=RTOL)
    print(f"{estimand} {scenario}: worst relative difference {worst:.1e}")
