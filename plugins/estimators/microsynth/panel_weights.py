"""Panel-mode weights for one (treated area, donor pool) split: calibration or the ridge QP."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from causalkit.errors import EstimationError
from causalkit_plugins.estimators.microsynth.panel_calibration import (
    calibrate_linear,
    independent_columns,
)
from causalkit_plugins.estimators.microsynth.panel_qp import hard_block_feasible, solve_panel_qp

__all__ = ["PanelDesign", "PanelWeights", "InfeasibleBalance"]

_QP_TOL = 1e-7


class InfeasibleBalance(EstimationError):
    """No non-negative control weights reach the treated covariate totals."""


@dataclass(frozen=True)
class PanelWeights:
    """Control weights (summing to the treated count) and how they were obtained."""

    w: np.ndarray
    method: str
    iterations: int
    converged: bool
    max_rel_misfit: float


@dataclass(frozen=True)
class PanelDesign:
    r"""Constraint columns of every unit and the weighting rule.

    Attributes
    ----------
    hard : ndarray, shape (n, kh)
        Intercept and covariates: always balanced exactly.
    soft : ndarray, shape (n, m)
        Matched pre-period outcomes (``m = 0`` in propensity mode): balanced exactly by
        calibration, fitted by least squares by the QP.
    method : {"calibration", "qp"}
    ridge, cal_epsilon, cal_maxit : float, float, int
    sampling : ndarray, shape (n,), optional
        Positive sampling weights :math:`d_i` of every unit (the ``weight`` role); ``None``:
        every unit weighs 1.

    Notes
    -----
    With sampling weights the weights are those of the data set in which unit :math:`i`
    appears :math:`d_i` times (exactly so for integer :math:`d`): the targets are the
    weighted totals :math:`\sum_{i\in T} d_i m_i`; calibration starts from the design weights
    :math:`d_j\sum_T d_i/\sum_C d_j` (the copies' common base weight, summed over a unit's
    copies); the QP's ridge is :math:`\rho\sum_j w_j^2/d_j` (a unit's copies share its weight
    equally at the optimum), solved as the unweighted QP in :math:`u_j = w_j/\sqrt{d_j}` on
    the rows scaled by :math:`\sqrt{d_j}`.
    """

    hard: np.ndarray
    soft: np.ndarray
    method: str
    ridge: float
    cal_epsilon: float
    cal_maxit: int
    sampling: np.ndarray | None = None

    def weights(self, area: np.ndarray, donors: np.ndarray) -> PanelWeights:
        """Weights on ``donors`` (boolean mask) matching the totals of ``area`` (boolean mask).

        Raises
        ------
        InfeasibleBalance
            The covariate totals of the area lie outside the cone of the donors.
        EstimationError
            The solver failed for another reason.
        """
        G, L = self.hard[donors], self.soft[donors]
        if self.sampling is None:
            h, ell = self.hard[area].sum(axis=0), self.soft[area].sum(axis=0)
            base: float | np.ndarray = int(area.sum()) / G.shape[0]
        else:
            d_area, d_donors = self.sampling[area], self.sampling[donors]
            h, ell = d_area @ self.hard[area], d_area @ self.soft[area]
            base = d_donors * (d_area.sum() / d_donors.sum())
        if self.method == "calibration":
            M = np.hstack([G, L])
            keep = independent_columns(M) if M.shape[1] <= M.shape[0] else np.arange(M.shape[1])
            res = calibrate_linear(
                M[:, keep],
                np.concatenate([h, ell])[keep],
                base,
                self.cal_epsilon,
                self.cal_maxit,
            )
            full = np.abs(M.T @ res.w - np.concatenate([h, ell])) / (
                1 + np.abs(np.concatenate([h, ell]))
            )
            if res.converged and np.all(np.isfinite(res.w)) and full.max() < self.cal_epsilon:
                return PanelWeights(res.w, "calibration", res.iterations, True, float(full.max()))
            qp = self._qp(G, h, L, ell, donors)  # R falls back to a QP when calibration fails
            return PanelWeights(
                qp.w, "qp_fallback", res.iterations + qp.iterations, qp.converged, qp.max_rel_misfit
            )
        return self._qp(G, h, L, ell, donors)

    def _qp(
        self, G: np.ndarray, h: np.ndarray, L: np.ndarray, ell: np.ndarray, donors: np.ndarray
    ) -> PanelWeights:
        root = None if self.sampling is None else np.sqrt(self.sampling[donors])[:, None]
        sol = solve_panel_qp(
            G if root is None else root * G,
            h,
            (L if root is None else root * L) if L.shape[1] else None,
            ell if L.shape[1] else None,
            ridge=self.ridge,
            tol=_QP_TOL,
        )
        w = sol.w if root is None else root[:, 0] * sol.w
        hard_misfit = float(np.max(np.abs(G.T @ w - h) / (1 + np.abs(h))))
        if not sol.converged:
            if not hard_block_feasible(G, h):
                raise InfeasibleBalance(
                    "microsynth: no non-negative control weights reach the treated covariate totals "
                    "(the treated area lies outside the cone of the controls)"
                )
            raise EstimationError(
                f"microsynth: panel QP did not converge (relative residual {sol.max_rel_residual:.1e})"
            )
        return PanelWeights(w, "qp", sol.iterations, True, hard_misfit)
