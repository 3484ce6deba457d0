"""``ols`` pooled regression and its partial-R² sensitivity from the command line, logged to MLflow.

The Darfur data (``tests/data/darfur.csv.gz``) without the village fixed effects (those are
``tests/reference/test_ols_darfur.py``'s): the CLI run must log what ``ck.fit`` computes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

import causalkit as ck
from causalkit.testing import run_cli as _run

pytestmark = pytest.mark.cli

DATA = Path(__file__).resolve().parents[1] / "data" / "darfur.csv.gz"
COVARIATES = ["age", "farmer_dar", "herder_dar", "pastvoted", "hhsize_darfur", "female"]
ARGS = (
    "dgp=none",
    "data=csv",
    "data.path=darfur.csv.gz",
    "data.roles.outcome=peacefactor",
    "data.roles.treatment=directlyharmed",
    f"data.roles.covariates=[{','.join(COVARIATES)}]",
    "estimator=ols",
)


def test_pooled_sensitivity_from_the_cli_is_logged(workdir):
    shutil.copy(DATA, workdir / "darfur.csv.gz")
    p = _run(
        workdir,
        *ARGS,
        "estimator.model=pooled",
        "estimator.sensitivity.benchmark_covariates=[female]",
        "estimator.sensitivity.kd=[1,2,3]",
    )
    assert p.returncode == 0, p.stderr
    for needle in ("sensitivity.partial_r2", "sensitivity.rv", "sensitivity.rva", "3x female"):
        assert needle in p.stdout

    res = ck.fit(
        pd.read_csv(DATA),
        "ols",
        outcome="peacefactor",
        treatment="directlyharmed",
        covariates=COVARIATES,
        model="pooled",
        sensitivity={"benchmark_covariates": ["female"], "kd": [1, 2, 3]},
    )
    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'runs' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("causalkit").experiment_id])
    metrics = run.data.metrics
    out = res.to_dict()
    for key in ("estimate", "se", "sensitivity.partial_r2", "sensitivity.rv", "sensitivity.rva"):
        assert metrics[key] == pytest.approx(out[key], rel=1e-12), key
    assert metrics["coef.female"] == pytest.approx(out["coef.female"], rel=1e-12)
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"sensitivity.bounds.csv", "sensitivity.contour.csv"} <= names
    assert "sensitivity_contour.png" in names
    logged = pd.read_csv(
        client.download_artifacts(run.info.run_id, "sensitivity.bounds.csv", str(workdir)),
        index_col="bound_label",
    )
    # CSV holds each float's shortest round-trip repr: equal to the Python fit's table
    pd.testing.assert_frame_equal(logged, res.tables["sensitivity.bounds"], rtol=1e-12)


def test_sensitivity_of_the_per_arm_model_is_a_one_line_error(workdir):
    shutil.copy(DATA, workdir / "darfur.csv.gz")
    p = _run(workdir, "tracking=none", *ARGS, "estimator.sensitivity.benchmark_covariates=[female]")
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and "Traceback" not in p.stderr
    assert lines[0].startswith(
        "causalkit: error: estimator.sensitivity: expected estimator.model=pooled"
    )
