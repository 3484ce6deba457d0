"""Covariates written as formulas, expanded once before any estimator sees the data.

A covariate role (``covariates``, ``selection_covariates``, ``propensity_covariates``) holds
either a list of column names, used as they are, or one formula string such as
``"age + I(age**2) + C(education) + smokeintensity:sex"``, the right-hand side of a model in
the notation of `formulaic <https://matthewwardrop.github.io/formulaic/>`_ (Wilkinson &
Rogers 1973, as in R and patsy). :func:`expand_formulas`, called by
:func:`causalkit.inputs.checked_fit`, turns every formula into its design-matrix columns,
appends them to the table under formulaic's names (``I(age ** 2)``, ``C(education)[T.2]``,
``smokeintensity:sex``) and puts the list of those names in the role, so estimators only
ever see plain column lists, and balance tables and coefficient keys carry the expanded names.
The terms go along on the roles (:attr:`causalkit.contracts.Roles.terms`: each term's
columns and the variables it reads), so a sensitivity benchmark may name a term
(``C(education)``) or a variable (``education``) for all its columns
(:func:`benchmark_groups`).

Encoding. Text columns, pandas ``Categorical`` columns and ``C(x)`` terms are
coded as treatment contrasts: one 0/1 dummy per level but the *reference level*, which is
the first level (the lowest of the sorted values; a pandas ``Categorical``'s first category;
the ``base`` a formula asks for with ``C(x, contr.treatment(base=...))``). The reference
level of each categorical factor is reported in the fit's diagnostics (``to_dict()``, the
summary, MLflow tags ``diag.reference.<column>``) as ``reference.<column>``, e.g.
``reference.education = "1"`` (``reference.<role>.<column>`` where two roles code one
column with different bases). The design matrix is built *with* an intercept, so
every categorical factor is coded with reduced rank, and the intercept column is then
dropped: the estimators add their own. A formula that removes the intercept (``- 1``,
``0 +``) would code its first factor with all its levels, collinear with that intercept,
and is refused.

A row with a missing value in a variable of a term gets a missing value in every column of
that term (formulaic would otherwise code a missing category as the reference level), so
the input check refuses, or with ``estimator.impute`` imputes, them as for any covariate.
Powers are written ``I(x**2)``: inside ``I()`` the expression is Python, where R's
``I(x^2)`` would be a bitwise xor, so ``^`` there is refused.

References
----------
Wilkinson, G. N. & Rogers, C. E. (1973). Symbolic description of factorial models for
analysis of variance. *Applied Statistics* 22(3), 392-399.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from causalkit.contracts import Dataset, DiagnosticValue, FormulaTerm, Roles
from causalkit.errors import DataError

__all__ = [
    "benchmark_groups",
    "expand_formulas",
    "formula_variables",
    "has_formulas",
    "parse_formula",
]

_BAD_NAME = re.compile(r"[^\w.\- /:]")
"""Characters MLflow refuses in a metric or tag name (diagnostics are logged as either)."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@lru_cache(maxsize=256)
def parse_formula(text: str) -> Any:
    """Parse the right-hand side of a model formula.

    Parameters
    ----------
    text : str
        E.g. ``"age + I(age**2) + C(education)"`` (a leading ``~`` is allowed).

    Returns
    -------
    formulaic.Formula
        The parsed formula, its intercept term included.

    Raises
    ------
    ValueError
        One line saying what a formula must be: parseable, without a left-hand side, keeping
        its intercept, with at least one term, and with powers written ``I(x**2)``.
    """
    from formulaic import Formula

    try:
        formula = Formula(text)
    except Exception as exc:
        raise ValueError(f"a formula formulaic can parse ({_first_line(exc)})") from None
    if hasattr(formula, "lhs"):
        raise ValueError(
            "the right-hand side of a formula only (the role says what it predicts: drop 'y ~')"
        )
    terms = [str(t) for t in formula]
    if "1" not in terms:
        raise ValueError(
            "a formula that keeps its intercept (estimators add their own: drop '- 1' or '0 +')"
        )
    if len(terms) == 1:
        raise ValueError("a formula with at least one term")
    for term in formula:
        for factor in term.factors:
            if str(factor.eval_method).endswith("PYTHON") and "^" in factor.expr:
                raise ValueError(
                    f"powers written as I(x**2) (in {factor.expr} '^' is Python's bitwise xor)"
                )
    return formula


def formula_variables(text: str) -> tuple[str, ...]:
    """Return the table columns a formula reads, in the order they first appear in it."""
    names = {str(v) for v in parse_formula(text).required_variables}

    def first(name: str) -> tuple[int, str]:
        hit = re.search(rf"(?<![\w.]){re.escape(name)}(?![\w])", text)
        return (hit.start() if hit else len(text), name)

    return tuple(sorted(names, key=first))


def has_formulas(roles: Roles) -> bool:
    """Whether a covariate role of ``roles`` holds a formula (rather than a list of columns)."""
    return any(isinstance(getattr(roles, r), str) for r in Roles.formula_roles)


def _reference(state: Any) -> Any:
    """Return the reference level of a treatment-coded factor from formulaic's encoder state."""
    levels = list(state.get("categories", ()))
    contrasts = state.get("contrasts")
    base = getattr(getattr(contrasts, "contrasts", None), "base", None)
    if base is not None and type(base).__name__ != "_MissingType" and base in levels:
        return base
    return levels[0] if levels else None


def _factors(term: Any) -> tuple[str, ...]:
    """Return a formulaic term's factors, sorted: the key that makes ``a:b`` and ``b:a`` one term."""
    return tuple(sorted(str(f) for f in term.factors))


def _design(
    frame: pd.DataFrame, role: str, text: str
) -> tuple[dict[str, np.ndarray], dict[str, DiagnosticValue], list[FormulaTerm]]:
    """Expand one role's formula: its columns by name, its factors' reference levels, its terms."""
    from formulaic import model_matrix
    from formulaic.parser.types.factor import Factor

    field = f"roles.{role}"
    try:
        formula = parse_formula(text)
    except ValueError as exc:  # a Roles built without validation
        raise DataError(field, str(exc), repr(text)) from None
    missing = [v for v in formula_variables(text) if v not in frame.columns]
    if missing:
        raise DataError(
            field,
            f"the columns named in the formula {text!r} in the data",
            f"no column {', '.join(map(repr, missing))}",
        )
    try:
        matrix = model_matrix(formula, frame, na_action="ignore", output="pandas")
    except Exception as exc:
        raise DataError(
            field, f"a formula that evaluates on the data ({text!r})", _first_line(exc)
        ) from None
    spec = matrix.model_spec
    values = matrix.to_numpy(dtype=np.float64, na_value=np.nan)
    for term, where in spec.term_slices.items():
        used = [v for v in map(str, spec.term_variables[term]) if v in frame.columns]
        if used:
            rows = frame[used].isna().to_numpy().any(axis=1)
            values[np.ix_(rows, np.arange(values.shape[1])[where])] = np.nan
    columns = {
        str(name): values[:, j] for j, name in enumerate(matrix.columns) if str(name) != "Intercept"
    }
    terms = [
        FormulaTerm(
            str(term),
            _factors(term),
            tuple(map(str, matrix.columns[where])),
            tuple(v for v in map(str, spec.term_variables[term]) if v in frame.columns),
        )
        for term, where in spec.term_slices.items()
        if str(term) != "1"
    ]
    references: dict[str, DiagnosticValue] = {}
    for factor, (kind, state) in spec.encoder_state.items():
        if kind is not Factor.Kind.CATEGORICAL:
            continue
        variables = [
            v for v in formula_variables(text) if re.search(rf"\b{re.escape(v)}\b", factor)
        ]
        label = variables[0] if len(variables) == 1 else _BAD_NAME.sub("_", str(factor))
        references[label] = str(_reference(state))
    return columns, references, terms


def expand_formulas(data: Dataset) -> tuple[Dataset, dict[str, DiagnosticValue]]:
    """Expand every covariate formula of ``data``'s roles into columns of its table.

    Parameters
    ----------
    data : Dataset
        A table whose covariate roles may hold formula strings.

    Returns
    -------
    Dataset
        ``data`` itself when no role holds a formula; otherwise the table with the expanded
        columns appended (a column a formula names as it is, e.g. ``age``, is kept, not
        copied) and the roles holding the lists of expanded column names, and the formulas'
        terms (:attr:`~causalkit.contracts.Roles.terms`, each once).
    dict
        The reference level of every categorical factor, ``reference.<column>`` (a string),
        for the fit's diagnostics; empty without formulas.

    Raises
    ------
    DataError
        One line naming the role and the formula: a column it names is not in the table, it
        cannot be evaluated on the table, an expanded name is already a different column, or
        the table is left in storage (a lazy source: there is no table to expand).
    """
    roles = data.roles
    texts = {r: getattr(roles, r) for r in Roles.formula_roles}
    texts = {r: t for r, t in texts.items() if isinstance(t, str)}
    if not texts:
        return data, {}
    if data.panel is None and data.source is not None:
        role, text = next(iter(texts.items()))
        raise DataError(
            f"roles.{role}",
            "a list of column names with a lazy source (a formula needs the table in memory)",
            repr(text),
        )
    frame = data.frame
    present = {str(c) for c in frame.columns}
    added: dict[str, np.ndarray] = {}
    update: dict[str, tuple[str, ...]] = {}
    notes: dict[str, DiagnosticValue] = {}
    terms: dict[tuple[str, ...], FormulaTerm] = {}
    for role, text in texts.items():
        columns, references, role_terms = _design(frame, role, text)
        for term in role_terms:  # a term in two roles: the columns of both
            seen = terms.get(term.factors, term)
            both = tuple(dict.fromkeys((*seen.columns, *term.columns)))
            terms[term.factors] = dataclasses.replace(seen, columns=both)
        plain = set(formula_variables(text))
        for name, column in columns.items():
            if name in present and name not in plain:
                raise DataError(
                    f"roles.{role}",
                    f"new column names for the expansion of {text!r}",
                    f"{name!r}, already a column of the data",
                )
            if name not in present:
                added.setdefault(name, column)
        update[role] = tuple(columns)
        for label, level in references.items():
            key = f"reference.{label}"
            if notes.get(key, level) != level:  # the roles code this column differently
                key = f"reference.{role}.{label}"
            notes[key] = level
    if added:
        frame = pd.concat([frame, pd.DataFrame(added, index=frame.index)], axis=1)
    expanded = roles.model_copy(update=update).with_terms(tuple(terms.values()))
    return Dataset(frame, expanded), notes


def _term_of(name: str) -> tuple[str, ...] | None:
    """Return the factors of ``name`` read as a one-term formula (``"I(age**2)"``), else None."""
    try:
        parsed = [t for t in parse_formula(name) if str(t) != "1"]
    except ValueError:
        return None
    return _factors(parsed[0]) if len(parsed) == 1 else None


def _resolve(name: str, known: Collection[str], terms: Sequence[FormulaTerm]) -> tuple[str, ...]:
    """Return the columns of ``known`` one benchmark name stands for (see :func:`benchmark_groups`)."""
    if name in known:
        return (name,)
    key = _term_of(name) if terms else None
    hits = [t for t in terms if t.factors == key]
    if not hits and "(" not in name:  # a variable of the data that is not a column
        hits = [t for t in terms if name in t.variables]
    return tuple(dict.fromkeys(c for t in hits for c in t.columns if c in known))


def benchmark_groups(
    entries: Sequence[str],
    known: Sequence[str],
    terms: Sequence[FormulaTerm] = (),
    field: str = "estimator.sensitivity.benchmark_covariates",
) -> dict[str, tuple[str, ...]]:
    """Resolve sensitivity benchmarks into the covariate columns each leaves out, as one group.

    Shared by the sensitivity analyses of ``aipw``, ``ipw`` and ``ols``. A name resolves, in
    this order, to

    1. itself, when it is a column of ``known`` (an expanded name such as
       ``"C(education)[T.2]"`` or ``"I(age ** 2)"``);
    2. every column a formula term produced, when it is that term as written or as formulaic
       normalises it (``"I(age**2)"`` is ``I(age ** 2)``, ``"sex:C(education)"`` is
       ``C(education):sex``), e.g. ``"C(village)"``: all its dummies;
    3. every column of every term that reads it, when it is a variable of the data that is
       not itself a column (``"education"``: ``C(education)`` and ``C(education):sex``).

    An entry ``"a+b"`` that is not one name leaves out the union of ``a``'s and ``b``'s.

    Parameters
    ----------
    entries : sequence of str
        The ``benchmark_covariates``.
    known : sequence of str
        The covariate columns of the fit's models.
    terms : sequence of FormulaTerm
        The terms the columns came from (:attr:`~causalkit.contracts.Roles.terms`).
    field : str
        The parameter named in errors.

    Returns
    -------
    dict
        Entry -> the columns of ``known`` it leaves out (in ``known``'s order).

    Raises
    ------
    DataError
        One line naming ``field``, listing the accepted terms and columns (the first 12),
        when an entry or part resolves to nothing.
    """
    order = {c: j for j, c in enumerate(known)}
    out: dict[str, tuple[str, ...]] = {}
    for entry in entries:
        parts = [entry.strip()]
        if not _resolve(parts[0], order, terms) and "+" in entry:
            parts = [p.strip() for p in entry.split("+")]
            if not all(_resolve(p, order, terms) for p in parts):  # "I(a + b) + c"
                parsed = _whole(entry)
                parts = (
                    parsed if parsed and all(_resolve(p, order, terms) for p in parsed) else parts
                )
        columns: dict[str, None] = {}
        for part in parts:
            hit = _resolve(part, order, terms)
            if not hit:
                accepted = list(
                    dict.fromkeys(
                        [
                            *(t.label for t in terms if t.columns != (t.label,)),
                            *known,
                        ]
                    )
                )
                shown = ", ".join(accepted[:12])
                more = f", ... ({len(accepted)} in all)" if len(accepted) > 12 else ""
                what = "covariates or formula terms" if terms else "covariates"
                raise DataError(field, f"{what} among {shown}{more}", repr(part))
            columns.update(dict.fromkeys(hit))
        out[entry] = tuple(sorted(columns, key=order.__getitem__))
    return out


def _whole(entry: str) -> list[str]:
    """Return the terms of ``entry`` read as a formula (empty when it is not one)."""
    try:
        return [str(t) for t in parse_formula(entry) if str(t) != "1"]
    except ValueError:
        return []
