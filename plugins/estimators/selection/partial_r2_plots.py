"""The partial-R² sensitivity contour plot of ``ols`` (Cinelli & Hazlett 2020, figures 2 and 3)."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

__all__ = ["partial_r2_contour_plot", "sensitivity_figures"]


def partial_r2_contour_plot(grid: pd.DataFrame, bounds: pd.DataFrame | None = None) -> Figure:
    """Adjusted estimate (left) and t-value (right) over ``r2dz_x`` (x) and ``r2yz_dx`` (y).

    ``grid`` is :func:`~causalkit_plugins.estimators.selection.partial_r2.contour_grid`; the
    red contour is zero (estimate) or the critical t-value (``t_threshold``); the unadjusted
    estimate is the origin (a triangle) and the benchmarks of ``bounds`` are red diamonds.
    """
    r2d, r2y = np.unique(grid["r2dz_x"]), np.unique(grid["r2yz_dx"])
    threshold = float(grid["t_threshold"].iloc[0])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), sharey=True)
    panels = [("adjusted_estimate", "adjusted estimate", 0.0), ("adjusted_t", "t-value", threshold)]
    for ax, (column, title, red) in zip(axes, panels, strict=True):
        z = grid[column].to_numpy().reshape(r2y.size, r2d.size)
        z = np.where(np.isfinite(z), z, np.nan)  # t is infinite where r2yz_dx = 1
        lines = ax.contour(r2d, r2y, z, levels=10, colors="grey", linewidths=0.7)
        ax.clabel(lines, fontsize="x-small", fmt="%.3g")
        if np.nanmin(z) < red < np.nanmax(z):
            ax.contour(r2d, r2y, z, levels=[red], colors="red", linewidths=1.5, linestyles="--")
        ax.plot(0, 0, "^", color="black")
        if bounds is not None:
            for label, row in bounds.iterrows():
                ax.plot(row["r2dz_x"], row["r2yz_dx"], "D", color="red")
                value = row[column]
                ax.annotate(
                    f"{label} ({value:.3g})",
                    (row["r2dz_x"], row["r2yz_dx"]),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize="small",
                    color="red",
                )
        ax.set_xlabel("partial R2 of the confounder with the treatment (r2dz_x)")
        ax.set_title(f"{title} (unadjusted {z[0, 0]:.3g}; red: {red:.3g})")
    axes[0].set_ylabel("partial R2 with the outcome (r2yz_dx)")
    fig.tight_layout()
    return fig


def sensitivity_figures(tables: Mapping[str, pd.DataFrame]) -> dict[str, Figure]:
    """File name -> figure: the contour plot when ``sensitivity.contour`` is among the tables."""
    grid = tables.get("sensitivity.contour")
    if grid is None or not len(grid):
        return {}
    return {
        "sensitivity_contour.png": partial_r2_contour_plot(grid, tables.get("sensitivity.bounds"))
    }
