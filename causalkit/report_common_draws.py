"""Common random numbers: a sweep's cells compared on the draws every one of them analysed."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from causalkit.errors import ConfigError
from causalkit.performance import paired, summarise
from causalkit.report_runs import CellFiles, cell_runs
from causalkit.report_table import count, coverage_interval

if TYPE_CHECKING:
    from causalkit.tracking import MlflowTracker

__all__ = [
    "COMMON_COLUMNS",
    "common_draws",
    "draw_key",
    "common_draws_tables",
    "render_common_draws",
    "common_draws_section",
]

COMMON_COLUMNS = (
    "reps",
    "n_failed",
    "n_common",
    "bias",
    "bias_mcse",
    "bias_diff",
    "bias_diff_mcse",
    "rmse",
    "rmse_diff",
    "rmse_diff_mcse",
    "rel_precision",
    "rel_precision_mcse",
    "emp_se",
    "mean_se",
    "coverage",
    "coverage_lower",
    "coverage_upper",
    "ci_width",
)
"""Columns of :func:`common_draws` (after ``cell``)."""


def common_draws(cells: Mapping[str, pd.DataFrame], reference: str | None = None) -> pd.DataFrame:
    r"""Compare cells that analysed the same simulated datasets on the draws all of them got through.

    Under ``mc.common_random_numbers`` replication :math:`r` of every cell of a study
    analyses the same draw. Each cell's own metrics are over its own successful replications,
    so cells that fail on different draws (typically the hard ones) are compared on different
    datasets. Here every cell is summarised (:func:`causalkit.montecarlo.summarise`) on
    :math:`C`, the replications that succeeded in *every* cell (``n_common`` = :math:`|C|`),
    beside its own ``reps`` and ``n_failed``. ``bias_diff`` is the paired difference of bias
    to the first cell, :math:`\overline{(\hat\theta_{ir}-\theta_i)-(\hat\theta_{1r}-\theta_1)}`
    over :math:`r \in C`, with MCSE :math:`\mathrm{sd}_r(\cdot)/\sqrt{|C|}`, which is
    smaller than the unpaired one by the correlation the common draws induce; ``rmse_diff``
    and ``rel_precision`` (% gain in precision) against the same reference carry paired MCSEs
    too (:func:`causalkit.performance.paired`, on the errors
    :math:`\hat\theta_{ir}-\theta_i`).

    Parameters
    ----------
    cells : mapping of str to DataFrame
        Cell name to its replications table (``replication``, ``estimate``, ``se``,
        ``ci_lower``, ``ci_upper``, ``truth``, ``error``), in display order.
    reference : str, optional
        The cell the others are compared with (default the first).

    Returns
    -------
    DataFrame
        One row per cell: ``cell`` and :data:`COMMON_COLUMNS`.

    Raises
    ------
    ConfigError
        A reference that names no cell.
    """
    if reference is not None and reference not in cells:
        raise ConfigError("--reference", f"one of the cells {', '.join(cells)}", reference)

    ok: dict[str, pd.DataFrame] = {}
    for name, table in cells.items():
        failed = table["error"].notna() if "error" in table else pd.Series(False, table.index)
        ok[name] = table[~failed.to_numpy()].set_index("replication")
    common = sorted(set.intersection(*(set(t.index) for t in ok.values()))) if ok else []
    measures: dict[str, dict[str, float]] = {}
    errors: dict[str, np.ndarray] = {}
    for name in cells:
        sub = ok[name].loc[common]
        col = {c: sub[c].to_numpy(dtype=float) for c in ("estimate", "se", "ci_lower", "ci_upper")}
        truths = sub["truth"].dropna() if "truth" in sub else pd.Series(dtype=float)
        truth = float(truths.iloc[0]) if len(truths) else None
        measures[name] = summarise(
            col["estimate"], col["se"], col["ci_lower"], col["ci_upper"], truth
        )
        errors[name] = col["estimate"] - (truth if truth is not None else np.nan)
    ref_err = errors[reference if reference is not None else next(iter(cells))] if cells else None
    rows = []
    for name, table in cells.items():
        assert ref_err is not None
        row = {
            "cell": name,
            "reps": len(table),
            "n_failed": len(table) - len(ok[name]),
            "n_common": len(common),
            **measures[name],
            **paired(errors[name], ref_err, 0.0),
        }
        rows.append({k: row.get(k, np.nan) for k in ("cell", *COMMON_COLUMNS)})
    return pd.DataFrame(rows, columns=["cell", *COMMON_COLUMNS])


def draw_key(config: Mapping) -> str | None:
    """Return what defines a cell's draws under common random numbers (data, dgp, seed), or ``None``."""
    mc = config.get("mc", {})
    if not mc.get("common_random_numbers") or int(mc.get("reps", 1)) < 2:
        return None
    return json.dumps(
        {"data": config.get("data"), "dgp": config.get("dgp"), "seed": mc.get("seed")},
        sort_keys=True,
        default=str,
    )


def common_draws_tables(
    tracker: MlflowTracker,
    sweep_id: str,
    reference: str | None = None,
    files: CellFiles | None = None,
) -> list[pd.DataFrame]:
    """One :func:`common_draws` table per group of a sweep's cells that share their draws.

    Only Monte Carlo cells run with ``mc.common_random_numbers`` take part; a group needs at
    least two cells. Each cell's ``config.yaml`` and ``replications.parquet`` are read back
    from its run's artifacts, through ``files`` when given (a report shares one).
    """
    files = files or CellFiles(tracker)
    groups: dict[str, dict[str, pd.DataFrame]] = {}
    for _, run in cell_runs(tracker, sweep_id):
        if run is None or run.info.status != "FINISHED":
            continue
        config, table = files.read(run)
        key = draw_key(config) if config is not None else None
        if key is None or table is None:
            continue
        groups.setdefault(key, {})[run.info.run_name or run.info.run_id] = table
    shared = [cells for cells in groups.values() if len(cells) > 1]
    if reference is not None and not any(reference in cells for cells in shared):
        names = sorted(name for cells in shared for name in cells)
        raise ConfigError(
            "--reference", f"a cell run with common random numbers ({', '.join(names)})", reference
        )
    return [common_draws(cells, reference if reference in cells else None) for cells in shared]


def render_common_draws(table: pd.DataFrame) -> str:
    """Plain text of one :func:`common_draws` table."""
    w = max([34, *(len(str(c)) + 1 for c in table["cell"])])
    n_common = int(table["n_common"].iloc[0]) if len(table) else 0
    lines = [
        f"common random numbers: {len(table)} cells on the {n_common} draws every one analysed",
        f"{'cell':<{w}}{'reps':>6}{'failed':>7}{'common':>7}{'bias ± MCSE':>22}"
        f"{'bias vs ref ± paired':>24}{'RMSE vs ref ± paired':>24}{'% precision ± paired':>23}"
        f"{'emp SE':>9}{'mean SE':>9}{'coverage [95% Wilson]':>25}",
    ]
    for _, r in table.iterrows():
        lines.append(
            f"{str(r['cell']):<{w}}{count(r['reps']):>6}{count(r['n_failed']):>7}"
            f"{count(r['n_common']):>7}{r['bias']:>+12.4f} ± {r['bias_mcse']:<7.4f}"
            f"{r['bias_diff']:>+14.4f} ± {r['bias_diff_mcse']:<7.4f}"
            f"{r['rmse_diff']:>+14.4f} ± {r['rmse_diff_mcse']:<7.4f}"
            f"{r['rel_precision']:>+13.1f} ± {r['rel_precision_mcse']:<7.1f}"
            f"{r['emp_se']:>9.4f}{r['mean_se']:>9.4f}{coverage_interval(r):>25}"
        )
    return "\n".join(lines)


def common_draws_section(
    tracker: MlflowTracker,
    sweep_id: str,
    out: Path,
    reference: str | None = None,
    files: CellFiles | None = None,
) -> str:
    """Return the text of the sweep's common-random-numbers comparisons (``""`` without any).

    Their tables go to ``common_draws.csv`` (column ``group`` tells groups of shared draws apart).
    """
    tables = common_draws_tables(tracker, sweep_id, reference, files)
    out.mkdir(parents=True, exist_ok=True)
    if not tables:
        return ""
    pd.concat([t.assign(group=i) for i, t in enumerate(tables)], ignore_index=True).to_csv(
        out / "common_draws.csv", index=False
    )
    return "".join("\n\n" + render_common_draws(t) for t in tables)
