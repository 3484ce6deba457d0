"""MLflow tracking: the store, sweep parent runs, one run per cell, metrics and artifacts."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import socket
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from causalkit.config import RunConfig, TrackingConfig
from causalkit.errors import CausalkitError, ConfigError
from causalkit.identity import CellIdentity
from causalkit.results import EFFECT_COLUMNS, CellResult, EffectResult
from causalkit.store import check_sqlite_store, rehome_artifacts, seed_sqlite_store

__all__ = ["default_uri", "MlflowTracker", "SWEEP_TAG", "REUSED_TAG"]

SWEEP_TAG = "causalkit.sweep"
REUSED_TAG = "causalkit.reused_from"
"""Tag of a sweep's cell read back from an earlier run: that run's id (where its artifacts are)."""
_RESULT_TAGS = ("diag.", "causalkit.estimand", "causalkit.truth_estimand", "causalkit.warnings")
HEARTBEAT_TAG = "causalkit.heartbeat"
"""Tag of a running cell's run: the Unix time it last showed it is alive."""
HEARTBEAT_EVERY = 60.0
"""Seconds between heartbeats."""
STALE_AFTER = 900.0
"""A RUNNING run of another host without a heartbeat for this long is dead (clocks may differ)."""
CLAIM_TAG = "causalkit.claimed_at"
"""Tag of a cell's claim: the Unix time, read once the run was stored, that orders identical claims.

A run's ``start_time`` is read before the run is stored, so a claim stored later can carry an
earlier start time than one another process already saw alone; this time cannot.
"""
_log = logging.getLogger(__name__)
_PROBE_SECONDS = 5.0
_STORE = "a reachable, writable MLflow store"


def default_uri(start_dir: Path | None = None) -> str:
    """``sqlite:///<start dir>/runs/mlflow.db`` (absolute, so later chdirs cannot move it)."""
    root = (start_dir or Path.cwd()).resolve()
    return f"sqlite:///{root / 'runs' / 'mlflow.db'}"


def _quiet() -> None:
    for name in ("alembic", "mlflow.tracking", "mlflow.store"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # It logs a store error with its traceback before raising it; the user gets it as one line.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _first_line(exc: BaseException) -> str:
    """Return the first line of the error's root cause (SQLite's or the OS's words)."""
    cause: BaseException | None = exc
    while cause is not None:
        exc = cause
        cause = getattr(exc, "orig", None) or exc.__cause__
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _probe(uri: str) -> None:
    """Refuse, within seconds, an ``http(s)`` tracking server nobody answers at.

    MLflow's own client retries a refused connection for minutes (its backoff); one TCP
    connection with a short timeout tells a server that is not there at once. Skipped when
    a proxy carries the traffic. The message names scheme, host and port only (no credentials).
    """
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return
    if parts.scheme in urllib.request.getproxies() and not urllib.request.proxy_bypass(
        parts.hostname
    ):
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=_PROBE_SECONDS).close()
    except OSError as exc:
        reason = exc.strerror or (
            f"no answer within {_PROBE_SECONDS:g} s" if isinstance(exc, TimeoutError) else str(exc)
        )
        raise ConfigError(
            "tracking.uri",
            "a reachable MLflow tracking server",
            f"{parts.scheme}://{parts.hostname}:{port} ({reason})",
        ) from None


def _finite(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


class MlflowTracker:
    """Logs causalkit runs to MLflow through an explicit ``MlflowClient`` (no fluent global state)."""

    def __init__(self, cfg: TrackingConfig, start_dir: Path | None = None) -> None:
        _quiet()
        from mlflow.tracking import MlflowClient

        self.cfg = cfg
        self.start_dir = (start_dir or Path.cwd()).resolve()
        self.uri = cfg.uri or os.environ.get("MLFLOW_TRACKING_URI") or default_uri(self.start_dir)
        self.artifacts: Path | None = None
        if self.uri.startswith("sqlite:///"):
            self._open_sqlite(Path(self.uri[len("sqlite:///") :]))
        else:
            _probe(self.uri)
        self.client = MlflowClient(tracking_uri=self.uri)
        self._exp_id: str | None = None

    def _open_sqlite(self, db: Path) -> None:
        """Create the local store atomically, or check it; point a copied store's artifacts here.

        Its experiments keep their artifacts in ``artifacts`` beside the store file, so a
        project folder copied with its ``runs/`` writes into the copy.
        """
        folder = db.parent
        if folder.exists() and not folder.is_dir():
            raise ConfigError(
                "tracking.uri",
                f"a directory at {folder} for the MLflow store",
                "a regular file",
            )
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                "tracking.uri",
                "a writable MLflow store location",
                f"{self.uri} ({exc.strerror})",
            ) from None
        # SQLite writes its journal beside the store: the folder must be writable too.
        for path in (folder, db):
            if path.exists() and not os.access(path, os.W_OK):
                raise ConfigError(
                    "tracking.uri",
                    "a writable MLflow store (make it writable or set tracking.uri elsewhere)",
                    f"{path} (read-only)",
                )
        if not seed_sqlite_store(db):
            check_sqlite_store(db)
        self.artifacts = folder / "artifacts"
        with self._store("pointing the copied store's artifacts at its folder"):
            rehome_artifacts(db, self.artifacts)

    @contextlib.contextmanager
    def _store(
        self, action: str, kinds: tuple[type[Exception], ...] = (Exception,)
    ) -> Iterator[None]:
        """Turn a failing store call (unreachable, read-only, full, damaged) into one line."""
        try:
            yield
        except CausalkitError:
            raise
        except kinds as exc:
            raise ConfigError(
                "tracking.uri",
                _STORE,
                self.cfg.redactions.text(f"{self.uri} ({action}: {_first_line(exc)})"),
            ) from None

    def experiment_id(self) -> str:
        """Return the experiment's id, created once (artifacts beside a SQLite store)."""
        if self._exp_id is not None:
            return self._exp_id
        with self._store("opening the experiment"):
            self._exp_id = self._experiment_id()
        return self._exp_id

    def _experiment_id(self) -> str:
        exp = self.client.get_experiment_by_name(self.cfg.experiment)
        if exp is not None:
            return str(exp.experiment_id)
        location = None if self.artifacts is None else self.artifacts.resolve().as_uri()
        try:
            # The kind tag opens the MLflow UI on its "Model training" runs table, not the GenAI view.
            return str(
                self.client.create_experiment(
                    self.cfg.experiment,
                    artifact_location=location,
                    tags={"mlflow.experimentKind": "custom_model_development"},
                )
            )
        except Exception:  # created concurrently by another process
            exp = self.client.get_experiment_by_name(self.cfg.experiment)
            if exp is None:
                raise
            return str(exp.experiment_id)

    def start_run(
        self,
        name: str,
        params: dict[str, str],
        tags: dict[str, str],
        parent_id: str | None = None,
        claim: bool = False,
    ) -> str:
        """Open a run (a child of ``parent_id`` when given) with its params and tags; return its id.

        With ``claim``, the run is a cell's claim: :data:`CLAIM_TAG` is written with its
        parameters, after the run is stored (see :func:`causalkit.runner.execute`).
        """
        from mlflow.entities import Param, RunTag

        all_tags = {
            **tags,
            "causalkit.pid": str(os.getpid()),
            "causalkit.host": socket.gethostname(),
        }
        if parent_id:
            all_tags["mlflow.parentRunId"] = parent_id
        hide = self.cfg.redactions.text
        all_tags = {k: hide(v) for k, v in all_tags.items()}
        exp_id = self.experiment_id()
        with self._store("opening a run"):
            run_id = str(
                self.client.create_run(exp_id, run_name=hide(name), tags=all_tags).info.run_id
            )
        claimed = [RunTag(CLAIM_TAG, f"{time.time():.6f}")] if claim else []
        try:
            with self._store("logging the run's parameters"):
                if params or claimed:
                    self.client.log_batch(
                        run_id,
                        params=[Param(k, hide(str(v))[:6000]) for k, v in params.items()],
                        tags=claimed,
                    )
        except ConfigError as exc:
            self.end_run(run_id, "FAILED", error=str(exc))
            raise
        return run_id

    def log_reused(
        self, previous: Any, name: str, params: dict[str, str], tags: dict[str, str], parent_id: str
    ) -> str:
        """Record a cell read back from ``previous`` as a FINISHED child of ``parent_id``; return its id.

        A light run, so that the sweep's tree in the MLflow UI holds every cell of its report:
        the cell's name, parameters and ``tags``, ``previous``'s metrics and result tags, and
        :data:`REUSED_TAG` naming ``previous``, whose artifacts it uses
        (:meth:`run_artifacts`). ``tags`` should carry no identity: the run is never read back
        itself, a later run reuses ``previous``.
        """
        source = previous.info.run_id
        kept = {k: v for k, v in previous.data.tags.items() if k.startswith(_RESULT_TAGS)}
        note = (
            f"Reused: this cell already finished in run {source}; its metrics are copied here, "
            "its files stay with that run."
        )
        tags = {**tags, **kept, REUSED_TAG: source, "mlflow.note.content": note}
        run_id = self.start_run(name, params, tags, parent_id)
        try:
            self._log(run_id, dict(previous.data.metrics))
        except ConfigError as exc:
            self.end_run(run_id, "FAILED", error=str(exc))
            raise
        self.end_run(run_id, "FINISHED")
        return run_id

    def cell_runs(self, identity: str) -> list[Any]:
        """Return the runs of the cell with this identity, newest first, its dead RUNNING ones marked KILLED.

        One search. A RUNNING run is dead when its process is gone (same host) or, on another
        host, when its heartbeat (:data:`HEARTBEAT_TAG`) is older than :data:`STALE_AFTER`
        seconds (a node that died, a job killed without SIGTERM).
        """
        with self._store("looking for the cell's runs"):
            runs = self.client.search_runs(
                [self.experiment_id()],
                f"tags.`causalkit.identity` = '{identity}'",
                order_by=["attributes.start_time DESC"],
                max_results=1000,
            )
        dead = self._reap(r for r in runs if r.info.status == "RUNNING")
        return [r for r in runs if r.info.run_id not in dead]

    @staticmethod
    def finished(runs: Iterable[Any], cfg: RunConfig) -> Any | None:
        """Return the first FINISHED run in ``runs`` with ``cfg``'s replications and kind."""
        kind = "cell" if cfg.mc.reps > 1 else "single"
        for run in runs:
            if run.info.status != "FINISHED":
                continue
            reps = run.data.metrics.get("reps", 1.0)
            # a planned cell's identity holds its plan, which fixes where it stopped
            same_reps = cfg.mc.max_reps is not None or int(reps) == cfg.mc.reps
            if same_reps and run.data.tags.get("causalkit.kind") == kind:
                return run
        return None

    def find_finished(self, cfg: RunConfig, identity: str) -> Any | None:
        """Mark this cell's dead RUNNING runs KILLED; return its latest FINISHED run, if any.

        A FINISHED run counts when it has the same identity
        (:func:`causalkit.identity.cell_identity`: config hash, input files and code) and the
        same number of replications. One search serves both (:meth:`cell_runs`).
        """
        return self.finished(self.cell_runs(identity), cfg)

    def close_interrupted(self, parent_id: str, signum: int) -> None:
        """Close the sweep's cells still RUNNING after an interruption as KILLED, with their counts.

        Their worker processes (``hydra/launcher=joblib``) were stopped with the sweep before
        they could close their runs; each run's message counts the replications in its
        cell's checkpoint, which a rerun reuses.
        """
        from causalkit.checkpoint import Checkpoint
        from causalkit.errors import Interrupted

        with self._store("looking for the sweep's open cells"):
            runs = self.client.search_runs(
                [self.experiment_id()],
                f"tags.mlflow.parentRunId = '{parent_id}' and attributes.status = 'RUNNING'",
                max_results=1000,
            )
        for run in runs:
            tags = run.data.tags
            total = int(tags.get("causalkit.reps", "1"))
            saved = None
            if total > 1 and tags.get("causalkit.identity"):
                folder = Checkpoint.for_cell(self.start_dir, tags["causalkit.identity"])
                saved = len(folder.load())
            # Without a checkpoint the replications it had done are unknown: say no count.
            stopped = (
                Interrupted(signum) if saved is None else Interrupted(signum, saved, total, saved)
            )
            self.end_run(run.info.run_id, "KILLED", error=str(stopped))

    def reap(self, filter_string: str) -> int:
        """Mark RUNNING runs whose process died (same host, pid gone; elsewhere, no heartbeat) as KILLED."""
        exp_id = self.experiment_id()
        with self._store("looking for runs left RUNNING"):
            runs = self.client.search_runs(
                [exp_id], f"{filter_string} and attributes.status = 'RUNNING'", max_results=1000
            )
        return len(self._reap(runs))

    def _reap(self, running: Iterable[Any]) -> set[str]:
        """Mark the dead among these RUNNING runs KILLED (:meth:`_dead`); return their ids."""
        dead = [run for run in running if self._dead(run)]
        for run in dead:
            self._kill(run)
        return {run.info.run_id for run in dead}

    @staticmethod
    def _dead(run: Any) -> bool:
        tags = run.data.tags
        pid = tags.get("causalkit.pid")
        if tags.get("causalkit.host") == socket.gethostname():
            return bool(pid) and not _alive(int(pid))
        beat = float(tags.get(HEARTBEAT_TAG, run.info.start_time / 1000))
        return time.time() - beat > STALE_AFTER

    def _kill(self, run: Any) -> None:
        tags = run.data.tags
        host, pid = tags.get("causalkit.host"), tags.get("causalkit.pid")
        if host == socket.gethostname():
            why = f"process {pid} died before the run ended"
        else:
            why = f"no heartbeat from process {pid} on {host} for over {STALE_AFTER:.0f} s"
        self.end_run(run.info.run_id, "KILLED", error=why)

    @contextlib.contextmanager
    def heartbeat(self, run_id: str, every: float = HEARTBEAT_EVERY) -> Iterator[None]:
        """Tag the run with the time (:data:`HEARTBEAT_TAG`) every ``every`` seconds while the block runs.

        How processes on other hosts tell a live claim from one whose node died.
        """
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(every):
                try:
                    self.set_tags(run_id, {HEARTBEAT_TAG: f"{time.time():.0f}"})
                except ConfigError:  # the store is busy or gone: the run reports that itself
                    pass

        thread = threading.Thread(target=beat, name="causalkit-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        """Set tags on a run."""
        self._log(run_id, {}, tags)

    def end_run(self, run_id: str, status: str = "FINISHED", error: str | None = None) -> None:
        """Close a run with its final status (and the error as tag ``causalkit.error``).

        Closing a run that did not finish is done as far as the store allows and never
        raises (the caller is already reporting the failure); if the store takes no write at
        all, the run stays RUNNING under this process's id and the next run that opens the
        store marks it KILLED. A FINISHED close that fails raises in one line.
        """
        steps = [lambda: self._log(run_id, {}, {"causalkit.error": error})] if error else []
        steps.append(lambda: self.client.set_terminated(run_id, status=status))
        for step in steps:
            try:
                with self._store(f"closing run {run_id} as {status}"):
                    step()
            except ConfigError as exc:
                if status == "FINISHED":
                    raise
                _log.debug("%s", exc)

    def _log(self, run_id: str, values: dict[str, Any], tags: dict[str, Any] | None = None) -> None:
        """Finite numeric ``values`` as metrics and ``tags`` in as few batches as MLflow allows."""
        from mlflow.entities import Metric, RunTag

        ts = int(time.time() * 1000)
        # MLflow names allow only [\w.\- /:]: coef.I(age ** 2), a formula's, is logged coef.I_age __ 2_
        safe = re.compile(r"[^\w.\- /:]").sub
        metrics = [Metric(safe("_", k), float(v), ts, 0) for k, v in values.items() if _finite(v)]
        hide = self.cfg.redactions.text
        run_tags = [RunTag(safe("_", k), hide(str(v))[:5000]) for k, v in (tags or {}).items()]
        with self._store("logging to a run"):
            for i in range(0, max(len(metrics), 1 if run_tags else 0), 900):
                self.client.log_batch(
                    run_id, metrics=metrics[i : i + 900], tags=run_tags if i == 0 else []
                )

    def log_outcome(
        self, run_id: str, cfg: RunConfig, outcome: CellResult, estimator_cls: type | None = None
    ) -> None:
        """Metrics, diagnostics, config.yaml, tables, replications and figures of a cell.

        Figures: the standard ones implied by the result's tables (love plot, overlap, gap
        trajectory, weights) plus whatever the estimator's optional ``figures(tables)`` returns.
        """
        from causalkit.plots import figures_for_tables
        from causalkit.simplots import save_cell_figures

        # a full or read-only disk is one line, whether the temporary files or the store refuse
        with (
            self._store("writing the run's files", (OSError,)),
            tempfile.TemporaryDirectory() as tmp,
        ):
            d = Path(tmp)
            (d / "config.yaml").write_text(yaml.safe_dump(cfg.logged_dict(), sort_keys=False))
            outcome.replications.to_parquet(d / "replications.parquet", index=False)
            if outcome.single is not None:
                res = outcome.single
                flat = res.to_dict()
                core = {
                    k: flat[k]
                    for k in ("estimate", "se", "ci_lower", "ci_upper", "p_value", "truth", "n")
                }
                diag = {k: v for k, v in res.diagnostics.items()}
                text = {f"diag.{k}": v for k, v in diag.items() if isinstance(v, (str, bool))}
                text["causalkit.estimand"] = res.estimand
                if res.warnings:
                    text["causalkit.warnings"] = " | ".join(res.warnings)
                self._log(run_id, {**core, **diag}, text)
                (d / "summary.txt").write_text(str(res.summary()))
                (d / "result.json").write_text(json.dumps(flat, default=str, indent=1))
                for name, table in res.tables.items():
                    table.to_csv(d / f"{name}.csv")
                _write_effect(d / _RESULT_DIR, res, outcome.seconds)
                import matplotlib.pyplot as plt

                figures = figures_for_tables(dict(res.tables))
                hook = (
                    getattr(estimator_cls, "figures", None) if estimator_cls is not None else None
                )
                if callable(hook):
                    figures.update(hook(res.tables))
                for fname, fig in figures.items():
                    fig.savefig(d / fname, dpi=110)
                    plt.close(fig)
            else:
                self._log(
                    run_id,
                    dict(outcome.metrics),
                    {
                        "causalkit.estimand": outcome.estimand,
                        "causalkit.truth_estimand": str(outcome.truth_estimand),
                    },
                )
                (d / "summary.txt").write_text(str(outcome.summary()))
                if outcome.errors:
                    (d / "errors.txt").write_text("\n".join(outcome.errors))
                save_cell_figures(d, outcome)  # estimates.png, intervals.png
            with self._store("storing the run's artifacts"):
                self.client.log_artifacts(run_id, str(d))

    @contextlib.contextmanager
    def run_artifacts(self, run: Any) -> Iterator[Callable[[str], Path]]:
        """Yield ``fetch(path)``, the local path of one of ``run``'s artifacts.

        A local store hands back its own paths (nothing copied); any other store's artifacts
        (an ``mlflow-artifacts:`` URI is served by this tracker's server) are downloaded to a
        temporary folder, removed on exit. A run recorded by :meth:`log_reused` hands back
        those of the run it reused.
        """
        source = run.data.tags.get(REUSED_TAG)
        if source:
            with self._store("reading the reused run"):
                run = self.client.get_run(source)
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
        from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

        repo = get_artifact_repository(run.info.artifact_uri, tracking_uri=self.uri)
        with tempfile.TemporaryDirectory() as tmp:
            dst = None if isinstance(repo, LocalArtifactRepository) else tmp
            yield lambda path: Path(repo.download_artifacts(path, dst))

    def read_back(self, run: Any, cfg: RunConfig) -> CellResult:
        """Return the result of a FINISHED run of cell ``cfg``, as :meth:`log_outcome` stored it.

        A Monte Carlo cell is summarised again from its ``replications.parquet`` (the metrics
        are a function of that table; ``seconds`` is the logged metric); a single replication
        also reads its full effect result back (``result/effect.json`` and its tables), so
        the cell's result equals the one its run returned. A result with a pickled table is
        never loaded (``ValueError``: the caller runs the cell again).
        """
        import pandas as pd

        from causalkit.montecarlo import cell_result

        with self.run_artifacts(run) as fetch:
            table = pd.read_parquet(fetch("replications.parquet"))
            if cfg.mc.reps > 1:
                return cell_result(cfg, table, float(run.data.metrics["seconds"]))
            folder = fetch(_RESULT_DIR)
            if any((folder / "tables").glob("*.pkl")):  # never unpickle what the working dir holds
                raise ValueError(f"{folder} holds a pickled table; not read back")
            single, seconds = _read_effect(folder)
        return cell_result(cfg, table, seconds, single)


_RESULT_DIR = "result"


def _plain(value: Any) -> Any:
    """Return a numpy scalar as its Python value (JSON keeps ``int``, ``float``, ``bool`` and ``str`` apart)."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (str, bytes)) else value


def _write_effect(folder: Path, res: EffectResult, seconds: float) -> None:
    """Store an effect result so that :func:`_read_effect` rebuilds an equal one.

    ``effect.json`` holds every field (floats in JSON round-trip exactly, NaN included);
    each table is a parquet file; a table parquet cannot hold as it is (mixed-type object
    columns) is stored with those columns as text. Nothing is pickled: a stored result is
    read back without running code from the store.
    """
    tables = folder / "tables"
    tables.mkdir(parents=True)
    effects = res.effects
    doc = {
        "seconds": float(seconds),
        "estimator": res.estimator,
        "inference": res.inference,
        "estimand": res.estimand,
        "names": list(res.names),
        "columns": [str(c) for c in effects.columns],
        "values": [[float(v) for v in row] for row in effects.to_numpy()],
        "level": res.level,
        "n": res.n,
        "joint": res.joint,
        "diagnostics": {k: _plain(v) for k, v in res.diagnostics.items()},
        "truth": res.truth,
        "truth_estimand": res.truth_estimand,
        "warnings": list(res.warnings),
        "tables": list(res.tables),
        "cluster": res.cluster,
        "weight": res.weight,
    }
    for i, table in enumerate(res.tables.values()):
        try:
            table.to_parquet(tables / f"{i}.parquet")
        except (ValueError, TypeError, NotImplementedError):
            # pyarrow refuses mixed-type object columns (ArrowInvalid/ArrowTypeError)
            text = {c: "string" for c in table.columns if table[c].dtype == object}
            table.astype(text).to_parquet(tables / f"{i}.parquet")
    (folder / "effect.json").write_text(json.dumps(doc))


def _read_effect(folder: Path) -> tuple[EffectResult, float]:
    """Rebuild the effect result (and the cell's seconds) stored by :func:`_write_effect`."""
    import numpy as np
    import pandas as pd

    doc = json.loads((folder / "effect.json").read_text())
    values = np.full((len(doc["names"]), len(EFFECT_COLUMNS)), np.nan)
    values[:, : len(doc["columns"])] = np.asarray(doc["values"], dtype=float).reshape(
        len(doc["names"]), -1
    )
    tables = {}
    for i, name in enumerate(doc["tables"]):
        stored = folder / "tables" / f"{i}.parquet"
        if not stored.exists():
            raise ValueError(f"{stored} is missing; not read back")
        tables[name] = pd.read_parquet(stored)
    res = EffectResult(
        doc["estimator"],
        doc["inference"],
        doc["estimand"],
        doc["names"],
        values,
        doc["level"],
        doc["n"],
        joint=doc["joint"],
        diagnostics=doc["diagnostics"],
        tables=tables,
        truth=doc["truth"],
        truth_estimand=doc["truth_estimand"],
        warnings=tuple(doc["warnings"]),
        cluster=doc.get("cluster"),  # absent from stores written before it was kept
        weight=doc.get("weight"),
    )
    return res, float(doc["seconds"])


def cell_tags(cfg: RunConfig, identity: CellIdentity | None = None) -> dict[str, str]:
    """Return the tags every run carries: its plugins, config hash, kind, reps and identity."""
    return {
        "causalkit.data": cfg.data.name,
        "causalkit.dgp": cfg.dgp.name,
        "causalkit.estimator": cfg.estimator.name,
        "causalkit.inference": cfg.inference.name,
        "causalkit.config_hash": cfg.cell_hash,
        "causalkit.kind": "cell" if cfg.mc.reps > 1 else "single",
        "causalkit.reps": str(cfg.mc.reps),
        **(identity.tags() if identity is not None else {}),
    }
