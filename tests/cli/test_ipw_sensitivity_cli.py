"""``ipw``'s sensitivity bounds and E-value wording from the command line, equal to Python."""

from __future__ import annotations

import pytest

import causalkit as ck

from .test_cluster_cli import ROLES, _run

pytestmark = pytest.mark.cli


def _value(stdout: str, key: str) -> str:
    (line,) = [ln for ln in stdout.splitlines() if ln.strip().startswith(key + " ")]
    return line.split(maxsplit=1)[1].strip()


def test_ipw_sensitivity_from_the_cli_equals_python(workdir):
    sim = ck.simulate("selection_on_observables", seed=3, n=500)
    frame = sim.dataset.frame
    frame.to_csv(workdir / "obs.csv", index=False)
    out = _run(
        workdir,
        "data=csv",
        "data.path=obs.csv",
        *ROLES,
        "estimator=ipw",
        "estimator.sensitivity.cf_y=0.04",
        "estimator.sensitivity.cf_d=0.03",
        "estimator.sensitivity.benchmark_covariates=[x1]",
    )
    assert out.returncode == 0, out.stderr
    res = ck.fit(
        frame,
        "ipw",
        outcome="y",
        treatment="treat",
        covariates=["x1", "x2"],
        sensitivity={"cf_y": 0.04, "cf_d": 0.03, "benchmark_covariates": ["x1"]},
    )
    row = res.to_dict()
    for key in ("sensitivity.theta_lower", "sensitivity.ci_upper", "sensitivity.rv", "e_value"):
        # the summary prints 4 significant digits
        assert float(_value(out.stdout, key)) == pytest.approx(row[key], rel=5e-4)
    assert _value(out.stdout, "sensitivity.sigma2_source") == "linear_loo"
    assert _value(out.stdout, "e_value.conversion") == "smd_0.91"
    assert "sensitivity benchmarks" in out.stdout

    # cf_y alone runs (cf_d 0.03, DoubleML's default); a bad value is one line
    bad = _run(workdir, "data=csv", "data.path=obs.csv", *ROLES, "estimator=ipw",
               "estimator.sensitivity.cf_d=1.0")  # fmt: skip
    lines = bad.stderr.strip().splitlines()
    assert bad.returncode == 2 and len(lines) == 1 and "Traceback" not in bad.stderr
    assert "estimator.sensitivity.cf_d: expected less than 1, got 1.0" in lines[0]
