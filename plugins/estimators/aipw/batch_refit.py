"""Bootstrap refits of the cross-fitted AIPW with GLM nuisances, many resamples solved at once."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from causalkit.contracts import Estimand
from causalkit.errors import EstimationError
from causalkit_plugins.estimators.aipw.learners import ParamValue, split_columns
from causalkit_plugins.estimators.aipw.nuisance import NuisanceSpec
from causalkit_plugins.estimators.aipw.scores import aipw_scores

if TYPE_CHECKING:
    from scipy import sparse

__all__ = ["BatchRefit", "GLM", "ScoreRule", "Units", "batch_refit", "glm_of"]

_NEWTON_MAX_ITER = 50
_NEWTON_TOL = 1e-8  # largest Newton step, in units of the globally standardised covariates
_MAX_STEP = 4.0
_MAX_COND = 1e10  # a Hessian worse conditioned than this goes to the per-draw path
_CONSTANT = 1e-10  # a training variance below this (standardised units) is a constant column
_CELLS = 4_000_000  # folds x resamples x rows held at once
_MAX_DESIGN = 20_000_000  # rows x (covariates + 1)^2 of the outer products (160 MB)

OK, FALLBACK, FAILED = 0, 1, 2  # a resample takes the worst status of its fits


@dataclass(frozen=True)
class GLM:
    r"""A whitelisted learner as the GLM it fits: family and L2 strength on the slopes.

    ``logit`` (``LogisticRegression``, lbfgs) minimises
    :math:`C\sum_i \ell_i(w) + \tfrac12\lVert w_{1:}\rVert^2`, i.e. ``penalty`` :math:`=1/C`
    with the intercept unpenalised; ``ridge`` minimises
    :math:`\sum_i (y_i - w_0 - f_i^\top w_{1:})^2 + \alpha\lVert w_{1:}\rVert^2`;
    ``linear`` and ``logit_unpenalized`` have ``penalty`` 0. The slopes are those of the
    pipeline's features :math:`f` (standardised within the training rows when ``scale``).
    """

    family: Literal["gaussian", "binomial"]
    penalty: float


def glm_of(name: str, params: Mapping[str, ParamValue]) -> GLM | None:
    """The GLM the learner ``name`` with ``params`` fits, or ``None`` if it is not one exactly."""
    keys = set(params)
    if name == "logit" and keys <= {"C"}:
        return GLM("binomial", 1.0 / float(params.get("C", 1.0)))
    if name == "ridge" and keys <= {"alpha"}:
        return GLM("gaussian", float(params.get("alpha", 1.0)))
    if name in ("logit_unpenalized", "linear") and not keys:
        return GLM("binomial" if name == "logit_unpenalized" else "gaussian", 0.0)
    return None


@dataclass(frozen=True)
class Units:
    """The resampling units: outcome, 0/1 treatment, original fold, segment membership (n, s)."""

    y: np.ndarray
    d: np.ndarray
    folds: np.ndarray
    members: sparse.spmatrix


@dataclass(frozen=True)
class ScoreRule:
    """How the scores are formed: estimand, propensity clip and trim, normalised IPW part."""

    estimand: Estimand
    clip: float
    trim: float
    normalize: bool


@dataclass(frozen=True)
class _Design:
    """Covariates standardised once over the resampling units, with an intercept column.

    ``z[:, 0] = 1``, ``z[:, j] = (x_j - a_j)/s_j``; ``zz`` holds the row outer products
    (n, q*q) so that a weighted Gram matrix is one matrix product; ``inv_s2`` is
    :math:`1/s_j^2`, the penalty weight of a slope on the unscaled covariates.
    """

    z: np.ndarray
    zz: np.ndarray
    inv_s2: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray) -> _Design:
        a = x.mean(axis=0)
        s = x.std(axis=0)
        s[s == 0] = 1.0
        z = np.column_stack([np.ones(x.shape[0]), (x - a) / s])
        q = z.shape[1]
        return cls(z, (z[:, :, None] * z[:, None, :]).reshape(-1, q * q), 1.0 / s**2)


def _fit(
    design: _Design,
    target: np.ndarray,
    w: np.ndarray,
    glm: GLM,
    scale: bool,
    start: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Weighted (penalised) GLM fits, one per row of ``w``; coefficients on ``design.z``.

    Parameters
    ----------
    design : _Design
        The n units' covariates.
    target : ndarray, shape (n,)
        Outcome (0/1 for the binomial family).
    w : ndarray, shape (G, n)
        Count weights of each fit's training rows (a resample's copies of a row add up).
    glm : GLM
        Family and penalty.
    scale : bool
        The pipeline standardises the covariates on each fit's training rows.
    start : ndarray, shape (G, q), optional
        Starting coefficients of the binomial fits (default zero).

    Returns
    -------
    beta : ndarray, shape (G, q)
        Coefficients on the standardised design ``z``.
    status : ndarray of int, shape (G,)
        ``OK``; ``FAILED`` (no training rows, or one class of a binary target: the learner
        cannot be fitted); ``FALLBACK`` (a constant training column, an ill-conditioned
        Hessian or no convergence: left to the per-draw path).

    Notes
    -----
    A fit on a resample with repeats equals the fit on its distinct rows with integer
    weights :math:`c_i`: the loss is :math:`\sum_i c_i \ell_i`, and the training-fold
    standardisation uses the count-weighted mean and population SD. A penalty on the slope
    :math:`w_j` of a standardised feature :math:`(x_j-\mu_j)/\sigma_j` is a penalty
    :math:`\beta_j^2 \sigma_j^2/s_j^2` on the slope :math:`\beta_j` of :math:`z_j`, and the
    centring only moves the (unpenalised) intercept, so every fit is solved on the same
    :math:`z` with a per-fit diagonal penalty :math:`\lambda\,\mathrm{diag}(0, r)`. Gaussian:
    one Newton step (the normal equations). Binomial: Newton's method (steps longer than
    ``_MAX_STEP`` shortened) until the largest step is below ``_NEWTON_TOL``; the error left
    is then of the order of its square.
    """
    z, G, q = design.z, w.shape[0], design.z.shape[1]
    sw = w.sum(axis=1)
    status = np.where(sw > 0, OK, FAILED)
    safe_sw = np.where(sw > 0, sw, 1.0)
    mean = w @ z[:, 1:] / safe_sw[:, None]
    var = np.maximum(w @ (z[:, 1:] ** 2) / safe_sw[:, None] - mean**2, 0.0)
    if scale:
        status[(status == OK) & (var <= _CONSTANT).any(axis=1)] = FALLBACK
        r = var
    else:
        r = np.broadcast_to(design.inv_s2, (G, q - 1))
    pen = np.zeros((G, q))
    pen[:, 1:] = glm.penalty * r
    if glm.family == "binomial":
        pos = w @ target
        status[(status == OK) & ((pos <= 0) | (pos >= sw))] = FAILED
    diag = np.arange(q)
    wt_z = (w * target) @ z

    def newton_step(beta: np.ndarray) -> np.ndarray:
        from scipy.special import expit

        eta = beta @ z.T
        if glm.family == "binomial":
            mu = expit(eta, out=eta)
            wmu = w * mu
            curv = np.subtract(wmu, np.multiply(wmu, mu, out=mu), out=mu)
        else:
            wmu, curv = w * eta, w
        grad = wmu @ z - wt_z + pen * beta
        hess = (curv @ design.zz).reshape(G, q, q)
        hess[:, diag, diag] += pen
        ev = np.linalg.eigvalsh(hess)
        bad = ~(ev[:, 0] > ev[:, -1] / _MAX_COND)
        status[(status == OK) & bad] = FALLBACK
        bad |= status != OK  # settled elsewhere: stays put
        hess[bad] = np.eye(q)
        grad[bad] = 0.0
        return np.asarray(np.linalg.solve(hess, grad[:, :, None])[:, :, 0])

    beta = np.zeros((G, q)) if start is None else start.copy()
    if glm.family == "gaussian":
        return beta - newton_step(beta), status
    for _ in range(_NEWTON_MAX_ITER):
        step = newton_step(beta)
        big = np.abs(step).max(axis=1)
        # a bounded step keeps a far start from overflowing; the optimum is unique regardless
        beta -= step * np.minimum(1.0, _MAX_STEP / np.maximum(big, _MAX_STEP))[:, None]
        if (big[status == OK] <= _NEWTON_TOL).all():
            return beta, status
    status[(status == OK) & (big > _NEWTON_TOL)] = FALLBACK
    return beta, status


@dataclass(frozen=True)
class _Nuisance:
    """One nuisance model: its design, GLM, target, arm weights and warm start per fold."""

    design: _Design
    glm: GLM
    target: np.ndarray
    arm: np.ndarray  # 1 for the rows it is fitted on (an arm, or every row)
    start: np.ndarray  # (folds, q): the fit on every unit of each fold's training rows


class BatchRefit:
    r"""``refit_batch(index_sets)``: the AIPW refit of many resamples at once, for GLM nuisances.

    Equal, resample by resample, to the per-draw refit (the same crossfit on the resampled
    rows): each unit keeps its original fold, and a fold's three models (propensity, and the
    outcome on the controls and on the treated of the other folds) are fitted for every
    resample and fold at once with count weights (:func:`_fit`), Newton's method starting
    from the fit on the whole sample. A resample whose units all come from one fold fits
    in sample, as ``fold_splits`` does. Propensities are trimmed, clipped and normalised as
    in ``AIPW.crossfit``; the effect and the segment effects are count-weighted ratios of the
    AIPW score elements.

    A resample whose learner cannot be fitted (an empty arm, one class of a binary target) or
    whose scores are undefined gives a NaN row, as the per-draw path's
    :class:`~causalkit.errors.EstimationError`; one the batch solver does not settle (a
    constant training column, an ill-conditioned Hessian, no convergence, a continuous outcome
    whose resample is all 0/1) is re-estimated by ``fallback``, the per-draw refit.

    Parameters
    ----------
    designs : tuple of ndarray
        Propensity and outcome covariates of the n resampling units, (n, p) each.
    glms : tuple of GLM
        Propensity and outcome learners.
    scale : bool
        Covariates standardised within each training fold.
    binary : bool
        The outcome is 0/1.
    units : Units
        The resampling units.
    rule : ScoreRule
        As the estimator's parameters.
    fallback : callable
        The per-draw refit.
    """

    def __init__(
        self,
        designs: tuple[np.ndarray, np.ndarray],
        glms: tuple[GLM, GLM],
        scale: bool,
        binary: bool,
        units: Units,
        rule: ScoreRule,
        fallback: Callable[[np.ndarray], np.ndarray],
    ) -> None:
        from scipy import sparse

        self.scale, self.binary, self.rule, self.fallback = scale, binary, rule, fallback
        self.y, self.d, self.folds = units.y, units.d, units.folds
        self.members = sparse.csr_matrix(units.members)
        self.k = int(self.folds.max()) + 1
        self._designs, self._glms = designs, glms

    @functools.cached_property
    def nuisances(self) -> tuple[_Nuisance, _Nuisance, _Nuisance]:
        """Propensity, control and treated outcome models, built at the first call (not per fit)."""
        (px, ox), (pglm, oglm), d = map(_Design.of, self._designs), self._glms, self.d
        w, _ = self._train_weights(np.ones((1, self.y.size)))
        pending = (
            (px, pglm, d, np.ones_like(d)),
            (ox, oglm, self.y, 1.0 - d),
            (ox, oglm, self.y, d),
        )
        out = []
        for x, glm, target, arm in pending:
            beta, st = _fit(x, target, w * arm, glm, self.scale)
            out.append(_Nuisance(x, glm, target, arm, np.where(st[:, None] == OK, beta, 0.0)))
        return out[0], out[1], out[2]

    def __call__(self, index_sets: Sequence[np.ndarray]) -> np.ndarray:
        """The ``(len(index_sets), k)`` estimates, NaN rows where a refit failed."""
        chunk = max(1, _CELLS // (self.k * self.y.size))
        parts = [self._solve(index_sets[i : i + chunk]) for i in range(0, len(index_sets), chunk)]
        return np.concatenate(parts) if parts else np.empty((0, 1 + self.members.shape[1]))

    def _train_weights(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Training weights (folds * B, n) of every (fold, resample) fit; folds present (B, k)."""
        B, n = counts.shape
        in_fold = self.folds[None, :] == np.arange(self.k)[:, None]
        present = counts @ in_fold.T > 0
        train = ~in_fold[:, None, :] | (present.sum(axis=1) == 1)[None, :, None]
        return (counts[None] * train).reshape(self.k * B, n), present

    def _solve(self, index_sets: Sequence[np.ndarray]) -> np.ndarray:
        n, B, k = self.y.size, len(index_sets), self.k
        counts = np.zeros((B, n))
        for b, idx in enumerate(index_sets):
            counts[b] = np.bincount(np.asarray(idx), minlength=n)
        w, present = self._train_weights(counts)
        status = np.zeros(B, dtype=np.int64)

        def predict(nu: _Nuisance) -> np.ndarray:
            from scipy.special import expit

            start = np.repeat(nu.start, B, axis=0)
            beta, st = _fit(nu.design, nu.target, w * nu.arm, nu.glm, self.scale, start)
            st = st.reshape(k, B)
            st[~present.T] = OK  # a fold absent from the resample predicts nothing
            np.maximum(status, st.max(axis=0), out=status)
            own = beta.reshape(k, B, -1)[self.folds]  # (n, B, q): each row's fold's fits
            eta = np.einsum("iq,ibq->bi", nu.design.z, own)
            return expit(eta) if nu.glm.family == "binomial" else eta

        m_raw, g0, g1 = (predict(nu) for nu in self.nuisances)
        out, undefined = self._effects(counts, m_raw, g0, g1)
        status[(status == OK) & undefined] = FAILED  # fallback predictions are not trusted
        if not self.binary:  # an all-0/1 resample would switch the per-draw path's learner
            status[counts @ ~np.isin(self.y, (0.0, 1.0)) == 0] = FALLBACK
        out[status == FAILED] = np.nan
        for j in np.flatnonzero(status == FALLBACK):
            try:
                out[j] = self.fallback(np.asarray(index_sets[int(j)]))
            except EstimationError:
                out[j] = np.nan
        return out

    def _effects(
        self, counts: np.ndarray, m_raw: np.ndarray, g0: np.ndarray, g1: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Trim, clip, normalise: the effect and segment effects (B, k) and the undefined rows."""
        y, d = self.y, self.d
        live = counts > 0
        finite = np.isfinite(m_raw) & np.isfinite(g0) & np.isfinite(g1)
        undefined = (live & ~finite).any(axis=1)
        kept = (
            (m_raw >= self.rule.trim) & (m_raw <= 1 - self.rule.trim)
            if self.rule.trim > 0
            else live
        )
        wk = counts * kept
        n1, nk = wk @ d, wk.sum(axis=1)
        undefined |= (n1 == 0) | (n1 == nk)
        m = np.clip(m_raw, self.rule.clip, 1 - self.rule.clip) if self.rule.clip > 0 else m_raw
        used = wk > 0
        undefined |= (used & ((m <= 0) | (m >= 1))).any(axis=1)
        # rows outside the resample, or of a failed one, get harmless values (weight 0 or NaN row)
        valid = used & finite & (m > 0) & (m < 1)
        m = np.where(valid, m, 0.5)
        g0, g1 = np.where(valid, g0, 0.0), np.where(valid, g1, 0.0)
        if self.rule.normalize:
            safe = np.where(nk > 0, nk, 1.0)[:, None]
            s1 = (wk * (d / m)).sum(axis=1)[:, None] / safe
            s0 = (wk * ((1.0 - d) / (1.0 - m))).sum(axis=1)[:, None] / safe
            m = d * m * s1 + (1.0 - d) * (1.0 - (1.0 - m) * s0)
        scores = aipw_scores(y, d, g0, g1, m, self.rule.estimand)
        num = wk * scores.num
        den = wk * scores.den
        with np.errstate(divide="ignore", invalid="ignore"):
            theta = num.sum(axis=1) / den.sum(axis=1)
            seg = np.asarray(self.members.T @ num.T).T / np.asarray(self.members.T @ den.T).T
        return np.column_stack([theta, seg]), undefined


def batch_refit(
    frame: pd.DataFrame,
    spec: NuisanceSpec,
    units: Units,
    rule: ScoreRule,
    fallback: Callable[[np.ndarray], np.ndarray],
) -> BatchRefit | None:
    """The batched refit over the resampling units, or ``None`` where it is not exact.

    Parameters
    ----------
    frame : DataFrame
        The resampling units' rows (the fit's kept rows), holding the covariates.
    spec : NuisanceSpec
        The fit's nuisance specification (learners resolved).
    units : Units
        Outcome, treatment, original fold and segment membership of each unit.
    rule : ScoreRule
        The estimator's estimand, clip, trim and normalize.
    fallback : callable
        The per-draw refit, for the resamples the batch solver leaves to it.

    Notes
    -----
    Exact (to the solvers' tolerance) for the separate outcome design with numeric
    covariates without missing values (no one-hot or imputation step) and learners that are
    GLMs (:func:`glm_of`): ``logit`` (default or ``C``), ``logit_unpenalized``, ``linear``,
    ``ridge`` (default or ``alpha``); anything else, or a design whose row outer products
    would exceed ``_MAX_DESIGN`` numbers, keeps the per-draw refit.
    """
    if spec.outcome_design != "separate":
        return None
    designs = []
    for cols in (spec.propensity_covariates, spec.outcome_covariates):
        if split_columns(frame, cols, spec.categorical)[1]:
            return None
        x = frame[list(cols)].to_numpy(dtype=np.float64)
        if not np.isfinite(x).all() or x.shape[0] * (x.shape[1] + 1) ** 2 > _MAX_DESIGN:
            return None
        designs.append(x)
    prop = glm_of(spec.propensity_model, spec.propensity_params)
    out = glm_of(spec.outcome_model, spec.outcome_params)
    if prop is None or out is None or prop.family != "binomial":
        return None
    if (out.family == "binomial") != spec.binary_outcome:
        return None
    return BatchRefit(
        (designs[0], designs[1]),
        (prop, out),
        spec.recipe.scale,
        spec.binary_outcome,
        units,
        rule,
        fallback,
    )
