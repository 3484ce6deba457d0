"""AIPW figures: a forest plot per segment column, the naive-vs-DR lift scatter, the sensitivity contours."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

__all__ = [
    "forest_plot",
    "naive_vs_dr_plot",
    "sensitivity_contour_plot",
    "sensitivity_figures",
    "figures",
]


def forest_plot(table: pd.DataFrame, max_segments: int = 30) -> Figure:
    """DR and naive lift per estimated segment, largest DR lift first.

    Intervals are drawn when the table carries them (``ci_lower``/``ci_upper`` columns, added
    from the inference outcome); the estimator's own table holds estimates only.
    """
    ok = table[table["status"] == "ok"].sort_values("dr_lift", ascending=False).head(max_segments)
    ok = ok.iloc[::-1]
    y = np.arange(len(ok))
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.35 * len(ok) + 1.2)))
    if {"ci_lower", "ci_upper"} <= set(ok.columns):
        ax.hlines(y, ok["ci_lower"], ok["ci_upper"], color="C0", lw=3, label="CI")
    ax.plot(ok["dr_lift"], y, "o", color="C0", label="DR lift")
    ax.plot(ok["naive_lift"], y, "x", color="C3", label="naive lift")
    ax.axvline(0, color="black", lw=1)
    ax.set_yticks(y, ok["segment"].astype(str).tolist())
    column = str(table["segment_col"].iloc[0]) if len(table) else ""
    ax.set_xlabel("lift")
    ax.set_title(f"Segment effects by {column}")
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    return fig


def naive_vs_dr_plot(tables: Mapping[str, pd.DataFrame]) -> Figure:
    """Naive lift against DR lift for every kept segment of every column, with the diagonal."""
    fig, ax = plt.subplots(figsize=(6.5, 6))
    lo, hi = np.inf, -np.inf
    for i, (_, table) in enumerate(sorted(tables.items())):
        ok = table[table["status"] == "ok"]
        if ok.empty:
            continue
        ax.scatter(
            ok["naive_lift"],
            ok["dr_lift"],
            s=30,
            color=f"C{i % 10}",
            label=str(ok["segment_col"].iloc[0]),
        )
        lo = min(lo, ok["naive_lift"].min(), ok["dr_lift"].min())
        hi = max(hi, ok["naive_lift"].max(), ok["dr_lift"].max())
    if np.isfinite(lo):
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.axhline(0, color="grey", lw=1)
    ax.axvline(0, color="grey", lw=1)
    ax.set_xlabel("naive lift")
    ax.set_ylabel("doubly robust lift")
    ax.set_title("Naive versus doubly robust segment lift")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def sensitivity_contour_plot(grid: pd.DataFrame, benchmarks: pd.DataFrame | None = None) -> Figure:
    """Contours of the effect bound and its CI bound over ``cf_d`` (x) and ``cf_y`` (y).

    The bound on the side of the null hypothesis (the lower one for an effect above it), as
    DoubleML's ``sensitivity_plot``; the null's contour in red, benchmarks as points.
    """
    null, theta, rho = (float(grid[c].iloc[0]) for c in ("null_hypothesis", "theta", "rho"))
    side = "upper" if null > theta else "lower"
    cf_y, cf_d = np.unique(grid["cf_y"]), np.unique(grid["cf_d"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), sharey=True)
    for ax, (column, title) in zip(
        axes, [(f"theta_{side}", "effect bound"), (f"ci_{side}", "CI bound")], strict=True
    ):
        z = grid[column].to_numpy().reshape(cf_y.size, cf_d.size)
        filled = ax.contourf(cf_d, cf_y, z, levels=15, cmap="viridis")
        fig.colorbar(filled, ax=ax)
        lines = ax.contour(cf_d, cf_y, z, levels=8, colors="white", linewidths=0.6)
        ax.clabel(lines, fontsize="x-small", fmt="%.4g")
        if z.min() < null < z.max():
            ax.contour(cf_d, cf_y, z, levels=[null], colors="red", linewidths=1.5)
        if benchmarks is not None:
            for name, row in benchmarks.iterrows():
                ax.plot(row["cf_d"], row["cf_y"], "o", color="red")
                ax.annotate(str(name), (row["cf_d"], row["cf_y"]), fontsize="small", color="red")
        ax.set_xlabel("cf_d")
        ax.set_title(f"{side} {title} (rho={rho:g}; red: {null:g})")
    axes[0].set_ylabel("cf_y")
    fig.tight_layout()
    return fig


def figures(tables: Mapping[str, pd.DataFrame]) -> dict[str, Figure]:
    """File name -> figure for the segment tables (``segments.<column>``) and the sensitivity grid."""
    seg = {k: v for k, v in tables.items() if k.startswith("segments.") and len(v)}
    out = {f"forest_{k.split('.', 1)[1]}.png": forest_plot(v) for k, v in seg.items()}
    if seg:
        out["naive_vs_dr.png"] = naive_vs_dr_plot(seg)
    return {**out, **sensitivity_figures(tables)}


def sensitivity_figures(tables: Mapping[str, pd.DataFrame]) -> dict[str, Figure]:
    """``sensitivity_contour.png`` from the tables ``sensitivity.contour`` and ``sensitivity.bounds``.

    Empty without the contour table; any estimator whose fit carries it (``aipw``, ``ipw``) uses it.
    """
    grid = tables.get("sensitivity.contour")
    if grid is None or not len(grid):
        return {}
    return {
        "sensitivity_contour.png": sensitivity_contour_plot(grid, tables.get("sensitivity.bounds"))
    }
