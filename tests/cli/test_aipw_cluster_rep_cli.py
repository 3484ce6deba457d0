"""``aipw`` with the cluster role and repeated cross-fitting, from the command line and Python.

The CLI seeds a run from its config hash, so its folds (and SE) are not those of ``ck.fit``:
each side is checked on its own.
"""

from __future__ import annotations

import pytest

import causalkit as ck

from .test_cluster_cli import ROLES, _run, _se, pupils_csv

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
