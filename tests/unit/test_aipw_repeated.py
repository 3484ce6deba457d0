"""Repeated cross-fitting (``estimator.n_rep``): refusals, pairings and clustered aggregation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from causalkit.contracts import Capability, Dataset, Fit, Roles
from causalkit.errors import ConfigError
from causalkit.registry import default_registry
from causalkit_plugins.estimators.aipw.estimator import AIPW, AIPWParams
from causalkit_plugins.inference.basic import Analytic


@pytest.mark.parametrize(
    "extra,field",
    [
        ({"folds": 1}, "estimator.n_rep"),
        ({"trim": 0.05}, "estimator.trim"),
        ({"sensitivity": {"cf_y": 0.03, "cf_d": 0.03}}, "estimator.sensitivity"),
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
    se = Analytic().infer(fit, np.random.default_rng(0)).se
    assert np.all(np.isfinite(se) & (se > 0))
