"""Segment (group) effects from per-row AIPW scores: CIs, joint sup-t CIs and Holm p-values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from causalkit.errors import ConfigError, DataError

__all__ = ["SegmentRules", "bucket", "holm", "segment_table", "MAX_LEVELS"]

MAX_LEVELS = 500


@dataclass(frozen=True)
class SegmentRules:
    """Minimum sizes, confidence level and the number of sup-t draws."""

    min_rows: int = 50
    min_treated: int = 5
    min_controls: int = 5
    level: float = 0.95
    n_draws: int = 10_000


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


def holm(p: np.ndarray) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values (family-wise error control)."""
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p)
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adj
    return out


def segment_table(
    column: str,
    groups: pd.Series,
    num: np.ndarray,
    den: np.ndarray,
    y: np.ndarray,
    d: np.ndarray,
    rules: SegmentRules,
    rng: np.random.Generator,
) -> pd.DataFrame:
    r"""Effects of every segment of one column from the per-row score elements.

    Parameters
    ----------
    column : str
        Segment column name.
    groups : Series (categorical)
        Segment label per row (NaN labels form the segment ``"missing"``).
    num, den : ndarray
        Score elements (:class:`~causalkit_plugins.estimators.aipw.scores.Scores`).
    y, d : ndarray
        Outcome and treatment, for the naive lift.
    rules : SegmentRules
        Minimum sizes, level and sup-t draws.
    rng : Generator
        For the sup-t critical value.

    Notes
    -----
    Segment :math:`g`: :math:`\hat\theta_g = \sum_{i\in g} num_i / \sum_{i\in g} den_i` with
    influence :math:`\psi_i = (num_i - \hat\theta_g den_i)/\overline{den}_g` and
    :math:`\widehat{se}_g = \sqrt{\sum_{i\in g}\psi_i^2}/n_g`; for the ATE this is the mean
    AIPW score of the segment with DoubleML ``gate()``'s HC0 standard error. Pointwise CI and
    p-value are normal. Joint CI: :math:`\hat\theta_g \pm c\,\widehat{se}_g` where :math:`c`
    is the ``level`` quantile of :math:`\max_g |t^*_g|`, the sup-t statistic of the Gaussian
    multiplier bootstrap :math:`t^*_g = \sum_{i\in g}\xi_i\psi_i/(n_g\widehat{se}_g)`,
    :math:`\xi_i\sim N(0,1)`. Given the data :math:`t^*` is exactly :math:`N(0, R^\top R)`
    with :math:`R_{ig} = 1\{i\in g\}\psi_i/(n_g\widehat{se}_g)`; segments of one column are
    disjoint, so :math:`R^\top R = I` and the draws are taken from that law directly
    (``n_draws`` of them, from ``rng``) instead of from :math:`n` multipliers each.
    Holm-adjusted p-values control the family-wise error over the column's kept segments.
    Segments failing a minimum size are listed with ``status`` giving the reason.
    """
    labels = (
        groups.cat.add_categories(["missing"]).fillna("missing") if groups.isna().any() else groups
    )
    codes = labels.cat.codes.to_numpy()
    cats = list(labels.cat.categories)
    G = len(cats)
    if G > MAX_LEVELS:
        raise DataError(
            f"segments.{column}", f"at most {MAX_LEVELS} segments (use segment_bins)", G
        )
    cnt = np.bincount(codes, minlength=G).astype(float)
    n1 = np.bincount(codes, weights=d, minlength=G)
    n0 = cnt - n1
    y1 = np.bincount(codes, weights=y * d, minlength=G)
    y0 = np.bincount(codes, weights=y * (1 - d), minlength=G)
    snum = np.bincount(codes, weights=num, minlength=G)
    sden = np.bincount(codes, weights=den, minlength=G)
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = snum / sden
        psi = (num - theta[codes] * den) / (sden / cnt)[codes]
        se = np.sqrt(np.bincount(codes, weights=psi**2, minlength=G)) / cnt
        t1 = y1 / n1
        t0 = y0 / n0
    status = np.full(G, "ok", dtype=object)
    status[n0 < rules.min_controls] = f"controls < {rules.min_controls}"
    status[n1 < rules.min_treated] = f"treated < {rules.min_treated}"
    status[cnt < rules.min_rows] = f"rows < {rules.min_rows}"
    status[cnt == 0] = "empty"
    ok = (status == "ok") & (se > 0) & np.isfinite(se)
    status[(status == "ok") & ~ok] = "zero or undefined SE"
    z = stats.norm.ppf(0.5 + rules.level / 2)
    pval = np.full(G, np.nan)
    pval[ok] = 2 * stats.norm.sf(np.abs(theta[ok] / se[ok]))
    p_holm = np.full(G, np.nan)
    p_holm[ok] = holm(pval[ok])
    k = int(ok.sum())
    crit = (
        float(np.quantile(np.abs(rng.standard_normal((rules.n_draws, k))).max(axis=1), rules.level))
        if k
        else np.nan
    )
    keep = ok.astype(float)
    keep[~ok] = np.nan
    return pd.DataFrame(
        {
            "segment_col": column,
            "segment": [str(c) for c in cats],
            "rows": cnt.astype(np.int64),
            "treated_rows": n1.astype(np.int64),
            "control_rows": n0.astype(np.int64),
            "treated_mean": t1,
            "control_mean": t0,
            "naive_lift": t1 - t0,
            "dr_lift": theta * keep,
            "standard_error": se * keep,
            "ci_lower": (theta - z * se) * keep,
            "ci_upper": (theta + z * se) * keep,
            "p_value": pval,
            "p_holm": p_holm,
            "joint_ci_lower": (theta - crit * se) * keep,
            "joint_ci_upper": (theta + crit * se) * keep,
            "joint_crit": crit * keep,
            "status": status,
        }
    )


def segment_columns(param: Sequence[str], role: Sequence[str]) -> tuple[str, ...]:
    """Segment columns: the estimator's ``segments`` parameter, else the ``segments`` role."""
    if param and role and tuple(param) != tuple(role):
        raise ConfigError(
            "estimator.segments",
            f"empty when roles.segments is set, or the same list {list(role)}",
            list(param),
        )
    return tuple(param) or tuple(role)


def all_segments(
    frame: pd.DataFrame,
    columns: Sequence[str],
    bins: Mapping[str, Sequence[float] | int],
    labels: Mapping[str, Sequence[str]],
    num: np.ndarray,
    den: np.ndarray,
    y: np.ndarray,
    d: np.ndarray,
    rules: SegmentRules,
    rng: np.random.Generator,
) -> dict[str, pd.DataFrame]:
    """``{"segments.<column>": table}`` for every segment column."""
    for c in list(bins) + list(labels):
        if c not in columns:
            raise ConfigError(
                f"estimator.segment_bins.{c}", f"a segment column ({', '.join(columns)})", c
            )
    out = {}
    for c in columns:
        if c not in frame.columns:
            raise DataError("estimator.segments", "a column of the table", repr(c))
        g = bucket(frame[c], bins.get(c), labels.get(c), c)
        out[f"segments.{c}"] = segment_table(c, g, num, den, y, d, rules, rng)
    return out
