"""Segment (group) effects from per-row AIPW scores: the estimates and their influence columns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from causalkit.errors import ConfigError, DataError

if TYPE_CHECKING:
    from scipy import sparse

__all__ = [
    "MAX_LEVELS",
    "SegmentEffects",
    "SegmentRules",
    "bucket",
    "segment_effects",
    "segment_ratios",
]

MAX_LEVELS = 500


@dataclass(frozen=True)
class SegmentRules:
    """Minimum sizes a segment needs for its effect to be estimated."""

    min_rows: int = 50
    min_treated: int = 5
    min_controls: int = 5


def bucket(
    values: pd.Series, bins: Sequence[float] | int | None, labels: Sequence[str] | None, column: str
) -> pd.Series:
    """Segment labels of one column: as is, cut at given edges, or in ``bins`` quantile groups.

    Quantile groups rank ties by position first (``rank(method="first")``), as the design
    document does, so the groups have equal sizes even when the column is heavily tied.
    """
    if bins is None:
        if pd.api.types.is_numeric_dtype(values) and values.nunique() > MAX_LEVELS:
            raise ConfigError(
                f"estimator.segment_bins.{column}",
                "bins (edges or a quantile count) for a numeric "
                f"column with more than {MAX_LEVELS} levels",
                "none",
            )
        return (
            values.astype("category")
            if not isinstance(values.dtype, pd.CategoricalDtype)
            else values
        )
    if isinstance(bins, int):
        lab = list(labels) if labels else [f"Q{i + 1}" for i in range(bins)]
        if len(lab) != bins:
            raise ConfigError(f"estimator.segment_labels.{column}", f"{bins} labels", len(lab))
        return pd.qcut(values.rank(method="first"), q=bins, labels=lab)
    edges = [float(b) for b in bins]
    if any(b2 <= b1 for b1, b2 in zip(edges, edges[1:], strict=False)):
        raise ConfigError(
            f"estimator.segment_bins.{column}", "strictly increasing bin edges", edges
        )
    if labels is not None and len(labels) != len(edges) - 1:
        raise ConfigError(
            f"estimator.segment_labels.{column}", f"{len(edges) - 1} labels", len(labels)
        )
    return pd.cut(values, bins=edges, labels=list(labels) if labels else None, include_lowest=True)


@dataclass(frozen=True)
class SegmentEffects:
    r"""The estimated segments of every segment column, in column then level order.

    Attributes
    ----------
    names : tuple of str
        ``segment[<column>=<level>]``, one per estimated segment.
    members : scipy.sparse.csc_matrix, shape (n, s)
        :math:`W_{ig} = 1\{i \in g\}`; a row belongs to one segment of each column.
    estimates : ndarray, shape (s,)
        :math:`\hat\theta_g`.
    scale : ndarray, shape (s,)
        :math:`n^{-1}\sum_{i\in g} den_i`, the denominator of the influence values.
    tables : dict of str to DataFrame
        ``segments.<column>``: every level with its counts, means, naive and DR lift, the name
        of its estimate (empty when not estimated) and a ``status`` giving the reason.
    """

    names: tuple[str, ...]
    members: sparse.csc_matrix
    estimates: np.ndarray
    scale: np.ndarray
    tables: dict[str, pd.DataFrame]

    def influence(
        self, num: np.ndarray, den: np.ndarray, out: np.ndarray | None = None
    ) -> np.ndarray:
        r"""Influence values :math:`\psi_{ig} = 1\{i\in g\}(num_i - \hat\theta_g den_i)/s_g`.

        ``out`` (zeros, shape (n, s)), e.g. a view into the fit's influence matrix, is filled in
        place and returned, so a long table with many segments holds one such matrix only.
        """
        if out is None:
            out = np.zeros(self.members.shape)
        r, k = self.members.nonzero()
        out[r, k] = (num[r] - self.estimates[k] * den[r]) / self.scale[k]
        return out


def segment_ratios(members: sparse.spmatrix, num: np.ndarray, den: np.ndarray) -> np.ndarray:
    r"""Segment effects :math:`\hat\theta_g = \sum_{i\in g} num_i/\sum_{i\in g} den_i` (NaN if empty)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(members.T @ num, dtype=np.float64) / np.asarray(members.T @ den)


def _column(
    column: str,
    groups: pd.Series,
    num: np.ndarray,
    den: np.ndarray,
    y: np.ndarray,
    d: np.ndarray,
    rules: SegmentRules,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The descriptive table of one column, its row codes and which levels are estimated."""
    labels = (
        groups.cat.add_categories(["missing"]).fillna("missing") if groups.isna().any() else groups
    )
    codes = labels.cat.codes.to_numpy()
    cats = [str(c) for c in labels.cat.categories]
    G = len(cats)
    if G > MAX_LEVELS:
        raise DataError(
            f"segments.{column}", f"at most {MAX_LEVELS} segments (use segment_bins)", G
        )
    cnt = np.bincount(codes, minlength=G).astype(float)
    n1 = np.bincount(codes, weights=d, minlength=G)
    n0 = cnt - n1
    snum = np.bincount(codes, weights=num, minlength=G)
    sden = np.bincount(codes, weights=den, minlength=G)
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = snum / sden
        ss = np.bincount(codes, weights=(num - theta[codes] * den) ** 2, minlength=G)
        t1 = np.bincount(codes, weights=y * d, minlength=G) / n1
        t0 = np.bincount(codes, weights=y * (1 - d), minlength=G) / n0
    status = np.full(G, "ok", dtype=object)
    status[n0 < rules.min_controls] = f"controls < {rules.min_controls}"
    status[n1 < rules.min_treated] = f"treated < {rules.min_treated}"
    status[cnt < rules.min_rows] = f"rows < {rules.min_rows}"
    status[cnt == 0] = "empty"
    ok = (status == "ok") & (ss > 0) & np.isfinite(ss)
    status[(status == "ok") & ~ok] = "zero or undefined score variance"
    table = pd.DataFrame(
        {
            "segment_col": column,
            "segment": cats,
            "estimate": [
                f"segment[{column}={c}]" if k else "" for c, k in zip(cats, ok, strict=True)
            ],
            "rows": cnt.astype(np.int64),
            "treated_rows": n1.astype(np.int64),
            "control_rows": n0.astype(np.int64),
            "treated_mean": t1,
            "control_mean": t0,
            "naive_lift": t1 - t0,
            "dr_lift": np.nan,
            "status": status,
        }
    )
    return table, codes, ok


def segment_effects(
    frame: pd.DataFrame,
    columns: Sequence[str],
    bins: Mapping[str, Sequence[float] | int],
    labels: Mapping[str, Sequence[str]],
    num: np.ndarray,
    den: np.ndarray,
    y: np.ndarray,
    d: np.ndarray,
    rules: SegmentRules,
) -> SegmentEffects:
    r"""Effects of every segment of every column from the per-row AIPW score elements.

    Parameters
    ----------
    frame : DataFrame
        The rows the scores belong to (after trimming), holding the segment columns.
    columns : sequence of str
        Segment columns (the ``segments`` role).
    bins, labels : mapping
        Per column: bin edges or a quantile count, and the labels of the bins (:func:`bucket`).
    num, den : ndarray
        Score elements (:class:`~causalkit_plugins.estimators.aipw.scores.Scores`).
    y, d : ndarray
        Outcome and treatment, for the descriptive means and the naive lift.
    rules : SegmentRules
        Minimum sizes; smaller segments are listed in the table with the reason, not estimated.

    Returns
    -------
    SegmentEffects
        Names, indicators, estimates and tables; the influence values from
        :meth:`SegmentEffects.influence`.

    Notes
    -----
    Segment :math:`g` with :math:`n_g` rows: :math:`\hat\theta_g = \sum_{i\in g} num_i /
    \sum_{i\in g} den_i` with influence :math:`\psi_{ig} = 1\{i\in g\}(num_i - \hat\theta_g
    den_i)\big/\big(n^{-1}\sum_{i\in g} den_i\big)`, so that :math:`n^{-1}(\sum_i\psi_{ig}^2)^{1/2}`
    is, for the ATE, DoubleML ``gate()``'s HC0 standard error of the segment's mean AIPW score.
    No standard error is computed here: the influence columns join the fit's influence matrix
    and the inference plugin computes every SE from it, so with the ``cluster`` role the
    segments' CIs are clustered exactly as the headline's (cluster sums of
    :math:`\psi_{ig}`, one multiplier per cluster, whole clusters resampled).
    Levels with no score variation are not estimated. NaN labels form the segment ``"missing"``.
    """
    from scipy import sparse

    for c in list(bins) + list(labels):
        if c not in columns:
            raise ConfigError(
                f"estimator.segment_bins.{c}", f"a segment column ({', '.join(columns)})", c
            )
    n = num.size
    tables: dict[str, pd.DataFrame] = {}
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    names: list[str] = []
    for c in columns:
        if c not in frame.columns:
            raise DataError("roles.segments", "a column of the table", repr(c))
        g = bucket(frame[c], bins.get(c), labels.get(c), c)
        table, codes, ok = _column(c, g, num, den, y, d, rules)
        tables[f"segments.{c}"] = table
        target = np.full(ok.size, -1)
        target[ok] = len(names) + np.arange(int(ok.sum()))
        names.extend(table["estimate"][ok])
        j = target[codes]
        rows.append(np.flatnonzero(j >= 0))
        cols.append(j[j >= 0])
    r, k = np.concatenate(rows or [np.empty(0, int)]), np.concatenate(cols or [np.empty(0, int)])
    members = sparse.csc_matrix((np.ones(r.size), (r, k)), shape=(n, len(names)))
    theta = segment_ratios(members, num, den)
    by_name = dict(zip(names, theta, strict=True))
    for table in tables.values():
        table["dr_lift"] = table["estimate"].map(by_name).astype(np.float64)
    scale = np.asarray(members.T @ den) / n
    return SegmentEffects(tuple(names), members, theta, scale, tables)
