"""Matching estimate, bias adjustment, Abadie-Imbens (2006) variance and its (2016) score adjustment."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from causalkit.errors import EstimationError
from causalkit_plugins.estimators.selection.psm_match import MatchSpec, match_with_replacement

_SQRT_EPS = float(np.sqrt(np.finfo(np.float64).eps))

__all__ = [
    "MatchedPairs",
    "MatchingResult",
    "matching_estimate",
    "conditional_variances",
    "ai_standard_error",
    "arm_neighbours",
    "score_terms",
    "score_unit_terms",
    "ScoreTerms",
    "outside_cluster_residuals",
    "unit_terms",
    "clustered_standard_error",
]


@dataclass(frozen=True)
class MatchedPairs:
    """Pairs in global unit indices; ``weight`` is 1/M_i (M_i matches of focal unit i)."""

    focal: np.ndarray
    match: np.ndarray
    weight: np.ndarray
    n_unmatched: int


@dataclass(frozen=True)
class MatchingResult:
    """Estimate, AI variances and the per-unit quantities behind them.

    ``unit_effect[i]`` is the imputed treated-minus-control difference of matched focal unit
    ``i`` (NaN elsewhere); ``times_used`` is :math:`K_i`; ``unit_weight`` is
    :math:`1[i\\ \\text{matched focal}] + K_i`, the weight of unit ``i`` in the matched sample.
    With sampling weights :math:`\\omega` (``sampling``) both carry them
    (:func:`matching_estimate`) and ``focal_total`` is :math:`\\sum_{i\\in F}\\omega_i`; else
    ``sampling`` is None and ``focal_total`` is :math:`N_F`.
    """

    estimate: float
    var_sample: float
    var_population: float
    unit_effect: np.ndarray
    times_used: np.ndarray
    unit_weight: np.ndarray
    n_focal: int
    sampling: np.ndarray | None
    focal_total: float


def arm_neighbours(
    Q: np.ndarray, pool: np.ndarray, focal: np.ndarray, k: int, tol: float
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest units of ``pool`` to every unit of ``focal`` (global indices, ties kept).

    A focal unit that is also in the pool is its own nearest neighbour (distance 0).
    Returns the pairs ``(focal unit, neighbour)``.
    """
    pairs = match_with_replacement(
        Q[focal], Q[pool], Q[focal], Q[pool], MatchSpec(k=k, ties=True, tol=tol, caliper=None)
    )
    return focal[pairs.focal], pool[pairs.pool]


def conditional_variances(
    Q: np.ndarray, y: np.ndarray, d: np.ndarray, J: int, tol: float
) -> np.ndarray:
    r"""Heteroskedastic :math:`\hat\sigma^2(X_i, D_i)` by matching within the unit's own arm.

    :math:`\hat\sigma^2_i` is the sample variance (divisor :math:`|S_i| - 1`) of the outcomes
    in :math:`S_i = \{i\} \cup` the ``J`` nearest other units of the same arm (all units
    tied at the J-th distance included): R ``Matching``'s ``Var.calc = J``. For ``J = 1`` it
    equals Abadie & Imbens' (2006) :math:`\tfrac{J}{J+1}(Y_i - \bar Y_{J(i)})^2`, and it is
    Stata ``teffects``' ``vce(robust, nn(J+1))`` (Stata counts unit :math:`i` in the set).
    """
    out = np.full(y.shape[0], np.nan)
    for arm in (True, False):
        idx = np.flatnonzero(d == arm)
        f, m = arm_neighbours(Q, idx, idx, J + 1, tol)
        _, cov = _local_moments(f, m, y, y[:, None], y.shape[0])
        out[idx] = cov[idx, 0]  # NaN for a unit alone in its arm
    return out


def _local_moments(
    f: np.ndarray, m: np.ndarray, y: np.ndarray, Z: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    r"""Per focal unit :math:`i`: the mean of ``y`` over its set :math:`H_i = \{m : (i, m)\}`
    and the sample covariances :math:`\widehat{\mathrm{cov}}(Z, y)` (divisor :math:`|H_i| - 1`).
    """
    cnt = np.bincount(f, minlength=n).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        ybar = np.bincount(f, weights=y[m], minlength=n) / cnt
        cov = np.empty((n, Z.shape[1]))
        for c in range(Z.shape[1]):
            zbar = np.bincount(f, weights=Z[m, c], minlength=n) / cnt
            prod = (Z[m, c] - zbar[f]) * (y[m] - ybar[f])
            cov[:, c] = np.bincount(f, weights=prod, minlength=n) / (cnt - 1.0)
    return ybar, cov


def _bias_coefficients(Z: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Slopes of the weighted least squares of ``y`` on ``(1, Z)`` (weights ``w``)."""
    rows = w > 0
    sw = np.sqrt(w[rows])
    A = np.column_stack([np.ones(int(rows.sum())), Z[rows]]) * sw[:, None]
    coef = np.linalg.lstsq(A, y[rows] * sw, rcond=None)[0]
    return coef[1:]


def matching_estimate(
    pairs: MatchedPairs,
    y: np.ndarray,
    d: np.ndarray,
    sigma2: np.ndarray | None,
    Z: np.ndarray | None = None,
    ate: bool = False,
    sampling: np.ndarray | None = None,
) -> MatchingResult:
    r"""The matching estimator and its Abadie-Imbens variances.

    Parameters
    ----------
    pairs : MatchedPairs
    y : ndarray, shape (n,)
    d : ndarray of bool, shape (n,)
    sigma2 : ndarray or None
        Conditional variances :math:`\hat\sigma^2_i` (:func:`conditional_variances`); ``None``
        for the homoskedastic estimate below.
    Z : ndarray or None
        Covariates of the bias adjustment (``None``: no adjustment).
    ate : bool
        Both arms are focal (the ATE): adds the :math:`2K_i` term of the population variance.
    sampling : ndarray or None
        Sampling weights :math:`\omega_i \ge 0` (see the weighted version below).

    Returns
    -------
    MatchingResult

    Notes
    -----
    For matched focal unit :math:`i` with matches :math:`J(i)` (weights :math:`1/M_i`, ties
    split), the imputed missing potential outcome is
    :math:`\hat Y_i = M_i^{-1}\sum_{j\in J(i)} \{Y_j + (Z_i - Z_j)^\top\hat\beta_{D_j}\}`
    (bias adjustment, Abadie & Imbens 2011: :math:`\hat\beta_a` from the least squares of
    :math:`Y` on :math:`(1, Z)` in arm :math:`a`, weighted by the times used :math:`K_j`;
    :math:`\hat\beta = 0` without adjustment), :math:`\hat\tau_i = \pm(Y_i - \hat Y_i)`
    (treated minus control) and :math:`\hat\tau = N_F^{-1}\sum_{i\in F}\hat\tau_i`. With
    :math:`K_i = \sum_{f} 1[i\in J(f)]/M_f`, :math:`KK_i = \sum_f 1[i\in J(f)]/M_f^2` and
    :math:`c_i = 1[i\in F] + K_i`:

    .. math::
        \hat V^{sample} = N_F^{-2}\sum_i c_i^2\hat\sigma_i^2, \qquad
        \hat V^{pop} = N_F^{-2}\Big\{\sum_{i\in F}(\hat\tau_i - \hat\tau)^2
            + \sum_i (K_i^2 - KK_i + 2K_i 1[\mathrm{ATE}])\hat\sigma^2_i\Big\}

    (Abadie & Imbens 2006, Theorems 6-7; R ``Matching``'s ``sample=TRUE/FALSE``). The
    homoskedastic :math:`\hat\sigma^2` is half the match-weighted mean of
    :math:`(\hat\tau_{ij} - \hat\tau)^2` over pairs (``Matching``'s ``Var.calc = 0``).

    With sampling weights :math:`\omega_i` a focal unit counts :math:`\omega_i` times and
    hands its weight to its matches: :math:`\hat\tau = W^{-1}\sum_{i\in F}\omega_i\hat\tau_i`,
    :math:`W = \sum_{i\in F}\omega_i`, :math:`K_i = \sum_f \omega_f 1[i\in J(f)]/M_f`,
    :math:`KK_i = \sum_f \omega_f^2 1[i\in J(f)]/M_f^2`, :math:`c_i = \omega_i 1[i\in F] +
    K_i`, and

    .. math::
        \hat V^{sample} = W^{-2}\sum_i c_i^2\hat\sigma_i^2, \qquad
        \hat V^{pop} = W^{-2}\Big\{\sum_{i\in F}\omega_i^2(\hat\tau_i - \hat\tau)^2
            + \sum_i (K_i^2 - KK_i + 2\omega_iK_i 1[\mathrm{ATE}])\hat\sigma^2_i\Big\},

    the same derivation for the linear form :math:`\hat\tau - \tau = W^{-1}\sum_i\{
    \omega_i1[i\in F](\tau(X_i) - \tau) + (2D_i - 1)c_i\varepsilon_i\}` (units drawn
    independently with their weights; :math:`E[\varepsilon_i\mid X_i, D_i, \omega_i] = 0`,
    i.e. the weights carry no information on the outcome beyond the matching variables).
    The estimand is :math:`\sum_{i\in F}\omega_i\tau(X_i)/\sum_{i\in F}\omega_i` in the
    limit: the effect in the weighted population's focal arm.

    References
    ----------
    Abadie, A. & Imbens, G. (2006). Large sample properties of matching estimators for
    average treatment effects. *Econometrica* 74(1), 235-267.
    Abadie, A. & Imbens, G. (2011). Bias-corrected matching estimators for average treatment
    effects. *J. Bus. Econ. Stat.* 29(1), 1-11.
    """
    n = y.shape[0]
    f, j, w = pairs.focal, pairs.match, pairs.weight
    if sampling is not None:
        return _weighted_estimate(pairs, y, d, sigma2, Z, ate, sampling)
    K = np.bincount(j, weights=w, minlength=n)
    KK = np.bincount(j, weights=w * w, minlength=n)
    tau_pair, tau_unit = _pair_effects(pairs, y, d, Z, K)
    focal = np.unique(f)
    n_f = focal.size
    est = float(tau_unit[focal].mean())
    if sigma2 is None:
        s2 = 0.5 * float(np.sum(w * (tau_pair - est) ** 2) / np.sum(w))
        sigma2 = np.full(n, s2)
    in_f = np.zeros(n)
    in_f[focal] = 1.0
    c = in_f + K
    used = c > 0
    var_sample = float(np.sum((c * c * sigma2)[used]) / n_f**2)
    kterm = K * K - KK + (2.0 * K if ate else 0.0)
    var_pop = float(
        (np.sum((tau_unit[focal] - est) ** 2) + np.sum((kterm * sigma2)[K > 0])) / n_f**2
    )
    return MatchingResult(est, var_sample, var_pop, tau_unit, K, c, n_f, None, float(n_f))


def _pair_effects(
    pairs: MatchedPairs, y: np.ndarray, d: np.ndarray, Z: np.ndarray | None, K: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-pair treated-minus-control differences (bias-adjusted with ``Z``) and unit effects."""
    n = y.shape[0]
    f, j, w = pairs.focal, pairs.match, pairs.weight
    y_pair = y[j].astype(np.float64)
    if Z is not None:
        for arm in (True, False):
            rows = d[j] == arm
            if rows.any():
                beta = _bias_coefficients(Z, y, K * (d == arm))
                y_pair[rows] = y_pair[rows] + (Z[f[rows]] - Z[j[rows]]) @ beta
    tau_pair = np.where(d[f], 1.0, -1.0) * (y[f] - y_pair)
    tau_unit = np.full(n, np.nan)
    tau_unit[np.unique(f)] = 0.0
    np.add.at(tau_unit, f, w * tau_pair)
    return tau_pair, tau_unit


def _weighted_estimate(
    pairs: MatchedPairs,
    y: np.ndarray,
    d: np.ndarray,
    sigma2: np.ndarray | None,
    Z: np.ndarray | None,
    ate: bool,
    omega: np.ndarray,
) -> MatchingResult:
    """:func:`matching_estimate` with sampling weights (formulas there)."""
    n = y.shape[0]
    f, j, w = pairs.focal, pairs.match, pairs.weight
    wf = omega[f] * w
    K = np.bincount(j, weights=wf, minlength=n)
    KK = np.bincount(j, weights=wf * wf, minlength=n)
    tau_pair, tau_unit = _pair_effects(pairs, y, d, Z, K)
    focal = np.unique(f)
    total = float(omega[focal].sum())
    if total <= 0:
        raise EstimationError("psm: every matched focal unit has sampling weight zero")
    est = float(omega[focal] @ tau_unit[focal] / total)
    if sigma2 is None:
        s2 = 0.5 * float(np.sum(w * (tau_pair - est) ** 2) / np.sum(w))
        sigma2 = np.full(n, s2)
    in_f = np.zeros(n)
    in_f[focal] = omega[focal]
    c = in_f + K
    used = c > 0
    var_sample = float(np.sum((c * c * sigma2)[used]) / total**2)
    kterm = K * K - KK + (2.0 * in_f * K if ate else 0.0)
    dev = omega[focal] * (tau_unit[focal] - est)
    var_pop = float((dev @ dev + np.sum((kterm * sigma2)[K > 0])) / total**2)
    return MatchingResult(est, var_sample, var_pop, tau_unit, K, c, focal.size, omega, total)


def ai_standard_error(
    result: MatchingResult, target: Literal["sample", "population"], adjustment: float = 0.0
) -> float:
    """The AI standard error for the sample or the population average effect.

    ``adjustment`` is added to the variance (``ScoreTerms.adjustment`` of :func:`score_terms`); a negative total
    gives NaN.
    """
    v = (result.var_sample if target == "sample" else result.var_population) + adjustment
    return math.sqrt(v) if v >= 0 else math.nan


@dataclass(frozen=True)
class ScoreTerms:
    r"""The 2016 adjustment and the linear form behind it (:func:`score_terms`).

    ``adjustment`` is the variance term; ``slope`` :math:`a` and ``info_inv``
    :math:`\hat V_\theta` give the score's part of each unit's term,
    :math:`N_F\,a^\top\hat V_\theta S_i` (:func:`score_unit_terms`).
    """

    adjustment: float
    slope: np.ndarray
    info_inv: np.ndarray


def score_unit_terms(
    terms: ScoreTerms, d: np.ndarray, score: np.ndarray, gradient: np.ndarray, n_focal: float
) -> np.ndarray:
    r"""The score's part :math:`N_F\,a^\top\hat V_\theta S_i` of each unit's linear term.

    :math:`S_i = (D_i - \hat p_i) f_i Z_i / \{\hat p_i(1-\hat p_i)\}` is unit :math:`i`'s
    score of the maximum-likelihood :math:`\hat\theta`, so :math:`\hat\theta - \theta
    \approx \hat V_\theta\sum_i S_i` and :math:`\hat\tau - \tau \approx N_F^{-1}\sum_i
    (\psi_i + N_F a^\top\hat V_\theta S_i)`. With :math:`a = -c` (ATE) or
    :math:`a = \partial\tau_t - c_t` (ATT, ATC) and :math:`E[\psi_i S_i] = c` (resp.
    :math:`c_t`; the matching terms are correlated with the score through
    :math:`\mathrm{cov}(X, \mu \mid p)`), the variance of this form is Abadie & Imbens'
    (2016): :math:`\sigma^2 + a^\top V a + 2a^\top V c = \sigma^2 - c^\top V c` for the
    ATE and :math:`\sigma^2 - c_t^\top V c_t + \partial\tau_t^\top V\partial\tau_t` for
    the ATT.
    """
    S = gradient * ((d - score) / (score * (1.0 - score)))[:, None]
    return n_focal * (S @ (terms.info_inv @ terms.slope))


def score_terms(
    Q: np.ndarray,
    y: np.ndarray,
    d: np.ndarray,
    Z: np.ndarray,
    score: np.ndarray,
    gradient: np.ndarray,
    estimand: Literal["ATE", "ATT", "ATC"],
    estimate: float,
    L: int,
    tol: float,
) -> ScoreTerms:
    r"""Abadie & Imbens' (2016) adjustment of the matching variance for an estimated score.

    Parameters
    ----------
    Q : ndarray, shape (n, 1)
        The matching variable (the score or a monotone transform of it).
    y, d : ndarray, shape (n,)
        Outcome and treatment.
    Z : ndarray, shape (n, k)
        Regressors of the score model, :math:`(1, x)`.
    score, gradient : ndarray
        :math:`\hat p_i = F(Z_i^\top\hat\theta)` and :math:`f(Z_i^\top\hat\theta) Z_i`.
    estimand : {"ATE", "ATT", "ATC"}
    estimate : float
        The matching estimate :math:`\hat\tau` (treated minus control).
    L : int
        Size of the local neighbourhoods :math:`H_L^w(i)` (at least 2).
    tol : float
        Tie tolerance in ``Q``.

    Returns
    -------
    ScoreTerms
        ``adjustment``, the term added to the Abadie-Imbens (2006) population variance of the
        estimate (matching on the true score): :math:`-\hat c^\top \hat V_\theta \hat c` for
        the ATE, :math:`-\hat c_t^\top\hat V_\theta\hat c_t + \widehat{\partial\tau_t}^\top
        \hat V_\theta\widehat{\partial\tau_t}` for the ATT; the ``slope``
        :math:`-\hat c` or :math:`\widehat{\partial\tau_t} - \hat c_t` and
        :math:`\hat V_\theta` (:func:`score_unit_terms`).

    Notes
    -----
    With :math:`\hat V_\theta = \{\sum_i f_i^2 Z_iZ_i^\top / (\hat p_i(1-\hat p_i))\}^{-1}`
    (the inverse Fisher information of the maximum-likelihood :math:`\hat\theta`), the
    conditional covariances and means given the score are estimated by local matching
    (Abadie & Imbens 2016, sec. 4): :math:`H_L^w(i)` holds the :math:`L` units of arm
    :math:`w` nearest to :math:`i` in the score (unit :math:`i` itself when :math:`D_i = w`;
    ties kept), :math:`\widehat{\mathrm{cov}}_{w,i} = (|H|-1)^{-1}\sum_{j\in H}(Z_j-\bar Z_H)
    (Y_j - \bar Y_H)` and :math:`\hat\mu_{w,i} = \bar Y_H`. Then

    .. math::
        \hat c = \frac1N\sum_i f_i\Big(\frac{\widehat{\mathrm{cov}}_{1,i}}{\hat p_i}
            + \frac{\widehat{\mathrm{cov}}_{0,i}}{1-\hat p_i}\Big), \qquad
        \widehat{\partial\tau_t} = \frac1{N_1}\sum_i f_i\big\{Z_i(\hat\mu_{1,i} - \hat\mu_{0,i}
            - \hat\tau_t) + \widehat{\mathrm{cov}}_{1,i} - \widehat{\mathrm{cov}}_{0,i}\big\},

    .. math::
        \hat c_t = \widehat{\partial\tau_t} + \frac1{N_1}\sum_i \frac{f_i}{1-\hat p_i}
            \widehat{\mathrm{cov}}_{0,i}

    (Abadie & Imbens 2016, Theorems 1-2 and their estimators), except for the covariance
    terms of :math:`\widehat{\partial\tau_t}`: the derivative of the ATT
    :math:`\tau_t(\theta) = E[F(X^\top\theta)\tau(X)]/E[F(X^\top\theta)]`, with
    :math:`\tau(X) = \mu(1,X) - \mu(0,X)`, is :math:`E[f(X^\top\theta)X\{\tau(X) -
    \tau_t\}]/E[p(X)]`, and :math:`E[X\tau(X) \mid p] = E[X \mid p]\{\bar\mu(1,p) -
    \bar\mu(0,p)\} + \mathrm{cov}(X, \tau(X) \mid p)`. Without the covariance the SE is too
    small wherever effects vary within score strata (2% in SE, coverage 0.937, in the ATT
    test of ``tests/statistical/test_ipw_psm_coverage.py``). :math:`\hat c_t`, the
    covariance of the estimator with the score, is unchanged: it equals the
    :math:`\bar\mu` part of :math:`\widehat{\partial\tau_t}` plus
    :math:`N_1^{-1}\sum_i f_i\{\widehat{\mathrm{cov}}_{1,i} + \hat p_i(1-\hat p_i)^{-1}
    \widehat{\mathrm{cov}}_{0,i}\}`. The ATC is the ATT with the
    arms swapped (:math:`D \to 1-D`, :math:`p \to 1-p`, :math:`\tau \to -\tau`). The ATE
    adjustment is never positive: matching on the estimated score is more efficient than on
    the true one. With :math:`L = 2` and matching on the score this reproduces Stata
    ``teffects psmatch``'s robust SE (``vce(robust, nn(2))``, the default).

    References
    ----------
    Abadie, A. & Imbens, G. (2016). Matching on the estimated propensity score.
    *Econometrica* 84(2), 781-807.
    """
    n = y.shape[0]
    every = np.arange(n)
    f = gradient[:, 0]  # f(Z'theta) times the intercept column
    V = np.linalg.pinv(gradient.T @ (gradient / (score * (1.0 - score))[:, None]))
    mu, cov = {}, {}
    for arm in (True, False):
        fi, mi = arm_neighbours(Q, np.flatnonzero(d == arm), every, L, tol)
        mu[arm], cov[arm] = _local_moments(fi, mi, y, Z, n)
    if estimand == "ATE":
        terms = cov[True] / score[:, None] + cov[False] / (1.0 - score)[:, None]
        c = (f[:, None] * terms).mean(axis=0)
        return ScoreTerms(float(-c @ V @ c), -c, V)
    a = estimand == "ATT"
    p_a = score if a else 1.0 - score
    effect = estimate if a else -estimate
    n_a = float(np.sum(d == a))
    fcov = {arm: f[:, None] * cov[arm] for arm in (True, False)}
    # E[f Z (tau(X) - tau_t)]: tau(X) varies within a score stratum, hence the cov terms
    dtau = ((Z * (f * (mu[a] - mu[not a] - effect))[:, None]) + fcov[a] - fcov[not a]).sum(0) / n_a
    c_t = dtau + (fcov[not a] / (1.0 - p_a)[:, None]).sum(0) / n_a
    return ScoreTerms(float(-c_t @ V @ c_t + dtau @ V @ dtau), dtau - c_t, V)


def outside_cluster_residuals(
    Q: np.ndarray, y: np.ndarray, d: np.ndarray, codes: np.ndarray, J: int, tol: float
) -> np.ndarray:
    r"""Residuals :math:`\hat\varepsilon_i = Y_i - \bar Y_{J_{-g}(i)}` from same-arm units of other clusters.

    :math:`J_{-g}(i)` holds the ``J`` units of unit :math:`i`'s arm nearest to it in ``Q``
    among those outside its cluster :math:`g(i)` (all tied at the J-th distance included),
    so :math:`\hat\varepsilon_i` keeps the cluster's shared noise that a neighbour from the
    same cluster would cancel. NaN for a unit whose arm has no unit in another cluster.
    Searched with growing ``k`` among all same-arm units, dropping the own cluster's.
    """
    n = y.shape[0]
    out = np.full(n, np.nan)
    for arm in (True, False):
        pool = np.flatnonzero(d == arm)
        todo, k = pool, J + 1
        while todo.size:
            f, m = arm_neighbours(Q, pool, todo, min(k, pool.size), tol)
            keep = codes[f] != codes[m]
            f, m = f[keep], m[keep]
            dist = np.linalg.norm(Q[f] - Q[m], axis=1)
            order = np.lexsort((dist, f))
            f, m, dist = f[order], m[order], dist[order]
            count = np.bincount(f, minlength=n)
            done = count[todo] >= J
            if k >= pool.size:  # every same-arm unit seen: take what there is
                done[:] = True
            start = np.cumsum(count) - count
            rows = np.isin(f, todo[done]) & (count[f] > 0)
            # the J-th nearest outside distance (or the farthest when fewer), ties within tol
            jth = dist[start[f] + np.minimum(count[f], J) - 1]
            size = np.linalg.norm(Q[f], axis=1)
            rows &= dist <= jth + np.maximum(tol, _SQRT_EPS * size)
            cnt = np.bincount(f[rows], minlength=n).astype(np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                ybar = np.bincount(f[rows], weights=y[m[rows]], minlength=n) / cnt
            fin = todo[done]
            out[fin] = y[fin] - ybar[fin]
            todo, k = todo[~done], 2 * k
    return out


def unit_terms(
    pairs: MatchedPairs,
    result: MatchingResult,
    d: np.ndarray,
    resid: np.ndarray,
    target: Literal["sample", "population"],
) -> np.ndarray:
    r"""Per-unit terms :math:`\hat\psi_i` of the matching estimator's linear representation.

    With :math:`s_i = 2D_i - 1`, :math:`K_i` the times unit :math:`i` is used as a match
    (weights :math:`1/M_f`), :math:`c_i = 1[i\in F] + K_i` and the residuals
    :math:`\hat\varepsilon_i` (:func:`outside_cluster_residuals`),

    .. math::
        \hat\psi^{sample}_i = s_i c_i \hat\varepsilon_i, \qquad
        \hat\psi^{pop}_i = 1[i\in F]\Big(\hat\tau_i - \hat\tau
            + s_i\sum_{j\in J(i)}\tfrac1{M_i}\hat\varepsilon_j\Big) + s_i K_i\hat\varepsilon_i .

    They estimate :math:`\psi_i = 1[i\in F]\{\tau(X_i) - \tau\} + s_ic_i\varepsilon_i`
    of :math:`\hat\tau - \tau = N_F^{-1}\sum_i\psi_i + B` (Abadie & Imbens 2006, proof
    of Theorem 1; :math:`\varepsilon_i = Y_i - \mu_{D_i}(X_i)`, :math:`B` the matching
    bias): the noise of a match :math:`j` of focal unit :math:`i`, which
    :math:`\hat\tau_i` carries, is moved from :math:`i`'s term to :math:`j`'s (there it
    counts :math:`K_j` times). The population terms sum to zero for any residuals. Units
    with no role (:math:`c_i = 0`) get 0 even where their residual is NaN. With sampling
    weights (``result.sampling``) the focal part is multiplied by :math:`\omega_i`,
    :math:`K_i` and :math:`c_i` are the weighted ones of :func:`matching_estimate` and
    :math:`N_F` is :math:`W = \sum_{i\in F}\omega_i`.
    """
    n = d.shape[0]
    s = np.where(d, 1.0, -1.0)
    K, c = result.times_used, result.unit_weight
    omega = np.ones(n) if result.sampling is None else result.sampling
    if target == "sample":
        return s * c * np.where(c > 0, resid, 0.0)
    own = s * K * np.where(K > 0, resid, 0.0)
    f, j, w = pairs.focal, pairs.match, pairs.weight
    moved = np.bincount(f, weights=w * resid[j], minlength=n)
    focal = np.isfinite(result.unit_effect)
    lead = np.where(focal, omega * (result.unit_effect - result.estimate + s * moved), 0.0)
    return lead + own


def clustered_standard_error(
    result: MatchingResult,
    target: Literal["sample", "population"],
    psi: np.ndarray,
    codes: np.ndarray,
    adjustment: float = 0.0,
) -> float:
    r"""The Abadie-Imbens SE times the design effect of the clusters on the unit terms.

    .. math::
        \hat V^{cl} = \frac{G}{G-1}\,(\hat V^{AI} + \Delta)\,
            \frac{\sum_g\big(\sum_{i\in g}\hat\psi_i\big)^2}{\sum_i\hat\psi_i^2}

    with :math:`\hat V^{AI}` the Abadie-Imbens variance of ``target``
    (:func:`matching_estimate`), :math:`\Delta` the ``adjustment`` for an estimated score
    (``adjustment`` of :func:`score_terms`) and :math:`\hat\psi_i` the unit terms (:func:`unit_terms`,
    plus :func:`score_unit_terms` when :math:`\Delta` is used), codes :math:`0..G-1`. The ratio is the clustered over the unclustered variance of the
    linear form :math:`W^{-1}\sum_i\hat\psi_i`; it multiplies the Abadie-Imbens variance
    rather than replacing it because :math:`\hat\psi_i^2` carries the noise of the
    residuals' neighbour means, which :math:`\hat V^{AI}` corrects for, and because the
    ratio is never negative (adding the cross products
    :math:`\sum_g\sum_{i\ne k\in g}\hat\psi_i\hat\psi_k` to :math:`\hat V^{AI} + \Delta`
    instead gave a negative variance in 1% of the draws of the coverage world and a
    noisier SE at the same mean). With one unit per cluster the ratio is 1. NaN when a
    used unit's residual is undefined or every term is 0.
    """
    g = int(codes.max()) + 1
    sums = np.bincount(codes, weights=psi, minlength=g)
    base = result.var_sample if target == "sample" else result.var_population
    own = float(psi @ psi)
    if not own > 0:
        return math.nan
    v = g / (g - 1) * (base + adjustment) * float(sums @ sums) / own
    return math.sqrt(v) if v >= 0 else math.nan
