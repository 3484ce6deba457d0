"""The ``weight`` role: one-line errors, zero weights, refusal and unchanged unweighted fits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import causalkit as ck
from causalkit.errors import ConfigError, DataError

KW = {"outcome": "y", "treatment": "treat", "covariates": ["x1", "x2"]}


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    return ck.simulate("selection_on_observables", seed=4, n=400, sampling={"informative": 0.3})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (-1.0, "expected non-negative weights in 'weight', got 1 negative"),
        (np.nan, "expected finite weights in 'weight', got 1 missing or infinite"),
    ],
)
def test_bad_weights_are_one_line_errors(sample, values, message):
    df = sample.dataset.frame.copy()
    df.loc[7, "weight"] = values
    with pytest.raises(DataError, match="^roles.weight: " + message):
        ck.fit(df, "ols", weight="weight", **KW)


def test_all_zero_and_text_weights_are_refused(sample):
    df = sample.dataset.frame
    with pytest.raises(DataError, match="^roles.weight: expected some positive weight"):
        ck.fit(df.assign(weight=0.0), "naive", outcome="y", treatment="treat", weight="weight")
    with pytest.raises(DataError, match="^roles.weight: expected numeric weights"):
        ck.fit(df.assign(weight="a"), "naive", outcome="y", treatment="treat", weight="weight")


def test_estimators_without_weights_refuse_the_role(sample):
    """Refused before any fit (the core reads ``handles_roles``), in one line.

    Every built-in estimator takes the role, so a third-party one without it stands in.
    """
    from causalkit.registry import Registry

    from .test_core_registry import ThirdPartyEstimator

    reg = Registry().load_entry_points(lazy=True)  # a fresh one: the default is shared
    assert all("weight" in reg.get("estimator", n).handles_roles for n in reg.names("estimator"))
    reg.register("estimator", ThirdPartyEstimator)
    with pytest.raises(DataError, match="^roles.weight: expected an estimator with sampling we"):
        ck.fit(sample.dataset.frame, "shrunk", weight="weight", registry=reg, **KW)


def test_psm_takes_weights_only_when_matching_on_the_covariates(sample):
    with pytest.raises(ConfigError, match="^estimator.match_on: expected covariates with roles"):
        ck.fit(sample.dataset.frame, "psm", weight="weight", **KW)
    res = ck.fit(sample.dataset.frame, "psm", weight="weight", match_on="covariates", **KW)
    assert res.to_dict()["weight_ess"] > 0


@pytest.mark.parametrize("estimator", ["naive", "ols", "ipw"])
def test_zero_weights_equal_dropping_the_rows(sample, estimator):
    df = sample.dataset.frame.copy()
    df.loc[df.index[::9], "weight"] = 0.0
    kw = {"outcome": "y", "treatment": "treat"} if estimator == "naive" else KW
    zero = ck.fit(df, estimator, weight="weight", **kw).to_dict()
    dropped = ck.fit(df[df["weight"] > 0], estimator, weight="weight", **kw).to_dict()
    assert zero["estimate"] == pytest.approx(dropped["estimate"], rel=1e-10)
    assert zero["se"] == pytest.approx(dropped["se"], rel=1e-10)
    assert zero["n_zero_weight"] == len(df.index[::9])


def test_the_dgp_emits_the_weight_role_only_when_sampling_is_informative(sample):
    assert sample.dataset.roles.weight == "weight"
    plain = ck.simulate("selection_on_observables", seed=4, n=400)
    hidden = ck.simulate(
        "selection_on_observables", seed=4, n=400, sampling={"informative": 0.3, "role": False}
    )
    assert plain.dataset.roles.weight is None and "weight" not in plain.dataset.frame
    assert hidden.dataset.roles.weight is None
    pd.testing.assert_frame_equal(hidden.dataset.frame, sample.dataset.frame)
    # the sample is tilted towards large x1 (mean 0.3); the truth stays the population's
    assert sample.dataset.frame["x1"].mean() > 0.15
    assert sample.truth.values["ATE"] == plain.truth.values["ATE"]
