"""The bad-input and fault matrix: one clear line (field, expected, given), exit code 2, nothing half-written.

Python API cases raise a :class:`causalkit.CausalkitError` whose message is one line; CLI cases
run ``python -m causalkit`` in a fresh directory. Numerical trouble that estimators report in
diagnostics instead of raising (infeasible balance) is checked there: never a silent number.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

import causalkit as ck
from causalkit.testing import run_cli as _cli

pytestmark = pytest.mark.cli


def _panel() -> pd.DataFrame:
    return ck.simulate(
        "contaminated_holdout", seed=3, n_users=200, n_exposed=100, n_contaminated=20
    ).dataset.frame


def _xs() -> pd.DataFrame:
    return ck.simulate("selection_on_observables", seed=1).dataset.frame


MS = dict(
    estimator="microsynth",
    unit="user_id",
    time="week",
    treatment="saw_ad",
    outcome="converted",
    covariates=["age", "device"],
    inference="none",
)
XS = dict(treatment="treat", outcome="y", covariates=["x1", "x2"])


def _ms(frame: pd.DataFrame, **kw) -> Callable[[], object]:
    return lambda: ck.fit(frame, **{**MS, **kw})


def _xs_fit(estimator: str, frame: pd.DataFrame | None = None, **kw) -> Callable[[], object]:
    return lambda: ck.fit(_xs() if frame is None else frame, estimator=estimator, **{**XS, **kw})


def _staggered() -> pd.DataFrame:
    f = _panel().copy()
    extra = f[f.week == 1].assign(week=2)
    f = pd.concat([f, extra]).sort_values(["user_id", "week"]).reset_index(drop=True)
    first = f.user_id.isin(f.user_id.unique()[:5])
    f.loc[first & (f.week == 1), "saw_ad"] = 0
    f.loc[first & (f.week == 2), "saw_ad"] = 1
    return f


def _time_varying() -> pd.DataFrame:
    f = _panel().copy()
    f.loc[f.week == 1, "age"] += 1.0
    return f


def _group_indicator() -> pd.DataFrame:
    """Treatment holding the group (1 in both weeks of a treated user), not the exposure."""
    f = _panel().copy()
    f["saw_ad"] = f.groupby("user_id").saw_ad.transform("max")
    return f


def _heckman() -> pd.DataFrame:
    return ck.simulate("heckman_selection", seed=1).dataset.frame


HECKMAN = dict(
    treatment="treat",
    outcome="spend",
    covariates=["x1", "x2"],
    selected="buy",
    selection_covariates=["x1", "x2", "treat", "z"],
)


def _separated() -> pd.DataFrame:
    f = _xs().copy()
    f["treat"] = (f["x1"] > 0).astype(int)
    return f


API_CASES: dict[str, tuple[Callable[[], object], str]] = {
    "unknown estimator": (
        lambda: ck.fit(_xs(), estimator="nope", **XS),
        "estimator: expected one of",
    ),
    "misspelled estimator param": (
        _ms(_panel(), weight_methd="x"),
        "estimator.weight_methd: expected one of the keys",
    ),
    "wrong type param": (_ms(_panel(), max_iter="many"), "estimator.max_iter"),
    "out of range param": (
        _ms(_panel(), balance_tol=-1.0),
        "estimator.balance_tol: expected greater than 0",
    ),
    "bad literal": (_ms(_panel(), weight_method="magic"), "estimator.weight_method"),
    "unknown role keyword type": (_ms(_panel(), covariates=5), "roles.covariates"),
    "unsupported inference": (_ms(_panel(), inference="analytic"), "inference: expected one of"),
    "unknown inference": (_ms(_panel(), inference="jackknife"), "inference: expected one of"),
    "unknown inference param": (
        _ms(_panel(), inference={"name": "bootstrap", "n_bots": 5}),
        "inference.n_bots",
    ),
    "too few bootstraps": (
        _ms(_panel(), inference={"name": "bootstrap", "n_boot": 2}),
        "inference.n_boot",
    ),
    "missing column": (_ms(_panel(), covariates=["age", "nope"]), "roles"),
    "missing treatment role": (
        lambda: ck.fit(
            _panel(),
            estimator="microsynth",
            unit="user_id",
            time="week",
            outcome="converted",
            covariates=["age"],
        ),
        "roles.treatment",
    ),
    "NaN in treatment": (
        _ms(_panel().assign(saw_ad=lambda f: f.saw_ad.where(f.index != 3))),
        "roles.treatment",
    ),
    "NaN in outcome": (
        _ms(_panel().assign(converted=lambda f: f.converted.where(f.index != 5))),
        "roles.outcome",
    ),
    "NaN in covariate": (
        _ms(_panel().assign(age=lambda f: f.age.where(f.index > 9))),
        "roles.covariates",
    ),
    "non-binary treatment": (
        _ms(_panel().assign(saw_ad=lambda f: f.saw_ad * 2)),
        "roles.treatment",
    ),
    "string covariate": (
        _ms(_panel().assign(device=lambda f: f.device.map({0.0: "a", 1.0: "b"}))),
        "roles.covariates",
    ),
    "all treated": (_ms(_panel().assign(saw_ad=1)), "roles.treatment"),
    "no treated": (_ms(_panel().assign(saw_ad=0)), "roles.treatment"),
    "single row": (lambda: ck.fit(_xs().head(1), estimator="naive", **XS), "roles.treatment"),
    "constant covariate": (
        _ms(_panel().assign(device=1.0)),
        "roles.covariates: expected balance columns that vary",
    ),
    "duplicated unit-period rows": (
        _ms(pd.concat([_panel(), _panel().head(3)])),
        "one row per unit and period",
    ),
    "missing periods": (_ms(_panel().iloc[1:]), "balanced panel"),
    "staggered adoption": (_ms(_staggered()), "no staggered adoption"),
    "time-varying covariate": (_ms(_time_varying()), "time-invariant"),
    "group indicator as treatment": (
        _ms(_group_indicator()),
        "roles.treatment: expected 1 only in exposed periods",
    ),
    "naive group indicator as treatment": (
        _ms(_group_indicator(), estimator="naive", covariates=[]),
        "roles.treatment: expected 1 only in exposed periods",
    ),
    "naive non-binary treatment": (_xs_fit("naive", _xs().assign(treat=3)), "roles.treatment"),
    "ols missing covariate": (_xs_fit("ols", covariates=["x1", "zz"]), "roles"),
    "ipw bad estimand": (_xs_fit("ipw", estimand="atx"), "estimator.estimand"),
    "psm bad k": (_xs_fit("psm", k=0), "estimator.k"),
    "psm unknown distance": (_xs_fit("psm", distance="cosine"), "estimator.distance"),
    "heckman without selected role": (_xs_fit("heckman"), "roles.selected"),
    "aipw unknown learner": (_xs_fit("aipw", outcome_model="xgboost"), "estimator.outcome_model"),
    "aipw unknown learner param": (
        _xs_fit("aipw", propensity_params={"nope": 1}),
        "propensity_params",
    ),
    "aipw folds zero": (_xs_fit("aipw", folds=0), "estimator.folds"),
    "aipw one fold with a forest": (
        _xs_fit("aipw", folds=1, propensity_model="random_forest"),
        "estimator.folds: expected folds >= 2 with random_forest",
    ),
    "inf in outcome": (
        _xs_fit("naive", _xs().assign(y=lambda f: f.y.where(f.index != 4, np.inf))),
        "roles.outcome: expected finite values in 'y'",
    ),
    "-inf in covariate": (
        _xs_fit("ols", _xs().assign(x1=lambda f: f.x1.where(f.index != 4, -np.inf))),
        "roles.covariates: expected finite values in 'x1'",
    ),
    "inf in ipw covariate": (
        _xs_fit("ipw", _xs().assign(x2=lambda f: f.x2.where(f.index != 7, np.inf))),
        "roles.covariates: expected finite values in 'x2'",
    ),
    "inf in heckman selection covariate": (
        lambda: ck.fit(
            _heckman().assign(z=lambda f: f.z.where(f.index != 2, np.inf)),
            estimator="heckman",
            **HECKMAN,
        ),
        "roles.selection_covariates: expected finite values in 'z'",
    ),
    "duplicate column names": (
        _xs_fit("naive", pd.concat([_xs(), _xs()[["x1"]]], axis=1)),
        "data: expected unique column names, got 2 columns named 'x1'",
    ),
    "treatment also a covariate": (
        _xs_fit("ols", covariates=["x1", "treat"]),
        "roles: expected each column in one role, got 'treat' is both treatment and covariates",
    ),
    "covariate listed twice": (
        _xs_fit("ipw", covariates=["x1", "x1"]),
        "roles.covariates: expected each column once",
    ),
    "text period labels": (
        _ms(_panel().assign(week=lambda f: "2024-W" + (f.week + 9).astype(str))),
        "roles.time: expected numbers, dates or an ordered categorical",
    ),
    "unordered categorical periods": (
        _ms(_panel().assign(week=lambda f: pd.Categorical(f.week))),
        "roles.time: expected numbers, dates or an ordered categorical",
    ),
    "aipw missing covariate without impute": (
        _xs_fit("aipw", _xs().assign(x1=lambda f: f.x1.where(f.index % 3 != 0))),
        "roles.covariates: expected no missing values in 'x1'",
    ),
    "psm missing covariate": (
        _xs_fit("psm", _xs().assign(x2=lambda f: f.x2.where(f.index != 0))),
        "roles.covariates: expected no missing values in 'x2'",
    ),
    "constant outcome ipw": (
        _xs_fit("ipw", _xs().assign(y=2.5)),
        "roles.outcome: expected an outcome that varies",
    ),
    "constant outcome ols": (
        _xs_fit("ols", _xs().assign(y=0.0)),
        "roles.outcome: expected an outcome that varies",
    ),
    "simulate bad dgp param": (lambda: ck.simulate("contaminated_holdout", n_exposed=5000), "dgp"),
    "simulate unknown dgp": (lambda: ck.simulate("nope"), "dgp: expected one of"),
    "run misspelled override": (
        lambda: ck.run(["tracking=none", "estimator.weight_methd=1"]),
        "estimator.weight_methd",
    ),
    "run reps for real data": (
        lambda: ck.run(["tracking=none", "data=csv", "dgp=none", "mc.reps=3"]),
        "mc.reps",
    ),
}


@pytest.mark.parametrize("case", list(API_CASES), ids=list(API_CASES))
def test_api_bad_input_is_one_clear_line(case):
    call, needle = API_CASES[case]
    with pytest.raises(ck.CausalkitError) as info:
        call()
    msg = str(info.value)
    assert "\n" not in msg and needle in msg, msg
    assert "expected" in msg


def test_infeasible_balance_is_reported_never_silent():
    f = _panel().copy()
    treated = f.groupby("user_id").saw_ad.transform("max").astype(bool)
    f.loc[treated, "age"] = f.loc[treated, "age"] + 100.0  # treated mean outside the controls' hull
    res = ck.fit(f, **MS)
    assert res.to_dict()["feasible"] is False and res.warnings
    assert "NOT achieved" in res.to_dict()["feasibility_message"]


def test_ipw_separation_is_reported():
    try:
        res = ck.fit(_separated(), estimator="ipw", inference="analytic", **XS)
    except ck.CausalkitError as exc:
        assert "\n" not in str(exc)
        return
    assert res.warnings, "perfect separation must be reported"


ROLES = [
    "data.roles.unit=user_id",
    "data.roles.time=week",
    "data.roles.treatment=saw_ad",
    "data.roles.outcome=converted",
    "data.roles.covariates=[age,device]",
    "dgp=none",
]

CLI_CASES: dict[str, tuple[list[str], str]] = {
    "misspelled key": (["tracking=none", "estimator.weight_methd=x"], "estimator.weight_methd"),
    "unknown group option": (["tracking=none", "estimator=nope"], "estimator: expected one of"),
    "wrong type": (["tracking=none", "mc.reps=many"], "mc.reps"),
    "bad sweep value": (
        ["tracking=none", "-m", "estimator=naive,nope"],
        "estimator: expected one of",
    ),
    "missing file": (
        ["tracking=none", "data=csv", "data.path=missing.csv", *ROLES],
        "data.path: expected an existing file",
    ),
    "unreadable csv": (["tracking=none", "data=csv", "data.path=garbage.csv", *ROLES], "data"),
    "unreadable parquet": (
        ["tracking=none", "data=parquet", "data.path=garbage.csv", *ROLES],
        "data.path",
    ),
    "missing column": (
        [
            "tracking=none",
            "data=csv",
            "data.path=panel.csv",
            *ROLES[:-2],
            "data.roles.covariates=[nope]",
            "dgp=none",
        ],
        "data.roles",
    ),
    "unwritable mlflow uri": (
        ["tracking.uri=sqlite:////proc/nope/x.db", "estimator=itt"],
        "tracking.uri",
    ),
    "aipw one fold with gbm": (
        ["tracking=none", "estimator=aipw", "estimator.folds=1", "estimator.outcome_model=gbm"],
        "estimator.folds: expected folds >= 2 with gbm",
    ),
    "group indicator as treatment": (
        ["tracking=none", "data=csv", "data.path=group.csv", *ROLES],
        "roles.treatment: expected 1 only in exposed periods",
    ),
    "group indicator read as unit arrays": (
        ["tracking=none", "data=parquet_units", "data.path=group.parquet", *ROLES],
        "roles.treatment: expected 1 only in exposed periods",
    ),
    "text period labels in a csv": (
        ["tracking=none", "data=csv", "data.path=weeks.csv", *ROLES],
        "roles.time: expected numbers, dates or an ordered categorical",
    ),
    "inf in a csv": (
        ["tracking=none", "data=csv", "data.path=inf.csv", *ROLES],
        "roles.outcome: expected finite values in 'converted'",
    ),
    "own data with a simulator": (
        ["tracking=none", "data=csv", "data.path=panel.csv", *ROLES[:-1]],
        "dgp: expected none",
    ),
}


@pytest.fixture(scope="module")
def cli_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    _panel().to_csv(d / "panel.csv", index=False)
    _group_indicator().to_csv(d / "group.csv", index=False)
    _group_indicator().to_parquet(d / "group.parquet", index=False)
    (d / "garbage.csv").write_bytes(bytes(range(256)) * 50)
    _panel().assign(week=lambda f: "2024-W" + (f.week + 9).astype(str)).to_csv(
        d / "weeks.csv", index=False
    )
    inf = _panel().astype({"converted": float})
    inf.loc[3, "converted"] = np.inf
    inf.to_csv(d / "inf.csv", index=False)
    return d


@pytest.mark.parametrize("case", list(CLI_CASES), ids=list(CLI_CASES))
def test_cli_bad_input_exit_2_one_line(cli_dir, case):
    args, needle = CLI_CASES[case]
    p = _cli(cli_dir, *args)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2, p.stderr
    assert len(lines) == 1 and lines[0].startswith("causalkit: error: ") and needle in lines[0], (
        p.stderr
    )
    assert "Traceback" not in p.stderr


def test_runs_path_is_a_regular_file(tmp_path):
    (tmp_path / "runs").write_text("not a directory")
    p = _cli(tmp_path, "estimator=itt")
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1 and "runs" in lines[0], p.stderr


def test_failed_single_run_is_failed_not_running(tmp_path):
    frame = _panel().assign(device=1.0)
    frame.to_csv(tmp_path / "panel.csv", index=False)
    p = _cli(
        tmp_path,
        "data=csv",
        "data.path=panel.csv",
        *ROLES,
        "estimator=microsynth",
        "inference=none",
    )
    assert p.returncode == 2 and "constant" in p.stderr and "Traceback" not in p.stderr
    from mlflow.tracking import MlflowClient

    c = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    (run,) = c.search_runs([c.get_experiment_by_name("causalkit").experiment_id])
    assert run.info.status == "FAILED" and "constant" in run.data.tags["causalkit.error"]
    assert not [a for a in c.list_artifacts(run.info.run_id) if a.path == "result.json"]
