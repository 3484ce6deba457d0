"""Covariates as formulas (causalkit/formulas.py): expansion, reference levels, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

import causalkit as ck
from causalkit.contracts import Dataset, LazySource, Roles
from causalkit.errors import ConfigError, DataError
from causalkit.formulas import expand_formulas, formula_variables


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 400
    age = rng.integers(25, 75, n).astype(float)
    education = rng.integers(1, 4, n)  # 1, 2, 3
    sex = rng.integers(0, 2, n)
    intensity = rng.integers(1, 40, n)
    region = rng.choice(["south", "east", "north"], n)
    diet = pd.Categorical(
        rng.choice(["vegan", "omni", "veg"], n), categories=["omni", "veg", "vegan"]
    )
    logit = -2.0 + 0.03 * age - 0.3 * (education == 3) + 0.2 * sex
    treat = (rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    y = 1.0 + treat + 0.02 * age + 0.5 * (region == "east") + rng.normal(size=n)
    return pd.DataFrame(
        {"y": y, "treat": treat, "age": age, "education": education, "sex": sex,
         "smokeintensity": intensity, "region": region, "diet": diet}
    )  # fmt: skip


FORMULA = "age + I(age**2) + C(education) + smokeintensity:sex"


def _expand(frame: pd.DataFrame, **roles: object) -> tuple[Dataset, dict]:
    return expand_formulas(Dataset(frame, Roles.model_validate(roles)))


def test_expansion_names_values_and_reference_level(frame):
    data, notes = _expand(frame, outcome="y", treatment="treat", covariates=FORMULA)
    names = ("age", "I(age ** 2)", "C(education)[T.2]", "C(education)[T.3]", "smokeintensity:sex")
    assert data.roles.covariates == names  # formulaic's names, no intercept column
    x = data.frame
    assert x["I(age ** 2)"].to_numpy() == pytest.approx(frame["age"].to_numpy() ** 2, rel=1e-15)
    assert (x["C(education)[T.3]"] == (frame["education"] == 3)).all()
    assert (x["smokeintensity:sex"] == frame["smokeintensity"] * frame["sex"]).all()
    assert x["age"] is not None and list(x.columns[: frame.shape[1]]) == list(frame.columns)
    assert notes == {"reference.education": "1"}  # the lowest level is left out
    assert data.roles.outcome == "y" and data.roles.treatment == "treat"


def test_text_and_categorical_columns_and_a_chosen_base(frame):
    data, notes = _expand(frame, covariates="region + diet + C(education, contr.treatment(base=3))")
    assert data.roles.covariates == (
        "region[T.north]",
        "region[T.south]",  # text: sorted levels, 'east' the reference
        "diet[T.veg]",
        "diet[T.vegan]",  # a Categorical: its first category, 'omni', the reference
        "C(education, contr.treatment(base=3))[T.1]",
        "C(education, contr.treatment(base=3))[T.2]",
    )
    assert notes == {
        "reference.region": "east",
        "reference.diet": "omni",
        "reference.education": "3",
    }


def test_interaction_of_a_factor_with_a_number(frame):
    data, _ = _expand(frame, covariates="age + C(education):age")
    assert data.roles.covariates == ("age", "C(education)[T.2]:age", "C(education)[T.3]:age")
    expected = frame["age"] * (frame["education"] == 2)
    assert data.frame["C(education)[T.2]:age"].to_numpy() == pytest.approx(expected.to_numpy())


def test_missing_value_stays_missing_in_every_column_of_its_term(frame):
    frame.loc[3, "region"] = None
    data, _ = _expand(frame, covariates="age + region")
    assert data.frame.loc[3, ["region[T.north]", "region[T.south]"]].isna().all()
    assert data.frame.loc[4, ["region[T.north]", "region[T.south]"]].notna().all()
    with pytest.raises(
        DataError, match=r"^roles\.covariates: expected no missing values in 'region\[T\.north\]'"
    ):
        ck.fit(frame, "ipw", outcome="y", treatment="treat", covariates="age + region")


def test_plain_lists_are_untouched(frame):
    data = Dataset(frame, Roles(outcome="y", treatment="treat", covariates=("age", "sex")))
    assert expand_formulas(data) == (data, {})
    listed = ck.fit(frame, "ipw", outcome="y", treatment="treat", covariates=["age", "sex"])
    written = ck.fit(frame, "ipw", outcome="y", treatment="treat", covariates="age + sex")
    assert written.estimate == listed.estimate and written.se == listed.se  # bit-identical
    assert "reference.sex" not in written.to_dict()


def test_balance_table_and_coefficients_carry_the_expanded_names(frame):
    res = ck.fit(frame, "ipw", outcome="y", treatment="treat", propensity_covariates=FORMULA)
    assert list(res.tables["balance"].index) == [
        "age", "I(age ** 2)", "C(education)[T.2]", "C(education)[T.3]", "smokeintensity:sex"
    ]  # fmt: skip
    assert res.to_dict()["reference.education"] == "1"
    ols = ck.fit(
        frame,
        "ols",
        roles={"outcome": "y", "treatment": "treat", "covariates": FORMULA},
        model="pooled",
    )
    keys = [k for k in ols.to_dict() if k.startswith("coef.")]
    assert keys == [
        "coef.intercept", "coef.treat", "coef.age", "coef.I(age ** 2)", "coef.C(education)[T.2]",
        "coef.C(education)[T.3]", "coef.smokeintensity:sex",
    ]  # fmt: skip


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_missing_column_is_one_line_naming_role_formula_and_column(frame):
    with pytest.raises(DataError) as exc:
        ck.fit(frame, "ipw", outcome="y", treatment="treat", covariates="age + C(educaton)")
    assert _one_line(exc) == (
        "roles.covariates: expected the columns named in the formula 'age + C(educaton)' in the "
        "data, got no column 'educaton'"
    )


@pytest.mark.parametrize(
    ("formula", "expected"),
    [
        ("age +", "a formula formulaic can parse (Operator `+`"),
        ("treat ~ age", "the right-hand side of a formula only"),
        ("age + C(education) - 1", "a formula that keeps its intercept"),
        ("age + I(age^2)", "powers written as I(x**2)"),
        ("1", "a formula with at least one term"),
    ],
)
def test_bad_formula_is_one_line_config_error(frame, formula, expected):
    with pytest.raises(ConfigError) as exc:
        ck.fit(frame, "ipw", outcome="y", treatment="treat", selection_covariates=formula)
    assert _one_line(exc).startswith(f"roles.selection_covariates: expected {expected}")
    assert _one_line(exc).endswith(f"got {formula!r}")
    with pytest.raises(ValidationError):
        Roles(propensity_covariates=formula)


def test_roles_columns_lists_the_variables_a_formula_reads():
    roles = Roles(outcome="y", covariates="I(age**2) + C(education) + smokeintensity:sex + age")
    assert formula_variables(roles.covariates) == ("age", "education", "smokeintensity", "sex")
    assert roles.columns() == ["y", "age", "education", "smokeintensity", "sex"]
    assert Roles(covariates=["a", "b"]).covariates == ("a", "b")
    assert Roles(covariates=["a", "b"]).model_dump() == Roles(covariates=("a", "b")).model_dump()


def test_lazy_source_refuses_a_formula():
    data = Dataset.from_source(
        LazySource("parquet", "panel.parquet", ("y", "age")),
        Roles(outcome="y", covariates="age + I(age**2)"),
    )
    with pytest.raises(
        DataError, match=r"^roles\.covariates: expected a list of column names with a lazy source"
    ):
        expand_formulas(data)


def test_roles_given_twice_in_fit_is_one_line(frame):
    with pytest.raises(ConfigError, match=r"^roles\.outcome: expected each role once"):
        ck.fit(frame, "ipw", outcome="y", treatment="treat", roles={"outcome": "y"})


def test_resampling_inference_refits_on_the_expanded_table(frame):
    """Bootstrap refits see the columns expanded once: equal to passing them as a list."""
    data, _ = _expand(frame, covariates=FORMULA)
    listed = ck.fit(
        data.frame, "ipw", outcome="y", treatment="treat", covariates=list(data.roles.covariates),
        inference={"name": "bootstrap", "n_boot": 50}, seed=3,
    )  # fmt: skip
    written = ck.fit(
        frame, "ipw", outcome="y", treatment="treat", covariates=FORMULA,
        inference={"name": "bootstrap", "n_boot": 50}, seed=3,
    )  # fmt: skip
    assert (written.estimate, written.se) == (listed.estimate, listed.se)


def test_long_panel_and_parquet_units_take_a_formula(tmp_path):
    from causalkit.inputs import checked_fit
    from causalkit_plugins.data.files import ParquetUnitsParams, ParquetUnitsSource
    from causalkit_plugins.estimators.microsynth.estimator import MicroSynth

    sim = ck.simulate("area_panel", seed=1)
    formula = "x1 + I(x1**2) + x2"
    roles = sim.dataset.roles.model_copy(update={"covariates": formula})
    rng = np.random.default_rng(0)
    fit = checked_fit(MicroSynth(), sim.dataset.with_roles(roles), rng)
    assert list(fit.tables["balance"].index) == ["x1", "I(x1 ** 2)", "x2"]

    frame = sim.dataset.frame
    frame.to_parquet(tmp_path / "panel.parquet")
    params = {"path": str(tmp_path / "panel.parquet"), "roles": roles}
    eager = ParquetUnitsSource(ParquetUnitsParams(**params)).load()
    assert eager.roles.covariates == formula and len(eager.frame) == frame["unit"].nunique()
    unit_fit = checked_fit(MicroSynth(), eager, rng)
    assert list(unit_fit.tables["balance"].index) == ["x1", "I(x1 ** 2)", "x2"]
    lazy = ParquetUnitsSource(ParquetUnitsParams(**params, lazy=True)).load()
    with pytest.raises(DataError, match=r"^roles\.covariates: expected a list of column names"):
        checked_fit(MicroSynth(), lazy, rng)


def test_a_table_held_as_panel_arrays_is_built_then_expanded():
    sim = ck.simulate("contaminated_holdout", seed=1)
    assert sim.dataset.panel is not None
    roles = sim.dataset.roles.model_copy(update={"covariates": "age + I(age**2) + device"})
    data, _ = expand_formulas(sim.dataset.with_roles(roles))
    assert data.roles.covariates == ("age", "I(age ** 2)", "device")
    built = sim.dataset.frame
    assert data.frame["I(age ** 2)"].to_numpy() == pytest.approx(built["age"].to_numpy() ** 2)
    assert list(data.frame.columns) == [*built.columns, "I(age ** 2)"]
