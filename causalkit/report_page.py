"""The HTML page of ``python -m causalkit.report``: the study's design, its results table, figures and how to read them."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["html_page", "design_rows", "results_table", "HOW_TO_READ", "PAGE_WIDTH"]

PAGE_WIDTH = 1400
"""Pixels the page must fit without a horizontal scroll bar (a laptop window)."""

HOW_TO_READ: tuple[tuple[str, str], ...] = (
    (
        "Truth",
        "the value the estimator should recover, known because the data were simulated "
        "(for a sample estimand, the mean of each replication's own truth).",
    ),
    (
        "Bias",
        "the average estimate minus the truth: how far off the estimator is on average. "
        "Near 0 is good; a bias several MCSEs from 0 is real, not noise.",
    ),
    (
        "RMSE",
        "the typical size of one estimate's error, bias and noise together (root mean squared "
        "error), in the outcome's units. Smaller is better.",
    ),
    (
        "Emp. SE",
        "how much the estimates vary from one simulated dataset to the next.",
    ),
    (
        "Coverage",
        "the share of replications whose confidence interval contains the truth. A 95% interval "
        "should cover about 95% of the time; well below means the intervals are too narrow "
        "(overconfident), above means too wide. The bracket is its 95% Wilson interval.",
    ),
    (
        "CI width",
        "the average width of the confidence interval: among methods with correct coverage, "
        "narrower is more informative.",
    ),
    (
        "MCSE",
        "Monte Carlo standard error, in brackets after a number: the uncertainty that comes from "
        "running a finite number of replications. More replications shrink it; differences "
        "between cells smaller than about two MCSEs may be noise.",
    ),
)
"""The measures in plain words (Morris, White & Crowther 2019, Table 6), for the page's last section."""

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#222;line-height:1.45}
main{max-width:1280px;margin:0 auto;padding:1.5em 2em}
h1{font-size:1.6em;margin:.2em 0} h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ddd}
h3{font-size:1em;margin:1.2em 0 .3em} .sub{color:#555;margin-top:0}
table{border-collapse:collapse;font-size:.88em;width:100%}
th,td{padding:.35em .5em;border-bottom:1px solid #e3e3e3;text-align:right;vertical-align:top}
td{white-space:nowrap}
th{background:#f6f6f6;font-weight:600;text-align:right}
td.l,th.l{text-align:left} td.cell{white-space:normal;overflow-wrap:break-word}
td small{color:#666;white-space:nowrap}
dl.design{display:grid;grid-template-columns:13em 1fr;gap:.3em 1em;font-size:.92em}
dl.design dt{font-weight:600} dl.design dd{margin:0;overflow-wrap:anywhere}
.bad{color:#b00020} .fig{margin:.8em 0} .fig p{color:#555;margin:.2em 0 .5em;max-width:60em}
img{max-width:100%;height:auto;display:block}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(380px,1fr));gap:1em}
dl.read dt{font-weight:600;float:left;clear:left;width:7em} dl.read dd{margin:0 0 .5em 7.5em;max-width:60em}
code{font-size:.9em;overflow-wrap:anywhere}
"""


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as ``{"a.b": value}``."""
    if not isinstance(value, Mapping):
        return {prefix: value}
    out: dict[str, Any] = {}
    for k, v in value.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _params(configs: Sequence[Mapping[str, Any]], group: str, skip: Sequence[str] = ()) -> str:
    """``key = value`` for what all cells share, ``key ∈ {a, b}`` for what varies."""
    flats = [_flat(c.get(group) or {}) for c in configs]
    keys = list(dict.fromkeys(k for f in flats for k in f if k not in skip))
    parts = []
    for k in keys:
        values = list(dict.fromkeys(str(f.get(k, "–")) for f in flats))
        parts.append(f"{k} = {values[0]}" if len(values) == 1 else f"{k} ∈ {{{', '.join(values)}}}")
    return " · ".join(parts) if parts else "no parameters"


def _by_name(configs: Sequence[Mapping[str, Any]], group: str) -> str:
    """Each distinct plugin of ``group`` with its parameters: ``"itt; ols (formula = y ~ x)"``."""
    seen: dict[str, None] = {}
    for c in configs:
        block = dict(c.get(group) or {})
        name = str(block.pop("name", "?"))
        opts = " · ".join(f"{k} = {v}" for k, v in _flat(block).items())
        seen[f"{name} ({opts})" if opts else name] = None
    return "; ".join(seen)


def design_rows(configs: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """Return the study's design as ``(what, description)`` rows, from the cells' ``config.yaml``.

    Data (and its parameters when not simulated from scratch), the data-generating processes
    with their parameters (what varies across cells written ``key ∈ {…}``), estimators,
    inference, replications, seed and whether the cells share their draws.
    """
    if not configs:
        return []
    rows: list[tuple[str, str]] = []
    data = [c for c in configs if (c.get("data") or {}).get("name") != "synthetic"]
    if data:
        rows.append(("Data", _by_name(data, "data")))
    by_dgp: dict[str, list[Mapping[str, Any]]] = {}
    for c in configs:
        by_dgp.setdefault(str((c.get("dgp") or {}).get("name", "none")), []).append(c)
    for name, group in by_dgp.items():
        if name != "none":
            rows.append((f"World: {name}", _params(group, "dgp", skip=("name",))))
    rows.append(("Estimators", _by_name(configs, "estimator")))
    rows.append(("Inference", _by_name(configs, "inference")))
    mc = [c.get("mc") or {} for c in configs]
    reps = sorted({int(m.get("reps", 1)) for m in mc})
    rows.append(("Replications", " or ".join(f"{r:,}" for r in reps) + " per cell"))
    seeds = list(dict.fromkeys(str(m.get("seed")) for m in mc))
    rows.append(("Seed", ", ".join(seeds)))
    crn = {bool(m.get("common_random_numbers")) for m in mc}
    rows.append(
        (
            "Common random numbers",
            "yes: replication r of every cell of a world analyses the same simulated dataset"
            if crn == {True}
            else ("no" if crn == {False} else "in some cells"),
        )
    )
    return rows


def _decimals(values: pd.Series, digits: int = 3) -> int:
    """Decimals that give ``digits`` significant digits to the column's largest magnitude (0 to 6)."""
    finite = np.abs(values.to_numpy(dtype=float))
    finite = finite[np.isfinite(finite) & (finite > 0)]
    if not finite.size:
        return digits
    return int(min(6, max(0, digits - 1 - math.floor(math.log10(finite.max())))))


def _num(value: Any, decimals: int, sign: bool = False) -> str:
    if value is None or not np.isfinite(float(value)):
        return "–"
    return f"{float(value):{'+' if sign else ''}.{decimals}f}"


def _breakable(label: str) -> str:
    """Escape a cell's name and let it wrap after its separators (raw overrides have no spaces)."""
    return html.escape(label).replace(",", ",<wbr>").replace("·", "·<wbr>")


def results_table(table: pd.DataFrame, labels: Sequence[str]) -> str:
    """Render the results as an HTML table with human headers and numbers rounded per column.

    Bias, RMSE, empirical SE and CI width share the decimals of the largest of them (so they
    line up); each value's MCSE follows it in brackets; coverage carries its Wilson interval
    below. A status column appears only when a cell did not finish.
    """
    scale = pd.concat([table[c] for c in ("bias", "rmse", "emp_se", "ci_width", "truth")])
    d = _decimals(scale)
    show_status = bool((table["status"] != "FINISHED").any())
    head = ["Cell", "Estimand", "Truth", "Mean estimate", "Bias (MCSE)", "RMSE (MCSE)"]
    head += ["Emp. SE", "Coverage (MCSE)", "CI width", "Reps", "Failed", "Seconds"]
    head += ["Status"] if show_status else []
    rows = []
    for label, (_, r) in zip(labels, table.iterrows(), strict=True):
        truth = _num(r.get("truth"), d, sign=True)
        t_est = r.get("truth_estimand")
        if truth != "–" and isinstance(t_est, str) and t_est and t_est != r.get("estimand"):
            truth += f" <small>({html.escape(t_est)})</small>"
        cov = "–"
        if pd.notna(r["coverage"]):
            cov = f"{r['coverage']:.3f} ({_num(r['coverage_mcse'], 3)})"
            if pd.notna(r.get("coverage_lower")):
                cov += f"<br><small>[{r['coverage_lower']:.3f}, {r['coverage_upper']:.3f}]</small>"
        cells = [
            f'<td class="l cell">{_breakable(str(label))}</td>',
            f'<td class="l">{html.escape(r["estimand"] if isinstance(r.get("estimand"), str) and r["estimand"] else "–")}</td>',
            f"<td>{truth}</td>",
            f"<td>{_num(r.get('mean_estimate'), d, sign=True)}</td>",
            f"<td>{_num(r['bias'], d, sign=True)} <small>({_num(r['bias_mcse'], d)})</small></td>",
            f"<td>{_num(r['rmse'], d)} <small>({_num(r.get('rmse_mcse'), d)})</small></td>",
            f"<td>{_num(r.get('emp_se'), d)}</td>",
            f"<td>{cov}</td>",
            f"<td>{_num(r['ci_width'], d)}</td>",
            f"<td>{int(r['reps']):,}</td>" if pd.notna(r["reps"]) else "<td>–</td>",
            f"<td>{int(r['n_failed']):,}</td>" if pd.notna(r["n_failed"]) else "<td>–</td>",
            f"<td>{_num(r['seconds'], 1)}</td>",
        ]
        if show_status:
            bad = ' class="l bad"' if r["status"] != "FINISHED" else ' class="l"'
            cells.append(f"<td{bad}>{html.escape(str(r['status']))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    th = "".join(
        f'<th class="l">{h}</th>' if i < 2 else f"<th>{h}</th>" for i, h in enumerate(head)
    )
    return (
        f'<table class="results"><thead><tr>{th}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


_CAPTIONS = {
    "comparison": "Each row a cell, in the table's order. Left: the mean estimate (dot, ± 1.96 "
    "MCSE) beside the truth (black diamond); then bias, RMSE, coverage against the nominal level "
    "(the grey band is where a correct interval lands by chance at these replications) and CI width.",
    "measures": "Every measure with its 95% Monte Carlo interval.",
    "nested_loop": "The measure over every combination of the design factors (the steps below "
    "show each factor's level), one line per method.",
    "zip": "Every replication's interval, ranked by how far its estimate is from the truth in "
    "standard errors; red intervals miss the truth. With correct coverage about 5% are red, at "
    "the top.",
}


def _caption(name: str) -> str:
    for key, text in _CAPTIONS.items():
        if name.startswith(key):
            return text
    return ""


def _img(name: str, data: bytes) -> str:
    return (
        f'<img alt="{html.escape(name)}" loading="lazy" '
        f'src="data:image/png;base64,{base64.b64encode(data).decode()}">'
    )


def _figure(title: str, name: str, data: bytes) -> str:
    caption = _caption(name)
    return (
        f'<div class="fig"><h3>{html.escape(title)}</h3>'
        + (f"<p>{caption}</p>" if caption else "")
        + _img(name, data)
        + "</div>"
    )


def html_page(
    table: pd.DataFrame,
    sweep_id: str,
    sweep_name: str,
    png: bytes | None,
    figures: Sequence[tuple[str, bytes]] = (),
    configs: Sequence[Mapping[str, Any]] = (),
) -> str:
    """Build a self-contained HTML report a reader can be sent: design, results, figures, how to read.

    Parameters
    ----------
    table : DataFrame
        :func:`causalkit.report.sweep_table`.
    sweep_id, sweep_name : str
        The sweep's parent run.
    png : bytes or None
        The comparison plot (:func:`causalkit.plots.comparison_plot`).
    figures : sequence of (str, bytes)
        ``(file name, PNG bytes)`` of the simulation figures (forest, nested-loop and zip
        plots, :func:`causalkit.report_figures.simulation_figures`).
    configs : sequence of mapping
        The cells' ``config.yaml`` contents, for the design section.
    """
    from causalkit.plots import varying_labels

    labels, shared = varying_labels(table["cell"].astype(str).tolist()) if len(table) else ([], [])
    esc = html.escape
    design = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in design_rows(configs))
    mc = bool((table["reps"].fillna(0) > 1).any()) if len(table) else False
    kind = "Simulation study" if mc else "Comparison"
    problems = "".join(
        f"<li><b>{esc(str(label))}</b> ({esc(str(r['status']))}): {esc(str(r['error']))}</li>"
        for label, (_, r) in zip(labels, table.iterrows(), strict=True)
        if r["status"] != "FINISHED" or (isinstance(r.get("error"), str) and r["error"])
    )
    zips = [(n, b) for n, b in figures if n.startswith("zip/")]
    loops = [(n, b) for n, b in figures if n.startswith("nested_loop")]
    others = [(n, b) for n, b in figures if (n, b) not in zips and (n, b) not in loops]
    titles = {"measures.png": "Every measure with its Monte Carlo interval"}
    body_figs = "".join(
        _figure(titles.get(n, n.removesuffix(".png").replace("_", " ").capitalize()), n, b)
        for n, b in others
    )
    for title, key, group in (
        ("Nested-loop plots", "nested_loop", loops),
        ("Zip plots", "zip", zips),
    ):
        if group:
            body_figs += (
                f"<h3>{title}</h3><p>{_CAPTIONS[key]}</p><div class='grid'>"
                + "".join(_img(n, b) for n, b in group)
                + "</div>"
            )
    comparison = (
        _figure("Performance by cell", "comparison", png)
        if png
        else "<p>No finished cells to plot.</p>"
    )
    read = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in HOW_TO_READ)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(kind)}: {esc(sweep_name)}</title><style>{_CSS}</style></head>
<body><main>
<h1>{esc(kind)}: {esc(sweep_name)}</h1>
<p class="sub">{len(table)} cells{(" · all cells: " + esc(", ".join(shared))) if shared else ""} ·
MLflow parent run <code>{esc(sweep_id)}</code> · made with <code>python -m causalkit.report</code></p>
<h2>Design</h2>
<dl class="design">{design or "<dt>Cells</dt><dd>no configuration stored</dd>"}</dl>
<h2>Results</h2>
<p>Each cell is one method run on one simulated world, repeated on fresh data; the estimand is
what it estimates, the truth what it should find. Numbers in brackets are Monte Carlo standard
errors; see <a href="#how-to-read">how to read this</a>.</p>
{results_table(table, labels) if len(table) else "<p>No cells.</p>"}
{f"<h3>Problems</h3><ul>{problems}</ul>" if problems else ""}
<h2>Figures</h2>
{comparison}
{body_figs}
<h2 id="how-to-read">How to read this</h2>
<p>Each replication simulates a dataset where the true effect is known, runs the method on it
and records its estimate and confidence interval; a cell's measures summarise its replications
(Morris, White &amp; Crowther 2019, <i>Stat. Med.</i> 38:2074).</p>
<dl class="read">{read}</dl>
</main></body></html>
"""
