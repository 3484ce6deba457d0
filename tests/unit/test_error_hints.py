"""One-line errors that say what to do: a known wrong key, another plugin's key, a refused pairing.

Also the summary line that says a standard error is clustered (weighted). All in-process on a
200-row table.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import causalkit as ck
from causalkit.cli import main
from causalkit.errors import ConfigError, DataError
from causalkit.registry import default_registry
from causalkit.tracking import _read_effect, _write_effect

FOLD_HINT = "the fold columns are the fold role: data.roles.fold=[f1,f2] (ck.fit(..., fold=[...]))"
ROLES = ("data.roles.treatment=treat", "data.roles.outcome=y", "data.roles.covariates=[x1,x2]")


@pytest.fixture
def frame() -> pd.DataFrame:
    """200 units in 40 groups ``g``, sampling weights ``w``, a true effect of 1."""
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=(2, 200))
    treat = (rng.uniform(size=200) < 1 / (1 + np.exp(-x1))).astype(int)
    y = treat + x1 + 0.5 * x2 + rng.normal(size=200)
    g = np.arange(200) % 40
    w = rng.uniform(0.5, 2.0, 200)
    return pd.DataFrame({"x1": x1, "x2": x2, "treat": treat, "y": y, "g": g, "w": w})


@pytest.fixture
def csv(frame, tmp_path, monkeypatch) -> list[str]:
    """The table as ``t.csv`` in the working directory; the overrides of a real-data run."""
    frame.to_csv(tmp_path / "t.csv", index=False)
    monkeypatch.chdir(tmp_path)
    return ["tracking=none", "dgp=none", "data=csv", "data.path=t.csv", *ROLES]


def _re(text: str) -> str:
    return re.escape(text)


def _cli_error(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_fold_column_points_at_the_fold_role(csv, frame, capsys):
    err = _cli_error(capsys, *csv, "estimator=aipw", "estimator.fold_column=[g,g]")
    assert err.startswith("causalkit: error: estimator.fold_column: expected one of the keys ")
    assert err.endswith(f"; {FOLD_HINT}, got 'fold_column'")
    with pytest.raises(ConfigError, match=r"estimator\.fold_column: .*; " + _re(FOLD_HINT)):
        ck.fit(frame, "aipw", treatment="treat", outcome="y", covariates=["x1"], fold_column=["g"])


@pytest.mark.parametrize("role", ["cluster", "weight", "fold"])
def test_a_missing_role_column_names_its_role(csv, role):
    with pytest.raises(
        DataError,
        match=_re(f"data.roles.{role}: expected a column of t.csv (6 there, not shown), got nocol"),
    ):
        ck.run([*csv, f"data.roles.{role}=nocol"])


def test_a_missing_covariate_column_names_the_covariates(csv):
    with pytest.raises(DataError, match=_re("data.roles.covariates: expected columns of t.csv")):
        ck.run([*csv, "data.roles.covariates=[x1,nope]"])


def test_an_unquoted_formula_gets_a_hint_to_quote_it(csv, capsys):
    formula = "data.roles.covariates=x1 + I(x1**2)"
    hint = "must be quoted: 'data.roles.covariates=\"age + I(age**2)\"')"
    err = _cli_error(capsys, *csv, formula)
    assert err.startswith("causalkit: error: command line: expected valid Hydra overrides")
    assert hint in err
    with pytest.raises(ConfigError, match=r"^overrides: expected valid Hydra .*" + _re(hint)):
        ck.run([*csv, formula])
    # quoted as the hint says, it runs
    cell = ck.run([*csv, 'data.roles.covariates="x1 + I(x1**2)"', "estimator=ols"])
    assert cell.single is not None and cell.single.n == 200


def test_a_parameter_of_other_estimators_names_them(csv):
    owners = [
        n
        for n in default_registry().names("estimator")
        if "sensitivity" in default_registry().get("estimator", n).Params.model_fields
    ]
    assert "aipw" in owners and "naive" not in owners
    with pytest.raises(
        ConfigError,
        match=_re(
            f"estimator.sensitivity: expected one of the keys name; sensitivity is a "
            f"parameter of {', '.join(owners)}, not of naive, got 'sensitivity'"
        ),
    ):
        ck.run([*csv, "estimator=naive", "estimator.sensitivity.cf_y=0.03"])


def test_a_refused_pairing_names_the_parameter_that_refuses_it(csv, frame):
    why = "(bootstrap is ruled out by estimator.n_rep=3; it is offered at the default n_rep=1)"
    with pytest.raises(ConfigError, match=_re(f"with these parameters {why}, got 'bootstrap'")):
        ck.run([*csv, "estimator=aipw", "estimator.n_rep=3", "inference=bootstrap"])
    with pytest.raises(ConfigError, match=_re(why)):
        ck.fit(frame, "aipw", treatment="treat", outcome="y", n_rep=3, inference="bootstrap")
    # never offered, whatever the parameters: no reason to give
    with pytest.raises(ConfigError, match=r"for estimator psm with these parameters, got"):
        ck.fit(
            frame, "psm", treatment="treat", outcome="y", covariates=["x1"], inference="bootstrap"
        )


def test_the_summary_says_the_se_is_clustered_and_weighted(frame, tmp_path):
    roles = {"treatment": "treat", "outcome": "y", "covariates": ["x1", "x2"]}
    res = ck.fit(frame, "ols", **roles, cluster="g", weight="w")
    lines = str(res).splitlines()
    at = lines.index(next(ln for ln in lines if ln.startswith("std. error")))
    assert lines[at + 1 : at + 3] == [
        "  clustered by        g (40 clusters)",
        "  weighted by         w",
    ]
    assert (res.cluster, res.weight) == ("g", "w")
    plain = ck.fit(frame, "ols", **roles)
    assert plain.cluster is plain.weight is None
    assert "clustered by" not in str(plain) and "weighted by" not in str(plain)
    # the store keeps them: a result read back prints the same summary
    _write_effect(tmp_path / "cell", res, 1.0)
    back, _ = _read_effect(tmp_path / "cell")
    assert back == res and str(back) == str(res)
