"""The plasmode DGP: treatment and outcome simulated over the covariates of a user's table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from causalkit.contracts import Dataset, Roles
from causalkit.errors import CausalkitError
from causalkit_plugins.dgps.plasmode import Plasmode, PlasmodeParams

ROOT = Path(__file__).resolve().parents[2]


def _table(n: int = 4000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "a": rng.standard_normal(n),
            "b": rng.exponential(size=n),
            "c": rng.choice(["u", "v", "w"], n),
            "y": rng.standard_normal(n),  # the user's own outcome: plasmode ignores it
        }
    )


def _base(frame: pd.DataFrame, covariates: tuple[str, ...] | str = ("a", "b", "c")) -> Dataset:
    return Dataset(frame, Roles(outcome="y", covariates=covariates))


def _sim(seed: int = 1, base: Dataset | None = None, **params):
    dgp = Plasmode(PlasmodeParams.model_validate(params))
    return dgp, dgp.simulate(np.random.default_rng(seed), base or _base(_table()))


@pytest.mark.parametrize(("share", "strength"), [(0.3, 1.0), (0.1, 2.0), (0.6, 0.5)])
def test_treated_share_hits_the_target(share, strength):
    _, sim = _sim(treatment={"share": share, "strength": strength})
    treat = sim.dataset.frame[sim.dataset.roles.treatment].to_numpy()
    # The mean propensity over the table is `share` exactly; the realised share of 4000
    # Bernoulli draws has SD <= sqrt(.25/4000) = 0.0079: tolerance 4 SDs.
    assert abs(treat.mean() - share) < 0.032


def test_binary_base_rate_hits_the_target():
    dgp = Plasmode(PlasmodeParams.model_validate({"outcome": {"type": "binary", "base_rate": 0.2}}))
    d = dgp.draw(np.random.default_rng(3), _base(_table()))
    assert set(np.unique(d.y0)) <= {0.0, 1.0}
    assert abs(d.y0.mean() - 0.2) < 0.032  # as above: 4 SDs of a mean of 4000 draws


def test_truth_is_the_sample_average_of_the_individual_effects():
    frame = _table()
    params = {"effect": 0.7, "heterogeneity": 0.5, "effect_covariates": ("a",)}
    dgp, sim = _sim(seed=5, base=_base(frame), **params)
    d = dgp.draw(np.random.default_rng(5), _base(frame))
    treat = sim.dataset.frame["treat"].to_numpy() == 1
    assert np.array_equal(treat, d.treat)
    effect = d.y1 - d.y0
    assert sim.truth.values["ATE"] == pytest.approx(effect.mean(), abs=1e-12)
    assert sim.truth.values["ATT"] == pytest.approx(effect[treat].mean(), abs=1e-12)
    assert sim.truth.values["ATC"] == pytest.approx(effect[~treat].mean(), abs=1e-12)
    # Independently: tau(x) = 0.7 + 0.5 * standardised a, whose table mean is 0.7.
    za = (frame["a"] - frame["a"].mean()) / frame["a"].std(ddof=0)
    assert sim.truth.values["ATE"] == pytest.approx(0.7, abs=1e-12)
    assert sim.truth.values["ATT"] == pytest.approx(0.7 + 0.5 * za[treat].mean(), abs=1e-12)
    # Confounded by default: treated units have larger values of the shared index.
    assert sim.truth.values["ATT"] > sim.truth.values["ATE"]


def test_binary_truth_counts_individual_effects():
    dgp, sim = _sim(seed=2, outcome={"type": "binary"}, effect=1.0)
    d = dgp.draw(np.random.default_rng(2), _base(_table()))
    effect = d.y1 - d.y0
    assert set(np.unique(effect)) <= {0.0, 1.0}  # one uniform per row: Y(1) >= Y(0)
    assert sim.truth.values["ATE"] == pytest.approx(effect.mean(), abs=1e-12)
    y = sim.dataset.frame["y"].to_numpy()
    assert np.array_equal(y, np.where(d.treat, d.y1, d.y0))


def test_design_is_standardised_and_categories_dummy_coded():
    _, sim = _sim()
    roles, frame = sim.dataset.roles, sim.dataset.frame
    assert roles.covariates == ("a", "b", "c.v", "c.w")
    assert set(frame.columns) == {"a", "b", "c.v", "c.w", "treat", "y"}
    assert np.array_equal(frame["a"].to_numpy(), _table()["a"].to_numpy())  # analyst's scale
    # Strength is the SD of the log-odds: the propensities follow expit(alpha + h).
    _, strong = _sim(treatment={"strength": 3.0})
    _, none = _sim(treatment={"strength": 0.0})
    t_none = none.dataset.frame["treat"].to_numpy()
    a = _table()["a"].to_numpy()
    assert abs(np.corrcoef(t_none, a)[0, 1]) < 0.06  # randomised: |r| < 4 / sqrt(4000)
    t_strong = strong.dataset.frame["treat"].to_numpy()
    assert np.corrcoef(t_strong, a)[0, 1] > 0.2


def test_bit_identical_for_a_seed_and_resampling():
    _, a = _sim(seed=9, n=300)
    _, b = _sim(seed=9, n=300)
    _, c = _sim(seed=10, n=300)
    assert a.dataset.frame.equals(b.dataset.frame) and a.truth == b.truth
    assert not a.dataset.frame.equals(c.dataset.frame)
    assert len(a.dataset.frame) == 300


def test_formula_covariates_are_expanded():
    _, sim = _sim(base=_base(_table(), "a + C(c)"), treatment={"covariates": ("a",)})
    assert sim.dataset.roles.covariates == ("a", "C(c)[T.v]", "C(c)[T.w]")


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"params": {"treatment": {"covariates": ("zz",)}}}, "dgp.treatment.covariates"),
        ({"params": {"effect_covariates": ("y",)}}, "dgp.effect_covariates"),
        ({"frame": "missing"}, "data.roles.covariates: expected no missing values in 'a'"),
        ({"frame": "constant"}, "data.roles.covariates: expected covariates that vary"),
        ({"covariates": ()}, "data.roles.covariates"),
    ],
)
def test_user_mistakes_are_one_line(change, needle):
    frame = _table(200)
    if change.get("frame") == "missing":
        frame.loc[3, "a"] = np.nan
    if change.get("frame") == "constant":
        frame["b"] = 1.0
    base = _base(frame, change.get("covariates", ("a", "b", "c")))
    dgp = Plasmode(PlasmodeParams.model_validate(change.get("params", {})))
    with pytest.raises(CausalkitError) as err:
        dgp.simulate(np.random.default_rng(0), base)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_propensity_model_is_the_stated_logit():
    frame = _table()
    dgp = Plasmode(PlasmodeParams.model_validate({"treatment": {"covariates": ("a", "b")}}))
    draws = [dgp.draw(np.random.default_rng(s), _base(frame)).treat for s in range(40)]
    za = (frame["a"] - frame["a"].mean()) / frame["a"].std(ddof=0)
    zb = (frame["b"] - frame["b"].mean()) / frame["b"].std(ddof=0)
    h = ((za + zb) / (za + zb).std(ddof=0)).to_numpy()
    # Fit logit(P) = alpha + g*h on 40 x 4000 draws by Newton: g = strength 1, mean P = 0.3.
    t = np.concatenate(draws).astype(float)
    x = np.column_stack([np.ones_like(t), np.tile(h, 40)])
    beta = np.zeros(2)
    for _ in range(25):
        p = expit(x @ beta)
        beta += np.linalg.solve(x.T @ (x * (p * (1 - p))[:, None]), x.T @ (t - p))
    # SE of the slope with 160,000 draws is about 0.007: tolerance 0.03 (4 SEs).
    assert beta[1] == pytest.approx(1.0, abs=0.03)
    assert expit(beta[0] + h).mean() == pytest.approx(0.3, abs=0.01)


@pytest.mark.cli
def test_cli_runs_on_a_users_csv(tmp_path):
    path = tmp_path / "mine.csv"
    _table(800).to_csv(path, index=False)
    cmd = [
        sys.executable,
        "-m",
        "causalkit",
        "data=csv",
        f"data.path={path}",
        "data.roles.covariates=[a,b,c]",
        # the csv source asks for an outcome role (the table's own outcome, not used here)
        "data.roles.outcome=y",
        "dgp=plasmode",
        "dgp.effect=1.0",
        "estimator=ipw",
        "mc.reps=20",
        "tracking=none",
    ]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    assert "ipw" in out.stdout and "+1.0000 (ATE)" in out.stdout
    assert "replications              20 (0 failed)" in out.stdout
