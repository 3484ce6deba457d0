"""A result's summary: sections of pairs, tables and lines, rendered as text, HTML or LaTeX."""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "Section",
    "Summary",
    "formatted",
    "signed",
    "plain",
    "scalar",
    "pvalue",
    "P_FLOOR",
    "fixed_or_scientific",
]

_RULE = 64

P_FLOOR = 1e-16
"""P-values below this print as ``< 1e-16``: near double precision's resolution of ``1 - p``,
the digits of a smaller tail probability say nothing a reader can use."""


def _nan(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def signed(x: float | None, digits: int = 4) -> str:
    """Format with a sign and ``digits`` decimals (``nan`` for a missing value)."""
    return "nan" if _nan(x) else f"{x:+.{digits}f}"


def plain(x: float | None, spec: str = ".4f") -> str:
    """Format with ``spec`` (``nan`` for a missing value)."""
    return "nan" if _nan(x) else format(x, spec)


def scalar(value: Any) -> str:
    """Format a diagnostic: floats to 4 significant digits, flags as yes/no, anything else as ``str``."""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def pvalue(p: float | None) -> str:
    """Format a p-value: ``< 1e-16`` below :data:`P_FLOOR`, 2 significant digits below 0.001, else 4 decimals."""
    if _nan(p):
        return "nan"
    assert p is not None
    if p < P_FLOOR:
        return f"< {P_FLOOR:.0e}"
    return f"{p:.1e}" if p < 1e-3 else f"{p:.4f}"


def fixed_or_scientific(values: Any, digits: int = 3, sign: bool = True) -> Callable[[Any], str]:
    """Return one format for a column: ``digits`` fixed decimals where they show every value.

    Fixed decimals are used when the largest finite magnitude is below 1e5 and either at
    least ``10**-(digits-1)`` or zero (so a column of tiny values, such as SMDs after exact
    balancing, keeps its scientific notation instead of printing as zeros); otherwise
    scientific notation with ``digits - 1`` decimals; with a ``+`` sign if ``sign``.
    Non-floats print as ``str``.
    """
    a = np.abs(np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=float))
    a = a[np.isfinite(a)]
    top = float(a.max()) if a.size else 0.0
    fixed = top < 1e5 and (top == 0.0 or top >= 10.0 ** -(digits - 1))
    spec = ("+" if sign else "") + (f".{digits}f" if fixed else f".{digits - 1}e")

    def fmt(v: Any) -> str:
        return format(v, spec) if isinstance(v, (float, np.floating)) else str(v)

    return fmt


@dataclass(frozen=True, eq=False)
class Section:
    """One block of a :class:`Summary`: label/value pairs, a table, or lines of text.

    Parameters
    ----------
    caption : str or None
        Heading of the block.
    pairs : tuple of (str, str)
        Labels and formatted values.
    table : DataFrame or None
        A table whose cells are already formatted as text.
    lines : tuple of str
        Free text (notes, warnings).
    width, indent : int, str
        Width of the label column and indent of the pairs in the text rendering.
    """

    caption: str | None = None
    pairs: tuple[tuple[str, str], ...] = ()
    table: pd.DataFrame | None = None
    lines: tuple[str, ...] = ()
    width: int = 22
    indent: str = ""

    def text(self) -> list[str]:
        """Render as lines of plain text."""
        out = [self.caption] if self.caption else []
        # a label as long as the column still gets two spaces before its value
        width = max([self.width, *(len(label) + 2 for label, _ in self.pairs)])
        out += [f"{self.indent}{label:<{width}}{value}" for label, value in self.pairs]
        if self.table is not None:
            out.append(self.table.to_string())
        return out + list(self.lines)

    def html(self) -> str:
        """Render as HTML tables and paragraphs."""
        cap = f"<caption>{html.escape(self.caption)}</caption>" if self.caption else ""
        parts = []
        if self.pairs:
            rows = "".join(
                f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                for k, v in self.pairs
            )
            parts.append(f'<table class="simpletable">{cap}{rows}</table>')
            cap = ""
        if self.table is not None:
            body = self.table.to_html(border=0, classes="simpletable")
            parts.append(f"<p><b>{html.escape(self.caption or '')}</b></p>{body}" if cap else body)
        parts += [f"<p>{html.escape(line)}</p>" for line in self.lines]
        return "\n".join(parts)

    def latex(self) -> str:
        """Render as LaTeX ``tabular`` environments (the caption spans the first row)."""
        cap = _tex(self.caption) if self.caption else None
        blocks = []
        if self.pairs:
            rows = [f"{_tex(k)} & {_tex(v)} \\\\" for k, v in self.pairs]
            blocks.append(_tabular("lr", cap, rows))
            cap = None
        if self.table is not None:
            t = self.table
            head = " & ".join(_tex(str(c)) for c in (t.index.name or "", *t.columns)) + " \\\\"
            body = [
                " & ".join(_tex(str(c)) for c in (i, *row)) + " \\\\"
                for i, row in zip(t.index, t.to_numpy(), strict=True)
            ]
            blocks.append(_tabular("l" + "r" * t.shape[1], cap, [head, "\\hline", *body]))
            cap = None
        if self.lines:
            blocks.append(
                "\n".join(
                    [
                        *([f"\\textbf{{{cap}}}\\par"] if cap else []),
                        *(_tex(line) + "\\par" for line in self.lines),
                    ]
                )
            )
        return "\n\\par\\medskip\n".join(blocks)


def _tabular(spec: str, caption: str | None, rows: list[str]) -> str:
    head = (
        [f"\\multicolumn{{{len(spec)}}}{{l}}{{\\textbf{{{caption}}}}} \\\\", "\\hline"]
        if caption
        else []
    )
    return "\n".join(
        [f"\\begin{{tabular}}{{{spec}}}", "\\hline", *head, *rows, "\\hline", "\\end{tabular}"]
    )


_TEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def _tex(s: str) -> str:
    return "".join(_TEX.get(c, c) for c in s)


@dataclass(frozen=True, eq=False)
class Summary:
    """A result's report, rendered as plain text (``str``), HTML (notebooks) or LaTeX.

    Like linearmodels' summary: one content object, three renderings. ``print(summary)``
    shows the text, a notebook shows :meth:`as_html`, :meth:`as_latex` goes into a paper.
    """

    title: str
    sections: tuple[Section, ...]

    def as_text(self) -> str:
        """Render as plain text between ``=`` rules, sections separated by ``-`` rules."""
        lines = [self.title, "=" * _RULE]
        for i, section in enumerate(self.sections):
            if i:
                lines.append("-" * _RULE)
            lines += section.text()
        lines.append("=" * _RULE)
        return "\n".join(lines)

    def as_html(self) -> str:
        """Render as an HTML fragment (what a notebook shows)."""
        body = "\n".join(s.html() for s in self.sections)
        return f'<div class="causalkit-summary"><h4>{html.escape(self.title)}</h4>\n{body}\n</div>'

    def as_latex(self) -> str:
        """Render as LaTeX (a ``center`` environment of ``tabular`` blocks)."""
        body = "\n\\par\\medskip\n".join(s.latex() for s in self.sections)
        return f"\\begin{{center}}\n\\textbf{{{_tex(self.title)}}}\\par\\medskip\n{body}\n\\end{{center}}"

    def _repr_html_(self) -> str:
        return self.as_html()

    def __str__(self) -> str:
        """Return the plain text."""
        return self.as_text()

    def __repr__(self) -> str:
        """Return the plain text (so a REPL shows the report)."""
        return self.as_text()


def formatted(
    table: pd.DataFrame,
    formats: Mapping[str, Callable[[Any], str]],
    default: Callable[[Any], str] = str,
) -> pd.DataFrame:
    """Return ``table`` with every cell formatted as text (column formats, else ``default``)."""
    return pd.DataFrame(
        {c: [formats.get(str(c), default)(v) for v in table[c]] for c in table.columns},
        index=table.index,
    )
