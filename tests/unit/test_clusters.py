"""The ``cluster`` role: how it reaches the fit, the errors and warnings, and clustered inference."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

import causalkit as ck
from causalkit.contracts import Clusters, Dataset, Estimand, Fit, Params, Resampler, Roles
from causalkit.errors import ConfigError, DataError, EstimationError
from causalkit.inputs import InputNotes, checked_fit, with_notes
from causalkit_plugins.dgps.selection_on_observables import (
    SelectionOnObservables,
    SelectionOnObservablesParams,
)
from causalkit_plugins.inference.basic import Analytic
from causalkit_plugins.inference.bootstrap import Bootstrap, BootstrapParams, ClusterDraws
from causalkit_plugins.inference.multiplier import MultiplierBootstrap, MultiplierParams


def _frame(n_clusters: int = 40, size: int = 8, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_clusters), size)
    u = rng.standard_normal(n_clusters)
    x = u[g] + rng.standard_normal(g.size)
    d = (rng.random(g.size) < 0.5).astype(int)
    y = d + x + u[g] + rng.standard_normal(g.size)
    return pd.DataFrame({"y": y, "d": d, "x": x, "g": g})


ROLES = {"outcome": "y", "treatment": "d", "covariates": ["x"]}


def test_roles_dump_leaves_an_unset_cluster_out():
    assert "cluster" not in Roles(outcome="y").model_dump()
    assert Roles(outcome="y", cluster="g").model_dump()["cluster"] == "g"
    assert Roles(outcome="y", cluster="g").columns() == ["y", "g"]


def test_one_cluster_is_a_one_line_error():
    df = _frame().assign(g=7)
    with pytest.raises(DataError, match=r"roles\.cluster.*at least two clusters.*single cluster 7"):
        ck.fit(df, "naive", outcome="y", treatment="d", cluster="g")


def test_missing_cluster_labels_are_an_error():
    df = _frame().astype({"g": float})
    df.loc[3, "g"] = np.nan
    with pytest.raises(DataError, match=r"roles\.cluster.*no missing cluster labels.*1 missing"):
        ck.fit(df, "ols", cluster="g", **ROLES)


@pytest.mark.parametrize("estimator", ["naive", "ols", "ipw"])
def test_few_clusters_warn_and_every_fit_reports_n_clusters(estimator):
    few = ck.fit(_frame(12, 20), estimator, cluster="g", **ROLES)
    assert few.to_dict()["n_clusters"] == 12
    assert any("only 12 clusters" in w for w in few.warnings)
    many = ck.fit(_frame(40), estimator, cluster="g", **ROLES)
    assert many.to_dict()["n_clusters"] == 40
    assert not any("clusters" in w for w in many.warnings)


def test_an_estimator_without_clustered_inference_refuses_the_role():
    class _Params(Params):
        pass

    class _Mean:
        name: ClassVar[str] = "mean"
        params = _Params()

        def fit(self, data, rng):
            raise AssertionError("the role is refused before any fit")

    class _Claims(_Mean):
        handles_roles: ClassVar[frozenset[str]] = frozenset({"cluster"})

        def fit(self, data, rng):
            y = data.frame["y"].to_numpy()
            return Fit(Estimand.DIFF, y.mean(), y.size, influence=y - y.mean())

    rng = np.random.default_rng(0)
    clustered = Dataset(_frame(), Roles(outcome="y", cluster="g"))
    with pytest.raises(DataError, match=r"roles\.cluster.*clustered inference.*estimator mean"):
        checked_fit(_Mean(), clustered, rng)
    weighted = Dataset(_frame().assign(w=1.0), Roles(outcome="y", weight="w"))
    with pytest.raises(DataError, match=r"roles\.weight.*sampling weights.*estimator mean"):
        checked_fit(_Claims(), weighted, rng)
    with pytest.raises(EstimationError, match=r"handles_roles but its fit did not carry it"):
        checked_fit(_Claims(), clustered, rng)


def test_input_notes_keep_the_clusters():
    fit = Fit(
        Estimand.DIFF, 0.0, 4, influence=np.ones(4), clusters=Clusters(np.array([0, 0, 1, 1]))
    )
    noted = with_notes(fit, InputNotes({"input.x": 1}, ("note",)))
    assert noted.clusters is fit.clusters and noted.warnings == ("note",)


def test_singleton_clusters_give_the_unclustered_se_times_the_cr1_factor():
    df = _frame()
    df["unit"] = np.arange(len(df))
    base = ck.fit(df, "ipw", **ROLES).to_dict()["se"]  # ipw: factor G/(G-1) only
    single = ck.fit(df, "ipw", cluster="unit", **ROLES).to_dict()["se"]
    n = len(df)
    assert single == pytest.approx(base * np.sqrt(n / (n - 1)), rel=1e-12)


def test_multiplier_draws_one_weight_per_cluster():
    rng = np.random.default_rng(3)
    codes = np.repeat(np.arange(50), 6)
    psi = rng.standard_normal((50, 1))[codes] + 0.1 * rng.standard_normal((300, 1))
    fit = Fit(Estimand.DIFF, 0.0, 300, influence=psi, clusters=Clusters(codes))
    analytic = Analytic().infer(fit, rng).se[0]
    multiplier = MultiplierBootstrap(MultiplierParams(n_boot=20_000)).infer(fit, rng).se[0]
    unclustered = Analytic().infer(dataclasses.replace(fit, clusters=None), rng).se[0]
    assert analytic > 2 * unclustered
    assert multiplier == pytest.approx(analytic, rel=0.02)  # MC error of 20,000 draws: 0.5%


def test_cluster_bootstrap_draws_whole_clusters_within_strata_when_nested():
    codes = np.repeat(np.arange(6), [2, 3, 1, 4, 2, 3])
    rng = np.random.default_rng(0)
    clusters = Clusters(codes)
    nested = np.isin(codes, [0, 1, 2]).astype(np.int64)  # clusters 0-2 in stratum 1
    draws = ClusterDraws.of(clusters, nested)
    assert draws.within_strata
    for _ in range(20):
        idx = draws.indices(rng)
        drawn = codes[idx]
        for c in np.unique(drawn):  # every drawn cluster comes whole
            assert np.sum(drawn == c) % np.sum(codes == c) == 0
        sizes = np.bincount(codes)
        times = np.bincount(drawn, minlength=6) // sizes  # how often each cluster was drawn
        assert times[:3].sum() == 3 and times[3:].sum() == 3  # clusters per stratum kept
    crossing = np.arange(codes.size) % 2
    assert not ClusterDraws.of(clusters, crossing).within_strata
    assert not ClusterDraws.of(clusters, None).within_strata


def test_bootstrap_refits_on_whole_clusters():
    seen: list[np.ndarray] = []
    codes = np.repeat(np.arange(30), 4)
    x = np.random.default_rng(1).standard_normal(120)

    def refit(idx):
        seen.append(idx)
        return np.array([x[idx].mean()])

    fit = Fit(
        Estimand.DIFF,
        x.mean(),
        120,
        influence=x - x.mean(),
        resampler=Resampler(120, refit=refit),
        clusters=Clusters(codes),
    )
    out = Bootstrap(BootstrapParams(n_boot=50)).infer(fit, np.random.default_rng(2))
    assert len(seen) == 50 and out.diagnostics["clusters_within_strata"] is False
    for idx in seen:
        assert idx.size == 120 and all(np.sum(codes[idx] == c) % 4 == 0 for c in codes[idx])


def test_panel_units_take_their_cluster():
    sim = ck.simulate("contaminated_holdout", seed=2)
    frame = sim.dataset.frame
    users = frame["user_id"].unique()
    frame = frame.assign(
        team=frame["user_id"].map(dict(zip(users, np.arange(users.size) % 40, strict=True)))
    )
    roles = {"unit": "user_id", "time": "week", "treatment": "saw_ad", "outcome": "converted"}
    res = ck.fit(frame, "naive", cluster="team", **roles)
    assert res.to_dict()["n_clusters"] == 40
    frame.loc[frame.index[0], "team"] = 99  # one unit now in two teams
    with pytest.raises(DataError, match=r"roles\.cluster.*one cluster per unit.*1 units"):
        ck.fit(frame, "naive", cluster="team", **roles)


def test_clustered_dgp_keeps_the_unclustered_draws_and_checks_its_parameters():
    plain = SelectionOnObservables(SelectionOnObservablesParams(n=300))
    clustered = SelectionOnObservables(
        SelectionOnObservablesParams(n=300, cluster={"n_clusters": 30, "icc": 0.5, "x_icc": 0.5})
    )
    a = plain.simulate(np.random.default_rng(4)).dataset
    b = clustered.simulate(np.random.default_rng(4)).dataset
    assert a.roles.cluster is None and b.roles.cluster == "cluster"
    assert b.frame["cluster"].nunique() == 30 and (b.frame.groupby("cluster").size() == 10).all()
    assert "cluster" not in SelectionOnObservablesParams().model_dump()
    with pytest.raises(ConfigError, match="dgp.cluster.n_clusters"):
        SelectionOnObservablesParams(cluster={"n_clusters": 1})
    with pytest.raises(ConfigError, match="dgp.cluster.n_clusters"):
        SelectionOnObservablesParams(cluster={"icc": 0.3})
    hidden = SelectionOnObservablesParams(n=300, cluster={"n_clusters": 30, "role": False})
    assert (
        SelectionOnObservables(hidden).simulate(np.random.default_rng(4)).dataset.roles.cluster
        is None
    )


def test_the_config_refuses_a_role_the_estimator_would_ignore(monkeypatch, tmp_path):
    """Before any run is created: ``data.roles.weight`` with an estimator that lacks weights."""
    from causalkit.cli import compose
    from causalkit.config import validate
    from causalkit.registry import default_registry

    naive = default_registry().get("estimator", "naive")
    monkeypatch.setattr(naive, "handles_roles", frozenset({"cluster"}))
    raw = compose(
        ["data=csv", f"data.path={tmp_path / 'x.csv'}", "data.roles.outcome=y",
         "data.roles.treatment=d", "data.roles.weight=w", "dgp=none", "estimator=naive"]
    )  # fmt: skip
    with pytest.raises(DataError, match=r"^data\.roles\.weight: expected an estimator with sampl"):
        validate(raw)
    raw["data"]["roles"]["weight"] = None
    raw["data"]["roles"]["cluster"] = "g"
    assert validate(raw).estimator.name == "naive"
