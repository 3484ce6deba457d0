"""One validated plan: the command line composes and validates each cell once and never rewrites ``sys.argv``.

Reference for the launch: what ``hydra.main`` does with the same command line (run folder with
``.hydra/``, ``multirun.yaml`` and one folder per job for a sweep, the sweep's job overrides
in Hydra's basic-sweeper order).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from causalkit import cli
from causalkit.config import TrackingConfig, validate
from causalkit.errors import ConfigError


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Hydra configures logging for a job (as it does under ``hydra.main``); put it back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
            h.close()
    root.setLevel(level)


def test_main_leaves_sys_argv_alone(
    workdir: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    before = list(sys.argv)
    # tracking=none writes nothing unless Hydra's run folder is placed explicitly
    cli.main(["estimator=itt", "mc.reps=3", "tracking=none", "hydra.run.dir=runs/hydra/a/b"])
    assert sys.argv == before
    assert "causalkit Monte Carlo cell: itt" in capsys.readouterr().out
    (run_dir,) = (workdir / "runs" / "hydra").glob("*/*")
    assert (run_dir / ".hydra" / "overrides.yaml").read_text().split() == [
        "-",
        "estimator=itt",
        "-",
        "mc.reps=3",
        "-",
        "tracking=none",
    ]
    cli.main(["--cfg", "job", "estimator=naive"])
    assert sys.argv == before and "name: naive" in capsys.readouterr().out


def test_sweep_launches_each_planned_cell_once(
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    composed: list[tuple[str, ...]] = []
    real = cli.compose_node

    def counting(overrides, hydra_node):  # type: ignore[no-untyped-def]
        composed.append(tuple(overrides))
        return real(overrides, hydra_node)

    monkeypatch.setattr(cli, "compose_node", counting)
    sweep_dir = "hydra.sweep.dir=runs/hydra/multirun/a/b"  # tracking=none alone writes nothing
    cli.main(["-m", "estimator=naive,itt", "mc.reps=2", "tracking=none", sweep_dir])
    out = capsys.readouterr().out
    assert (
        "[cell 0] estimator=naive, mc.reps=2" in out and "[cell 1] estimator=itt, mc.reps=2" in out
    )
    assert (
        len(composed) == 2
    )  # each cell composed once: no second composition by a re-entered Hydra
    (sweep,) = (workdir / "runs" / "hydra" / "multirun").glob("*/*")
    assert (
        (sweep / "multirun.yaml").exists()
        and (sweep / "0" / ".hydra").is_dir()
        and (sweep / "1").is_dir()
    )


def test_preset_sweep_axes_come_first_and_the_command_line_wins() -> None:
    plan = cli.preflight(["-m", "experiment=selection_study", "tracking=none"])
    assert plan.multirun and len(plan.cells) == len(plan.jobs) > 1
    keys = [[item.split("=", 1)[0] for item in job] for job in plan.jobs]
    assert all(
        k[-2:] == ["experiment", "tracking"] for k in keys
    )  # the preset's axes first, as Hydra's sweeper
    one = cli.preflight(
        [
            "-m",
            "experiment=selection_study",
            f"{keys[0][0]}={plan.jobs[0][0].split('=', 1)[1]}",
            "tracking=none",
        ]
    )
    assert len(one.cells) < len(plan.cells)  # a command-line value replaces the preset's axis


def test_parent_run_is_state_not_config(tmp_path: Path) -> None:
    from causalkit.runner import execute
    from causalkit.tracking import MlflowTracker

    assert "parent_run_id" not in TrackingConfig.model_fields
    with pytest.raises(ConfigError, match="tracking.parent_run_id"):
        cli.preflight(["+tracking.parent_run_id=abc"])
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = validate(cli.compose(["estimator=itt", f"tracking.uri={uri}"]))
    tracker = MlflowTracker(cfg.tracking, tmp_path)
    parent = tracker.start_run("sweep", {}, {"causalkit.sweep": "1"})
    execute(cfg, {"estimator": "itt"}, start_dir=tmp_path, parent_run_id=parent)
    (child,) = [
        r for r in tracker.client.search_runs([tracker.experiment_id()]) if r.info.run_id != parent
    ]
    assert child.data.tags["mlflow.parentRunId"] == parent


def test_bad_flag_is_one_line() -> None:
    with pytest.raises(ConfigError, match="command line") as info:
        cli.preflight(["--info"])
    assert "\n" not in str(info.value)
