"""Issue 20, item 10: the small things a new user tripped over, each tried here in process."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import causalkit
from causalkit import cli
from causalkit.balance import BALANCE_COLUMNS, balance_table, smd_from_moments
from causalkit.composition import compose
from causalkit.errors import ConfigError, DataError
from causalkit.results import CausalkitWarning, EffectResult, emit_warnings
from causalkit.summary import Section, fixed_or_scientific, pvalue, scalar
from causalkit_plugins.data.files import CsvSource, FileParams, ParquetSource
from causalkit_plugins.dgps.selection_on_observables import (
    SelectionOnObservables,
    SelectionOnObservablesParams,
)
from causalkit_plugins.estimators.selection.psm import PSM, PSMParams

ROLES = {"outcome": "y", "treatment": "treat", "covariates": ["x1", "x2"]}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    sim = SelectionOnObservables(SelectionOnObservablesParams(n=400)).simulate(
        np.random.default_rng(3), None
    )
    return sim.dataset.frame


def _fit(frame: pd.DataFrame, estimator: str, **options: object) -> EffectResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CausalkitWarning)
        return causalkit.fit(frame, estimator, **ROLES, **options)  # type: ignore[arg-type]


# -- psm's diagnostics, warning and default estimand -------------------------------------------


def test_a_label_as_long_as_its_column_keeps_two_spaces_and_flags_read_yes_no() -> None:
    section = Section("diagnostics", pairs=(("ps_estimation_ignored_in_se", scalar(True)),))
    assert section.text()[1] == "ps_estimation_ignored_in_se  yes"
    assert (scalar(False), scalar(np.bool_(True)), scalar(3), scalar(0.5)) == (
        "no",
        "yes",
        "3",
        "0.5",
    )


def test_psm_summary_prints_its_flag_apart_from_its_value(frame: pd.DataFrame) -> None:
    text = str(_fit(frame, "psm", se="ai2006").summary())
    assert "ps_estimation_ignored_in_seTrue" not in text
    assert "  ps_estimation_ignored_in_se  yes" in text


@pytest.mark.parametrize(
    ("estimand", "said"),
    [
        ("ATT", "for the ATT this SE can be too small or too large"),
        ("ATE", "for the ATE this SE is conservative"),
        ("ATC", "for the ATC this SE can be too small or too large"),
    ],
)
def test_psm_unadjusted_se_warning_follows_the_estimand(
    frame: pd.DataFrame, estimand: str, said: str
) -> None:
    res = _fit(frame, "psm", se="ai2006", estimand=estimand)
    (line,) = [w for w in res.warnings if "treats the estimated propensity score" in w]
    assert line.endswith(said)
    other = {"ATT", "ATE", "ATC"} - {estimand}
    assert not any(f"for the {e}" in line for e in other)


def test_psm_says_it_targets_the_att_where_its_default_is_shown(frame: pd.DataFrame) -> None:
    assert PSMParams().estimand == "ATT"
    doc = (PSM.__doc__ or "").strip().splitlines()[0]  # what `python -m causalkit.plugins` lists
    assert "targets the ATT by default" in doc
    assert "the default" in PSMParams.model_fields["estimand"].description  # type: ignore[operator]
    text = str(_fit(frame, "psm").summary())
    assert "estimand              ATT (average effect on the treated)" in text
    assert "estimand              ATE (average effect over everyone)" in str(
        _fit(frame, "ipw").summary()
    )


# -- p-values ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "shown"),
    [
        (0.0, "< 1e-16"),
        (5.267e-273, "< 1e-16"),
        (9.9e-17, "< 1e-16"),
        (6.469e-05, "6.5e-05"),
        (0.0012, "0.0012"),
        (0.1817, "0.1817"),
        (1.0, "1.0000"),
        (math.nan, "nan"),
    ],
)
def test_pvalues_print_below_the_floor_as_less_than(p: float, shown: str) -> None:
    assert pvalue(p) == shown


def test_summary_and_effects_table_print_tiny_pvalues_as_less_than() -> None:
    values = np.array(
        [[2.0, 0.01, 1.98, 2.02, 0.0, np.nan], [1.0, 0.5, 0.02, 1.98, 0.0455, np.nan]]
    )
    res = EffectResult("ols", "analytic", "ATE", ["a", "b"], values, 0.95, 100)
    text = str(res.summary())
    assert "p-value               < 1e-16" in text
    assert "0.0455" in text and "e-273" not in text and " 0.0 " not in text


def test_diagnostics_that_hold_pvalues_print_as_pvalues() -> None:
    diagnostics = {"lr_rho0_p": 5.267e-273, "ess": 5.267e-273, "x.p_value": 0.25}
    res = EffectResult(
        "heckman", "analytic", "ATE", ["e"], np.zeros((1, 6)), 0.95, 10, diagnostics=diagnostics
    )
    text = str(res.summary())
    assert "  lr_rho0_p                 < 1e-16" in text
    assert "  ess                       5.267e-273" in text  # not a p-value: 4 digits as before
    assert "  x.p_value                 0.2500" in text


# -- balance tables ----------------------------------------------------------------------------


def test_balance_columns_print_fixed_decimals_where_values_allow() -> None:
    assert fixed_or_scientific([47.1, -0.5])(47.1) == "+47.100"
    assert fixed_or_scientific([1.2, 0.9], sign=False)(0.9) == "0.900"
    assert fixed_or_scientific([0.0, 0.0])(0.0) == "+0.000"
    # values that fixed decimals would hide or stretch keep scientific notation
    assert fixed_or_scientific([1e-9, -3e-10])(1e-9) == "+1.00e-09"
    assert fixed_or_scientific([2.5e6, 1.0])(2.5e6) == "+2.50e+06"
    assert fixed_or_scientific([1.0, math.nan])(math.nan) == "+nan"


def test_balance_table_names_each_mean_before_and_after_weighting() -> None:
    rng = np.random.default_rng(0)
    X_t, X_c = rng.normal(1.0, 1.0, (30, 2)), rng.normal(0.0, 2.0, (50, 2))
    w_t, w_c = rng.uniform(0.5, 2.0, 30), rng.uniform(0.5, 2.0, 50)
    t = balance_table(["a", "b"], X_t, X_c, w_c=w_c, w_t=w_t)
    assert tuple(t.columns) == BALANCE_COLUMNS
    assert list(t.columns[:4]) == [
        "mean_treated_before",
        "mean_treated_after",
        "mean_control_before",
        "mean_control_after",
    ]
    np.testing.assert_allclose(t["mean_treated_before"], X_t.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(t["mean_treated_after"], w_t @ X_t / w_t.sum(), rtol=1e-14)
    v1, v0 = X_t.var(axis=0, ddof=1), X_c.var(axis=0, ddof=1)
    # each SMD is the difference of the means shown beside it (raw: before; weighted: after)
    for when in ("before", "after"):
        smd = smd_from_moments(
            t[f"mean_treated_{when}"].to_numpy(), t[f"mean_control_{when}"].to_numpy(), v1, v0
        )
        np.testing.assert_allclose(t[f"smd_{when}"], smd, rtol=1e-12)


def test_ipw_balance_prints_weighted_treated_means_by_name(frame: pd.DataFrame) -> None:
    res = _fit(frame, "ipw")
    bal = res.tables["balance"]
    assert "mean_treated" not in bal.columns
    # the ATE weights the treated too: their weighted mean is not the raw one
    assert not np.allclose(bal["mean_treated_after"], bal["mean_treated_before"])
    text = str(res.summary())
    assert "mean_treated_after" in text and "e+0" not in text.split("balance (SMD")[1]


# -- warnings through Python's warnings --------------------------------------------------------


def test_fit_emits_each_warning_once_as_a_causalkit_warning(frame: pd.DataFrame) -> None:
    assert causalkit.CausalkitWarning is CausalkitWarning
    assert issubclass(CausalkitWarning, UserWarning)
    with pytest.warns(CausalkitWarning) as caught:
        res = causalkit.fit(frame, "psm", **ROLES, se="ai2006")  # type: ignore[arg-type]
    mine = [str(w.message) for w in caught if w.category is CausalkitWarning]
    assert mine == list(res.warnings) and res.warnings
    # each points at the caller's line, not at causalkit's internals
    assert all(w.filename == __file__ for w in caught if w.category is CausalkitWarning)


def test_a_fit_without_warnings_emits_none(frame: pd.DataFrame) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", CausalkitWarning)
        res = causalkit.fit(frame, "naive", outcome="y", treatment="treat")
    assert res.warnings == ()


def test_run_emits_one_aggregate_warning_for_the_replications() -> None:
    overrides = [
        "estimator=psm",
        "estimator.se=ai2006",
        "dgp=selection_on_observables",
        "dgp.n=300",
        "mc.reps=3",
        "inference=analytic",
        "tracking=none",
    ]
    with pytest.warns(CausalkitWarning) as caught:
        cell = causalkit.run(overrides)
    mine = [str(w.message) for w in caught if w.category is CausalkitWarning]
    assert mine == [
        "psm: 3 of 3 replications carried warnings "
        "(their count per replication: result.replications['n_warnings'])"
    ]
    assert (cell.replications["n_warnings"] > 0).all()


def test_emit_warnings_of_a_one_replication_cell_shows_its_own() -> None:
    res = EffectResult(
        "naive", "analytic", "ATE", ["e"], np.zeros((1, 6)), 0.95, 10, warnings=("w1", "w2")
    )
    with pytest.warns(CausalkitWarning) as caught:
        emit_warnings(res, stacklevel=2)
    assert [str(w.message) for w in caught] == ["w1", "w2"]


# -- Hydra: no folders without tracking, no run ids in its log lines, "[x1,x2]" ---------------


def _file_handlers(cfg: object) -> list[str]:
    from omegaconf import OmegaConf

    handlers = OmegaConf.select(cfg, "hydra.job_logging.handlers") or {}
    return [k for k, h in handlers.items() if "filename" in h]


def test_tracking_none_gives_hydra_no_folder_to_write() -> None:
    plan = cli.preflight(["-m", "estimator=naive,itt", "tracking=none"])
    for cfg in plan.composed:
        assert cfg.hydra.output_subdir is None
        assert (cfg.hydra.run.dir, cfg.hydra.sweep.dir, cfg.hydra.sweep.subdir) == (".",) * 3
        assert _file_handlers(cfg) == []
        assert list(cfg.hydra.job_logging.root.handlers) == ["console"]


def test_tracked_runs_and_placed_folders_keep_hydra_records() -> None:
    (cfg,) = cli.preflight(["estimator=naive"]).composed
    assert cfg.hydra.output_subdir == ".hydra" and _file_handlers(cfg) == ["file"]
    (cfg,) = cli.preflight(["estimator=naive", "tracking=none", "hydra.run.dir=out"]).composed
    assert cfg.hydra.output_subdir == ".hydra" and cfg.hydra.run.dir == "out"


def test_a_submitit_sweep_keeps_the_folder_its_jobs_live_in() -> None:
    plan = cli.preflight(
        ["-m", "hydra/launcher=submitit_local", "estimator=naive", "tracking=none"]
    )
    (cfg,) = plan.composed
    assert cfg.hydra.output_subdir == ".hydra" and cfg.hydra.sweep.dir != "."


def test_hydra_logs_each_job_without_the_parent_run_id() -> None:
    """Hydra's launcher logs each job's overrides (``#0 : ...``): the plan's jobs."""
    plan = cli.preflight(["-m", "estimator=naive,itt"])
    assert plan.jobs == (("estimator=naive",), ("estimator=itt",))
    assert not any("parent_run_id" in str(cfg) for cfg in plan.composed)


@pytest.mark.parametrize("prefix", ["", "+"])
def test_a_comma_list_without_brackets_says_to_write_brackets(prefix: str) -> None:
    item = f"{prefix}data.roles.covariates=x1,x2"
    with pytest.raises(ConfigError) as info:
        cli.preflight(["data=csv", item])
    assert str(info.value) == (
        "data.roles.covariates: expected a list in brackets, data.roles.covariates=[x1,x2] "
        "(or -m to sweep over the values), got 'x1,x2'"
    )
    with pytest.raises(ConfigError, match=r"data\.roles\.covariates=\[x1,x2\]"):
        compose(["data=csv", item])


# -- Excel and non-parquet files ---------------------------------------------------------------


def _excel_like(path: Path) -> Path:
    path.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)  # a zip archive, as .xlsx are
    return path


@pytest.mark.parametrize("name", ["sales.xlsx", "sales.csv", "sales.XLS"])
def test_an_excel_workbook_as_csv_says_to_save_it_as_csv(tmp_path: Path, name: str) -> None:
    path = _excel_like(tmp_path / name)
    with pytest.raises(DataError) as info:
        CsvSource(FileParams(path=str(path), roles={"outcome": "y"})).load()
    msg = str(info.value)
    assert msg.startswith("data.path: expected a CSV file (save the workbook as CSV or parquet")
    assert msg.endswith(f"got {path}, which looks like an Excel workbook")
    assert "utf-8" not in msg.lower() and "\n" not in msg


def test_a_zipped_csv_is_still_read(tmp_path: Path) -> None:
    path = tmp_path / "t.csv.zip"
    pd.DataFrame({"y": [1.0, 2.0]}).to_csv(path, index=False)
    ds = CsvSource(FileParams(path=str(path), roles={"outcome": "y"})).load()
    assert ds.frame["y"].tolist() == [1.0, 2.0]


def test_parquet_given_another_file_says_so(tmp_path: Path) -> None:
    csv = tmp_path / "t.parquet"
    csv.write_text("y\n1\n")
    with pytest.raises(DataError, match=r"expected a parquet file \(it starts with PAR1; a CSV"):
        ParquetSource(FileParams(path=str(csv), roles={"outcome": "y"})).load()
    xlsx = _excel_like(tmp_path / "t.xlsx")
    with pytest.raises(DataError, match="which looks like an Excel workbook"):
        ParquetSource(FileParams(path=str(xlsx), roles={"outcome": "y"})).load()
    good = tmp_path / "g.parquet"
    pd.DataFrame({"y": [1.0]}).to_parquet(good)
    assert ParquetSource(FileParams(path=str(good), roles={"outcome": "y"})).load().frame[
        "y"
    ].tolist() == [1.0]


def test_every_estimand_is_shown_in_words() -> None:
    from causalkit.contracts import Estimand
    from causalkit.results import estimand_text

    shown = {e.value: estimand_text(e.value) for e in Estimand}
    assert shown["ITT"] == "ITT (effect of being assigned to treatment)"
    assert shown["CACE"] == "CACE (average effect on the compliers)"
    assert all(text.startswith(f"{name} (") for name, text in shown.items())


def test_ctrl_c_while_the_command_line_imports_is_one_line(tmp_path: Path) -> None:
    """A KeyboardInterrupt raised while ``python -m causalkit`` imports its command line (as
    Ctrl-C in the first second does) prints one line and exits 130, no traceback."""
    import subprocess
    import sys

    script = (
        "import runpy, sys\n"
        "class Stop:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'causalkit.composition':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Stop())\n"
        "runpy.run_module('causalkit', run_name='__main__')\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert (p.returncode, p.stdout) == (130, "")
    assert p.stderr == "causalkit: interrupted while starting; nothing was run\n"
