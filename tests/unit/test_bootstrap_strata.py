r"""Which units a bootstrap resamples: the whole sample for an observational ATE, arms otherwise.

World: :math:`X \sim \mathrm{Bernoulli}(1/2)`, :math:`P(D=1\mid X) = 0.1 + 0.8X`,
:math:`Y = X + 4XD + 0.2\varepsilon`. Then :math:`\tau(X) = 4X`, ATE = 2, ATT = 3.6,
ATC = 0.4, :math:`p = 1/2`, and the semiparametric variance bound of the ATE (attained by
every estimator below: the regressions and the score are saturated in :math:`X`) is

.. math::
    V = \operatorname{Var}\tau(X) + E\{\sigma^2/e(X) + \sigma^2/(1-e(X))\}
      = 4 + 0.04\,(10 + 10/9) = 4.444,

of which :math:`p(1-p)(\mathrm{ATT}-\mathrm{ATC})^2 = 2.56` is the between-arm part that a
bootstrap within arms (fixed treated share) cannot see: it would report
:math:`\sqrt{1.884/4.444} = 0.65` of the SE. (Hahn 1998, Theorem 1.)
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from causalkit.contracts import Dataset, Estimand, Fit, Roles
from causalkit.registry import default_registry
from causalkit_plugins.estimators.selection.ols import regression_adjustment
from causalkit_plugins.inference.basic import Analytic
from causalkit_plugins.inference.bootstrap import Bootstrap, BootstrapParams

N = 2000
V_ATE = 4.0 + 0.04 * (1 / 0.1 + 1 / 0.9)  # the bound above
V_STRATIFIED = V_ATE - 0.25 * (3.6 - 0.4) ** 2
ROLES = Roles(outcome="y", treatment="d", covariates=("x",))
PARAMS = {"ols": {}, "ipw": {}, "aipw": {"folds": 2, "outcome_model": "linear"}}


def _draw(rng: np.random.Generator, n: int = N) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = (rng.random(n) < 0.5).astype(np.float64)
    d = rng.random(n) < 0.1 + 0.8 * x
    y = x + 4.0 * x * d + 0.2 * rng.standard_normal(n)
    return x, d, y


def _data(seed: int) -> Dataset:
    x, d, y = _draw(np.random.default_rng(seed))
    return Dataset(pd.DataFrame({"x": x, "d": d.astype(np.int64), "y": y}), ROLES)


def _fit(name: str, estimand: Estimand, seed: int = 0) -> Fit:
    cls = default_registry().get("estimator", name)
    params = cls.Params(estimand=estimand, **PARAMS[name])
    return cls(params).fit(_data(seed), np.random.default_rng(1))


def _boot_se(fit: Fit, n_boot: int) -> float:
    out = Bootstrap(BootstrapParams(n_boot=n_boot)).infer(fit, np.random.default_rng(2))
    return float(out.se[0])


def test_the_worlds_variance_is_the_bound() -> None:
    """Monte Carlo check of V (the reference below): empirical SD of the RA estimate."""
    rng = np.random.default_rng(11)
    est = []
    for _ in range(400):
        x, d, y = _draw(rng)
        est.append(regression_adjustment(y, d, x[:, None]).estimate)
    emp = float(np.std(est, ddof=1))
    # SD of 400 draws: relative MCSE ~ 1/sqrt(800) = 3.5%; 3 MCSE.
    assert emp / np.sqrt(V_ATE / N) == pytest.approx(1.0, abs=0.11)
    assert emp / np.sqrt(V_STRATIFIED / N) > 1.3


@pytest.mark.parametrize("name", ["ols", "ipw"])
def test_observational_ate_bootstrap_resamples_the_whole_sample(name: str) -> None:
    fit = _fit(name, Estimand.ATE)
    assert fit.resampler is not None and fit.resampler.strata is None
    truth = np.sqrt(V_ATE / N)
    # SD of 200 draws: relative MC error 1/sqrt(400) = 5%; 3 of them (+ the sample's own).
    assert _boot_se(fit, 200) / truth == pytest.approx(1.0, abs=0.2)
    # Within arms the between-arm term is lost: 0.65 of the SE in this world.
    d = _data(0).frame["d"].to_numpy()
    arms = dataclasses.replace(fit.resampler, strata=d.astype(np.int64))
    stratified = _boot_se(dataclasses.replace(fit, resampler=arms), 200)
    assert stratified / truth < 0.8


@pytest.mark.parametrize("name", ["ols", "ipw"])
def test_att_bootstrap_stays_within_arms_and_matches_the_influence_se(name: str) -> None:
    fit = _fit(name, Estimand.ATT)
    d = _data(0).frame["d"].to_numpy()
    assert fit.resampler is not None and fit.resampler.strata is not None
    np.testing.assert_array_equal(fit.resampler.strata, d)
    analytic = float(Analytic().infer(fit, np.random.default_rng(0)).se[0])
    assert _boot_se(fit, 200) / analytic == pytest.approx(1.0, abs=0.2)


@pytest.mark.parametrize("estimand", [Estimand.ATE, Estimand.ATT])
def test_aipw_resamples_as_regression_adjustment_does(estimand: Estimand) -> None:
    """AIPW hands over the same strata as ``ols``; on the same resamples (same Generator,
    same strata) its bootstrap SE is the RA one, whose level the tests above check.

    In this saturated world the two estimates correlate at 0.995 over resamples; AIPW's
    two-fold cross-fitting adds about a tenth of an SE of noise to each, hence the 15%
    bracket at 30 draws (fixing AIPW's arms would give 0.65)."""
    aipw, ols = _fit("aipw", estimand), _fit("ols", estimand)
    assert aipw.resampler is not None and ols.resampler is not None
    if estimand is Estimand.ATE:
        assert aipw.resampler.strata is None
    else:
        np.testing.assert_array_equal(aipw.resampler.strata, ols.resampler.strata)
    assert _boot_se(aipw, 30) / _boot_se(ols, 30) == pytest.approx(1.0, abs=0.15)


def test_ipw_atc_stays_within_arms() -> None:
    cls = default_registry().get("estimator", "ipw")
    fit = cls(cls.Params(estimand="atc")).fit(_data(0), np.random.default_rng(1))
    assert fit.resampler is not None and fit.resampler.strata is not None


@pytest.mark.parametrize("name", ["naive", "itt"])
def test_differences_in_means_keep_the_arms(name: str) -> None:
    """The as-treated contrast and the ITT have no between-arm term: arms fixed is right.

    The difference of the two arm means has influence
    :math:`D(Y-\\mu_1)/p - (1-D)(Y-\\mu_0)/(1-p)`, no :math:`\\hat p` term, so the Welch SE
    is its SE with or without the arm sizes fixed; ``itt``'s arms are randomised.
    """
    frame = _data(0).frame.assign(z=lambda f: f["d"])
    roles = ROLES.model_copy(update={"assignment": "z"})
    cls = default_registry().get("estimator", name)
    fit = cls(cls.Params()).fit(Dataset(frame, roles), np.random.default_rng(1))
    assert fit.resampler is not None and fit.resampler.strata is not None
    welch = float(Analytic().infer(fit, np.random.default_rng(0)).se[0])
    assert _boot_se(fit, 200) / welch == pytest.approx(1.0, abs=0.15)
