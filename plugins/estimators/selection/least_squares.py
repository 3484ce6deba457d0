"""Least squares by QR of the column-scaled design, as ``ols`` fits each of its regressions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from causalkit.errors import EstimationError

__all__ = ["CONDITION_REFUSE", "CONDITION_WARN", "ArmFit", "arm_ols", "unscaled_block"]

CONDITION_WARN = 1e8
"""Condition number of a regression's column-scaled design above which ``ols`` warns."""
CONDITION_REFUSE = 1e12
"""Condition number above which ``ols`` refuses: the coefficients have no correct digits left."""


@dataclass(frozen=True)
class ArmFit:
    """One arm's regression by QR of its column-scaled design, :math:`Z_a D^{-1} = QR`."""

    coef: np.ndarray
    q: np.ndarray
    r: np.ndarray
    norms: np.ndarray
    condition: float

    def leverage(self, zbar: np.ndarray) -> np.ndarray:
        r""":math:`\bar z^\top (Z_a^\top Z_a)^{-1} z_i` for the arm's rows :math:`i`.

        Equal to :math:`q_i^\top R^{-\top} D^{-1}\bar z`: bounded rows of :math:`Q` times
        one triangular solve, accurate however ill-conditioned :math:`Z_a^\top Z_a` is.
        """
        from scipy.linalg import solve_triangular

        return self.q @ solve_triangular(self.r, zbar / self.norms, trans="T")


def arm_ols(
    Z: np.ndarray, y: np.ndarray, arm: np.ndarray, label: str, sw: np.ndarray | None = None
) -> ArmFit:
    r"""OLS within ``arm`` by QR, never forming or inverting :math:`Z_a^\top Z_a`.

    With ``sw`` (square roots of sampling weights) it is weighted least squares: the rows of
    :math:`Z_a` and :math:`y_a` are multiplied by :math:`\sqrt{w_i}` first, so :math:`Q` and
    :math:`R` (and :meth:`ArmFit.leverage`) belong to :math:`W_a^{1/2}Z_a`.

    The design is scaled to unit column norms first (a covariate's units do not count as
    ill-conditioning) and factorised; the condition number is that of ``R``. Above
    :data:`CONDITION_REFUSE` the regression is refused (inverting :math:`Z^\top Z`, as
    before, squared the condition number and returned a wrong estimate without a word).
    """
    from scipy.linalg import solve_triangular

    Za = Z[arm] if sw is None else Z[arm] * sw[arm][:, None]
    ya = y[arm] if sw is None else y[arm] * sw[arm]
    p = Z.shape[1]
    if Za.shape[0] < p:
        raise EstimationError(
            f"ols: the {label} regression is rank deficient ({Za.shape[0]} units, {p} coefficients)"
        )
    norms = np.sqrt(np.einsum("ij,ij->j", Za, Za))
    norms[norms == 0] = 1.0
    q, r = np.linalg.qr(Za / norms)
    cond = float(np.linalg.cond(r))
    if not np.isfinite(cond) or cond > CONDITION_REFUSE:
        raise EstimationError(
            f"ols: the {label} regression is rank deficient or nearly so (condition number "
            f"{cond:.3g} > {CONDITION_REFUSE:g}, {Za.shape[0]} units, {p} coefficients): "
            "drop or combine collinear covariates"
        )
    coef = solve_triangular(r, q.T @ ya) / norms
    return ArmFit(coef, q, r, norms, cond)


def unscaled_block(fit: ArmFit, cols: list[int]) -> np.ndarray:
    r""":math:`[(Z^\top WZ)^{-1}]_{GG} = V^\top V`, :math:`V = R^{-\top}D^{-1}E_G` (one triangular solve)."""
    from scipy.linalg import solve_triangular

    e = np.zeros((fit.r.shape[0], len(cols)))
    e[cols, np.arange(len(cols))] = 1.0 / fit.norms[cols]
    v = solve_triangular(fit.r, e, trans="T")
    return np.asarray(v.T @ v)
