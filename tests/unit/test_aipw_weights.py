r"""AIPW with the ``weight`` role: weighted nuisances, the weighted DR score and its influence.

Derivation (what the tests check against). With sampling weights :math:`s_i \ge 0` the
target is the effect in the weighted population, :math:`\theta = E_s[\varphi(W;\eta)]` with
:math:`E_s[f] = E[s f]/E[s]` and :math:`\varphi` the AIPW score

.. math::
    \varphi_i = g_1(x_i) - g_0(x_i) + \frac{d_i(y_i - g_1(x_i))}{m(x_i)}
    - \frac{(1-d_i)(y_i - g_0(x_i))}{1 - m(x_i)},

whose nuisances :math:`m, g_d` are the weighted population's (so every learner is fitted with
``sample_weight``). The estimator solves the weighted moment
:math:`\sum_i s_i(\hat\varphi_i - \theta) = 0`, i.e.
:math:`\hat\theta = \sum_i s_i\hat\varphi_i / \sum_i s_i`. The score is Neyman orthogonal in
:math:`\eta` under :math:`E_s` (it is the population's AIPW score), so with cross-fitting
nuisance estimation is first-order negligible and a first-order expansion of the ratio gives

.. math::
    \hat\theta - \theta = \frac{1}{n}\sum_i \psi_i + o_p(n^{-1/2}), \qquad
    \psi_i = \frac{s_i(\varphi_i - \theta)}{\bar s},

so the analytic SE :math:`n^{-1}(\sum_i\psi_i^2)^{1/2} = (\sum_i s_i^2(\hat\varphi_i -
\hat\theta)^2)^{1/2}/\sum_i s_i`. The ATT is the ratio :math:`\sum_i s_i a_i/\sum_i s_i d_i`
(:math:`a_i = d_i(g_1-g_0) + m[\ldots]`, the same bracket as above) with
:math:`\psi_i = s_i(a_i - \hat\theta d_i)/\overline{sd}`; a segment :math:`g` restricts both
sums to :math:`g` (and divides by :math:`n^{-1}\sum_{i\in g} s_i`).

Each weighted row counts as one independent draw (survey/probability weights, Stata's
``pweight``). Integer frequency weights give the same *estimate* as duplicating rows (the
weighted sums are the duplicated sums), but not the same SE: duplicated copies are counted as
:math:`s_i` independent draws, :math:`\sum_i s_i(\hat\varphi_i-\hat\theta)^2` in place of
:math:`\sum_i s_i^2(\hat\varphi_i-\hat\theta)^2`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from causalkit.contracts import Dataset, Roles
from causalkit.errors import ConfigError
from causalkit_plugins.estimators.aipw.estimator import AIPW, AIPWParams
from causalkit_plugins.estimators.aipw.scores import aipw_scores, ratio_effect
from causalkit_plugins.inference.basic import Analytic

N = 400
CLIP = 0.01
EXACT = 1e-10  # same folds and fitted nuisances: only floating-point summation order differs


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    x1, x2 = rng.standard_normal((2, N))
    d = (rng.random(N) < 1 / (1 + np.exp(-(0.5 * x1 - 0.4 * x2)))).astype(np.int64)
    y = 1.0 + x1 + 0.5 * x2 + (1.0 + 0.5 * x1) * d + rng.standard_normal(N)
    s = rng.integers(0, 4, N).astype(np.float64)  # integer weights, zeros included
    seg = np.where(x2 > 0, "hi", "lo")
    return pd.DataFrame({"x1": x1, "x2": x2, "d": d, "y": y, "s": s, "seg": seg})


def _roles(**extra) -> Roles:
    return Roles(outcome="y", treatment="d", covariates=("x1", "x2"), weight="s", **extra)


def _by_hand(frame: pd.DataFrame, folds: np.ndarray) -> tuple[np.ndarray, ...]:
    """Out-of-fold weighted logit and per-arm weighted OLS, fitted directly with scikit-learn."""
    X, d, y, s = frame[["x1", "x2"]], frame["d"].to_numpy(), frame["y"].to_numpy(), frame["s"]
    m, g0, g1 = (np.empty(N) for _ in range(3))
    for k in range(int(folds.max()) + 1):
        tr, te = folds != k, folds == k
        logit = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        logit.fit(X[tr], d[tr], logisticregression__sample_weight=s[tr])
        m[te] = logit.predict_proba(X[te])[:, 1]
        for arm, g in ((0, g0), (1, g1)):
            rows = tr & (d == arm)
            ols = make_pipeline(StandardScaler(), LinearRegression())
            ols.fit(X[rows], y[rows], linearregression__sample_weight=s[rows])
            g[te] = ols.predict(X[te])
    return m, g0, g1


@pytest.mark.parametrize("estimand", ["ATE", "ATT"])
def test_weighted_estimate_and_se_equal_the_hand_formula(frame, estimand):
    params = AIPWParams(estimand=estimand, outcome_model="linear")
    data = Dataset(frame, _roles(segments=("seg",)))
    fit = AIPW(params).fit(data, np.random.default_rng(3))
    folds = AIPW(params).crossfit(data, np.random.default_rng(3)).nuisances.folds
    m, g0, g1 = _by_hand(frame, folds)
    cf = AIPW(params).crossfit(data, np.random.default_rng(3))
    for ours, hand in ((cf.nuisances.m, m), (cf.nuisances.g0, g0), (cf.nuisances.g1, g1)):
        np.testing.assert_allclose(ours, hand, rtol=EXACT, atol=EXACT)  # weighted learners

    y, d, s = frame["y"].to_numpy(), frame["d"].to_numpy(float), frame["s"].to_numpy()
    mc = np.clip(m, CLIP, 1 - CLIP)
    ipw = d * (y - g1) / mc - (1 - d) * (y - g0) / (1 - mc)
    num, den = ((g1 - g0) + ipw, np.ones(N)) if estimand == "ATE" else (d * (g1 - g0) + mc * ipw, d)
    theta = (s * num).sum() / (s * den).sum()
    se = np.sqrt((s**2 * (num - theta * den) ** 2).sum()) / (s * den).sum()
    hi = (frame["seg"] == "hi").to_numpy()
    theta_hi = (s * num)[hi].sum() / (s * den)[hi].sum()
    se_hi = np.sqrt((s**2 * (num - theta_hi * den) ** 2)[hi].sum()) / (s * den)[hi].sum()

    res = Analytic().infer(fit, np.random.default_rng(0))
    j = fit.names.index("segment[seg=hi]")
    np.testing.assert_allclose(fit.estimates[[0, j]], [theta, theta_hi], rtol=EXACT)
    np.testing.assert_allclose(res.se[[0, j]], [se, se_hi], rtol=EXACT)
    np.testing.assert_array_equal(fit.weights, s)
    assert fit.diagnostics["n_zero_weight"] == int((s == 0).sum())
    # the weights matter: the unweighted fit on the same folds differs
    plain = AIPW(params).fit(Dataset(frame, _roles().model_copy(update={"weight": None})),
                             np.random.default_rng(3))  # fmt: skip
    assert abs(plain.estimate - theta) > 1e-3


def test_integer_weights_equal_duplicated_rows_given_the_nuisances(frame):
    """Same nuisance predictions: the weighted score equals the unweighted one on copies.

    Tolerance 1e-12 relative: the sums are the same numbers added in another order. The SE
    is not the duplicated one (module docstring): checked here as the two formulas.
    """
    params = AIPWParams(outcome_model="linear")
    fit = AIPW(params).fit(Dataset(frame, _roles()), np.random.default_rng(3))
    cf = AIPW(params).crossfit(Dataset(frame, _roles()), np.random.default_rng(3))
    s = frame["s"].to_numpy().astype(np.int64)
    rep = np.repeat(np.arange(N), s)
    y, d = frame["y"].to_numpy()[rep], frame["d"].to_numpy(float)[rep]
    m = np.clip(cf.nuisances.m, CLIP, 1 - CLIP)[rep]
    dup = aipw_scores(y, d, cf.nuisances.g0[rep], cf.nuisances.g1[rep], m, params.estimand)
    theta, psi = ratio_effect(dup.num, dup.den)
    np.testing.assert_allclose(fit.estimate, theta, rtol=1e-12)
    se_dup = np.sqrt((psi**2).sum()) / rep.size
    phi = cf.scores.num / np.maximum(cf.scores.den, 1e-300)  # the unweighted score, s > 0 rows
    pos = s > 0
    se_w = Analytic().infer(fit, np.random.default_rng(0)).se[0]
    np.testing.assert_allclose(
        [se_w, se_dup],
        [
            np.sqrt((s[pos] ** 2 * (phi[pos] - theta) ** 2).sum()) / s.sum(),
            np.sqrt((s[pos] * (phi[pos] - theta) ** 2).sum()) / s.sum(),
        ],
        rtol=EXACT,
    )


def test_integer_weights_equal_duplicated_rows_end_to_end(frame):
    """Unpenalised GLM learners, copies kept in their row's fold: the whole fit agrees.

    A weighted GLM fit is the fit on the duplicated rows (the weighted score equations are
    the duplicated ones; the unweighted scaling is a reparametrisation an unpenalised GLM
    undoes). Tolerance 1e-8 relative: the logit is solved to its gradient tolerance 1e-10.
    """
    params = AIPWParams(propensity_model="logit_unpenalized", outcome_model="linear")
    fold = np.arange(N) % 5
    weighted = frame.assign(f=fold)
    s = frame["s"].to_numpy().astype(np.int64)
    dup = weighted.iloc[np.repeat(np.arange(N), s)].assign(s=1.0).reset_index(drop=True)
    a = AIPW(params).fit(Dataset(weighted, _roles(fold="f")), np.random.default_rng(0))
    b = AIPW(params).fit(Dataset(dup, _roles(fold="f")), np.random.default_rng(0))
    np.testing.assert_allclose(a.estimate, b.estimate, rtol=1e-8)


def test_bootstrap_refit_carries_the_weights(frame):
    params = AIPWParams(outcome_model="linear")
    fit = AIPW(params).fit(Dataset(frame, _roles()), np.random.default_rng(3))
    assert fit.resampler is not None and fit.resampler.refit_batch is None
    np.testing.assert_allclose(fit.resampler.refit(np.arange(N)), fit.estimates, rtol=EXACT)


def test_weight_role_is_declared_and_unsupported_settings_are_one_line_errors(frame):
    assert AIPW.handles_roles == frozenset({"cluster", "weight"})
    data = Dataset(frame, _roles())
    cases = [
        (AIPWParams(propensity_model="probit"), "estimator.propensity_model"),
        (
            AIPWParams(se_method="stacked", folds=1, propensity_model="logit_unpenalized"),
            "estimator.se_method",
        ),
    ]
    for params, field in cases:
        with pytest.raises(ConfigError, match=field) as err:
            AIPW(params).fit(data, np.random.default_rng(0))
        assert "\n" not in str(err.value)
