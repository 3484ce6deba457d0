"""The semi-synthetic worlds on shipped real covariates: IHDP (Hill 2011) and ACIC 2016."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from causalkit.testing import run_cli
from causalkit_plugins.dgps.acic2016 import ACIC2016, ACIC2016Params
from causalkit_plugins.dgps.ihdp import IHDP, IHDPParams

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "plugins" / "dgps" / "data"


def _ihdp(seed: int = 0, **params):
    dgp = IHDP(IHDPParams.model_validate(params))
    return dgp, dgp.simulate(np.random.default_rng(seed))


def _hill_sample() -> tuple[np.ndarray, np.ndarray]:
    """Hill's 747 children and 25 covariates, rebuilt from the shipped CSV for these checks."""
    d = pd.read_csv(DATA / "ihdp_hill2011.csv.gz")
    d = d[(d["treat"] == 0) | (d["momwhite"] == 1)]
    cont = ["bw", "b.head", "preterm", "birth.o", "nnhealth", "momage"]
    binary = [c for c in d.columns[7:26]]  # sex .. prenatal, site1..site7
    x = pd.concat([(d[cont] - d[cont].mean()) / d[cont].std(ddof=0), d[binary]], axis=1)
    return x.to_numpy(dtype=float), d["treat"].to_numpy() == 1


def test_ihdp_sample_is_hills_747():
    _, sim = _ihdp()
    frame, roles = sim.dataset.frame, sim.dataset.roles
    assert len(frame) == 747 and int(frame["treat"].sum()) == 139
    assert len(roles.covariates) == 25 and roles.covariates[-1] == "site7"
    x, treat = _hill_sample()
    assert np.allclose(frame[list(roles.covariates)].to_numpy(), x)
    assert np.array_equal(frame["treat"].to_numpy() == 1, treat)


def test_surface_a_has_the_constant_effect_4():
    dgp, sim = _ihdp(surface="A")
    for estimand in ("ATE", "ATT", "ATC"):
        assert sim.truth.values[estimand] == pytest.approx(4.0, abs=1e-12)
    mu0, mu1 = dgp.means()
    assert np.allclose(mu1 - mu0, 4.0)
    # Independently: beta_A drawn with the world's seed, Y(0) mean X beta.
    x, _ = _hill_sample()
    beta = np.random.default_rng(2011).choice([0, 1, 2, 3, 4], 25, p=[0.5, 0.2, 0.15, 0.1, 0.05])
    assert np.allclose(mu0, x @ beta)


def test_surface_b_catt_is_4_by_construction_and_effects_vary():
    dgp, sim = _ihdp(surface="B", coef_seed=7)
    assert sim.truth.values["ATT"] == pytest.approx(4.0, abs=1e-12)
    x, treat = _hill_sample()
    beta = np.random.default_rng(7).choice([0, 0.1, 0.2, 0.3, 0.4], 25, p=[0.6] + [0.1] * 4)
    mu0 = np.exp((x + 0.5) @ beta)
    omega = (x @ beta - mu0)[treat].mean() - 4.0
    cate = x @ beta - omega - mu0
    assert sim.truth.values["ATE"] == pytest.approx(cate.mean(), abs=1e-10)
    assert sim.truth.values["ATC"] == pytest.approx(cate[~treat].mean(), abs=1e-10)
    assert cate.std() > 0.1
    d0, d1 = dgp.means()
    assert np.allclose(d0, mu0) and np.allclose(d1 - d0, cate)


def test_ihdp_outcomes_are_redrawn_with_unit_noise():
    dgp, a = _ihdp(seed=1, surface="B")
    _, b = _ihdp(seed=1, surface="B")
    _, c = _ihdp(seed=2, surface="B")
    assert a.dataset.frame.equals(b.dataset.frame)
    assert not a.dataset.frame["y"].equals(c.dataset.frame["y"])
    assert a.truth == c.truth  # beta is the world's: one truth for every replication
    mu0, mu1 = dgp.means()
    treat = a.dataset.frame["treat"].to_numpy() == 1
    resid = a.dataset.frame["y"].to_numpy() - np.where(treat, mu1, mu0)
    # SD of 747 N(0,1) draws: SE about 0.026, tolerance 0.1 (about 4 SEs).
    assert resid.std() == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("setting", range(1, 11))
def test_acic_truth_is_the_satt_of_the_shipped_means(setting):
    zymu = pd.read_csv(DATA / f"acic2016_zymu_{setting}.csv.gz")
    treated = zymu["z"] == 1
    satt = (zymu["mu1"] - zymu["mu0"])[treated].mean()
    sim = ACIC2016(ACIC2016Params(setting=setting)).simulate(np.random.default_rng(0))
    assert sim.truth.values["ATT"] == pytest.approx(satt, abs=1e-12)
    assert sim.truth.values["ATE"] == pytest.approx((zymu["mu1"] - zymu["mu0"]).mean(), abs=1e-12)
    assert np.array_equal(sim.dataset.frame["z"].to_numpy(), zymu["z"].to_numpy())


def test_acic_covariates_and_replications():
    x = pd.read_csv(DATA / "acic2016_x.csv.gz")
    zymu = pd.read_csv(DATA / "acic2016_zymu_1.csv.gz")
    dgp = ACIC2016(ACIC2016Params(setting=1))
    a = dgp.simulate(np.random.default_rng(4))
    b = dgp.simulate(np.random.default_rng(4))
    c = dgp.simulate(np.random.default_rng(5))
    frame, roles = a.dataset.frame, a.dataset.roles
    levels = sum(x[c].nunique() - 1 for c in ("x_2", "x_21", "x_24"))
    assert len(roles.covariates) == 55 + levels == 79
    assert "x_2.B" in roles.covariates and "x_2" not in roles.covariates
    assert np.array_equal(frame["x_1"].to_numpy(), x["x_1"].to_numpy(dtype=float))
    assert np.array_equal(frame["x_2.B"].to_numpy(), (x["x_2"] == "B").to_numpy(dtype=float))
    assert a.dataset.frame.equals(b.dataset.frame)
    assert not a.dataset.frame["y"].equals(c.dataset.frame["y"])
    z = zymu["z"].to_numpy() == 1
    mu = np.where(z, zymu["mu1"], zymu["mu0"])
    # Redrawn noise: SD of 4802 draws near the file's (about 1): SE 0.01, tolerance 0.05.
    assert (frame["y"].to_numpy() - mu).std() == pytest.approx(1.0, abs=0.05)
    own = ACIC2016(ACIC2016Params(setting=1, outcomes="file")).simulate(np.random.default_rng(4))
    assert np.array_equal(own.dataset.frame["y"].to_numpy(), np.where(z, zymu["y1"], zymu["y0"]))


def _cli(*overrides: str) -> subprocess.CompletedProcess[str]:
    return run_cli(ROOT, *overrides, "tracking=none", timeout=300)


@pytest.mark.cli
def test_cli_ihdp_with_aipw():
    out = _cli("dgp=ihdp", "dgp.surface=B", "estimator=aipw", "mc.reps=3")
    assert out.returncode == 0, out.stderr
    assert "aipw" in out.stdout and "replications              3 (0 failed)" in out.stdout


@pytest.mark.cli
def test_cli_acic2016_with_ipw():
    out = _cli(
        "dgp=acic2016", "dgp.setting=3", "estimator=ipw", "estimator.estimand=ATT", "mc.reps=3"
    )
    assert out.returncode == 0, out.stderr
    assert "+4.7518 (ATT)" in out.stdout  # setting 3's SATT, mean(mu1 - mu0 | z = 1)
    bad = _cli("dgp=acic2016", "dgp.setting=11", "estimator=ipw")
    assert bad.returncode == 2 and "dgp.setting" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
