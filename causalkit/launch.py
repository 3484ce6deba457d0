"""Launching a validated plan as Hydra does: its run folder, or its configured launcher over a sweep.

Hydra's public pieces only (``hydra.core``, ``hydra.plugins``, ``hydra.types``): the launcher
gets each cell's composed config from the plan instead of composing it again.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_loader import ConfigLoader
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.core.utils import configure_log, run_job, setup_globals
from hydra.types import HydraContext
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from causalkit.cli import Plan
from causalkit.config import RunConfig
from causalkit.errors import CausalkitError
from causalkit.session import Session

__all__ = ["CellTask", "launch"]


class _PlanLoader(ConfigLoader):
    """Hand Hydra's launcher each planned cell's composed config instead of composing it again."""

    def __init__(self, plan: Plan) -> None:
        self.jobs = dict(zip(plan.jobs, plan.composed, strict=True))

    def load_sweep_config(self, master_config: Any, sweep_overrides: list[str]) -> Any:
        """Return the planned config of the job with these overrides (a copy)."""
        cfg = copy.deepcopy(self.jobs[tuple(sweep_overrides)])
        OmegaConf.copy_cache(
            from_config=master_config, to_config=cfg
        )  # one ${now:} per sweep, as Hydra's
        return cfg

    def load_configuration(self, *args: Any, **kwargs: Any) -> Any:
        """Refuse: a planned run composes nothing further."""
        raise NotImplementedError("a planned run composes nothing further")

    get_search_path = get_sources = list_groups = get_group_options = compute_defaults_list = (
        load_configuration
    )


class _Callbacks:
    """Hydra's job and run callbacks configured under ``hydra.callbacks`` (none by default)."""

    def __init__(self, cfg: Any) -> None:
        found = OmegaConf.select(cfg, "hydra.callbacks") or {}
        self.callbacks = [instantiate(c) for c in found.values()]

    def _notify(self, hook: str, reverse: bool = False, **kwargs: Any) -> None:
        for c in reversed(self.callbacks) if reverse else self.callbacks:
            getattr(c, hook)(**kwargs)

    def on_run_start(self, **kwargs: Any) -> None:  # noqa: D102 - Hydra's callback protocol
        self._notify("on_run_start", **kwargs)

    def on_run_end(self, **kwargs: Any) -> None:  # noqa: D102
        self._notify("on_run_end", reverse=True, **kwargs)

    def on_multirun_start(self, **kwargs: Any) -> None:  # noqa: D102
        self._notify("on_multirun_start", **kwargs)

    def on_multirun_end(self, **kwargs: Any) -> None:  # noqa: D102
        self._notify("on_multirun_end", reverse=True, **kwargs)

    def on_job_start(self, **kwargs: Any) -> None:  # noqa: D102
        self._notify("on_job_start", **kwargs)

    def on_job_end(self, **kwargs: Any) -> None:  # noqa: D102
        self._notify("on_job_end", reverse=True, **kwargs)


def _axes(job: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in job:
        key, _, value = item.partition("=")
        out[key.lstrip("+~")] = value
    return out


@dataclass(frozen=True)
class CellTask:
    """Hydra's task function: runs the planned cell the launcher hands it (sent whole to workers).

    The sweep's parent run is state of this run, not configuration: it travels here.
    """

    cells: tuple[RunConfig, ...]
    jobs: tuple[tuple[str, ...], ...]
    multirun: bool
    session: Session
    start_dir: Path
    parent_run_id: str | None
    owner_pid: int = field(default_factory=os.getpid)
    """The process that built the task; a launcher's worker (another pid) exits when it dies."""

    def __call__(self, cfg: Any) -> Exception | None:
        """Execute the cell; a single run returns its error, a sweep reports it and goes on."""
        from causalkit.runner import execute

        if os.getpid() != self.owner_pid:
            from causalkit.montecarlo import exit_with_parent

            exit_with_parent(self.owner_pid)
        num = int(HydraConfig.get().job.num) if self.multirun else 0
        axes = _axes(self.jobs[num])
        try:
            result = execute(
                self.cells[num],
                axes,
                self.session,
                self.start_dir,
                parent_run_id=self.parent_run_id,
                sweep_cell=num if self.multirun else None,
                notice=print,
            )
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            if not self.multirun:
                return exc
            shown = str(exc) if isinstance(exc, CausalkitError) else f"{type(exc).__name__}: {exc}"
            print(f"causalkit: cell {num} FAILED: {shown}", file=sys.stderr)
            return None
        if self.multirun:
            print(
                f"[cell {num}] "
                + ", ".join(f"{k}={v}" for k, v in axes.items() if not k.startswith("tracking."))
            )
        print(result.summary())
        return None


def launch(plan: Plan, task: CellTask) -> None:
    """Run the plan as Hydra does: a run directory, or the configured launcher over the jobs.

    Parameters
    ----------
    plan : Plan
        The validated cells and their composed configs.
    task : CellTask
        What each job runs.

    Raises
    ------
    Exception
        A single run's error (a sweep's cells report theirs and the sweep goes on).
    """
    setup_globals()
    first = plan.composed[0]
    callbacks = _Callbacks(first)
    context = HydraContext(config_loader=_PlanLoader(plan), callbacks=callbacks)  # type: ignore[arg-type]
    if not plan.multirun:
        cfg = copy.deepcopy(first)
        configure_log(cfg.hydra.hydra_logging, cfg.hydra.verbose)
        callbacks.on_run_start(config=cfg, config_name="config")
        ret = run_job(
            hydra_context=context,
            task_function=task,
            config=cfg,
            job_dir_key="hydra.run.dir",
            job_subdir_key=None,
        )
        callbacks.on_run_end(config=cfg, config_name="config", job_return=ret)
        error = (
            ret.return_value
        )  # the task hands a single run's error back (no "Error executing job" banner)
        if isinstance(error, Exception):
            raise error
        return
    master = copy.deepcopy(first)
    with open_dict(master):
        master.hydra.overrides.task = list(plan.overrides)
    callbacks.on_multirun_start(config=master, config_name="config")
    launcher = Plugins.instance().instantiate_launcher(
        hydra_context=context, task_function=task, config=master
    )
    sweep_dir = Path(str(master.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(master, sweep_dir / "multirun.yaml")
    launcher.launch([list(job) for job in plan.jobs], initial_job_idx=0)
    callbacks.on_multirun_end(config=master, config_name="config")
