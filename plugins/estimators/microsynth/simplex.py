"""Simplex mode: minimum-variance weights on control units that exactly balance treated covariate means."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from causalkit.balance import (
    BALANCE_COLUMNS,
    N_MEAN_COLUMNS,
    balance_block,
    balance_message,
    balance_scalars,
)
from causalkit.clusters import fit_clusters, fit_weights, weight_diagnostics
from causalkit.contracts import Dataset, DiagnosticValue, Estimand, Fit, LazyTables, Resampler
from causalkit.errors import DataError, EstimationError
from causalkit.evalue import e_value
from causalkit_plugins.estimators.microsynth.dual import weighted_gram
from causalkit_plugins.estimators.microsynth.estimands import (
    BalancedContrast,
    effect_names,
    effects,
    group_role,
)
from causalkit_plugins.estimators.microsynth.params import MicroSynthParams
from causalkit_plugins.estimators.microsynth.simplex_data import SimplexInputs, simplex_inputs

__all__ = ["fit_simplex"]


def _standardise_split(
    blocks: Sequence[np.ndarray],
    names: tuple[str, ...],
    rows: tuple[np.ndarray, np.ndarray],
    weights: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""Pooled centring and scaling, split into new column-major arrays of the treated and control ``rows``.

    The balance columns (the columns of the per-unit ``blocks``, each ``n x k``) are
    gathered once into the treated and control matrices and centred and scaled there in
    place, so no ``n x d`` temporary is made. Column-major (Fortran) order makes the
    solver's ``w @ Z`` products several times faster than row-major. Constant columns are a
    one-line error. With ``weights`` (the sampling weights of the treated and of the control
    rows) the pooled mean and SD are weighted, :math:`m = \sum_i d_i x_i / \sum_i d_i` and
    :math:`s^2 = \sum_i d_i (x_i - m)^2 / \sum_i d_i`: those of the frequency-expanded data.

    Returns
    -------
    Zt, Zc : ndarray, shape (n_T, d) / (n_C, d), Fortran order
        Standardised columns of the treated rows and of the control rows.
    m, sd : ndarray, shape (d,)
        Pooled (weighted) means and standard deviations (ddof=0).
    """
    t_idx, c_idx = rows
    n, d = t_idx.size + c_idx.size, len(names)
    Zt = np.empty((t_idx.size, d), order="F")
    Zc = np.empty((c_idx.size, d), order="F")
    start = 0
    for block in blocks:
        stop = start + block.shape[1]
        if stop == start:
            continue
        _gather(block, t_idx, Zt[:, start:stop])
        _gather(block, c_idx, Zc[:, start:stop])
        start = stop
    if weights is None:
        m = (Zt.sum(axis=0) + Zc.sum(axis=0)) / n  # column sums of Fortran arrays: pairwise
        Zt -= m
        Zc -= m
        sd = np.sqrt((_column_dots(Zt, Zt) + _column_dots(Zc, Zc)) / n)
    else:
        dt, dc = weights
        total = dt.sum() + dc.sum()
        m = (dt @ Zt + dc @ Zc) / total
        Zt -= m
        Zc -= m
        sd = np.sqrt((dt @ (Zt * Zt) + dc @ (Zc * Zc)) / total)
    varying = sd > 1e-12 * (1.0 + np.abs(m))
    if not varying.all():
        constant = [c for c, v in zip(names, varying, strict=True) if not v]
        raise DataError(
            "roles.covariates",
            "balance columns that vary across units",
            f"constant {', '.join(constant)}",
        )
    Zt /= sd
    Zc /= sd
    return Zt, Zc, m, sd


_CHUNK = 1 << 16  # rows per temporary block (bounds the memory of gathers and centred passes)
_THREADED_DOT = 10_000  # OpenBLAS runs a dot on one thread up to this length


def _gather(block: np.ndarray, idx: np.ndarray, out: np.ndarray) -> None:
    """``out[:] = block[idx]``: by column from a column-major ``block`` (a row ``take`` would
    first copy all of it to row order), else by row chunks (a row-major gather then one copy is
    ~2x faster than writing the gather straight into column-major ``out``; chunks bound the
    temporary)."""
    if not block.flags.c_contiguous and block.flags.f_contiguous:
        for j in range(block.shape[1]):
            out[:, j] = block[:, j].take(idx)
        return
    for a in range(0, idx.size, _CHUNK):
        out[a : a + _CHUNK] = block.take(idx[a : a + _CHUNK], axis=0)


def _column_dots(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``[A[:, j] @ B[:, j] for j]`` in one call (the same BLAS dot per column, so equal bits).

    Long columns on one BLAS thread: OpenBLAS threads a dot above ~10,000 rows, handing off
    per column, which stalled ~10x on a loaded 2-core machine (shorter columns are single
    threaded anyway and skip the thread-limit switch, ~0.2 ms).
    """
    from causalkit.montecarlo import one_blas_thread

    if hasattr(np, "vecdot"):
        if A.shape[0] <= _THREADED_DOT:
            return np.vecdot(A, B, axis=0)  # type: ignore[call-overload]  # numpy stubs lack axis
        with one_blas_thread():
            return np.vecdot(A, B, axis=0)  # type: ignore[call-overload]
    return np.array([A[:, j] @ B[:, j] for j in range(A.shape[1])])  # pragma: no cover - numpy 1


def _column_groups(n: int, d: int) -> list[slice]:
    """Slices of the ``d`` columns whose ``n``-row temporaries hold at most ``_CHUNK * 8`` values."""
    k = max(1, (_CHUNK * 8) // max(n, 1))
    return [slice(a, min(a + k, d)) for a in range(0, d, k)]


def _balance_columns(
    Zt: np.ndarray,
    Zc: np.ndarray,
    w: np.ndarray,
    m: np.ndarray,
    sd: np.ndarray,
    m1: np.ndarray | None = None,
    weights: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    r"""The fit's balance table as a ``d x 8`` block: :func:`causalkit.balance.balance_block` of one pass of moments.

    The moments are taken on the standardised columns (SMDs and variance ratios are
    invariant to the per-column affine map; means are mapped back to raw units). Control
    moments use one pass per column instead of the framework's repeated centred passes,
    which would dominate the fit on a million units; equality with
    :func:`causalkit.balance.balance_table` is a unit test. ``m1`` are the treated means of
    ``Zt`` when already computed.

    With ``weights`` (the sampling weights :math:`d` of the treated and of the control units)
    the table describes the weighted population: every moment is :math:`d`-weighted (means
    :math:`\sum_i d_i z_i / V_1`, variances :math:`\sum_i d_i (z_i - \bar z)^2 / (V_1 - V_2/V_1)`
    with :math:`V_k = \sum_i d_i^k`, which is ddof 1 for unit weights and does not depend on
    the weights' scale) and the balanced controls carry :math:`d_j w_j`.
    """
    (n1, d), n0 = Zt.shape, Zc.shape[0]
    m1 = Zt.mean(axis=0) if m1 is None else m1
    dt, dc = (None, None) if weights is None else weights
    m0 = Zc.mean(axis=0) if dc is None else (dc @ Zc) / dc.sum()
    cw = w if dc is None else dc * w
    wn = cw / cw.sum()
    m0w = wn @ Zc
    v1, ws2 = np.zeros(d), np.empty(d)
    s2 = _column_dots(Zc, Zc) if dc is None else dc @ (Zc * Zc)
    for cols in _column_groups(max(n1, n0), d):  # centred (two-pass); bounded temporaries
        if n1 > 1:
            zt = Zt[:, cols] - m1[cols]
            if dt is None:
                v1[cols] = _column_dots(zt, zt) / (n1 - 1)
            else:
                v1[cols] = (dt @ (zt * zt)) / _variance_divisor(dt)
        zc = Zc[:, cols]
        ws2[cols] = _column_dots(wn[:, None] * zc, zc)
    if dc is None:
        v0 = (s2 / max(n0, 1) - m0 * m0) * (n0 / (n0 - 1)) if n0 > 1 else np.zeros(d)
    else:
        v0 = (
            (s2 / dc.sum() - m0 * m0) * (dc.sum() / _variance_divisor(dc))
            if n0 > 1
            else np.zeros(d)
        )
    out = balance_block(m1, m1, m0, m0w, v1, v0, v1, ws2 - m0w * m0w)
    out[:, :N_MEAN_COLUMNS] *= sd[:, None]  # means back to raw units
    out[:, :N_MEAN_COLUMNS] += m[:, None]
    return out


def _variance_divisor(d: np.ndarray) -> float:
    """:math:`V_1 - V_2/V_1` of weights ``d`` (:math:`n - 1` for unit weights)."""
    v1 = float(d.sum())
    return v1 - float(d @ d) / v1


def _balance_frame(names: tuple[str, ...], block: np.ndarray) -> pd.DataFrame:
    """:func:`causalkit.balance.balance_table` of the fit from :func:`_balance_columns`'s block.

    One float block (cheaper than a dict of columns: this runs in every MC replication).
    """
    return pd.DataFrame(block, index=_covariate_index(names).copy(), columns=_BALANCE.copy())


_BALANCE = pd.Index(BALANCE_COLUMNS)
_SMD_BEFORE, _SMD_AFTER = BALANCE_COLUMNS.index("smd_before"), BALANCE_COLUMNS.index("smd_after")


@functools.lru_cache(maxsize=16)
def _labels(names: tuple[str, ...]) -> pd.Index:
    """Column labels, built once per set of names (string indexes cost ~50 us to build)."""
    return pd.Index(list(names))


@functools.lru_cache(maxsize=64)
def _covariate_index(names: tuple[str, ...]) -> pd.Index:
    """The balance table's row index, built once per set of names (tables get shallow copies)."""
    return pd.Index(list(names), name="covariate")


def _column_frame(columns: dict[str, np.ndarray], index: pd.Index) -> pd.DataFrame:
    """``pd.DataFrame(columns, index=index)`` for 1-D numpy columns of ``len(index)``, without copies.

    The public constructor re-infers every column and rebuilds the column labels (about
    0.2 ms for a few short columns, more than the rest of a small fit); the arrays are
    already what pandas would store, so the frame is assembled from them directly when this
    pandas has ``DataFrame._from_arrays`` (the result is identical, a unit test).
    """
    try:
        build = pd.DataFrame._from_arrays
    except AttributeError:  # pragma: no cover - pandas without the private constructor
        return pd.DataFrame(columns, index=index)
    labels = _labels(tuple(columns)).copy()  # a frame's labels are its own (names are settable)
    return build(list(columns.values()), labels, index, verify_integrity=False)


def _positive_weights(
    data: Dataset,
    inp: SimplexInputs,
    p: MicroSynthParams,
    role: Literal["treatment", "assignment"],
) -> tuple[Dataset, SimplexInputs, np.ndarray | None, dict[str, DiagnosticValue]]:
    """Read the ``weight`` role (:func:`causalkit.clusters.fit_weights`) and drop zero-weight units.

    A unit of weight zero is not in the weighted population: its rows are dropped from the
    data (the fit is then exactly the fit of the data without them, clusters included).
    Returns the data, inputs and weights the fit uses and the weights' diagnostics
    (:func:`causalkit.clusters.weight_diagnostics` of the weights as given).
    """
    w = fit_weights(data, inp.table.n, units=inp.table.units)
    notes = weight_diagnostics(w)
    if w is None or (w > 0).all():
        return data, inp, w, notes
    col = data.roles.weight
    assert col is not None
    frame = data.frame
    kept = frame[frame[col].to_numpy() != 0].reset_index(drop=True)
    data = Dataset(kept, data.roles)
    inp = simplex_inputs(data, role, p.outcome_lag_periods, p.match_outcomes)
    return data, inp, fit_weights(data, inp.table.n, units=inp.table.units), notes


def _e_value(
    estimand: Estimand,
    estimate: float,
    y_post: np.ndarray,
    g: np.ndarray,
    synthetic: np.ndarray,
    post: np.ndarray,
    weights: np.ndarray | None,
) -> dict[str, DiagnosticValue]:
    r"""The ``e_value.*`` diagnostics of an ATT or ITT; none for a CACE.

    The outcome is each unit's mean post-period outcome (the headline is the gap of its
    means); a 0/1 outcome's baseline risk is the synthetic control's mean over the post
    periods (the treated group's counterfactual mean), otherwise the SD is the pooled
    within-group SD of the unit means, weighted with the ``weight`` role
    (:func:`~causalkit.evalue.e_value`). A CACE is an
    effect among compliers, whose untreated mean the fit does not estimate.
    """
    if estimand is Estimand.CACE:
        return {}
    baseline = float(synthetic[post].mean())
    return e_value(estimate, y_post.mean(axis=1), g, baseline, weights).diagnostics()


def fit_simplex(data: Dataset, p: MicroSynthParams) -> Fit:
    """Fit simplex MicroSynth in memory; see :class:`~causalkit_plugins.estimators.microsynth.estimator.MicroSynth`.

    ``estimand=ATT`` contrasts actually exposed units (role ``treatment``) with weighted
    unexposed ones; ``ITT`` contrasts the randomised arms (role ``assignment``), balancing
    for precision; ``CACE`` divides the balanced ITT by the balanced compliance gap (needs
    both roles). The estimates are the mean post-period gap, then (several post periods) each
    post period's gap (:func:`~causalkit_plugins.estimators.microsynth.estimands.effects`).
    The ``gaps`` table holds every period's contrast (pre periods are the pre-trend
    diagnostic). The fit offers a paired (treated/control strata) resampling refit, batched,
    and placebo draws (:meth:`~causalkit_plugins.estimators.microsynth.estimands.BalancedContrast.placebo`:
    ``n_T`` controls against the other ``n_C - n_T``; refused with a one-line
    :class:`~causalkit.errors.DataError` when ``n_C < 2 n_T``); their inference is the
    chosen inference plugin's. With the ``cluster`` role (each unit in one cluster) the fit
    carries the clusters, so the bootstrap resamples whole clusters (within the treated and
    control strata when no cluster holds both), and the placebo draws are refused in one
    line (they are single units). With the ``weight`` role every quantity is the one of the
    frequency-expanded data (see the estimator's docstring); zero-weight units are dropped,
    the refit carries each unit's weight into its multiplicity, and the placebo draws are
    refused in one line. The ``e_value.*`` diagnostics are those of :func:`_e_value` (not
    computed by the columnar and Spark backends).
    """
    role = group_role(p.estimand)
    if p.estimand is Estimand.CACE and data.roles.treatment is None:
        raise DataError("roles.treatment", "an exposure column for estimand=CACE", "nothing")
    inp = simplex_inputs(data, role, p.outcome_lag_periods, p.match_outcomes)
    data, inp, dw, weight_notes = _positive_weights(data, inp, p, role)
    table = inp.table
    names = tuple(table.covariates) + inp.lag_names
    if not names:
        raise DataError("roles.covariates", "at least one covariate to balance", "none")
    g = table.group
    rows = (np.flatnonzero(g), np.flatnonzero(~g))  # treated, control positions
    t_idx, c_idx = rows
    design = None if dw is None else (dw.take(t_idx), dw.take(c_idx))
    Zt, Zc, m, sd = _standardise_split((table.X, inp.lags), names, rows, design)
    Y = np.column_stack([table.y_pre, table.y_post])
    Yt = Y.take(t_idx, axis=0)  # row-major, as the treated means were always taken
    periods = np.concatenate([table.pre_periods, table.post_periods])
    post = np.arange(periods.size) >= table.y_pre.shape[1]
    D = (
        table.treatment.astype(np.float64)
        if p.estimand is Estimand.CACE and table.treatment is not None
        else None
    )
    contrast = BalancedContrast(
        Zt,
        Zc,
        np.asfortranarray(Yt),
        np.asfortranarray(Y.take(c_idx, axis=0)),
        post,
        None if D is None else D.take(t_idx),
        None if D is None else D.take(c_idx),
        p.tol,
        p.max_iter,
        *(design or (None, None)),
    )

    sol = contrast.solve(None, None, None, check_hull=True)
    per, gap = contrast.gaps(None, None, sol.w)
    if gap == 0:
        raise EstimationError(
            "microsynth: the balanced compliance gap is zero; the CACE is undefined"
        )
    estimates = effects(per, gap, post)

    bal = _balance_columns(Zt, Zc, sol.w, m, sd, contrast.target, design)
    if design is None:
        w_c = sol.w
        treated_mean = Yt.mean(axis=0)
    else:
        w_c = design[1] * sol.w  # each control's share of the synthetic control
        treated_mean = (design[0] @ Yt) / design[0].sum()
    diag = balance_scalars(bal[:, _SMD_BEFORE], bal[:, _SMD_AFTER], w_c)
    feasible, msg = balance_message(
        diag["max_abs_smd_after"], p.balance_tol, sol.converged, sol.message
    )
    warnings = [] if feasible else [f"microsynth: {msg}"]

    gaps_columns = {
        "period": periods,
        "post": post.copy(),  # the refit closures keep ``post``: the table gets its own
        "treated": treated_mean,
        "synthetic": treated_mean - per,
        "gap": per / gap,
    }

    diagnostics: dict[str, DiagnosticValue] = {
        "n_treated": int(t_idx.size),
        "n_control": int(c_idx.size),
        "n_periods_post": int(post.sum()),
        "n_balance_columns": len(names),
        **diag,
        "feasible": feasible,
        "feasibility_message": msg,
        "hull_feasible": sol.hull_feasible is not False,
        "iterations": sol.iterations,
        "converged": sol.converged,
        "dual_residual": sol.residual,
        **weight_notes,
        **_e_value(p.estimand, float(estimates[0]), table.y_post, g, treated_mean - per, post, dw),
    }
    if D is not None:
        diagnostics["compliance_gap"] = gap
        diagnostics["itt"] = float(per[post].mean())
        if gap < p.compliance_floor:
            warnings.append(
                f"microsynth: weak first stage, balanced compliance gap {gap:.3g} "
                f"< {p.compliance_floor:g}; the CACE is unstable"
            )

    def refit(idx: np.ndarray) -> np.ndarray:
        # Each refit is a few mat-vecs on n_C x d: BLAS thread hand-offs only cost (and stall
        # badly on a loaded machine).
        from causalkit.montecarlo import one_blas_thread

        with one_blas_thread():
            per_b, gap_b = contrast.resampled(idx, rows, sol)
        return effects(per_b, gap_b, post)

    def refit_batch(idxs: list[np.ndarray]) -> np.ndarray:
        from causalkit.montecarlo import one_blas_thread

        with one_blas_thread():
            per_b, gap_b = contrast.resampled_batch(idxs, rows, sol)
        return effects(per_b, gap_b, post)

    cache: dict[str, np.ndarray] = {}
    parts = fit_clusters(data, table.n, "microsynth", units=table.units)
    warnings.extend(parts.warnings)
    diagnostics.update(parts.diagnostics or {})

    def placebo(rng_p: np.random.Generator) -> np.ndarray:
        if parts.clusters is not None:
            raise DataError(
                "inference=permutation",
                "no cluster role (placebo groups of single units would treat the clusters' "
                "units as independent; use inference=bootstrap, which resamples clusters)",
                f"roles.cluster={data.roles.cluster!r}",
            )
        if design is not None:
            raise DataError(
                "inference=permutation",
                "no weight role (the placebo groups' weights are not the treated group's, so "
                "their spread is not the estimate's null spread; use inference=bootstrap)",
                f"roles.weight={data.roles.weight!r}",
            )
        if "H" not in cache:
            cache["H"] = weighted_gram(Zc, np.ones(Zc.shape[0], dtype=bool), None)
        return contrast.placebo(rng_p, cache["H"], gap)

    return Fit(
        p.estimand,
        estimates,
        table.n,
        names=effect_names(p.estimand, table.post_periods),
        resampler=Resampler(
            table.n, strata=g.astype(np.int64), refit=refit, refit_batch=refit_batch
        ),
        placebo=placebo,
        clusters=parts.clusters,
        weights=dw,
        diagnostics=diagnostics,
        tables=LazyTables(
            {
                "balance": lambda: _balance_frame(names, bal),
                "gaps": lambda: _column_frame(gaps_columns, pd.RangeIndex(periods.size)),
            }
        ),
        warnings=tuple(warnings),
    )
