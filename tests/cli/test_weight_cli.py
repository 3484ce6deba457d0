"""Sampling weights from the command line (``data.roles.weight=<col>``) and from Python."""

from __future__ import annotations

import pytest

import causalkit as ck

from .test_cluster_cli import ROLES, _run

pytestmark = pytest.mark.cli


def _line(stdout: str, head: str) -> float:
    (line,) = [ln for ln in stdout.splitlines() if ln.startswith(head)]
    return float(line.split()[-1])


def test_weight_role_from_the_cli_equals_python(workdir):
    sim = ck.simulate("selection_on_observables", seed=3, n=600, sampling={"informative": 0.5})
    frame = sim.dataset.frame.rename(columns={"weight": "pw"})
    frame.to_csv(workdir / "survey.csv", index=False)
    base = ("data=csv", "data.path=survey.csv", *ROLES, "estimator=ipw")
    weighted = _run(workdir, *base, "data.roles.weight=pw")
    assert weighted.returncode == 0, weighted.stderr
    assert "weight_ess" in weighted.stdout
    res = ck.fit(frame, "ipw", outcome="y", treatment="treat", covariates=["x1", "x2"], weight="pw")
    out = res.to_dict()
    assert _line(weighted.stdout, "estimate") == pytest.approx(out["estimate"], abs=1e-4)
    assert _line(weighted.stdout, "std. error") == pytest.approx(out["se"], abs=1e-4)
    plain = _run(workdir, *base)
    assert plain.returncode == 0, plain.stderr
    # the sample over-represents large effects (its ATE is 1.5, the population's 1.0)
    assert _line(plain.stdout, "estimate") - _line(weighted.stdout, "estimate") > 0.3

    frame.assign(pw=frame["pw"] - 1.0).to_csv(workdir / "negative.csv", index=False)
    bad = _run(workdir, "data=csv", "data.path=negative.csv", *ROLES, "estimator=naive",
               "data.roles.weight=pw")  # fmt: skip
    lines = bad.stderr.strip().splitlines()
    assert bad.returncode == 2 and len(lines) == 1 and "Traceback" not in bad.stderr
    assert lines[0].startswith("causalkit: error: roles.weight: expected non-negative weights")

    # psm takes weights only when matching on the covariates: on the score it refuses
    refused = _run(workdir, *base[:-1], "estimator=psm", "data.roles.weight=pw")
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 2 and len(lines) == 1 and "Traceback" not in refused.stderr
    assert "estimator.match_on: expected covariates with roles.weight" in lines[0]
