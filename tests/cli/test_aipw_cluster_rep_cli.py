"""``aipw`` with the cluster role, repeated cross-fitting and its sensitivity bounds, from the CLI and Python.

The CLI seeds a run from its config hash, so its folds (and SE) are not those of ``ck.fit``:
each side is checked on its own.
"""

from __future__ import annotations

import numpy as np
import pytest

import causalkit as ck

from .test_cluster_cli import ROLES, _run, _se, pupils_csv
from .test_ipw_sensitivity_cli import _value

pytestmark = pytest.mark.cli


def test_clustered_repeated_aipw_from_the_cli_and_python(workdir):
    frame = pupils_csv(workdir)
    base = ("data=csv", "data.path=pupils.csv", *ROLES, "data.roles.cluster=school",
            "estimator=aipw", "estimator.n_rep=3")  # fmt: skip
    out = _run(workdir, *base)
    assert out.returncode == 0, out.stderr
    assert "n_clusters" in out.stdout and "n_rep" in out.stdout and _se(out.stdout) > 0
    res = ck.fit(frame, "aipw", outcome="y", treatment="treat", covariates=["x1", "x2"],
                 cluster="school", n_rep=3).to_dict()  # fmt: skip
    assert res["n_clusters"] == 60 and res["n_rep"] == 3
    assert res["rep_estimate_min"] <= res["estimate"] <= res["rep_estimate_max"]
    plain = ck.fit(frame, "aipw", outcome="y", treatment="treat", covariates=["x1", "x2"])
    assert res["se"] > 1.1 * plain.to_dict()["se"]  # clusters share covariates and noise

    boot = _run(workdir, *base, "inference=bootstrap")
    lines = boot.stderr.strip().splitlines()
    assert boot.returncode == 2 and len(lines) == 1 and "Traceback" not in boot.stderr
    assert lines[0].startswith("causalkit: error: inference: expected one of analytic")


def test_repeated_sensitivity_from_the_cli_equals_python(workdir):
    """Given splits (three fold columns), the CLI's bounds are Python's (printed to 4 digits)."""
    frame = pupils_csv(workdir)
    rng = np.random.default_rng(2)
    folds = {f"f{r}": rng.permutation(len(frame)) % 5 for r in range(3)}
    frame.assign(**folds).to_csv(workdir / "folds.csv", index=False)
    out = _run(workdir, "data=csv", "data.path=folds.csv", *ROLES, "data.roles.fold=[f0,f1,f2]",
               "estimator=aipw", "estimator.n_rep=3", "estimator.outcome_model=linear",
               "estimator.sensitivity.cf_y=0.03", "estimator.sensitivity.cf_d=0.03")  # fmt: skip
    assert out.returncode == 0, out.stderr
    res = ck.fit(frame.assign(**folds), "aipw", outcome="y", treatment="treat",
                 covariates=["x1", "x2"], fold=list(folds), n_rep=3, outcome_model="linear",
                 sensitivity={"cf_y": 0.03, "cf_d": 0.03}).to_dict()  # fmt: skip
    assert res["n_rep"] == 3
    for key in ("sensitivity.theta_lower", "sensitivity.ci_upper", "sensitivity.rv",
                "sensitivity.rva"):  # fmt: skip
        assert float(_value(out.stdout, key)) == pytest.approx(res[key], rel=5e-4)
