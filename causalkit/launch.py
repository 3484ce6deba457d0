"""Launching a validated plan as Hydra does: its run folder, or its configured launcher over a sweep.

Hydra's public pieces only (``hydra.core``, ``hydra.plugins``, ``hydra.types``): the launcher
gets each cell's composed config from the plan instead of composing it again.
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
import threading
from collections.abc import Callable, Sequence
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
from causalkit.errors import CausalkitError, ConfigError
from causalkit.executors import Executor
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
    """The process that built the task; a launcher's worker process started by it exits when it dies."""

    def __call__(self, cfg: Any) -> Exception | None:
        """Execute the cell; a single run returns its error, a sweep reports it and goes on.

        A worker of the owner (joblib's) watches it, and exits at once if the owner is already
        gone; a submitit job (``SUBMITIT_EXECUTOR`` set: started by submitit's controller, or
        by SLURM on another machine) does not.
        """
        if os.getpid() != self.owner_pid and "SUBMITIT_EXECUTOR" not in os.environ:
            from causalkit.montecarlo import exit_with_parent

            exit_with_parent(self.owner_pid)
        return self.run(int(HydraConfig.get().job.num) if self.multirun else 0)

    def run(
        self,
        num: int,
        executor: Executor | None = None,
        progress: Callable[[int, int], None] | None = None,
        output: threading.Lock | None = None,
    ) -> Exception | None:
        """Execute cell ``num`` (on ``executor``, telling ``progress``); print under ``output``."""
        from causalkit.runner import execute, varying_axes

        axes = _axes(self.jobs[num])
        lock = output if output is not None else contextlib.nullcontext()

        def say(line: str) -> None:
            with lock:
                print(line)

        try:
            result = execute(
                self.cells[num],
                axes,
                self.session,
                self.start_dir,
                parent_run_id=self.parent_run_id,
                sweep_cell=num if self.multirun else None,
                notice=(lambda line: say(f"[cell {num}] {line}")) if self.multirun else say,
                executor=executor,
                progress=progress,
                varying=varying_axes(self.jobs) if self.multirun else None,
            )
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            if not self.multirun:
                return exc
            shown = str(exc) if isinstance(exc, CausalkitError) else f"{type(exc).__name__}: {exc}"
            with lock:
                print(f"causalkit: cell {num} FAILED: {shown}", file=sys.stderr)
            return None
        shown = ", ".join(f"{k}={v}" for k, v in axes.items() if not k.startswith("tracking."))
        say((f"[cell {num}] {shown}\n" if self.multirun else "") + str(result.summary()))
        return None


class _SweepProgress:
    """One bar over the replications of every cell of a sweep (cells report as chunks finish)."""

    def __init__(self, cells: Sequence[RunConfig]) -> None:
        from causalkit.progress import bar

        self.lock = threading.Lock()
        self.done = [0] * len(cells)
        self.total = [c.mc.max_reps or c.mc.reps for c in cells]
        self.bar = bar(sum(self.total), "replications (sweep)")

    def cell(self, num: int) -> Callable[[int, int], None]:
        """Return cell ``num``'s progress callback."""

        def update(done: int, total: int) -> None:
            with self.lock:
                self.done[num], self.total[num] = done, total
                if self.bar is not None:
                    self.bar.total = sum(self.total)
                    self.bar.update(sum(self.done) - self.bar.n)

        return update

    def close(self) -> None:
        """Close the bar."""
        if self.bar is not None:
            self.bar.close()


def _launch_on_dask(plan: Plan, task: CellTask) -> None:
    """Run a sweep's cells concurrently from this process, their replications on one Dask cluster.

    Every cell submits all its chunks at once, so many small cells keep every worker busy;
    this process stays the only MLflow writer. Hydra's launcher is not used: the cluster is
    the launcher. Ctrl-C stops every cell (their runs end KILLED) and then propagates.
    """
    from concurrent.futures import ThreadPoolExecutor

    from causalkit.executors import DaskExecutor

    cells = plan.cells
    output = threading.Lock()
    progress = _SweepProgress(cells)
    with DaskExecutor(cells[0].mc, task.session.registry) as executor:
        _ = executor.client  # start (or reach) the cluster and check the workers' code once
        threads = min(len(cells), max(4, 2 * executor.workers))
        with ThreadPoolExecutor(threads, thread_name_prefix="causalkit-cell") as pool:
            futures = [
                pool.submit(task.run, num, executor, progress.cell(num), output)
                for num in range(len(cells))
            ]
            try:
                for future in futures:
                    future.result()
            except BaseException:
                executor.stop()
                for future in futures:
                    future.cancel()
                raise
            finally:
                progress.close()


def _dask_sweep(plan: Plan) -> bool:
    """Whether the plan is a sweep on ``mc.executor=dask`` (one executor and address for every cell)."""
    choices = {(c.mc.executor, c.mc.address, c.mc.n_jobs) for c in plan.cells}
    if len(choices) > 1 and any(executor == "dask" for executor, _, _ in choices):
        raise ConfigError(
            "mc.executor",
            "one executor, address and n_jobs for every cell of a sweep",
            sorted(choices),
        )
    if not plan.multirun or plan.cells[0].mc.executor != "dask":
        return False
    launcher = OmegaConf.select(plan.composed[0], "hydra.launcher._target_") or ""
    if launcher and not str(launcher).endswith("BasicLauncher"):
        raise ConfigError(
            "hydra/launcher",
            "the basic launcher with mc.executor=dask (the Dask cluster runs every cell's replications)",
            str(launcher).rsplit(".", 1)[-1],
        )
    return True


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
    if _dask_sweep(plan):
        _launch_on_dask(plan, task)
        return
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
    if master.hydra.output_subdir is not None:  # null: tracking=none, Hydra writes nothing
        sweep_dir = Path(str(master.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(master, sweep_dir / "multirun.yaml")
    launcher.launch([list(job) for job in plan.jobs], initial_job_idx=0)
    callbacks.on_multirun_end(config=master, config_name="config")
