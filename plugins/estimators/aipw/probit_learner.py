"""The ``probit`` nuisance learner: unpenalised probit maximum likelihood as a scikit-learn classifier.

Its own module so that :mod:`~causalkit_plugins.estimators.aipw.learners` (read by the parameter
model) does not import scikit-learn.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr
from sklearn.base import BaseEstimator, ClassifierMixin

from causalkit_plugins.estimators.aipw.learners import _dense
from causalkit_plugins.estimators.selection.probit import fit_probit

__all__ = ["ProbitClassifier"]


class ProbitClassifier(ClassifierMixin, BaseEstimator):
    r"""Unpenalised probit maximum likelihood as a scikit-learn classifier.

    :math:`P(d=1\mid x) = \Phi(\gamma_0 + x^\top\gamma)`, fitted by Newton's method with
    step halving (:func:`causalkit_plugins.estimators.selection.probit.fit_probit`).

    Parameters
    ----------
    max_iter : int
        Maximum Newton iterations.
    tol : float
        Convergence tolerance on the largest Newton step.
    """

    def __init__(self, max_iter: int = 100, tol: float = 1e-10) -> None:
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, X: np.ndarray, y: np.ndarray) -> ProbitClassifier:
        X = _dense(X)
        res = fit_probit(
            np.column_stack([np.ones(X.shape[0]), X]),
            np.asarray(y),
            max_iter=self.max_iter,
            tol=self.tol,
        )
        self.intercept_ = np.array([res.coef[0]])
        self.coef_ = res.coef[1:][None, :]
        self.classes_ = np.array([0, 1])
        self.converged_ = res.converged
        self.separation_ = res.separation
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return _dense(X) @ self.coef_[0] + self.intercept_[0]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = ndtr(self.decision_function(X))
        return np.column_stack([1 - p, p])

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (self.decision_function(X) > 0).astype(int)
