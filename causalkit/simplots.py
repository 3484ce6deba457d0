r"""Figures of a simulation study: zip plots, nested-loop plots and measure forest plots.

These are the pictures methodologists expect beside the performance table (Morris, White &
Crowther 2019, sec. 5): the zip plot shows *which* replications' intervals miss the truth,
the nested-loop plot shows a measure over every combination of the design factors at once,
and the forest plot shows each measure with its Monte Carlo interval.

References
----------
Morris, T.P., White, I.R. & Crowther, M.J. (2019). Using simulation studies to evaluate
statistical methods. *Stat. Med.* 38(11), 2074-2102, Figs. 4-7.
Rücker, G. & Schwarzer, G. (2014). Presenting simulation results in a nested loop plot.
*BMC Med. Res. Methodol.* 14, 129.
"""

from __future__ import annotations

import statistics
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd

from causalkit.performance import wilson_interval
from causalkit.plots import pyplot

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from causalkit.results import CellResult

__all__ = [
    "zip_plot",
    "nested_loop_plot",
    "measures_plot",
    "estimates_plot",
    "intervals_plot",
    "save_cell_figures",
    "FOREST_MEASURES",
    "MAX_INTERVALS",
    "zip_ranks",
]

FOREST_MEASURES: tuple[tuple[str, str], ...] = (
    ("bias", "bias"),
    ("emp_se", "empirical SE"),
    ("rmse", "RMSE"),
    ("rel_error_model_se", "rel. % error in model SE"),
    ("coverage", "coverage"),
    ("power", "power"),
)
"""Measures of :func:`measures_plot` (those present in the table), with their labels."""


def zip_ranks(
    est: np.ndarray,
    se: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    truth: float | np.ndarray,
    level: float,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Fractional centile of :math:`|z|` of each replication and whether its interval covers.

    :math:`z_r = (\hat\theta_r-\theta)/\widehat{se}_r`; where the model SE is missing (an
    interval without one) the half-width over :math:`z_{(1+\text{level})/2}` stands in. The
    centile is :math:`100\,\mathrm{rank}(|z_r|)/R` (ties by order), so the intervals that miss
    sit at the top.
    """
    crit = statistics.NormalDist().inv_cdf(0.5 + level / 2)
    scale = np.where(np.isfinite(se) & (se > 0), se, (hi - lo) / (2 * crit))
    z = np.abs((est - truth) / scale)
    order = np.argsort(z, kind="stable")
    centile = np.empty(z.size)
    centile[order] = 100 * (np.arange(1, z.size + 1)) / z.size
    return centile, (lo <= truth) & (truth <= hi)


def zip_plot(
    replications: pd.DataFrame, truth: float | None = None, level: float = 0.95, title: str = ""
) -> Figure:
    """Zip plot of a cell: each successful replication's interval, ranked by :func:`zip_ranks`.

    Intervals that cover the truth are drawn in blue, those that miss in red (the x-axis spans
    the 1st percentile of the lower limits to the 99th of the upper ones, so a few exploding
    intervals do not squash the rest); the horizontal lines mark the nominal level and the estimated coverage with its 95% Wilson interval
    (Morris et al. 2019, Fig. 4).

    Parameters
    ----------
    replications : DataFrame
        The cell's replications table (``estimate``, ``se``, ``ci_lower``, ``ci_upper``,
        optional ``error``; failed rows are left out).
    truth : float, optional
        The true value; default each replication's own ``truth`` column (a sample estimand
        differs by draw), the vertical line at their mean.
    level : float
        The intervals' level.
    title : str
        The cell's name.
    """
    plt = pyplot()
    r = _successful(replications, truth)
    est, se, lo, hi = r.estimate, r.se, r.lower, r.upper
    centile, covers = zip_ranks(est, se, lo, hi, r.truths, level)
    truth = float(np.mean(r.truths))
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    for mask, colour, label in ((covers, "C0", "covers"), (~covers, "C3", "misses")):
        ax.hlines(centile[mask], lo[mask], hi[mask], colors=colour, lw=0.6, label=label)
    ax.axvline(truth, color="black", lw=1)
    n = int(covers.size)
    lower, upper = wilson_interval(int(covers.sum()), n)
    ax.axhline(100 * level, color="grey", ls="--", lw=1, label=f"nominal {level:.0%}")
    ax.axhspan(100 * lower, 100 * upper, color="gold", alpha=0.35, lw=0)
    ax.axhline(
        100 * covers.mean(),
        color="goldenrod",
        lw=1.2,
        label=f"coverage {covers.mean():.3f} [{lower:.3f}, {upper:.3f}]",
    )
    ax.set_ylim(0, 100)
    if n >= 20:  # a few exploding intervals would squash the rest: show the central 98%
        left, right = np.quantile(lo, 0.01), np.quantile(hi, 0.99)
        pad = 0.05 * (right - left)
        ax.set_xlim(min(left, truth) - pad, max(right, truth) + pad)
    ax.set_ylabel("fractional centile of |z|")
    ax.set_xlabel(f"{level:.0%} confidence intervals ({n} replications)")
    ax.set_title(textwrap.fill(f"Zip plot{': ' + title if title else ''}", 70), fontsize=8)
    ax.legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    return fig


def nested_loop_plot(
    table: pd.DataFrame, factors: Sequence[str], measure: str, method: str = "method"
) -> Figure:
    """Nested-loop plot: ``measure`` for every combination of ``factors``, one line per method.

    The scenarios (factor combinations) are ordered with the first factor varying slowest;
    below the measure, one step line per factor shows its level in each scenario (Rücker &
    Schwarzer 2014).

    Parameters
    ----------
    table : DataFrame
        One row per cell with the factor columns, ``method`` and ``measure``.
    factors : sequence of str
        The design factors, outermost loop first.
    measure : str
        The column plotted.
    method : str
        The column naming each cell's method.
    """
    plt = pyplot()
    keyed = table.assign(_scenario=list(zip(*(table[f].astype(str) for f in factors), strict=True)))
    scenarios = sorted(set(keyed["_scenario"]), key=lambda s: tuple(_sort_key(v) for v in s))
    index = {s: i for i, s in enumerate(scenarios)}
    fig, (ax, legend) = plt.subplots(
        2,
        1,
        figsize=(max(6.0, 0.35 * len(scenarios) + 3), 4.5 + 0.45 * len(factors)),
        sharex=True,
        gridspec_kw={"height_ratios": [3, max(1, len(factors))]},
    )
    for name, group in keyed.groupby(method, sort=False):
        x = np.array([index[s] for s in group["_scenario"]])
        order = np.argsort(x)
        y = group[measure].to_numpy(dtype=float)[order]
        ax.step(x[order], y, where="mid", marker="o", ms=3, label=str(name))
    ax.set_ylabel(measure)
    ax.legend(fontsize=7, loc="best")
    ax.set_title(f"Nested-loop plot of {measure}", fontsize=10)
    for k, factor in enumerate(factors):
        levels = sorted({s[k] for s in scenarios}, key=_sort_key)
        pos = np.array([levels.index(s[k]) for s in scenarios], dtype=float)
        span = max(1, len(levels) - 1)
        y = -1.5 * k + pos / span
        legend.step(range(len(scenarios)), y, where="mid", color="black", lw=1)
        legend.text(
            -0.45, -1.5 * k + 1.08, f"{factor}: {', '.join(levels)}", fontsize=7, va="bottom"
        )
    legend.set_xlim(-0.5, len(scenarios) - 0.5)
    legend.set_ylim(-1.5 * (len(factors) - 1) - 0.2, 1.5)
    legend.set_yticks([])
    legend.set_xticks(range(len(scenarios)))
    legend.set_xticklabels([str(i + 1) for i in range(len(scenarios))], fontsize=6)
    legend.set_xlabel("scenario")
    fig.tight_layout()
    return fig


def _sort_key(value: str) -> tuple[int, float | str]:
    """Numbers in numeric order before text."""
    try:
        return (0, float(value))
    except ValueError:
        return (1, value)


def measures_plot(table: pd.DataFrame, label: str = "cell") -> Figure:
    r"""Forest (lollipop) plot of each measure with its 95% Monte Carlo interval, in table order.

    The interval is the estimate :math:`\pm 1.96` MCSE (coverage: its Wilson interval); the
    reference lines are 0 (bias, relative error), the nominal level (coverage) and none
    otherwise.
    """
    plt = pyplot()
    shown = [(m, t) for m, t in FOREST_MEASURES if m in table and table[m].notna().any()]
    fig, axes = plt.subplots(
        1, len(shown), figsize=(2.6 * len(shown) + 1.5, 0.35 * len(table) + 1.6), sharey=True
    )
    axes = np.atleast_1d(axes)
    y = np.arange(len(table))[::-1]
    for ax, (m, title) in zip(axes, shown, strict=True):
        v = table[m].to_numpy(dtype=float)
        if m == "coverage" and {"coverage_lower", "coverage_upper"} <= set(table):
            lo, hi = (
                table["coverage_lower"].to_numpy(float),
                table["coverage_upper"].to_numpy(float),
            )
        else:
            mcse = table.get(f"{m}_mcse", pd.Series(np.nan, table.index)).to_numpy(dtype=float)
            lo, hi = v - 1.96 * mcse, v + 1.96 * mcse
        ax.hlines(y, lo, hi, color="C0", lw=1.5)
        ax.plot(v, y, "o", color="C0", ms=4)
        if m in {"bias", "rel_error_model_se"}:
            ax.axvline(0, color="grey", lw=0.8, ls="--")
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0].set_yticks(y, [str(c) for c in table[label]], fontsize=7)
    fig.tight_layout()
    return fig


MAX_INTERVALS = 200
"""Most replications :func:`intervals_plot` draws (evenly spaced in the order of the estimates)."""


class _Replications(NamedTuple):
    """The successful replications of a cell, as float arrays (``truths`` NaN where unknown)."""

    estimate: np.ndarray
    se: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    truths: np.ndarray


def _successful(replications: pd.DataFrame, truth: float | None = None) -> _Replications:
    """Return the replications without an ``error``; ``truth`` (default: column ``truth``) per row."""
    ok = replications
    if "error" in ok:
        ok = ok[ok["error"].isna().to_numpy()]
    est, se, lo, hi = (
        ok[c].to_numpy(dtype=float) for c in ("estimate", "se", "ci_lower", "ci_upper")
    )
    if truth is not None:
        truths = np.full(est.size, float(truth))
    elif "truth" in ok:
        truths = ok["truth"].to_numpy(dtype=float)
    else:
        truths = np.full(est.size, np.nan)
    return _Replications(est, se, lo, hi, truths)


def _centred(r: _Replications) -> tuple[np.ndarray | float, float, str]:
    """Return ``(shift, truth line, axis words)``: estimates minus their own truths when the truths differ."""
    known = bool(np.isfinite(r.truths).all()) and r.truths.size > 0
    if known and np.ptp(r.truths) > 0:
        return r.truths, 0.0, "estimate − its replication's truth"
    return 0.0, float(r.truths[0]) if known else float("nan"), "estimate"


def estimates_plot(
    replications: pd.DataFrame, truth: float | None = None, title: str = ""
) -> Figure:
    """Distribution of a cell's estimates against the truth: histogram, truth and mean marked.

    The gap between the two vertical lines is the bias; the spread of the histogram is the
    empirical SE. When the replications' truths differ (a sample estimand), each estimate is
    shown minus its own truth and the truth line is 0.

    Parameters
    ----------
    replications : DataFrame
        The cell's replications table (``estimate``, optional ``truth`` and ``error``; failed
        rows are left out).
    truth : float, optional
        The true value; default the ``truth`` column.
    title : str
        The cell's name.
    """
    plt = pyplot()
    r = _successful(replications, truth)
    shift, line, words = _centred(r)
    x = r.estimate - shift
    x = x[np.isfinite(x)]
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    fig.subplots_adjust(
        left=0.09, right=0.7, bottom=0.15, top=0.9
    )  # fixed: a layout engine doubles the draw time
    bins = int(np.clip(np.sqrt(x.size), 10, 60))
    ax.hist(x, bins=bins, color="C0", alpha=0.7)
    if np.isfinite(line):
        ax.axvline(line, color="black", lw=1.5, label=f"truth {line:+.4g}")
    if x.size:
        mean = float(x.mean())
        bias = f"\n(bias {mean - line:+.3g})" if np.isfinite(line) else ""
        ax.axvline(mean, color="C1", ls="--", lw=1.5, label=f"mean {mean:+.4g}{bias}")
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, frameon=False)
    ax.set_xlabel(f"{words} ({x.size} replications)")
    ax.set_ylabel("replications")
    ax.set_title(
        textwrap.fill(f"Estimates vs truth{': ' + title if title else ''}", 80), fontsize=9
    )
    return fig


def intervals_plot(
    replications: pd.DataFrame,
    truth: float | None = None,
    level: float = 0.95,
    title: str = "",
    max_shown: int = MAX_INTERVALS,
) -> Figure:
    """Draw the replications' intervals sorted by estimate: blue where they cover the truth, red not.

    With more than ``max_shown`` replications, ``max_shown`` of them evenly spaced in the order
    of the estimates are drawn (the shape of the distribution is kept); the coverage in the
    title is over all of them. Without a truth every interval is grey.

    Parameters
    ----------
    replications : DataFrame
        The cell's replications table (``estimate``, ``ci_lower``, ``ci_upper``, optional
        ``truth`` and ``error``).
    truth : float, optional
        The true value; default the ``truth`` column (each replication's own).
    level : float
        The intervals' level.
    title : str
        The cell's name.
    max_shown : int
        Most intervals drawn.
    """
    plt = pyplot()
    r = _successful(replications, truth)
    shift, line, words = _centred(r)
    est, lo, hi = r.estimate - shift, r.lower - shift, r.upper - shift
    known = bool(np.isfinite(r.truths).all()) and r.truths.size > 0
    covers = (r.lower <= r.truths) & (r.truths <= r.upper)
    order = np.argsort(est, kind="stable")
    n = order.size
    if n > max_shown:
        order = order[np.linspace(0, n - 1, max_shown).round().astype(int)]
    y = np.arange(order.size)
    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    fig.subplots_adjust(left=0.06, right=0.75, bottom=0.1, top=0.92)
    groups = (
        ((covers, "C0", "covers"), (~covers, "C3", "misses"))
        if known
        else ((np.ones(n, bool), "grey", "interval"),)
    )
    for mask, colour, label in groups:
        shown = mask[order]
        ax.hlines(
            y[shown],
            lo[order][shown],
            hi[order][shown],
            colors=colour,
            lw=0.8,
            label=f"{label} ({int(mask.sum())})",
        )
        ax.plot(est[order][shown], y[shown], "|", color=colour, ms=3)
    if np.isfinite(line):
        ax.axvline(line, color="black", lw=1.2, label="truth")
    if n >= 20:  # a few exploding intervals would squash the rest: show the central 98%
        left, right = np.nanquantile(lo, 0.01), np.nanquantile(hi, 0.99)
        if np.isfinite(line):
            left, right = min(left, line), max(right, line)
        pad = 0.05 * (right - left)
        if np.isfinite(pad) and pad > 0:
            ax.set_xlim(left - pad, right + pad)
    ax.set_yticks([])
    ax.set_ylabel(
        "replications, sorted by estimate"
        + (f" ({order.size} of {n} shown)" if order.size < n else "")
    )
    ax.set_xlabel(
        f"{level:.0%} confidence interval"
        + (" − its replication's truth" if words != "estimate" else "")
    )
    head = f"Intervals{': ' + title if title else ''}"
    if known and n:
        head += f" — coverage {covers.mean():.3f} (nominal {level:.0%})"
    ax.set_title(textwrap.fill(head, 80), fontsize=9)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, frameon=False)
    return fig


def save_cell_figures(folder: Path, cell: CellResult) -> float:
    """Write a Monte Carlo cell's figures into ``folder``; return the seconds taken.

    ``estimates.png`` (:func:`estimates_plot`) and ``intervals.png`` (:func:`intervals_plot`,
    at most :data:`MAX_INTERVALS` intervals); nothing when no replication succeeded.
    """
    start = time.perf_counter()
    reps = cell.replications
    if "error" in reps and reps["error"].notna().all():
        return 0.0
    plt = pyplot()
    title = f"{cell.estimator} / {cell.inference}, {cell.estimand}"
    if cell.truth_estimand and cell.truth_estimand != cell.estimand:
        title += f" (truth: {cell.truth_estimand})"
    for name, fig in (
        ("estimates.png", estimates_plot(reps, None, title)),
        ("intervals.png", intervals_plot(reps, None, cell.level, title)),
    ):
        fig.savefig(folder / name, dpi=100)
        plt.close(fig)
    return time.perf_counter() - start
