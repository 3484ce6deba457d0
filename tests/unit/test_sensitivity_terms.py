"""Sensitivity parameters given in part (DoubleML's defaults) and benchmarks naming formula terms.

``aipw``/``ipw``: any ``sensitivity`` key, or ``{}``, runs the analysis with ``cf_y = cf_d =
0.03``, ``rho = 1`` for what is not given; the YAML default stays off and existing configs keep
their hashes. ``aipw``, ``ipw``, ``ols``: a benchmark may name a column, a formula term
(``C(village)``, ``I(age**2)``) or a variable read by terms (``village``), resolved by one
function, :func:`causalkit.formulas.benchmark_groups`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import causalkit as ck
from causalkit.composition import compose
from causalkit.config import validate, validate_params
from causalkit.contracts import Dataset, Roles
from causalkit.errors import DataError
from causalkit.formulas import benchmark_groups, expand_formulas
from causalkit_plugins.estimators.aipw.estimator import AIPWParams
from causalkit_plugins.estimators.selection.ipw import IPWParams

DARFUR = Path(__file__).resolve().parents[1] / "data" / "darfur.csv.gz"
FORMULA = "age + I(age**2) + C(education) + C(education):sex + sex"


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    n = 500
    age = rng.uniform(20, 60, n)
    education = rng.integers(1, 4, n)
    sex = rng.integers(0, 2, n)
    z = 0.04 * (age - 40) + 0.3 * (education - 2) - 0.2 * sex
    d = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    y = 0.5 * d + 0.05 * age + 0.4 * education + 0.3 * sex + rng.normal(size=n)
    return pd.DataFrame({"y": y, "d": d, "age": age, "education": education, "sex": sex})


@pytest.mark.parametrize("cls", [AIPWParams, IPWParams])
@pytest.mark.parametrize(
    "given",
    [{}, {"cf_y": 0.03}, {"cf_d": None}, {"benchmark_covariates": ["x1"]}, {"rho": 0.5}],
)
def test_any_key_runs_with_doubleml_defaults(cls, given):
    sens = validate_params("estimator", cls, {"sensitivity": given}).sensitivity
    assert sens is not None
    assert (sens.cf_y, sens.cf_d, sens.rho, sens.level) == (0.03, 0.03, given.get("rho", 1.0), 0.95)


def test_cli_partial_sensitivity_is_on_and_hashes_are_unchanged():
    """The YAML default is off; cf_y alone or benchmarks alone switch it on.

    Hashes measured at HEAD 043a4e5 (before this change) for the configs that ran there.
    """
    off = validate(compose(["estimator=aipw"]))
    assert off.estimator.params.sensitivity is None and off.cell_hash == "25af63379bde7e9e"
    full = ["estimator.sensitivity.cf_y=0.04", "estimator.sensitivity.cf_d=0.03"]
    given = validate(
        compose(["estimator=aipw", *full, "estimator.sensitivity.benchmark_covariates=[age]"])
    )
    assert given.cell_hash == "dcba38cc4e8f0eb2"
    for extra in (
        ["estimator.sensitivity.cf_y=0.03"],
        ["estimator.sensitivity.benchmark_covariates=[x1]"],
    ):
        cfg = validate(compose(["estimator=ipw", *extra]))
        sens = cfg.estimator.params.sensitivity
        assert sens is not None and (sens.cf_y, sens.cf_d, sens.rho) == (0.03, 0.03, 1.0)
    short = validate(compose(["estimator=aipw", "estimator.sensitivity.cf_y=0.03"]))
    both = validate(
        compose(
            ["estimator=aipw", "estimator.sensitivity.cf_y=0.03", "estimator.sensitivity.cf_d=0.03"]
        )
    )
    assert short.cell_hash == both.cell_hash


def test_benchmark_names_resolve_to_columns_terms_and_variables(frame):
    data, _ = expand_formulas(Dataset(frame, Roles(outcome="y", treatment="d", covariates=FORMULA)))
    known, terms = data.roles.covariates, data.roles.terms
    dummies = ("C(education)[T.2]", "C(education)[T.3]")
    inter = ("C(education)[T.2]:sex", "C(education)[T.3]:sex")
    expected = {
        "age": ("age",),  # a column: itself only, as before
        "I(age ** 2)": ("I(age ** 2)",),
        "I(age**2)": ("I(age ** 2)",),  # as written in the formula
        "C(education)": dummies,
        "C(education)[T.2]": dummies[:1],
        "sex:C(education)": inter,  # formulaic's term C(education):sex
        "education": dummies + inter,  # a variable that is no column: every term reading it
        "C(education)+I(age**2)": ("I(age ** 2)", *dummies),
    }
    assert benchmark_groups(list(expected), known, terms) == expected


def test_unknown_benchmark_is_one_line_listing_terms_and_columns(frame):
    data, _ = expand_formulas(Dataset(frame, Roles(outcome="y", treatment="d", covariates=FORMULA)))
    with pytest.raises(DataError) as err:
        benchmark_groups(["age+income"], data.roles.covariates, data.roles.terms)
    text = str(err.value)
    assert text.startswith(
        "estimator.sensitivity.benchmark_covariates: expected covariates or formula terms among "
        "C(education), C(education):sex, age, I(age ** 2), C(education)[T.2]"
    )
    assert text.endswith("got 'income'") and "\n" not in text
    many = [f"x{j}" for j in range(30)]
    with pytest.raises(DataError, match=r"x11, \.\.\. \(30 in all\), got 'z'$"):
        benchmark_groups(["z"], many)


@pytest.mark.parametrize("estimator", ["aipw", "ipw"])
def test_term_benchmark_equals_its_columns_and_defaults_apply(frame, estimator):
    """``C(education)`` and ``education`` are the same groups as their columns, bit for bit."""
    names = {
        "C(education)": "C(education)[T.2]+C(education)[T.3]",
        "education": "C(education)[T.2]+C(education)[T.3]+C(education)[T.2]:sex+C(education)[T.3]:sex",
    }
    options = {"outcome_model": "linear", "folds": 2} if estimator == "aipw" else {}
    res = ck.fit(
        frame,
        estimator,
        outcome="y",
        treatment="d",
        covariates=FORMULA,
        sensitivity={"benchmark_covariates": [*names, *names.values()]},
        **options,
    )
    table = res.tables["sensitivity.bounds"]
    for term, columns in names.items():
        pd.testing.assert_series_equal(table.loc[term], table.loc[columns], check_names=False)
    assert (
        res.to_dict()["sensitivity.theta_lower"]
        == pytest.approx(
            res.estimate
            - 0.03
            / np.sqrt(1 - 0.03)
            * np.sqrt(res.to_dict()["sensitivity.sigma2"] * res.to_dict()["sensitivity.nu2"]),
            rel=1e-12,  # |theta - bound| = |rho| C_Y C_D S with cf_y = cf_d = 0.03, rho = 1 (rounding only)
        )
    )


@pytest.mark.parametrize("estimator", ["aipw", "ipw"])
def test_a_benchmark_strength_clipped_to_one_is_a_warning(estimator):
    """``x1`` explains most of the outcome: its implied cf_y exceeds 1 (clipped, as DoubleML)."""
    rng = np.random.default_rng(2)
    n = 400
    x = rng.normal(size=(n, 2))
    d = (rng.random(n) < 1 / (1 + np.exp(-0.5 * x[:, 1]))).astype(int)
    y = 0.5 * d + 3.0 * x[:, 0] + 0.5 * x[:, 1] + 0.3 * rng.normal(size=n)
    df = pd.DataFrame({"y": y, "d": d, "x1": x[:, 0], "x2": x[:, 1]})
    options = {"outcome_model": "linear"} if estimator == "aipw" else {}
    with pytest.warns(ck.CausalkitWarning):
        res = ck.fit(
            df,
            estimator,
            outcome="y",
            treatment="d",
            covariates=["x1", "x2"],
            sensitivity={"benchmark_covariates": ["x1"]},
            **options,
        )
    assert res.tables["sensitivity.bounds"].loc["x1", "cf_y"] == 1.0
    assert (
        f"{estimator}: the bound on cf_y for benchmark x1 exceeds 1 and was set to 1"
        in res.warnings
    )


def test_darfur_village_term_equals_its_485_dummies():
    """Cinelli & Hazlett's Darfur model with ``C(village)``: the term is one benchmark group.

    ``kd = 0.05``: at 1x the village fixed effects would explain all of the outcome's residual
    variance (clipped, a warning). Same columns in the same order, so the rows are equal bit for
    bit. The published ``female`` rows: ``tests/reference/test_ols_darfur.py``.
    """
    df = pd.read_csv(DARFUR)
    covariates = "age + farmer_dar + herder_dar + pastvoted + hhsize_darfur + female + C(village)"
    roles = Roles(outcome="peacefactor", treatment="directlyharmed", covariates=covariates)
    dummies = [c for c in expand_formulas(Dataset(df, roles))[0].roles.covariates if "[T." in c]
    assert len(dummies) == 485
    listed = "+".join(dummies)
    res = ck.fit(
        df,
        "ols",
        outcome="peacefactor",
        treatment="directlyharmed",
        covariates=covariates,
        model="pooled",
        sensitivity={"benchmark_covariates": ["C(village)", "village", listed], "kd": [0.05]},
    )
    table = res.tables["sensitivity.bounds"]
    assert table.loc["0.05x C(village)", "r2dz_x"] == pytest.approx(0.035752, abs=5e-7)  # printed
    for name in ("C(village)", "village"):
        np.testing.assert_array_equal(table.loc[f"0.05x {name}"], table.loc[f"0.05x {listed}"])
