"""Standard figures: love plot, overlap plot, gap trajectory and the Monte Carlo comparison."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "love_plot",
    "overlap_plot",
    "gap_plot",
    "weights_plot",
    "comparison_plot",
    "figures_for_tables",
    "pyplot",
    "varying_labels",
]


def pyplot() -> Any:
    """Return ``matplotlib.pyplot`` on the Agg backend, imported on first use (it takes ~0.5 s)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def love_plot(balance: pd.DataFrame, threshold: float = 0.1) -> Figure:
    """|SMD| per covariate before and after weighting/matching; the legend sits right of the axes."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(balance) + 1.6), layout="constrained")
    y = np.arange(len(balance))[::-1]  # the first covariate on top, as in the table
    ax.scatter(
        np.abs(balance["smd_before"]),
        y,
        marker="o",
        facecolors="none",
        edgecolors="C3",
        label="before",
    )
    ax.scatter(np.abs(balance["smd_after"]), y, marker="o", color="C0", label="after")
    ax.axvline(threshold, color="grey", ls="--", lw=1, label=f"|SMD| = {threshold:g}")
    ax.set_yticks(y, [str(i) for i in balance.index])
    ax.set_xlabel("|standardised mean difference| (pooled SD)")
    ax.set_title("Covariate balance")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, frameon=False)
    return fig


def overlap_plot(overlap: pd.DataFrame) -> Figure:
    """Histogram of the propensity score by arm (columns ``score``, ``treated``)."""
    plt = pyplot()
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


def gap_plot(
    gaps: pd.DataFrame, effects: pd.DataFrame | None = None, outcome: str | None = None
) -> Figure:
    """Plot the treated units' outcome and their synthetic control's, period by period.

    The levels are drawn (their difference is the gap, the per-period effect), with the
    per-period interval when known and a dotted line at the treatment onset (before the first
    period of column ``post``, when the table has it).

    Parameters
    ----------
    gaps : DataFrame
        Columns ``period``, ``treated``, ``synthetic``, ``gap`` (and optionally ``post``,
        ``lower``, ``upper``).
    effects : DataFrame, optional
        The result's effects table (index ``"<estimand>@<period>"`` for per-period effects,
        columns ``ci_lower``, ``ci_upper``): the interval :math:`[l_t, u_t]` of each gap is
        drawn around the synthetic outcome as :math:`y^{syn}_t + g_t - [u_t, l_t]`.
    outcome : str, optional
        The outcome's name, the y-axis label (default ``"outcome"``).
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 3.8), layout="constrained")
    x = np.arange(len(gaps))
    ax.plot(x, gaps["treated"], marker="o", label="treated")
    ax.plot(x, gaps["synthetic"], marker="s", label="synthetic control")
    band = _gap_band(gaps, effects)
    if band is not None:
        centre = (gaps["synthetic"] + gaps["gap"]).to_numpy(float)
        ax.fill_between(
            x,
            centre - band[1],
            centre - band[0],
            alpha=0.2,
            label="synthetic control ± CI of the gap",
        )
    if "post" in gaps and gaps["post"].astype(bool).any():
        onset = int(np.argmax(gaps["post"].astype(bool).to_numpy()))
        if onset > 0:
            ax.axvline(onset - 0.5, color="grey", ls=":", lw=1.2, label="treatment onset")
    ax.set_xticks(x, [str(p) for p in gaps["period"]])
    ax.set_xlabel("period")
    ax.set_ylabel(outcome or "outcome")
    ax.set_title("Treated vs synthetic control (the gap between them is the effect)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, frameon=False)
    return fig


def weights_plot(weights: pd.DataFrame) -> Figure:
    """Distribution of the control weights (column ``weight``) with the uniform weight marked."""
    plt = pyplot()
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


def varying_labels(labels: Sequence[str]) -> tuple[list[str], list[str]]:
    """Drop the parts every label shares: ``(the labels left, the shared parts)``.

    A label's parts are split at ``" · "`` (run names) or ``","`` (raw overrides); a label
    left with no part keeps its full text.
    """
    sep = " · " if any(" · " in str(lab) for lab in labels) else ","
    parts = [[p.strip() for p in str(lab).split(sep)] for lab in labels]
    shared = [p for p in parts[0] if all(p in q for q in parts[1:])] if len(parts) > 1 else []
    short = [
        sep.join(p for p in q if p not in shared) or str(lab)
        for q, lab in zip(parts, labels, strict=True)
    ]
    return short, shared


def comparison_plot(table: pd.DataFrame, level: float = 0.95) -> Figure:
    r"""Mean estimate against the truth, bias, RMSE, coverage and CI width by cell.

    Rows follow the table's order from the top; the labels keep only what tells the cells
    apart (:func:`varying_labels`), what they share goes in the title. The truth of each cell
    (``mean_estimate - bias``, the mean of the replications' truths) is marked beside its mean
    estimate; bias carries :math:`\pm 1.96` MCSE, coverage the nominal level with its
    binomial band at the cells' replications.
    """
    plt = pyplot()
    labels, shared = varying_labels(table["cell"].astype(str).tolist())
    y = np.arange(len(labels))[::-1]
    panels = 5 if "mean_estimate" in table else 4
    fig, axes = plt.subplots(
        1, panels, figsize=(3.0 * panels + 2.5, 0.45 * len(labels) + 2.2), sharey=True,
        layout="constrained",
    )  # fmt: skip
    axes = list(np.atleast_1d(axes))
    bias_mcse = 1.96 * table["bias_mcse"].fillna(0)
    if panels == 5:
        ax = axes.pop(0)
        truth = table["mean_estimate"] - table["bias"]
        ax.errorbar(table["mean_estimate"], y, xerr=bias_mcse, fmt="o", label="mean estimate")
        ax.scatter(truth, y, marker="D", color="black", s=28, zorder=3, label="truth")
        ax.set_title("mean estimate vs truth")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, frameon=False)
    axes[0].errorbar(table["bias"], y, xerr=bias_mcse, fmt="o")
    axes[0].axvline(0, color="black", lw=1)
    axes[0].set_title("bias ± 1.96 MCSE")
    axes[1].barh(y, table["rmse"])
    axes[1].set_title("RMSE")
    axes[2].errorbar(table["coverage"], y, xerr=1.96 * table["coverage_mcse"].fillna(0), fmt="o")
    axes[2].axvline(level, color="grey", ls="--", lw=1)
    reps = float(table["reps"].max()) if len(table) else 1.0
    band = 1.96 * np.sqrt(level * (1 - level) / max(reps, 1.0))
    axes[2].axvspan(level - band, level + band, color="grey", alpha=0.15)
    axes[2].set_title(f"coverage (nominal {level:.0%} ± band)")
    axes[3].barh(y, table["ci_width"])
    axes[3].set_title("mean CI width")
    fig.axes[0].set_yticks(y, labels)
    if shared:
        fig.suptitle("all cells: " + ", ".join(shared), fontsize=9)
    return fig


def figures_for_tables(
    tables: dict[str, pd.DataFrame],
    effects: pd.DataFrame | None = None,
    outcome: str | None = None,
) -> dict[str, Figure]:
    """Build the standard figures implied by a result's tables (file name -> figure).

    ``effects`` (the result's effects table) adds the per-period intervals to the gap
    trajectory (:func:`gap_plot`), whose y-axis is labelled ``outcome`` (default: the first
    outcome of a ``results`` table indexed by outcome, else ``"outcome"``).
    """
    out: dict[str, Figure] = {}
    if "balance" in tables and len(tables["balance"]):
        out["love_plot.png"] = love_plot(tables["balance"])
    if "overlap" in tables and len(tables["overlap"]):
        out["overlap.png"] = overlap_plot(tables["overlap"])
    if "weights" in tables and "weight" in tables["weights"].columns and len(tables["weights"]):
        out["weights.png"] = weights_plot(tables["weights"])
    if "gaps" in tables and len(tables["gaps"]) > 1:
        results = tables.get("results")
        if outcome is None and results is not None and results.index.name == "outcome":
            outcome = str(results.index[0]) if len(results) else None
        out["gap_trajectory.png"] = gap_plot(tables["gaps"], effects, outcome)
    return out
