"""Stacked estimating-equation correction of AIPW influence values for parametric nuisances."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from causalkit.contracts import Estimand
from causalkit_plugins.estimators.aipw.learners import Link, _dense
from causalkit_plugins.estimators.selection.probit import mills, mills_derivative

if TYPE_CHECKING:
    from scipy import sparse
    from sklearn.pipeline import Pipeline

__all__ = ["GLMPiece", "glm_piece", "stacked_correction"]


class GLMPiece:
    r"""One fitted GLM nuisance: its per-row influence on the coefficients and prediction gradient.

    For an M-estimator :math:`\hat\beta` solving :math:`n^{-1}\sum_i w_i s_i(\beta) = 0` over
    the rows with :math:`w_i = 1`, :math:`\hat\beta - \beta = n^{-1}\sum_i A^{-1} w_i s_i
    + o_p(n^{-1/2})` with :math:`A = -n^{-1}\sum_i w_i \partial s_i/\partial\beta^\top`.
    """

    def __init__(self, influence: np.ndarray, gradient: np.ndarray) -> None:
        self.influence = influence  # (n, k): A^{-1} w_i s_i
        self.gradient = gradient  # (n, k): d prediction_i / d beta at every row


def _design(pipe: Pipeline, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    Z = _dense(pipe[:-1].transform(X))
    model = pipe[-1]
    coef = np.concatenate([np.ravel(model.intercept_), np.ravel(model.coef_)])
    return np.column_stack([np.ones(Z.shape[0]), Z]), coef


def glm_piece(
    pipe: Pipeline, X: pd.DataFrame, target: np.ndarray, rows: np.ndarray, link: Link
) -> GLMPiece:
    r"""Influence and prediction gradient of a fitted unpenalised GLM.

    identity: :math:`s_i = z_i(y_i - z_i^\top\beta)`, :math:`A = \overline{w zz^\top}`;
    logit: :math:`s_i = z_i(y_i - p_i)`, :math:`A = \overline{w p(1-p) zz^\top}`;
    probit: :math:`s_i = z_i q_i \lambda(q_i\eta_i)` with :math:`q = 2y-1`, :math:`\lambda = \phi/\Phi`,
    :math:`A = \overline{w\,\lambda(a)(a+\lambda(a)) zz^\top}`.
    """
    from scipy.stats import norm

    Z, beta = _design(pipe, X)
    eta = Z @ beta
    w = np.zeros(Z.shape[0])
    w[rows] = 1.0
    if link == "identity":
        resid, curv, grad = target - eta, np.ones_like(eta), np.ones_like(eta)
    elif link == "logit":
        p = 1.0 / (1.0 + np.exp(-eta))
        resid, curv, grad = target - p, p * (1 - p), p * (1 - p)
    elif link == "probit":
        q = 2.0 * target - 1.0
        a = q * eta
        lam = mills(a)
        resid, curv, grad = q * lam, -mills_derivative(a, lam), norm.pdf(eta)
    else:
        raise ValueError(f"stacked SE needs a parametric learner, got link {link!r}")
    n = Z.shape[0]
    A = (Z * (w * curv)[:, None]).T @ Z / n
    S = Z * (w * resid)[:, None]
    influence = np.linalg.solve(A, S.T).T
    return GLMPiece(influence, Z * grad[:, None])


def stacked_correction(
    y: np.ndarray,
    d: np.ndarray,
    g0: np.ndarray,
    g1: np.ndarray,
    m: np.ndarray,
    m_free: np.ndarray,
    estimand: Estimand,
    pieces: dict[str, GLMPiece],
    members: sparse.spmatrix | None = None,
) -> np.ndarray:
    r"""The term that accounts for estimated parametric nuisances in the AIPW influence values.

    With the score numerator :math:`num_i(\hat\beta_0, \hat\beta_1, \hat\gamma)` (see
    :func:`~causalkit_plugins.estimators.aipw.scores.aipw_scores`), a first-order expansion
    of the stacked estimating equations (score, both outcome regressions, propensity model)
    gives the influence of the effect as :math:`(num_i - \theta den_i + \sum_j G_j^\top
    \mathrm{IF}_{j,i})/\overline{den}`, with :math:`G_j = n^{-1}\sum_i \partial num_i/
    \partial\beta_j`. The sandwich variance of the stacked system (Stata ``teffects aipw``)
    equals :math:`n^{-2}\sum_i` of these values squared. Clipped propensities have zero
    derivative (``m_free`` marks the rows where clipping does not bind). A segment
    :math:`g` has the same term with :math:`G_{j,g} = n^{-1}\sum_{i\in g}\partial num_i/
    \partial\beta_j` (its ratio's denominator is then :math:`n^{-1}\sum_{i\in g} den_i`).

    Parameters
    ----------
    members : sparse matrix, shape (n, s), optional
        Segment indicators :math:`W_{ig} = 1\{i\in g\}`.

    Returns
    -------
    ndarray, shape (n, 1 + s)
        :math:`\sum_j G_j^\top \mathrm{IF}_{j,i}` per row: the effect, then each segment.
    """
    r = np.ones_like(m) if estimand == Estimand.ATE else m
    c = np.ones_like(m) if estimand == Estimand.ATE else d
    dg1 = c - r * d / m
    dg0 = -c + r * (1.0 - d) / (1.0 - m)
    if estimand == Estimand.ATE:
        dm = -d * (y - g1) / m**2 - (1.0 - d) * (y - g0) / (1.0 - m) ** 2
    else:
        dm = -(1.0 - d) * (y - g0) / (1.0 - m) ** 2
    dm = dm * m_free
    s = 0 if members is None else members.shape[1]
    out = np.zeros((y.size, 1 + s))
    for name, dnum in (("g0", dg0), ("g1", dg1), ("m", dm)):
        piece = pieces[name]
        terms = piece.gradient * dnum[:, None]
        out[:, 0] += piece.influence @ terms.mean(axis=0)
        if members is not None and s:
            out[:, 1:] += piece.influence @ (np.asarray(members.T @ terms).T / y.size)
    return out
