"""Balanced contrasts for the simplex estimands ATT, ITT and CACE, and their resampling hooks."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from causalkit.contracts import Estimand
from causalkit.errors import DataError, EstimationError
from causalkit_plugins.estimators.microsynth.dual import DualSolution, solve_simplex_dual
from causalkit_plugins.estimators.microsynth.dual_batch import (
    BatchDesign,
    solve_simplex_dual_batch,
)

__all__ = ["BalancedContrast", "group_role", "effects", "effect_names"]


def effects(per: np.ndarray, gap: np.ndarray | float, post: np.ndarray) -> np.ndarray:
    r"""The estimates vector from per-period contrasts and compliance gaps (last axis: periods).

    :math:`(\bar\tau_{post}, \tau_{t_1}, \dots, \tau_{t_m}) / \Delta(D)` over the post
    periods :math:`t_1..t_m`; the per-period entries only when :math:`m > 1`. ``per`` has
    shape ``(T,)`` or ``(B, T)`` and ``gap`` is a scalar or ``(B,)``; returns ``(k,)`` or
    ``(B, k)``.
    """
    head = per[..., post].mean(axis=-1) / gap
    if int(post.sum()) == 1:
        return head[..., None]
    return np.concatenate([head[..., None], per[..., post] / np.asarray(gap)[..., None]], axis=-1)


def effect_names(estimand: Estimand, post_periods: np.ndarray) -> tuple[str, ...]:
    """Names of :func:`effects`: the estimand, then ``"<estimand>@<period>"`` per post period."""
    if len(post_periods) == 1:
        return (str(estimand),)
    return (str(estimand), *(f"{estimand}@{t}" for t in post_periods))


@dataclass(frozen=True)
class BalancedContrast:
    r"""Treated (or assigned) units against simplex-weighted controls, on standardised covariates.

    For frequency weights :math:`c` (ones for the fit, multiplicities for a bootstrap resample,
    a 0/1 split for a placebo) and weights :math:`w` from
    :func:`~causalkit_plugins.estimators.microsynth.dual.solve_simplex_dual`, the contrast of a
    per-unit quantity :math:`v` is

    .. math:: \Delta(v) = \frac{\sum_{i \in T} c_i v_i}{\sum_{i\in T} c_i} - \sum_{j\in C} c_j w_j v_j .

    ATT and ITT report :math:`\Delta(\bar y^{post})` (the mean of the per-period gaps
    :math:`\Delta(y_t)`); CACE reports the covariate-balanced Wald ratio
    :math:`\Delta(\bar y^{post}) / \Delta(D)` with :math:`D` the actual exposure, so both the
    ITT and the compliance gap use the same balancing weights and every resample
    recomputes both.

    Attributes
    ----------
    Zt, Zc : ndarray
        Standardised balance columns of treated and control units (C-contiguous).
    Yt, Yc : ndarray, shape (n_T, T) / (n_C, T)
        Outcomes by period (pre and post periods, in order).
    post : ndarray of bool, shape (T,)
        Which columns are post periods.
    Dt, Dc : ndarray or None
        Exposure (CACE only).
    tol, max_iter : float, int
        Dual solver settings.
    dt, dc : ndarray or None
        Sampling weights of the treated and control units (the ``weight`` role), or ``None``
        (all one). They are the frequency weights of the fit and multiply a resample's
        multiplicities, so every contrast is the one of the frequency-expanded data.
    """

    Zt: np.ndarray
    Zc: np.ndarray
    Yt: np.ndarray
    Yc: np.ndarray
    post: np.ndarray
    Dt: np.ndarray | None
    Dc: np.ndarray | None
    tol: float
    max_iter: int
    dt: np.ndarray | None = None
    dc: np.ndarray | None = None

    def solve(
        self,
        ct: np.ndarray | None,
        cc: np.ndarray | None,
        warm: DualSolution | None,
        check_hull: bool,
    ) -> DualSolution:
        """Dual solve for frequency weights ``ct`` (treated) and ``cc`` (controls); ``None``: the fit's."""
        target = self.target if ct is None else (ct @ self.Zt) / ct.sum()
        return solve_simplex_dual(
            self.Zc,
            target,
            counts=self.dc if cc is None else cc,
            tol=self.tol,
            max_iter=self.max_iter,
            mu0=None if warm is None else warm.mu,
            hessian=None if warm is None else warm.hessian,
            check_hull=check_hull,
        )

    @functools.cached_property
    def target(self) -> np.ndarray:
        """Treated (sampling-weighted) means of the standardised balance columns: the full-sample target."""
        if self.dt is None:
            return self.Zt.mean(axis=0)
        return (self.dt @ self.Zt) / self.dt.sum()

    @staticmethod
    def _delta(
        vt: np.ndarray, vc: np.ndarray, ct: np.ndarray | None, cc: np.ndarray | None, w: np.ndarray
    ) -> np.ndarray:
        mt = vt.mean(axis=0) if ct is None else (ct @ vt) / ct.sum()
        cw = w if cc is None else cc * w
        return mt - cw @ vc

    def gaps(
        self, ct: np.ndarray | None, cc: np.ndarray | None, w: np.ndarray
    ) -> tuple[np.ndarray, float]:
        """Per-period contrasts (all periods) and the compliance gap (1.0 unless CACE).

        ``ct``/``cc`` ``None``: the fit's own frequency weights (the sampling weights or ones).
        """
        ct = self.dt if ct is None else ct
        cc = self.dc if cc is None else cc
        per = self._delta(self.Yt, self.Yc, ct, cc, w)
        if self.Dt is None or self.Dc is None:
            return per, 1.0
        return per, float(self._delta(self.Dt, self.Dc, ct, cc, w))

    def resampled(
        self, idx: np.ndarray, rows: tuple[np.ndarray, np.ndarray], warm: DualSolution
    ) -> tuple[np.ndarray, float]:
        """Per-period contrasts and gap on the units ``idx`` (with repeats): the bootstrap refit.

        ``rows`` are the unit positions of the treated and of the control rows (in the order
        of ``Zt`` and ``Zc``). Multiplicities come from ``bincount``, so no row of the
        covariate matrix is copied; the dual is warm-started from the full-sample solution
        (``warm``) with its Hessian as a fixed (chord) Newton matrix; a warm start that
        stalls is retried cold (see
        :func:`~causalkit_plugins.estimators.microsynth.dual.solve_simplex_dual`).
        """
        t_rows, c_rows = rows
        counts = np.bincount(idx, minlength=t_rows.size + c_rows.size).astype(np.float64)
        ct, cc = self._carry(counts.take(t_rows), counts.take(c_rows))
        if ct.sum() == 0 or cc.sum() == 0:
            raise EstimationError("microsynth: a resample without treated or control units")
        sol = self.solve(ct, cc, warm, check_hull=False)
        if not sol.converged:
            raise EstimationError(f"microsynth: resample dual {sol.message}")
        per, gap = self.gaps(ct, cc, sol.w)
        if gap == 0:
            raise EstimationError("microsynth: resample with zero compliance gap")
        return per, gap

    def _carry(self, ct: np.ndarray, cc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Resample multiplicities (last axis: units) times the units' sampling weights, if any."""
        if self.dt is None or self.dc is None:
            return ct, cc
        return ct * self.dt, cc * self.dc

    @functools.cached_property
    def _values(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-unit values averaged by a contrast: outcomes by period, then exposure (CACE)."""
        if self.Dt is None or self.Dc is None:
            return self.Yt, self.Yc
        return np.column_stack([self.Yt, self.Dt]), np.column_stack([self.Yc, self.Dc])

    @functools.cached_property
    def _design(self) -> BatchDesign:
        """Controls' ``[Z, 1, Y, D]`` for the batched solver (built on the first batch)."""
        return BatchDesign.build(self.Zc, self._values[1])

    def resampled_batch(
        self, idxs: Sequence[np.ndarray], rows: tuple[np.ndarray, np.ndarray], warm: DualSolution
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`resampled` for several index sets at once; NaN rows where one failed.

        The duals are solved in lockstep by
        :func:`~causalkit_plugins.estimators.microsynth.dual_batch.solve_simplex_dual_batch`
        (same warm start and initial matrix); a resample it leaves unconverged is re-solved by
        :meth:`resampled` itself, so a replication fails exactly when the one-at-a-time path
        fails. Returns per-period contrasts (k x T) and compliance gaps (k,).
        """
        t_rows, c_rows = rows
        n, k = t_rows.size + c_rows.size, len(idxs)
        CT, CC = np.empty((k, t_rows.size)), np.empty((k, c_rows.size))
        for i, idx in enumerate(idxs):
            counts = np.bincount(idx, minlength=n)
            CT[i], CC[i] = counts.take(t_rows), counts.take(c_rows)
        CT, CC = self._carry(CT, CC)
        mt = CT.sum(axis=1)
        per = np.full((k, self.post.size), np.nan)
        gap = np.full(k, np.nan)
        ok = np.flatnonzero((mt > 0) & (CC.sum(axis=1) > 0))
        if ok.size:
            vt = self._values[0]
            treated = (CT[ok] @ vt) / mt[ok, None]
            sol = solve_simplex_dual_batch(
                self._design,
                (CT[ok] @ self.Zt) / mt[ok, None],
                CC[ok],
                mu0=warm.mu,
                hessian=warm.hessian,
                tol=self.tol,
                max_iter=self.max_iter,
            )
            diff = treated - sol.moments
            T = self.post.size
            per[ok] = diff[:, :T]
            gap[ok] = diff[:, T] if diff.shape[1] > T else 1.0
            for i in ok[~sol.converged]:
                try:
                    per[i], gap[i] = self.resampled(idxs[i], rows, warm)
                except EstimationError:
                    per[i], gap[i] = np.nan, np.nan
        gap[gap == 0] = np.nan
        return per, gap

    def placebo(self, rng: np.random.Generator, hessian: np.ndarray, scale: float) -> np.ndarray:
        r"""One placebo draw of the estimates: ``n_T`` controls as a pseudo-treated group against the rest.

        :math:`n_T` controls (the size of the treated group), drawn without replacement, play
        the treated group and the other :math:`n_C - n_T` controls the donor pool (the
        microsynth/R placebo design of Robbins, Saunders & Kilmer 2017). Their mean
        post-period contrast, then (with several post periods) each post period's, divided
        by ``scale`` (the observed compliance gap for CACE, so the null distribution is on
        the estimates' scale), is returned as in :func:`effects`. The dual starts at uniform
        weights with ``hessian`` (the Gram matrix of all controls) for chord steps.

        Raises
        ------
        DataError
            When :math:`n_C < 2 n_T`: the controls cannot supply a placebo group of the
            treated size and a donor pool at least as large. (A smaller placebo group, as
            before, has a wider null distribution: with :math:`m` pseudo-treated units and
            :math:`n_C - m` donors the placebo variance is about
            :math:`\sigma^2 (1/m + \sum_j w_j^2)` against the estimate's
            :math:`\sigma^2 (1/n_T + \sum_j w_j^2)`, so ``m = n_C // 2 < n_T`` made the test
            reject far too rarely.) Not an :class:`~causalkit.errors.EstimationError`: the
            design refuses every draw, so the permutation inference stops at the first
            one with this message and a Monte Carlo replication counts as failed.
        """
        n_c, n_t = self.Zc.shape[0], self.Zt.shape[0]
        if n_c < 2 * n_t:
            raise DataError(
                "inference=permutation",
                f"at least 2 x n_T = {2 * n_t} control units for placebo groups of the "
                "treated size (use inference=bootstrap)",
                f"{n_c} controls for {n_t} treated",
            )
        pick = rng.choice(n_c, size=n_t, replace=False)
        cc = np.ones(n_c)
        cc[pick] = 0.0
        target = self.Zc[pick].mean(axis=0)
        sol = solve_simplex_dual(
            self.Zc,
            target,
            counts=cc,
            tol=self.tol,
            max_iter=self.max_iter,
            mu0=np.zeros(hessian.shape[0]),
            hessian=hessian,
            check_hull=False,
        )
        if not sol.converged:
            raise EstimationError(f"microsynth: placebo dual {sol.message}")
        yp = self.Yc[:, self.post]
        yc = yp.mean(axis=1)
        head = (yc[pick].mean() - (cc * sol.w) @ yc) / scale
        if yp.shape[1] == 1:
            return np.array([head])
        return np.concatenate([[head], (yp[pick].mean(axis=0) - (cc * sol.w) @ yp) / scale])


def group_role(estimand: Estimand) -> Literal["treatment", "assignment"]:
    """ATT contrasts actual exposure; ITT and CACE contrast the randomised arms."""
    return "treatment" if estimand is Estimand.ATT else "assignment"
