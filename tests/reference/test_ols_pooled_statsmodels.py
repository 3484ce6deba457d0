r"""``ols`` with ``model=pooled`` against statsmodels' OLS and WLS.

The pooled model is one regression :math:`y \sim 1 + d + x_1 + x_2` (weighted least squares
with the ``weight`` role); its estimate is the coefficient of :math:`d`. The dataset is
``test_weights_statsmodels``'s: 800 units, log-normal weights that depend on ``x1`` (25 of
them zero), 40 clusters of unequal size, an effect that varies with ``x1``.

- Without clusters the SE is HC1: the HC0 sandwich times :math:`n/(n-K)`, :math:`K = 4`
  regressors, statsmodels' ``cov_type="HC1"`` (Stata's ``regress, vce(robust)``). With
  weights, :math:`n` counts every analysed row, zero weights included, as statsmodels' WLS
  does (``nobs``).
- With ``cluster`` it is CR1: factor :math:`\frac{G}{G-1}\frac{N-1}{N-K}`, statsmodels'
  ``cov_type="cluster"``.
- ``coef.<name>`` are the regression's coefficients (``coef.intercept`` the constant).

Tolerance 1e-8 relative: the two computations are algebraically equal (QR here, pinv in
statsmodels) and agree to about 1e-15.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import causalkit as ck

from .test_weights_statsmodels import weighted  # noqa: F401  (the shared dataset fixture)

pytestmark = pytest.mark.reference

RTOL = 1e-8


def _statsmodels(df: pd.DataFrame, weights: bool, clustered: bool):
    exog = sm.add_constant(df[["d", "x1", "x2"]].astype(float))
    model = sm.WLS(df["y"], exog, weights=df["w"]) if weights else sm.OLS(df["y"], exog)
    if clustered:
        return model.fit(cov_type="cluster", cov_kwds={"groups": df["g"].to_numpy()})
    return model.fit(cov_type="HC1")


@pytest.mark.parametrize("weights", [False, True], ids=["ols", "wls"])
@pytest.mark.parametrize("clustered", [False, True], ids=["hc1", "cluster"])
def test_pooled_equals_statsmodels(weighted, weights, clustered):  # noqa: F811
    df = weighted
    extra = {"weight": "w"} if weights else {}
    if clustered:
        extra["cluster"] = "g"
    res = ck.fit(
        df, "ols", outcome="y", treatment="d", covariates=["x1", "x2"], model="pooled", **extra
    )
    ref = _statsmodels(df, weights, clustered)
    out = res.to_dict()
    assert out["estimate"] == pytest.approx(ref.params["d"], rel=RTOL)
    assert out["se"] == pytest.approx(ref.bse["d"], rel=RTOL)
    assert out["regressors"] == 4
    for name, ours in [("const", "intercept"), ("d", "d"), ("x1", "x1"), ("x2", "x2")]:
        assert out[f"coef.{ours}"] == pytest.approx(ref.params[name], rel=RTOL)


def test_pooled_is_not_the_per_arm_estimate(weighted):  # noqa: F811
    """The effect varies with x1, so the coefficient and the regression adjustment differ."""
    kw = dict(outcome="y", treatment="d", covariates=["x1", "x2"])
    pooled = ck.fit(weighted, "ols", model="pooled", **kw).to_dict()
    per_arm = ck.fit(weighted, "ols", **kw).to_dict()
    assert abs(pooled["estimate"] - per_arm["estimate"]) > 1e-3
    assert "coef.x1" not in per_arm


def test_pooled_multiplier_uses_the_hc1_influence(weighted):  # noqa: F811
    """The multiplier bootstrap draws from the same HC1-scaled influence values."""
    kw = dict(outcome="y", treatment="d", covariates=["x1", "x2"], model="pooled")
    analytic = ck.fit(weighted, "ols", **kw).to_dict()["se"]
    mult = ck.fit(weighted, "ols", inference={"name": "multiplier", "n_boot": 4000}, **kw)
    # 4000 Gaussian multipliers: the SE's Monte Carlo error is about 1/sqrt(2 * 4000) = 1.1%
    assert mult.to_dict()["se"] == pytest.approx(analytic, rel=0.05)
    assert np.isfinite(mult.to_dict()["ci_lower"])
