"""Standard figures: love plot, overlap plot, gap trajectory and the Monte Carlo comparison."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

__all__ = [
    "love_plot",
    "overlap_plot",
    "gap_plot",
    "weights_plot",
    "comparison_plot",
    "figures_for_tables",
]


def love_plot(balance: pd.DataFrame, threshold: float = 0.1) -> Figure:
    """|SMD| per covariate before and after weighting/matching."""
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(balance) + 1.6))
    y = np.arange(len(balance))
    ax.scatter(
        np.abs(balance["smd_before"]),
        y,
        marker="o",
        facecolors="none",
        edgecolors="C3",
        label="before",
    )
    ax.scatter(np.abs(balance["smd_after"]), y, marker="o", color="C0", label="after")
    ax.axvline(threshold, color="grey", ls="--", lw=1)
    ax.set_yticks(y, [str(i) for i in balance.index])
    ax.set_xlabel("|standardised mean difference| (pooled SD)")
    ax.set_title("Covariate balance")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def overlap_plot(overlap: pd.DataFrame) -> Figure:
    """Histogram of the propensity score by arm (columns ``score``, ``treated``)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    t = overlap["treated"].astype(bool).to_numpy()
    bins = np.linspace(0, 1, 41).tolist()
    ax.hist(overlap["score"][~t], bins=bins, alpha=0.6, density=True, label="control")
    ax.hist(overlap["score"][t], bins=bins, alpha=0.6, density=True, label="treated")
    ax.set_xlabel("propensity score")
    ax.set_ylabel("density")
    ax.set_title("Overlap")
    ax.legend()
    fig.tight_layout()
    return fig


def _gap_band(
    gaps: pd.DataFrame, effects: pd.DataFrame | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-period interval of the gap: the table's ``lower``/``upper``, else the effects named ``"<estimand>@<period>"``."""
    if {"lower", "upper"} <= set(gaps.columns):
        return gaps["lower"].to_numpy(float), gaps["upper"].to_numpy(float)
    if effects is None or not {"ci_lower", "ci_upper"} <= set(effects.columns):
        return None
    by_period = {
        str(name).rpartition("@")[2]: i for i, name in enumerate(effects.index) if "@" in str(name)
    }
    rows = [by_period.get(str(p), -1) for p in gaps["period"]]
    if all(r < 0 for r in rows):
        return None
    lo, hi = (
        np.array([effects[c].iloc[r] if r >= 0 else np.nan for r in rows], dtype=float)
        for c in ("ci_lower", "ci_upper")
    )
    return lo, hi


def gap_plot(gaps: pd.DataFrame, effects: pd.DataFrame | None = None) -> Figure:
    """Plot treated vs synthetic outcome per period, with the per-period interval when known.

    Parameters
    ----------
    gaps : DataFrame
        Columns ``period``, ``treated``, ``synthetic``, ``gap`` (and optionally ``lower``,
        ``upper``).
    effects : DataFrame, optional
        The result's effects table (index ``"<estimand>@<period>"`` for per-period effects,
        columns ``ci_lower``, ``ci_upper``): the interval :math:`[l_t, u_t]` of each gap is
        drawn around the synthetic outcome as :math:`y^{syn}_t + g_t - [u_t, l_t]`.
    """
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    x = np.arange(len(gaps))
    ax.plot(x, gaps["treated"], marker="o", label="treated")
    ax.plot(x, gaps["synthetic"], marker="s", label="synthetic")
    band = _gap_band(gaps, effects)
    if band is not None:
        centre = (gaps["synthetic"] + gaps["gap"]).to_numpy(float)
        ax.fill_between(x, centre - band[1], centre - band[0], alpha=0.2, label="band")
    ax.set_xticks(x, [str(p) for p in gaps["period"]])
    ax.set_xlabel("period")
    ax.set_title("Per-period effect")
    ax.legend()
    fig.tight_layout()
    return fig


def weights_plot(weights: pd.DataFrame) -> Figure:
    """Distribution of the control weights (column ``weight``) with the uniform weight marked."""
    if "treated" in weights.columns:
        weights = weights[~weights["treated"].astype(bool)]
    w = weights["weight"].to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    ax.hist(w, bins=50)
    if w.size:
        ax.axvline(w.sum() / w.size, color="grey", ls="--", lw=1, label="uniform")
        ax.legend()
    ax.set_xlabel("weight")
    ax.set_ylabel("controls")
    ax.set_title(f"Control weights (n={w.size}, zero: {int((w <= 0).sum())})")
    fig.tight_layout()
    return fig


def comparison_plot(table: pd.DataFrame, level: float = 0.95) -> Figure:
    """Bias ± 1.96 MCSE, RMSE, coverage against the nominal level, and CI width by cell."""
    labels = table["cell"].astype(str).tolist()
    y = np.arange(len(labels))
    fig, axes = plt.subplots(1, 4, figsize=(14, 0.5 * len(labels) + 2), sharey=True)
    axes[0].errorbar(table["bias"], y, xerr=1.96 * table["bias_mcse"].fillna(0), fmt="o")
    axes[0].axvline(0, color="grey", lw=1)
    axes[0].set_title("bias ± 1.96 MCSE")
    axes[1].barh(y, table["rmse"])
    axes[1].set_title("RMSE")
    axes[2].errorbar(table["coverage"], y, xerr=1.96 * table["coverage_mcse"].fillna(0), fmt="o")
    axes[2].axvline(level, color="grey", ls="--", lw=1)
    reps = float(table["reps"].max()) if len(table) else 1.0
    band = 1.96 * np.sqrt(level * (1 - level) / max(reps, 1.0))
    axes[2].axvspan(level - band, level + band, color="grey", alpha=0.15)
    axes[2].set_title("coverage (nominal ± binomial band)")
    axes[3].barh(y, table["ci_width"])
    axes[3].set_title("mean CI width")
    axes[0].set_yticks(y, labels)
    fig.tight_layout()
    return fig


def figures_for_tables(
    tables: dict[str, pd.DataFrame], effects: pd.DataFrame | None = None
) -> dict[str, Figure]:
    """Build the standard figures implied by a result's tables (file name -> figure).

    ``effects`` (the result's effects table) adds the per-period intervals to the gap
    trajectory (:func:`gap_plot`).
    """
    out: dict[str, Figure] = {}
    if "balance" in tables and len(tables["balance"]):
        out["love_plot.png"] = love_plot(tables["balance"])
    if "overlap" in tables and len(tables["overlap"]):
        out["overlap.png"] = overlap_plot(tables["overlap"])
    if "weights" in tables and "weight" in tables["weights"].columns and len(tables["weights"]):
        out["weights.png"] = weights_plot(tables["weights"])
    if "gaps" in tables and len(tables["gaps"]) > 1:
        out["gap_trajectory.png"] = gap_plot(tables["gaps"], effects)
    return out
