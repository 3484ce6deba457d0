"""Sampling weights in ``microsynth_panel`` (issue 18, part 2).

References, each independent of the estimator's code path:

* integer weights = the fit on the panel in which each unit appears :math:`d_i` times (new
  unit labels): the estimates (calibration and QP) to 1e-9 relative, each unit's weight =
  the sum of its copies' weights;
* weight 1 everywhere = the unweighted fit, weight 0 = the unit dropped (1e-12: sums in
  another order);
  a constant weight :math:`c` multiplies the estimate and the SE by :math:`c` (1e-9);
* the SE equals the variance written here from least-squares residuals,
  :math:`\\sum_C w_j(\\kappa + w_j)\\hat e_j^2/(1-h_{jj})`, :math:`\\kappa = \\sum_T d_i^2/\\sum_T d_i`
  (1e-8): the probability-weight reading (one unit, one draw), not the expanded panel's;
* R's linearisation with weighted treated rows = statsmodels' WLS with HC0 (1e-8);
* singleton clusters with weights = the unclustered SE times :math:`\\sqrt{n/(n-1)}` (1e-9);
* permutation is refused in one line.

Coverage in a world with informative weights: the matrix's ``microsynth_panel @ weighted``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import causalkit as ck
from causalkit.contracts import Dataset
from causalkit.errors import DataError
from causalkit_plugins.dgps.area_panel import AreaPanel, AreaPanelParams
from causalkit_plugins.estimators.microsynth.panel_estimator import (
    MicroSynthPanel,
    MicroSynthPanelParams,
)
from causalkit_plugins.inference.basic import Analytic
from causalkit_plugins.inference.linearisation import PanelLinearisation
from causalkit_plugins.inference.permutation import Permutation, PermutationParams

SMALL = dict(n_units=120, n_treated=8, n_pre=4, n_post=2, n_covariates=2)
PRE = 4


def _panel(seed: int = 3, weights: np.ndarray | None = None, **kw: object) -> Dataset:
    data = (
        AreaPanel(AreaPanelParams(**{**SMALL, **kw}))
        .simulate(np.random.default_rng(seed), None)
        .dataset
    )
    if weights is None:
        weights = np.random.default_rng(seed + 100).integers(1, 4, SMALL["n_units"]).astype(float)
    frame = data.frame.assign(weight=weights[data.frame["unit"].to_numpy()])
    return Dataset(frame, data.roles.model_copy(update={"weight": "weight"}))


def _fit(data: Dataset, **params: object):
    return MicroSynthPanel(MicroSynthPanelParams(**params)).fit(data, np.random.default_rng(0))


def _se(fit) -> np.ndarray:
    return Analytic().infer(fit, np.random.default_rng(0)).se


def _expanded(data: Dataset) -> Dataset:
    """Each unit repeated ``weight`` times under new labels; no weight role."""
    frame = data.frame
    copies = frame["weight"].astype(int)
    big = frame.loc[frame.index.repeat(copies)].copy()
    big["copy"] = big.groupby(["unit", "time"]).cumcount()
    big["unit"] = big["unit"] * 10 + big["copy"]
    return Dataset(
        big.drop(columns=["copy", "weight"]).reset_index(drop=True),
        data.roles.model_copy(update={"weight": None}),
    )


@pytest.mark.parametrize("weighting", ["calibration", "qp"])
def test_integer_weights_are_the_fit_on_the_expanded_panel(weighting):
    data = _panel()
    fit, big = _fit(data, weighting=weighting), _fit(_expanded(data), weighting=weighting)
    assert fit.names == big.names
    np.testing.assert_allclose(fit.estimates, big.estimates, rtol=1e-9)
    mine = fit.tables["weights"].set_index("unit")["weight"]
    theirs = big.tables["weights"].assign(unit=lambda t: t["unit"] // 10)
    np.testing.assert_allclose(mine, theirs.groupby("unit")["weight"].sum()[mine.index], rtol=1e-7)
    np.testing.assert_allclose(
        fit.tables["balance_totals"]["Targets"], big.tables["balance_totals"]["Targets"], rtol=1e-12
    )
    assert fit.diagnostics["weight_ess"] < SMALL["n_units"]


def test_unit_weights_change_nothing_and_zero_weights_drop_the_unit():
    data = _panel(weights=np.ones(SMALL["n_units"]))
    plain = Dataset(data.frame, data.roles.model_copy(update={"weight": None}))
    a, b = _fit(data), _fit(plain)  # weighted sums in another order: equal to rounding
    np.testing.assert_allclose(a.estimates, b.estimates, rtol=1e-12)
    np.testing.assert_allclose(_se(a), _se(b), rtol=1e-12)
    zero = np.ones(SMALL["n_units"])
    treated_units = data.frame.loc[data.frame["treated"] == 1, "unit"].unique()
    controls = np.setdiff1d(np.arange(SMALL["n_units"]), treated_units)
    zero[controls[:7]] = 0.0
    zero[treated_units[0]] = 0.0
    dropped = plain.frame[plain.frame["unit"].map(lambda u: zero[u] > 0)]
    c, e = _fit(_panel(weights=zero)), _fit(Dataset(dropped.reset_index(drop=True), plain.roles))
    np.testing.assert_allclose(c.estimates, e.estimates, rtol=1e-12)
    np.testing.assert_allclose(_se(c), _se(e), rtol=1e-12)
    assert c.diagnostics["n_zero_weight"] == 8 and c.n == SMALL["n_units"] - 8


def test_a_constant_weight_scales_the_estimate_and_the_se():
    data = _panel(weights=np.ones(SMALL["n_units"]))
    base, scaled = _fit(data), _fit(_panel(weights=np.full(SMALL["n_units"], 2.5)))
    np.testing.assert_allclose(scaled.estimates[:1], 2.5 * base.estimates[:1], rtol=1e-9)
    np.testing.assert_allclose(_se(scaled)[:1], 2.5 * _se(base)[:1], rtol=1e-9)
    # the log ratio is scale-free
    np.testing.assert_allclose(scaled.estimates[1], base.estimates[1], rtol=1e-9)


def test_se_is_the_probability_weighted_transport_written_here():
    data = _panel()
    fit = _fit(data)
    frame = data.frame
    units = frame.drop_duplicates("unit").set_index("unit").sort_index()
    d = units["weight"].to_numpy()
    wide = frame.pivot(index="unit", columns="time", values="y").sort_index()
    treated = frame.groupby("unit")["treated"].max().sort_index().to_numpy().astype(bool)
    M = np.column_stack([np.ones(len(units)), units[["x1", "x2"]], wide.iloc[:, :PRE]])
    ybar = wide.iloc[:, PRE:].mean(axis=1).to_numpy()
    Mc, yc = M[~treated], ybar[~treated]
    e = yc - Mc @ np.linalg.lstsq(Mc, yc, rcond=None)[0]
    h = np.einsum("ij,ij->i", Mc @ np.linalg.pinv(Mc.T @ Mc), Mc)
    w = fit.tables["weights"].set_index("unit")["weight"].sort_index().to_numpy()[~treated]
    kappa = d[treated] @ d[treated] / d[treated].sum()
    assert kappa > 1.5  # weights of 1-3: not the unweighted transport
    var = np.sum(w * (kappa + w) * e**2 / (1 - h))
    assert _se(fit)[0] == pytest.approx(math.sqrt(var), rel=1e-8)
    # the estimate is the effect on the weighted treated total
    post_gap = (
        d[treated] @ wide.iloc[:, PRE:].to_numpy()[treated]
        - w @ wide.iloc[:, PRE:].to_numpy()[~treated]
    )
    assert fit.estimate == pytest.approx(post_gap.mean(), rel=1e-12)


def test_linearisation_with_weighted_treated_rows_is_statsmodels_wls_hc0():
    sm = pytest.importorskip("statsmodels.api")
    data = _panel()
    fit = _fit(data)
    se = PanelLinearisation().infer(fit, np.random.default_rng(0)).se[0]
    tab = fit.tables["weights"].set_index("unit")
    post = data.frame[data.frame["time"] > PRE]
    d = tab["treated"].reindex(post["unit"]).to_numpy().astype(float)
    X = np.column_stack([d, pd.get_dummies(post["time"]).to_numpy(float)])
    rows = tab["weight"].reindex(post["unit"]).to_numpy()  # d_i for treated, w_j for controls
    ref = sm.WLS(post["y"].to_numpy(), X, weights=rows).fit(cov_type="HC0").bse[0]
    N = X.shape[0]
    w_treated = tab.loc[tab["treated"], "weight"].sum()
    assert se == pytest.approx(w_treated * ref * math.sqrt(N / (N - 1)), rel=1e-8)


def test_singleton_clusters_with_weights_give_the_weighted_se_times_the_cr_factor():
    data = _panel()
    frame = data.frame.assign(cl=data.frame["unit"])
    clustered = Dataset(frame, data.roles.model_copy(update={"cluster": "cl"}))
    a, b = _fit(data), _fit(clustered)
    n = SMALL["n_units"]
    np.testing.assert_allclose(_se(b), _se(a) * math.sqrt(n / (n - 1)), rtol=1e-9)


def test_permutation_with_weights_is_refused_in_one_line():
    fit = _fit(_panel())
    with pytest.raises(DataError, match=r"^inference=permutation: expected no weight role"):
        Permutation(PermutationParams(n_perm=19)).infer(fit, np.random.default_rng(0))


def test_from_python_and_the_dgp_role():
    sim = ck.simulate("area_panel", seed=5, **SMALL, weight_tilt=0.8, effect_covariate=0.5)
    assert sim.dataset.roles.weight == "weight"
    res = ck.fit(sim.dataset.frame, "microsynth_panel", **sim.dataset.roles.model_dump())
    assert math.isfinite(res.se) and res.to_dict()["weight_ess"] > 0
