"""Covariates as one quoted formula override on the command line, and its one-line errors."""

from __future__ import annotations

import pytest

import causalkit as ck
from causalkit.testing import run_cli

from .test_cluster_cli import _run

pytestmark = pytest.mark.cli

ROLES = ("data=csv", "data.path=world.csv", "data.roles.outcome=y", "data.roles.treatment=treat")
FORMULA = "x1 + I(x1**2) + grade + x1:x2"


@pytest.fixture
def world(workdir):
    frame = ck.simulate("selection_on_observables", seed=5, n=500).dataset.frame
    frame["grade"] = ["abc"[i % 3] for i in range(len(frame))]  # a text column
    frame.to_csv(workdir / "world.csv", index=False)
    return frame


def test_formula_override_equals_python_and_names_the_columns(workdir, world):
    run = _run(workdir, *ROLES, "estimator=ipw", f'data.roles.covariates="{FORMULA}"')
    assert run.returncode == 0, run.stderr
    for name in ("I(x1 ** 2)", "grade[T.b]", "grade[T.c]", "x1:x2", "reference.grade"):
        assert name in run.stdout  # the balance table and the reference level 'a'
    (line,) = [ln for ln in run.stdout.splitlines() if ln.startswith("estimate")]
    res = ck.fit(world, "ipw", outcome="y", treatment="treat", covariates=FORMULA)
    assert float(line.split()[-1]) == pytest.approx(res.estimate, abs=5e-5)  # printed to 4 dp


@pytest.mark.parametrize(
    ("formula", "message"),
    [
        (
            "x1 + C(grad)",
            "data.roles.covariates: expected the columns of the formula 'x1 + C(grad)' in the "
            "header of world.csv ({n} there, not shown), got grad",
        ),
        (
            "x1 + (x2",
            "data.roles.covariates: expected a formula formulaic can parse (Could not find "
            "matching context marker.), got 'x1 + (x2'",
        ),
    ],
)
def test_bad_formula_is_one_line_exit_2(workdir, world, formula, message):
    run = _run(workdir, *ROLES, "estimator=ols", f'data.roles.covariates="{formula}"')
    assert run.returncode == 2 and "Traceback" not in run.stderr
    shown = message.format(n=len(world.columns))
    assert run.stderr.strip().splitlines() == [f"causalkit: error: {shown}"]


def test_expanded_names_are_logged_to_mlflow(workdir, world):
    """MLflow refuses '(', '[', '*' in metric names: they are logged with '_' instead."""
    run = run_cli(
        workdir, "dgp=none", *ROLES, "estimator=ols", "estimator.model=pooled",
        f'data.roles.covariates="{FORMULA}"', timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "coef.I(x1 ** 2)" in run.stdout  # the summary keeps formulaic's name
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{workdir / 'runs' / 'mlflow.db'}")
    (exp,) = [e for e in client.search_experiments() if e.name != "Default"]
    (logged,) = client.search_runs([exp.experiment_id])
    assert logged.data.metrics["coef.I_x1 __ 2_"] == pytest.approx(
        ck.fit(
            world, "ols", outcome="y", treatment="treat", covariates=FORMULA, model="pooled"
        ).to_dict()["coef.I(x1 ** 2)"],
        rel=1e-12,
    )
    assert logged.data.tags["diag.reference.grade"] == "a"
