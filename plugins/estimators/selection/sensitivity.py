r"""Sensitivity to hidden bias: Rosenbaum's Γ bounds (matched pairs, matched sets).

The E-value every estimator reports is :mod:`causalkit.evalue`'s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

__all__ = [
    "Alternative",
    "rosenbaum_bounds",
    "rosenbaum_m_bounds",
    "matched_sets",
    "covariance_adjusted",
]

Alternative = Literal["two-sided", "greater", "less"]
"""Direction of the effect the sensitivity test is against, fixed before seeing the data."""

_COLUMNS = ["gamma", "statistic", "p_lower", "p_upper", "n_sets", "test"]


def _two_sided(greater: pd.DataFrame, less: pd.DataFrame) -> pd.DataFrame:
    r"""Bonferroni over the two one-sided bounds: :math:`\min(1, 2\min(p^+, p^-))`."""
    out = greater.copy()
    for col in ("p_lower", "p_upper"):
        out[col] = np.minimum(1.0, 2.0 * np.minimum(greater[col], less[col]))
    return out


def rosenbaum_bounds(
    differences: np.ndarray, gammas: Sequence[float], alternative: Alternative
) -> pd.DataFrame:
    r"""Bounds on the Wilcoxon signed-rank p-value of matched pairs under hidden bias :math:`\Gamma`.

    Parameters
    ----------
    differences : ndarray, shape (m,)
        Treated-minus-control outcome difference of each matched pair (pairs disjoint:
        matching without replacement, one control each). Zero differences are dropped.
    gammas : sequence of float
        Values :math:`\Gamma \ge 1` of the odds ratio of treatment within a pair.
    alternative : {"two-sided", "greater", "less"}
        The direction tested, chosen before seeing the data (``greater``: treated
        outcomes larger). ``two-sided`` doubles the smaller one-sided bound (capped at 1).

    Returns
    -------
    DataFrame
        Columns ``gamma``, ``statistic`` (:math:`T^+`), ``p_lower``, ``p_upper`` (the
        smallest and largest p-values consistent with :math:`\Gamma`), ``n_sets`` (pairs
        with a non-zero difference), ``test`` (``wilcoxon_signed_rank``).

    Notes
    -----
    With ranks :math:`r_i` of :math:`|D_i|` (average ranks for ties) and
    :math:`T^+ = \sum_i r_i 1[D_i > 0]`, a bias of at most :math:`\Gamma` makes :math:`T^+`
    stochastically between the sums of independent :math:`r_i B_i` with
    :math:`P(B_i = 1) = p^- = 1/(1+\Gamma)` and :math:`p^+ = \Gamma/(1+\Gamma)`. With the
    normal approximation, :math:`E = p\sum r_i`, :math:`V = p(1-p)\sum r_i^2` and the bound
    :math:`1 - \Phi((T^+ - E)/\sqrt V)` (Rosenbaum 2002, sec. 4.3.3; ``rbounds::psens``).
    For ``less`` the signs are flipped. At :math:`\Gamma = 1` both bounds equal the
    tie-corrected normal-approximation Wilcoxon p-value. The test assumes the pairs are
    independent: it does not serve matching with replacement (:func:`rosenbaum_m_bounds`).

    References
    ----------
    Rosenbaum, P. (2002). *Observational Studies*, 2nd ed., Springer, ch. 4.
    Keele, L. (2010). An overview of rbounds: an R package for Rosenbaum bounds sensitivity
    analysis with matched data.
    """
    from scipy import stats

    if alternative == "two-sided":
        return _two_sided(
            rosenbaum_bounds(differences, gammas, "greater"),
            rosenbaum_bounds(differences, gammas, "less"),
        )
    D = np.asarray(differences, dtype=np.float64)
    D = -D if alternative == "less" else D
    D = D[D != 0]
    r = stats.rankdata(np.abs(D))
    t_plus = float(r[D > 0].sum())
    s1, s2 = float(r.sum()), float(np.sum(r * r))
    rows = []
    for g in _checked(gammas):
        bounds = []
        for p in (1.0 / (1.0 + g), g / (1.0 + g)):
            var = p * (1.0 - p) * s2
            z = (t_plus - p * s1) / math.sqrt(var) if var > 0 else math.nan
            bounds.append(float(stats.norm.sf(z)))
        rows.append((g, t_plus, bounds[0], bounds[1], int(D.size), "wilcoxon_signed_rank"))
    return pd.DataFrame(rows, columns=_COLUMNS)


def _checked(gammas: Sequence[float]) -> list[float]:
    for g in gammas:
        if g < 1:
            raise ValueError(f"gamma: expected a value >= 1, got {g}")
    return [float(g) for g in gammas]


def covariance_adjusted(y: np.ndarray, X: np.ndarray) -> np.ndarray:
    r"""Residuals :math:`e = y - Z\hat\beta` of the least squares of ``y`` on :math:`Z = (1, X)`,
    fitted ignoring treatment (Rosenbaum 2002, covariance adjustment).

    Under the sharp null the responses, hence :math:`e`, are fixed functions of
    :math:`(y, X)`, so a randomisation test or sensitivity bound on :math:`e` is valid; it
    removes the outcome variation that the (estimated-score) matching already balanced,
    without which the tests are conservative (the matched sets are more balanced on
    :math:`X` than independent coin flips would make them).

    References
    ----------
    Rosenbaum, P. (2002). Covariance adjustment in randomized experiments and observational
    studies. *Statistical Science* 17(3), 286-327.
    """
    Z = np.column_stack([np.ones(y.shape[0]), X])
    beta = np.linalg.lstsq(Z, y, rcond=None)[0]
    return y - Z @ beta


def matched_sets(focal: np.ndarray, match: np.ndarray, n: int) -> np.ndarray:
    """Label each unit with its matched set: the connected components of the match graph.

    Units joined by a match (directly or through shared matches) form one set; units in no
    match get -1. Matching without replacement gives one treated unit and its controls per
    set; with replacement a control reused by several treated units joins them in one set.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(focal.size), (focal, match)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    used = np.zeros(n, dtype=bool)
    used[focal] = used[match] = True
    return np.where(used, labels, -1)


def _set_indices(labels: np.ndarray) -> list[np.ndarray]:
    """Unit indices of each matched set (labels >= 0)."""
    order = np.argsort(labels, kind="stable")
    order = order[labels[order] >= 0]
    cuts = np.flatnonzero(np.diff(labels[order])) + 1
    return np.split(order, cuts) if order.size else []


def _m_scores(y: np.ndarray, labels: np.ndarray, trim: float) -> np.ndarray:
    r"""Rosenbaum's (2007) scores :math:`q_{si} = (n_s-1)^{-1}\sum_{k\ne i}\psi((y_{si}-y_{sk})/\lambda)`.

    Sets of one size are processed together (one array per size).
    """
    by_size: dict[int, list[np.ndarray]] = {}
    for idx in _set_indices(labels):
        by_size.setdefault(idx.size, []).append(idx)
    blocks = {size: np.vstack(v) for size, v in by_size.items()}
    scales = []
    for size, idx in blocks.items():
        iu, ju = np.triu_indices(size, 1)
        scales.append(np.median(np.abs(y[idx][:, iu] - y[idx][:, ju]), axis=1))
    lam = float(np.median(np.concatenate(scales))) if scales else 1.0
    lam = lam if lam > 0 else 1.0
    q = np.zeros(y.shape[0])
    for size, idx in blocks.items():
        Y = y[idx]
        psi = np.clip((Y[:, :, None] - Y[:, None, :]) / lam, -trim, trim)
        q[idx] = psi.sum(axis=2) / (size - 1)
    return q


def _max_moments(Q: np.ndarray, m: int, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    r"""Largest mean (then its variance) of :math:`T_s`, the sum of the treated scores of sets
    of one shape (``n`` units, ``m`` treated), over the patterns :math:`u` with 1 on the
    ``a`` largest scores, ``a`` in ``0..n``.

    ``Q`` holds one set per row. The number :math:`K` of treated among the top ``a`` is
    Fisher's noncentral hypergeometric with odds :math:`\Gamma`; given :math:`K` the treated
    are a simple random sample within each group (Rosenbaum 2002, sec. 4.4; the separable
    approximation of Gastwirth, Krieger & Rosenbaum 2000).
    """
    from scipy import special

    n = Q.shape[1]
    qs = -np.sort(-Q, axis=1)
    zero = np.zeros((Q.shape[0], 1))
    csum = np.concatenate([zero, np.cumsum(qs, axis=1)], axis=1)[:, :, None]
    csq = np.concatenate([zero, np.cumsum(qs * qs, axis=1)], axis=1)[:, :, None]
    a = np.arange(n + 1, dtype=np.float64)[:, None]
    b = n - a
    k = np.arange(m + 1, dtype=np.float64)[None, :]
    ok = (k <= a) & (m - k <= b)
    gl = special.gammaln
    with np.errstate(invalid="ignore", divide="ignore"):
        logw = (
            gl(a + 1) - gl(k + 1) - gl(a - k + 1) + gl(b + 1) - gl(m - k + 1)
            - gl(b - m + k + 1) + k * math.log(gamma)
        )  # fmt: skip
        logw = np.where(ok, logw, -np.inf)
        w = np.exp(logw - logw.max(axis=1, keepdims=True))
        w = w / w.sum(axis=1, keepdims=True)
        mt = np.where(a > 0, csum / a, 0.0)
        mb = np.where(b > 0, (csum[:, -1:] - csum) / b, 0.0)
        sst = np.where(a > 1, csq - a * mt**2, 0.0)
        ssb = np.where(b > 1, csq[:, -1:] - csq - b * mb**2, 0.0)
        e_k = k * mt + (m - k) * mb
        v_k = (
            np.where(a > 1, k * (a - k) / (a * (a - 1.0)), 0.0) * sst
            + np.where(b > 1, (m - k) * (b - m + k) / (b * (b - 1.0)), 0.0) * ssb
        )
    e_k, v_k = np.where(ok, e_k, 0.0), np.where(ok, v_k, 0.0)
    means = (w * e_k).sum(axis=2)
    variances = np.maximum((w * (v_k + e_k * e_k)).sum(axis=2) - means * means, 0.0)
    top = means >= means.max(axis=1, keepdims=True) - 1e-12 * (1.0 + np.abs(means).max())
    best = np.argmax(np.where(top, variances, -1.0), axis=1)
    rows = np.arange(Q.shape[0])
    return means[rows, best], variances[rows, best]


def _bound_sums(
    shapes: dict[tuple[int, int], np.ndarray], gamma: float
) -> tuple[float, float, float, float]:
    """Sums over sets of the separable bound's mean and variance for ``q`` and for ``-q``."""
    e_hi = v_hi = e_neg = v_neg = 0.0
    for (_, m), Q in shapes.items():
        e, v = _max_moments(Q, m, gamma)
        e_hi, v_hi = e_hi + float(e.sum()), v_hi + float(v.sum())
        e, v = _max_moments(-Q, m, gamma)
        e_neg, v_neg = e_neg + float(e.sum()), v_neg + float(v.sum())
    return e_hi, v_hi, e_neg, v_neg


def _sf(t: float, e: float, v: float) -> float:
    from scipy import stats

    return float(stats.norm.sf((t - e) / math.sqrt(v))) if v > 0 else math.nan


def rosenbaum_m_bounds(
    y: np.ndarray,
    treated: np.ndarray,
    labels: np.ndarray,
    gammas: Sequence[float],
    alternative: Alternative,
    trim: float = 3.0,
) -> pd.DataFrame:
    r"""Bounds on the p-value of Rosenbaum's (2007) M-test in matched sets under hidden bias.

    Parameters
    ----------
    y : ndarray, shape (n,)
        Outcomes.
    treated : ndarray of bool, shape (n,)
    labels : ndarray of int, shape (n,)
        Matched set of each unit (:func:`matched_sets`; -1: in no set). A set may hold
        several treated and several controls.
    gammas : sequence of float
        Values :math:`\Gamma \ge 1`.
    alternative : {"two-sided", "greater", "less"}
        Fixed before seeing the data (``greater``: treated outcomes larger).
    trim : float
        Huber's :math:`\psi(x) = \max(-t, \min(t, x))` truncation (``sensitivitymw``'s
        ``trim = 3``).

    Returns
    -------
    DataFrame
        Columns as :func:`rosenbaum_bounds`; ``statistic`` is :math:`T`, ``test`` is ``m_test``.

    Notes
    -----
    Scores (Rosenbaum 2007): :math:`q_{si} = (n_s-1)^{-1}\sum_{k\ne i}\psi\{(Y_{si} -
    Y_{sk})/\lambda\}` with :math:`\lambda` the median over sets of the median absolute
    within-set difference; :math:`T = \sum_s\sum_i Z_{si} q_{si}`. Under the sharp null with
    hidden bias at most :math:`\Gamma`, the assignment within set :math:`s` (fixed number
    :math:`m_s` treated) has :math:`P(Z = z) \propto \Gamma^{\sum_i z_i u_i}`,
    :math:`u \in [0,1]`. The upper bound uses, in each set, the :math:`u` that puts 1 on the
    :math:`a_s` largest scores with :math:`a_s` maximising :math:`E(T_s)` (then the
    variance): the asymptotically separable bound of Gastwirth, Krieger & Rosenbaum
    (2000), :math:`1 - \Phi\{(T - \sum E_s)/\sqrt{\sum V_s}\}`; the lower bound minimises
    the mean. For one treated per set it is Rosenbaum's (2007) ``senmw`` computation.
    Matched sets from matching with replacement depend on which units are treated, so the
    randomisation distribution is an approximation there (its size at :math:`\Gamma = 1`
    is checked in ``tests/statistical/test_ipw_psm_coverage.py``).

    References
    ----------
    Rosenbaum, P. (2007). Sensitivity analysis for m-estimates, tests, and confidence
    intervals in matched observational studies. *Biometrics* 63(2), 456-464.
    Gastwirth, J., Krieger, A. & Rosenbaum, P. (2000). Asymptotic separability in
    sensitivity analysis. *J. R. Stat. Soc. B* 62(3), 545-555.
    """
    q = _m_scores(np.asarray(y, dtype=np.float64), labels, trim)
    t_obs = float(q[treated & (labels >= 0)].sum())
    groups: dict[tuple[int, int], list[np.ndarray]] = {}
    for idx in _set_indices(labels):
        m = int(treated[idx].sum())
        if 0 < m < idx.size:
            groups.setdefault((idx.size, m), []).append(q[idx])
    shapes = {key: np.vstack(v) for key, v in groups.items()}
    n_sets = sum(v.shape[0] for v in shapes.values())
    rows = []
    for g in _checked(gammas):
        e_hi, v_hi, e_neg, v_neg = _bound_sums(shapes, g)
        # T against "greater"; -T against "less" (the scores of -y are -q)
        greater = (_sf(t_obs, -e_neg, v_neg), _sf(t_obs, e_hi, v_hi))
        less = (_sf(-t_obs, -e_hi, v_hi), _sf(-t_obs, e_neg, v_neg))
        if alternative == "greater":
            lo, up, stat = *greater, t_obs
        elif alternative == "less":
            lo, up, stat = *less, -t_obs
        else:
            lo, up = min(1.0, 2 * min(greater[0], less[0])), min(1.0, 2 * min(greater[1], less[1]))
            stat = t_obs
        rows.append((g, stat, lo, up, n_sets, "m_test"))
    return pd.DataFrame(rows, columns=_COLUMNS)
