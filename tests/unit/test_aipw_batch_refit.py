"""The aipw bootstrap's batched refit equals the per-draw refit, resample by resample.

Tolerances. The per-draw path fits scikit-learn pipelines; the batched path solves the same
objectives by Newton's method to a step of 1e-8. Against ``logit_unpenalized``
(newton-cholesky, tol 1e-10) and ``LinearRegression`` the two agree to rounding, so those
comparisons use ``rtol=1e-7``. The default ``logit`` is lbfgs stopped at tol 1e-4 on the
gradient, which leaves its coefficients ~1e-4 from the optimum: the ``tight_logit`` fixture
swaps in scikit-learn's newton-cholesky solver at tol 1e-12 on the same objective (C=1, L2,
unpenalised intercept) for the exact comparisons, and the default solver is compared at a
relative 5e-4.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from causalkit.contracts import Dataset, Fit, Resampler, Roles
from causalkit_plugins.estimators.aipw.estimator import AIPW, AIPWParams
from causalkit_plugins.estimators.aipw.learners import LEARNERS, LearnerSpec
from causalkit_plugins.inference.bootstrap import Bootstrap, BootstrapParams, resample_indices

ROLES = Roles(outcome="y", treatment="d", covariates=("x1", "x2", "x3"))
SEG = ROLES.model_copy(update={"segments": ("grp",)})


def _frame(n: int = 400, seed: int = 0, binary: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2, x3 = rng.standard_normal(n), rng.standard_normal(n), rng.uniform(0, 10, n)
    d = rng.binomial(1, 1 / (1 + np.exp(-(0.6 * x1 - 0.4 * x2 + 0.05 * x3 - 0.3))))
    mean = 1.0 + x1 + 0.5 * x2 + 0.1 * x3 + d * (1.0 + 0.5 * x1)
    y = (
        rng.binomial(1, 1 / (1 + np.exp(-(mean - 2.0)))).astype(float)
        if binary
        else mean + rng.standard_normal(n)
    )
    grp = np.where(x1 > 0.3, "hi", "lo")
    return pd.DataFrame({"x1": x1, "x2": x2, "x3": x3, "d": d, "y": y, "grp": grp})


@pytest.fixture
def tight_logit(monkeypatch: pytest.MonkeyPatch) -> None:
    """``logit`` solved to the optimum (newton-cholesky, tol 1e-12) instead of lbfgs at 1e-4."""
    monkeypatch.setitem(
        LEARNERS,
        "logit",
        LearnerSpec(
            lambda: LogisticRegression(solver="newton-cholesky", tol=1e-12, max_iter=1000),
            None,
        ),
    )


def _draws(fit: Fit, b: int, seed: int = 1) -> list[np.ndarray]:
    rs = fit.resampler
    assert rs is not None
    rng = np.random.default_rng(seed)
    return [resample_indices(rng, rs.strata, rs.n) for _ in range(b)]


def _per_draw(rs: Resampler, idxs: list[np.ndarray]) -> np.ndarray:
    assert rs.refit is not None
    return np.array([rs.refit(i) for i in idxs])


CONFIGS = {
    "ate": ({}, ROLES, False),
    "att_segments_unscaled": ({"estimand": "ATT", "scale": False}, SEG, False),
    "unpenalized_normalized_trimmed": (
        {"propensity_model": "logit_unpenalized", "normalize": True, "trim": 0.05},
        SEG,
        False,
    ),
    "binary_outcome_att": ({"estimand": "ATT"}, ROLES, True),
    "binary_unpenalized_one_fold": (
        {"outcome_model": "logit_unpenalized", "folds": 1, "propensity_params": {"C": 0.5}},
        ROLES,
        True,
    ),
    "ridge_three_folds": ({"outcome_model": "ridge", "folds": 3}, SEG, False),
}


@pytest.mark.usefixtures("tight_logit")
@pytest.mark.parametrize("name", list(CONFIGS))
def test_batch_equals_per_draw_refit(name):
    params, roles, binary = CONFIGS[name]
    fit = AIPW(AIPWParams(**params)).fit(
        Dataset(_frame(binary=binary), roles), np.random.default_rng(2)
    )
    rs = fit.resampler
    assert rs is not None and rs.refit_batch is not None
    idxs = _draws(fit, 6)
    want = _per_draw(rs, idxs)
    assert np.isfinite(want).all() and want.shape == (6, fit.k)
    np.testing.assert_allclose(rs.refit_batch(idxs), want, rtol=1e-7, atol=1e-9)
    # all rows in their order: the fit itself
    np.testing.assert_allclose(rs.refit_batch([np.arange(fit.n)])[0], fit.estimates, rtol=1e-7)


def test_batch_against_the_default_lbfgs_logit():
    fit = AIPW(AIPWParams(estimand="ATT")).fit(Dataset(_frame(), SEG), np.random.default_rng(2))
    rs = fit.resampler
    assert rs is not None and rs.refit_batch is not None
    idxs = _draws(fit, 4)
    np.testing.assert_allclose(rs.refit_batch(idxs), _per_draw(rs, idxs), rtol=5e-4)


@pytest.mark.usefixtures("tight_logit")
def test_bootstrap_se_is_the_per_draw_se():
    fit = AIPW(AIPWParams()).fit(Dataset(_frame(300), SEG), np.random.default_rng(2))
    rs = fit.resampler
    assert rs is not None and rs.refit_batch is not None
    slow = Fit(
        fit.estimand,
        fit.estimates,
        fit.n,
        names=fit.names,
        influence=fit.influence,
        resampler=Resampler(rs.n, strata=rs.strata, refit=rs.refit),
    )
    boot = Bootstrap(BootstrapParams(n_boot=40))
    fast_out = boot.infer(fit, np.random.default_rng(7))
    slow_out = boot.infer(slow, np.random.default_rng(7))
    assert fast_out.diagnostics["n_failed"] == slow_out.diagnostics["n_failed"] == 0
    np.testing.assert_allclose(fast_out.se, slow_out.se, rtol=1e-7)
    np.testing.assert_allclose(fast_out.ci_lower, slow_out.ci_lower, rtol=1e-7)


@pytest.mark.parametrize(
    "params, covariates",
    [
        ({}, ("x1", "x2", "grp")),  # a categorical covariate: one-hot inside the pipeline
        ({"categorical": ("x3",)}, ("x1", "x2", "x3")),
        ({"outcome_design": "pooled"}, ("x1", "x2")),
        ({"outcome_model": "lasso"}, ("x1", "x2")),
        ({"propensity_model": "probit"}, ("x1", "x2")),
        ({"propensity_params": {"C": 2.0, "tol": 1e-6}}, ("x1", "x2")),
    ],
)
def test_no_batch_where_it_would_not_be_exact(params, covariates):
    frame = _frame(300).assign(x3=lambda f: (f["x3"] // 2).astype(np.int64))
    roles = ROLES.model_copy(update={"covariates": covariates})
    fit = AIPW(AIPWParams(**params)).fit(Dataset(frame, roles), np.random.default_rng(0))
    assert fit.resampler is not None
    assert fit.resampler.refit_batch is None and fit.resampler.refit is not None


@pytest.mark.usefixtures("tight_logit")
def test_an_empty_arm_in_a_training_fold_is_a_nan_row():
    frame = _frame(300)
    est = AIPW(AIPWParams(outcome_model="linear", folds=2))
    fit = est.fit(Dataset(frame, ROLES), np.random.default_rng(0))
    folds = est.crossfit(Dataset(frame, ROLES), np.random.default_rng(0)).nuisances.folds
    d = frame["d"].to_numpy()
    # treated only from fold 0: fold 0's outcome model for the treated has no rows
    bad = np.concatenate([np.flatnonzero((d == 1) & (folds == 0)), np.flatnonzero(d == 0)])
    good = np.arange(fit.n)
    assert fit.resampler is not None and fit.resampler.refit_batch is not None
    out = fit.resampler.refit_batch([bad, good])
    assert np.isnan(out[0]).all()
    np.testing.assert_allclose(out[1], fit.estimates, rtol=1e-7)


def test_resample_from_one_fold_fits_in_sample_as_the_per_draw_path():
    frame = _frame(300)
    est = AIPW(AIPWParams(propensity_model="logit_unpenalized", folds=3))
    fit = est.fit(Dataset(frame, SEG), np.random.default_rng(0))
    folds = est.crossfit(Dataset(frame, SEG), np.random.default_rng(0)).nuisances.folds
    rs = fit.resampler
    assert rs is not None and rs.refit is not None and rs.refit_batch is not None
    one = np.random.default_rng(3).choice(np.flatnonzero(folds == 1), 150)
    np.testing.assert_allclose(rs.refit_batch([one])[0], rs.refit(one), rtol=1e-7)


def test_given_folds_travel_with_their_rows():
    frame = _frame(300).assign(fold=lambda f: np.arange(len(f)) % 4)
    roles = ROLES.model_copy(update={"fold": "fold"})
    fit = AIPW(AIPWParams(outcome_model="linear", propensity_model="logit_unpenalized")).fit(
        Dataset(frame, roles), np.random.default_rng(0)
    )
    rs = fit.resampler
    assert rs is not None and rs.refit_batch is not None
    idxs = _draws(fit, 4)
    np.testing.assert_allclose(rs.refit_batch(idxs), _per_draw(rs, idxs), rtol=1e-7)


@pytest.mark.filterwarnings("ignore:The inner solver of NewtonCholeskySolver")  # sklearn's side
def test_a_constant_training_column_goes_to_the_per_draw_refit(monkeypatch):
    # a rare 0/1 covariate: a resample without its ones has a constant column, which the
    # pipeline's scaler leaves unscaled; the batch solver hands that resample over
    frame = _frame(300).assign(flag=lambda f: (np.arange(len(f)) < 6).astype(np.int64))
    roles = ROLES.model_copy(update={"covariates": ("x1", "x2", "flag")})
    fit = AIPW(AIPWParams(propensity_model="logit_unpenalized")).fit(
        Dataset(frame, roles), np.random.default_rng(0)
    )
    rs = fit.resampler
    assert rs is not None and rs.refit is not None and rs.refit_batch is not None
    handed: list[int] = []

    def spy(idx: np.ndarray) -> np.ndarray:
        handed.append(len(idx))
        return rs.refit(idx)

    monkeypatch.setattr(rs.refit_batch, "fallback", spy)
    without = np.random.default_rng(4).integers(6, fit.n, fit.n)
    full = np.arange(fit.n)
    out = rs.refit_batch([without, full])
    assert handed == [fit.n]
    np.testing.assert_allclose(out[0], rs.refit(without), rtol=1e-7)
    np.testing.assert_allclose(out[1], fit.estimates, rtol=1e-7)


def test_chunks_do_not_change_the_draws(monkeypatch):
    fit = AIPW(AIPWParams(estimand="ATT")).fit(Dataset(_frame(300), SEG), np.random.default_rng(0))
    rs = fit.resampler
    assert rs is not None and rs.refit_batch is not None
    idxs = _draws(fit, 7)
    whole = rs.refit_batch(idxs)
    monkeypatch.setattr("causalkit_plugins.estimators.aipw.batch_refit._CELLS", 2 * 5 * 300)
    np.testing.assert_allclose(rs.refit_batch(idxs), whole, rtol=1e-12)
