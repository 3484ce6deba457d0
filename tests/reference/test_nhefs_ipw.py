"""IPW on the NHEFS against Hernán & Robins, *Causal Inference: What If*, program 12.2.

Data: ``nhefs.csv.gz`` (1,629 cigarette smokers of the NHANES I Epidemiologic Follow-up
Study, the file used throughout the book, as shipped in causallib 0.10), copied from
``../shared/data/`` to ``tests/data/``. As in the book, the 1,566 with ``wt82`` observed are
analysed: the effect of quitting smoking (``qsmk``) between 1971 and 1982 on the weight
gain ``wt82_71`` (kg).

Program 12.2: a logistic propensity model ``qsmk ~ sex + race + age + I(age^2) +
as.factor(education) + smokeintensity + I(smokeintensity^2) + smokeyrs + I(smokeyrs^2) +
as.factor(exercise) + as.factor(active) + wt71 + I(wt71^2)``, weights 1/P(A=a|L), and
``geeglm(wt82_71 ~ qsmk, weights=w, id=seqn, corstr="independence")``. Published: the
coefficient of ``qsmk`` 3.440535, robust SE 0.5255, 95% CI 2.410587 to 4.470484 (the book's
text: "3.4 kg (95% CI: 2.4, 4.5)"). Here the propensity model is ONE formula given to the
``propensity_covariates`` role (``I(age**2)``: in Python ``^`` is xor), ``C(x)`` coding
each factor with its lowest level as the reference, as ``as.factor`` does in R.

Estimate. The weighted regression of Y on A alone has the weighted arm means as fitted
values, so its coefficient is the normalised (Hajek) IPW contrast, our ``ipw`` default:
required agreement with the published value 5e-7 (it is printed to 6 decimals), and 1e-9
relative with statsmodels' WLS on the same weights (both exact algebra on the same fitted
scores; the two logit fits agree to ~1e-12).

Standard error. The book's GEE sandwich (equal to the HC0 sandwich of the WLS fit,
recomputed here with statsmodels: 0.525494) treats the weights as known. Ours is the
sandwich of the stacked estimating equations (logit score, and the two arms' weighted
means), which accounts for the propensity scores being estimated; for the ATE that
correction lowers the variance (Lunceford & Davidian 2004; Hernán & Robins note that their
robust SE is conservative), so ours must be below theirs. It is checked against an
independent computation of the stacked sandwich :math:`A^{-1} B A^{-\\top}/n` written out
below with the analytic derivatives, to 1e-8 relative (the logit MLEs of the two fits agree
to ~1e-10 relative; the observed difference is ~1e-12).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf

import causalkit as ck
from causalkit.testing import run_cli

pytestmark = pytest.mark.reference

DATA = Path(__file__).resolve().parents[1] / "data" / "nhefs.csv.gz"
FORMULA = (
    "sex + race + age + I(age**2) + C(education) + smokeintensity + I(smokeintensity**2)"
    " + smokeyrs + I(smokeyrs**2) + C(exercise) + C(active) + wt71 + I(wt71**2)"
)
PUBLISHED_ESTIMATE = 3.440535
PUBLISHED_SE = 0.5255
PUBLISHED_CI = (2.410587, 4.470484)


@pytest.fixture(scope="module")
def nhefs() -> pd.DataFrame:
    frame = pd.read_csv(DATA)
    assert len(frame) == 1629
    return frame[frame["wt82"].notna()].reset_index(drop=True)


def _stacked_se(frame: pd.DataFrame) -> tuple[float, float, float]:
    """Hajek ATE, its stacked-sandwich SE and the book's GEE SE, with statsmodels + numpy."""
    logit = smf.glm("qsmk ~ " + FORMULA, data=frame, family=sm.families.Binomial()).fit()
    X = logit.model.exog
    p = logit.predict(frame).to_numpy()
    a = frame["qsmk"].to_numpy(float)
    y = frame["wt82_71"].to_numpy()
    w = np.where(a == 1, 1.0 / p, 1.0 / (1.0 - p))
    gee = smf.gee(
        "wt82_71 ~ qsmk", groups=frame["seqn"], data=frame, weights=w,
        cov_struct=sm.cov_struct.Independence(),
    ).fit()  # fmt: skip
    n, k = X.shape
    m1 = (a * w * y).sum() / (a * w).sum()
    m0 = ((1 - a) * w * y).sum() / ((1 - a) * w).sum()
    # theta = (gamma, mu1, mu0); psi = (X(a - p), a/p (y - mu1), (1-a)/(1-p) (y - mu0))
    psi = np.column_stack([X * (a - p)[:, None], a / p * (y - m1), (1 - a) / (1 - p) * (y - m0)])
    A = np.zeros((k + 2, k + 2))  # E[d psi / d theta]
    A[:k, :k] = -(X * (p * (1 - p))[:, None]).T @ X / n
    A[k, :k] = (-(a * (1 - p) / p * (y - m1))[:, None] * X).mean(axis=0)
    A[k + 1, :k] = (((1 - a) * p / (1 - p) * (y - m0))[:, None] * X).mean(axis=0)
    A[k, k] = -(a / p).mean()
    A[k + 1, k + 1] = -((1 - a) / (1 - p)).mean()
    Ainv = np.linalg.inv(A)
    V = Ainv @ (psi.T @ psi / n) @ Ainv.T / n
    c = np.zeros(k + 2)
    c[k], c[k + 1] = 1.0, -1.0
    return float(m1 - m0), float(np.sqrt(c @ V @ c)), float(gee.bse["qsmk"])


def test_program_12_2_from_python(nhefs):
    res = ck.fit(nhefs, "ipw", treatment="qsmk", outcome="wt82_71", propensity_covariates=FORMULA)
    out = res.to_dict()
    assert out["n"] == 1566 and out["estimand"] == "ATE"
    assert out["estimate"] == pytest.approx(PUBLISHED_ESTIMATE, abs=5e-7)
    hajek, stacked_se, gee_se = _stacked_se(nhefs)
    assert out["estimate"] == pytest.approx(hajek, rel=1e-9)
    assert gee_se == pytest.approx(PUBLISHED_SE, abs=5e-5)  # the book's SE, reproduced
    assert (hajek - 1.959964 * gee_se, hajek + 1.959964 * gee_se) == pytest.approx(
        PUBLISHED_CI, abs=5e-6
    )
    assert out["se"] == pytest.approx(stacked_se, rel=1e-8)
    assert out["se"] < gee_se  # estimated scores: the known-weights sandwich is conservative
    # the reference levels left out, as R's as.factor does
    assert (out["reference.education"], out["reference.exercise"], out["reference.active"]) == (
        "1",
        "0",
        "0",
    )
    assert "C(education)[T.5]" in res.tables["balance"].index


@pytest.mark.cli
def test_program_12_2_from_the_cli(nhefs, tmp_path):
    nhefs.to_csv(tmp_path / "nhefs_observed.csv", index=False)
    run = run_cli(
        tmp_path, "tracking=none", "dgp=none", "data=csv",
        "data.path=nhefs_observed.csv", "data.roles.outcome=wt82_71",
        "data.roles.treatment=qsmk", "estimator=ipw",
        f'data.roles.propensity_covariates="{FORMULA}"', timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = {ln.split()[0]: ln.split()[-1] for ln in run.stdout.splitlines() if ln.strip()}
    python = ck.fit(
        nhefs, "ipw", treatment="qsmk", outcome="wt82_71", propensity_covariates=FORMULA
    )
    # the summary prints 4 decimals
    assert float(lines["estimate"]) == pytest.approx(python.estimate, abs=5e-5)
    assert float(lines["estimate"]) == pytest.approx(PUBLISHED_ESTIMATE, abs=5e-5)
    assert float(lines["std."]) == pytest.approx(python.se, abs=5e-5)
    assert "I(smokeintensity ** 2)" in run.stdout and "C(active)[T.2]" in run.stdout
