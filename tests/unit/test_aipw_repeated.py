"""Repeated cross-fitting (``estimator.n_rep``): refusals, pairings, clustered aggregation, segments, sensitivity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from causalkit.contracts import Capability, Dataset, Fit, Roles
from causalkit.errors import ConfigError
from causalkit.registry import default_registry
from causalkit_plugins.estimators.aipw import sensitivity
from causalkit_plugins.estimators.aipw.estimator import AIPW, AIPWParams
from causalkit_plugins.inference.basic import Analytic


@pytest.mark.parametrize(
    "extra,field",
    [
        ({"folds": 1}, "estimator.n_rep"),
        ({"trim": 0.05}, "estimator.trim"),
    ],
)
def test_options_without_a_repeatable_split_are_refused(extra, field):
    with pytest.raises(ConfigError, match=field):
        AIPWParams(n_rep=3, **extra)


def test_repeated_fits_offer_influence_only():
    registry = default_registry()
    assert AIPW.capabilities(AIPWParams(n_rep=2)) == {Capability.INFLUENCE}
    assert "bootstrap" not in registry.pairings("aipw", AIPWParams(n_rep=2))
    assert {"analytic", "multiplier"} <= set(registry.pairings("aipw", AIPWParams(n_rep=2)))
    assert "bootstrap" in registry.pairings("aipw", AIPWParams())


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(9)
    n, g = 300, 30
    cluster = np.arange(n) % g
    shared = rng.standard_normal((2, g))[:, cluster]
    x = shared[0] + rng.standard_normal(n)
    d = (rng.random(n) < 1 / (1 + np.exp(-0.5 * x))).astype(np.int64)
    y = x + d + shared[1] + rng.standard_normal(n)
    return pd.DataFrame({"x": x, "d": d, "y": y, "g": cluster})


def test_clustered_repetitions_aggregate_the_clustered_ses():
    r"""Median of :math:`\hat\theta_r`; SE :math:`(\mathrm{med}(\hat\theta_r+1.96s_r)-\tilde\theta)/1.96`.

    :math:`s_r` is each repetition's CR (factor :math:`G/(G-1)`) SE of its AIPW scores,
    computed here from the cluster sums of :math:`\varphi_i - \hat\theta_r`.
    """
    roles = Roles(outcome="y", treatment="d", covariates=("x",), cluster="g")
    data, params = Dataset(_frame(), roles), AIPWParams(n_rep=5, outcome_model="linear")
    reps = AIPW(params).repetitions(data, np.random.default_rng(1))
    fit = AIPW(params).fit(data, np.random.default_rng(1))
    theta = np.array([cf.estimate for cf in reps])
    se_r = np.array([
        np.sqrt(30 / 29 * np.sum(np.bincount(data.frame["g"], weights=cf.influence) ** 2)) / 300
        for cf in reps
    ])  # fmt: skip
    med = np.median(theta)
    assert isinstance(fit, Fit) and fit.clusters is not None and fit.resampler is None
    np.testing.assert_allclose(fit.tables["repetitions"]["se"], se_r, rtol=1e-12)
    np.testing.assert_allclose(fit.estimate, med, rtol=1e-12)
    se = Analytic().infer(fit, np.random.default_rng(0)).se[0]
    np.testing.assert_allclose(se, (np.median(theta + 1.96 * se_r) - med) / 1.96, rtol=1e-12)
    cuts = [pd.Series(cf.nuisances.folds).groupby(data.frame["g"]).nunique().max() for cf in reps]
    assert cuts == [1] * 5  # every repetition keeps clusters whole


def test_fold_columns_must_be_one_per_repetition():
    for fold, n_rep in (("g", 2), (("g", "g", "g"), 2), (("g", "g"), 1)):
        roles = Roles(outcome="y", treatment="d", covariates=("x",), fold=fold)
        with pytest.raises(ConfigError, match=rf"roles.fold.*n_rep={n_rep}") as err:
            AIPW(AIPWParams(n_rep=n_rep)).fit(Dataset(_frame(), roles), np.random.default_rng(0))
        assert "\n" not in str(err.value)


def test_segment_effects_are_aggregated_column_by_column():
    frame = _frame().assign(half=lambda f: np.where(f["x"] > 0, "hi", "lo"))
    roles = Roles(outcome="y", treatment="d", covariates=("x",), segments=("half",))
    data, params = Dataset(frame, roles), AIPWParams(n_rep=3, min_segment_rows=20)
    est = AIPW(params)
    reps = est.repetitions(data, np.random.default_rng(2))
    per_rep = np.array([[cf.estimate, *est._influence(data, cf)[0].estimates] for cf in reps])
    fit = est.fit(data, np.random.default_rng(2))
    assert fit.k == 3 and fit.names[1:] == ("segment[half=hi]", "segment[half=lo]")
    np.testing.assert_array_equal(fit.estimates, np.median(per_rep, axis=0))
    table = fit.tables["segments.half"].set_index("estimate")
    np.testing.assert_array_equal(table.loc[list(fit.names[1:]), "dr_lift"], fit.estimates[1:])
    assert not np.array_equal(per_rep[0, 1:], fit.estimates[1:])  # not the first repetition's
    # each segment's SE is DoubleML's aggregate of the repetitions' SEs of that segment
    se = Analytic().infer(fit, np.random.default_rng(0)).se
    se_r = np.array([np.sqrt(np.sum(est._influence(data, cf)[1] ** 2, axis=0)) / fit.n
                     for cf in reps])  # fmt: skip
    med = np.median(per_rep, axis=0)
    np.testing.assert_allclose(se, (np.median(per_rep + 1.96 * se_r, axis=0) - med) / 1.96,
                               rtol=1e-12)  # fmt: skip


def test_sensitivity_takes_the_medians_of_the_repetitions():
    r"""Each bound the median of the repetitions' bounds, clustered; RV and RVa solve the medians.

    Per repetition the bounds are those of one split (:func:`bounds` of that repetition's
    effect, influence column and elements, here recomputed from its cross-fit); the median
    effect bound at :math:`c_Y = c_D = \mathrm{RV}` equals the null, the median CI bound at
    RVa likewise (to 1e-9: Brent's tolerance on v is 1e-14, the bound's slope is O(1)).
    """
    roles = Roles(outcome="y", treatment="d", covariates=("x",), cluster="g")
    data = Dataset(_frame(), roles)
    sens = {"cf_y": 0.04, "cf_d": 0.03, "rho": 0.8, "benchmark_covariates": []}
    est = AIPW(AIPWParams(n_rep=3, outcome_model="linear", sensitivity=sens))
    reps = est.repetitions(data, np.random.default_rng(6))
    fit = est.fit(data, np.random.default_rng(6))
    diag, per_rep = fit.diagnostics, fit.tables["sensitivity.repetitions"]
    clusters = fit.clusters
    assert clusters is not None
    one = [
        sensitivity.Repetition(
            cf.estimate, *sensitivity.clustered(cf.influence, est._elements(cf), clusters)
        )
        for cf in reps
    ]
    for r, row in zip(one, per_rep.itertuples(), strict=True):
        b = sensitivity.bounds(r.theta, r.influence, r.el, 0.04, 0.03, 0.8, 0.95)
        np.testing.assert_allclose([row.theta_lower, row.ci_upper], [b.theta_lower, b.ci_upper],
                                   rtol=1e-12)  # fmt: skip
    for key in ("theta_lower", "theta_upper", "ci_lower", "ci_upper", "sigma2", "nu2"):
        np.testing.assert_allclose(diag[f"sensitivity.{key}"], np.median(per_rep[key]), rtol=1e-12)
    assert np.ptp(per_rep["theta_lower"]) > 0
    for key, bound in (("rv", "theta_lower"), ("rva", "ci_lower")):
        v = diag[f"sensitivity.{key}"]
        at = sensitivity.repeated_bounds(one, v, v, 0.8, 0.95)
        assert 0 < v < 1 and abs(getattr(at, bound)) < 1e-9
