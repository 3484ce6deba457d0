r"""Unit-level variance of panel-mode estimates: the calibration (GREG) linearisation on unit residuals.

The default inference of ``microsynth_panel`` (``analytic``, also ``multiplier``) reads the
influence matrix built here. It replaces R microsynth's linearisation (inference
``linearisation``), which treats every unit-period as an independent draw and keeps in its
residuals the unit levels that matching on pre-period outcomes removed.

**Setting.** Treated units :math:`T` (:math:`n_T` of them), controls :math:`C`, balance
columns :math:`m_i` (intercept, covariates, every matched pre-period outcome) and control
weights :math:`w_j \ge 0` with :math:`\sum_C w_j m_j = \sum_T m_i`. For an outcome :math:`y`
let :math:`\bar Y_i = T_1^{-1}\sum_{t\in post} y_{it}`, one number per unit: the correlation
of a unit's post periods stays inside it. The effect on totals is
:math:`\hat\tau = \sum_T \bar Y_i - \sum_C w_j \bar Y_j`; the target is
:math:`\tau = \sum_T \{\bar Y_i(1) - \bar Y_i(0)\}`.

**Linearisation.** Because the weights balance :math:`m`, for every coefficient vector
:math:`b`

.. math:: \hat\tau = \sum_T (\bar Y_i - m_i^\top b) - \sum_C w_j (\bar Y_j - m_j^\top b),

the GREG form of a calibration estimator (Deville & Särndal 1992, sec. 3). Take :math:`b = \beta`
with :math:`\bar Y(0) = m^\top\beta + \varepsilon`, :math:`E[\varepsilon \mid m, D] = 0`
(the linear model in the calibration variables under which calibration weights remove the
bias); then :math:`\hat\tau - \tau = \sum_T \varepsilon_i - \sum_C w_j\varepsilon_j`. The
weights are functions of :math:`(m, D)` only (covariates and pre-period outcomes, never a
post-period outcome), so given the design they are constants and, with independent units,

.. math:: V = \operatorname{Var}(\hat\tau \mid m, D)
    = \sum_T \sigma^2(m_i) + \sum_C w_j^2\,\sigma^2(m_j),
    \qquad \sigma^2(m) = \operatorname{Var}(\bar Y(0) \mid m).

**Estimation.** :math:`\hat e_j` are the residuals of the least-squares regression of
:math:`\bar Y_j` on :math:`m_j` among the controls (calibration's design weights are the
constant :math:`n_T/n_C`, so Deville & Särndal's weighted regression is ordinary least
squares) and :math:`h_{jj}` their leverages; :math:`\hat e_j^2/(1-h_{jj})` is unbiased for
:math:`\sigma^2` under homoskedasticity (HC2; MacKinnon & White 1985). The control part is
:math:`\sum_C w_j^2 \hat e_j^2/(1-h_{jj})`. The treated part is the variance of the
*counterfactual* :math:`\bar Y_i(0)`, which no treated outcome shows (their residuals carry the
effect and its heterogeneity, and give only :math:`n_T - 1` degrees of freedom, too few for a
normal interval with a handful of treated areas); when :math:`\sigma^2(m)` is linear in
:math:`m` (constant included), balance transports it exactly,
:math:`\sum_T \sigma^2(m_i) = \sum_C w_j\sigma^2(m_j)`. Hence

.. math:: \widehat V = \sum_{j \in C} w_j (1 + w_j)\,\frac{\hat e_j^2}{1 - h_{jj}},
    \qquad \widehat{\operatorname{Cov}} = \sum_{j \in C} w_j (1 + w_j)\,
    \frac{\hat e_j \hat e_j^\top}{1 - h_{jj}}

for the vector of estimates (:math:`\hat e_j` holds one residual per estimate). The
influence matrix is its variance-equivalent square root: control rows
:math:`\psi_j = -n\sqrt{w_j(1+w_j)/(1-h_{jj})}\;\hat e_j`, treated rows zero, so that
:math:`n^{-2}\psi^\top\psi = \widehat{\operatorname{Cov}}` (``analytic``) and the multiplier
bootstrap is a wild bootstrap of the same sum. (:math:`n^{-1}\sum_i\psi_i` is *not* the
estimation error: the treated units' counterfactual noise is unobserved.)

Per estimate: the effect of outcome :math:`o` uses :math:`\bar Y^{o}`; the per-period effect
:math:`\tau_t` uses :math:`y_{it}`; the log ratio :math:`x = \log(\mathrm{Trt}/\mathrm{Con})`
(delta method, :math:`\hat x - x \approx (\hat\tau - \tau)/\hat C`,
:math:`\hat C = \sum_C w_j \bar Y^{o}_j`) the effect's column divided by :math:`\hat C` (NaN
where the log ratio is undefined).

**What it ignores.** The variation of the design itself: the conditional bias
:math:`\sum_T r(m_i) - \sum_C w_j r(m_j)` when :math:`E[\bar Y(0)\mid m]` is not linear in
:math:`m` (mean zero when treatment is exchangeable, and partly inside :math:`\hat e`), and the
imbalance the QP's least-squares fit of the outcome columns leaves. Where the bound
:math:`w \ge 0` binds for many controls (few treated areas, a small donor pool) the weights
concentrate near the treated mean and the transported treated part is biased down for a
convex :math:`\sigma^2(m)`: on ``area_panel`` (``selection=0``) with 100 areas, 4 treated,
2 covariates, 4 pre and 2 post periods, mean SE / empirical SE = 0.96 and 95% coverage 0.93
(2,000 replications); at the default 300 areas it is 1.01 and 0.94 with 8 treated, 0.97 and
0.93 with 3 (500 replications; README). Measured alongside: the treated units' own centred
residuals in place of the transported part cover 0.92 with 8 treated and 0.88 with 4 (their
:math:`n_T - 1` degrees of freedom), and a delete-one-unit jackknife over-estimates (mean SE
/ empirical SE 1.21 in the 100-area world). A leverage :math:`h_{jj} = 1` (a control
alone in spanning a balance column) leaves its residual zero and unknown; its row is zero.

**Clusters.** With the ``cluster`` role units are independent across clusters :math:`g`
only (each unit in one cluster; the unit-level variance above is already clustered by unit,
over its periods). Inference sums the rows within clusters with the factor :math:`G/(G-1)`
(no :math:`K`: no regression defines the estimate; Cameron & Miller 2015), so the rows must
make :math:`\sum_g u_g u_g^\top`, :math:`u_g = \sum_{i \in g}\psi_i/n`, the clustered
variance. Let treatment be assigned to whole clusters. Then
:math:`\hat\tau - \tau = \sum_{g \in T} E_g - \sum_{g\in C} a_g` with
:math:`E_g = \sum_{i\in g}\varepsilon_i` and :math:`a_g = \sum_{j \in g} w_j\varepsilon_j`;
the control part is :math:`\sum_C \operatorname{Var}(a_g)`, and the treated part
:math:`\sum_T \operatorname{Var}(E_g)` is transported one level up: a control cluster
counts at its share :math:`\omega_g = W_g/m_g` (:math:`W_g` its weight total, :math:`m_g`
its control units; :math:`\sum_g m_g\omega_g = \sum_j w_j = n_T` by the intercept's
balance), which is exact when :math:`\operatorname{Var}(E_g)/m_g` is the same in every
cluster (equal sizes, or treated clusters sized like the weighted controls'). The control
rows become

.. math:: \psi_j = -n\,(w_j + \beta_g)\,\tilde e_j,\qquad
    \beta_g = \sqrt{\omega_g(1+\omega_g)} - \omega_g,

so :math:`u_g = a_g + \beta_g E_g` (in residuals) and
:math:`E[u_g^2] = \operatorname{Var}(a_g) + 2\beta_g\operatorname{Cov}(a_g, E_g)
+ \beta_g^2\operatorname{Var}(E_g) = \operatorname{Var}(a_g) + \omega_g\operatorname{Var}(E_g)`
whenever :math:`\operatorname{Cov}(a_g, E_g) = \omega_g\operatorname{Var}(E_g)`: always when
the weights are constant within the cluster (then :math:`w_j + \beta_g = \sqrt{w_j(1+w_j)}`,
the unclustered row), and otherwise when the cluster's units share one variance and one
covariance. A singleton cluster has :math:`\omega_g = w_j` and gives the unclustered row, so
singleton clusters reproduce the unclustered variance times :math:`n/(n-1)`. The leverage
scaling stays the unit's HC2 (not CR2's block :math:`(I - H_{gg})^{-1/2}`). When a cluster
holds treated and control units the transport treats the treated units as whole clusters
and leaves out :math:`\operatorname{Cov}(E_g^T, a_g)`, which enters :math:`\hat\tau - \tau`
with a minus sign: conservative for shocks shared within clusters (mean SE / empirical SE
about 1.6 on ``area_panel`` with 5-area clusters and ``assign=area``).
What it leaves out, as above: the design's variation, here the regression to the mean of
matching the treated clusters' shared pre-period shocks (measured in
``tests/unit/test_microsynth_clusters.py``).

**Sampling weights** (the ``weight`` role, :math:`d_i > 0`; units of weight 0 are dropped
before the fit). The weights :math:`w_j` balance the weighted treated totals,
:math:`\sum_C w_j m_j = \sum_T d_i m_i`, the estimate is
:math:`\hat\tau = \sum_T d_i\bar Y_i - \sum_C w_j\bar Y_j` and, units independent and the
weights functions of the design, :math:`\hat\tau - \tau = \sum_T d_i\varepsilon_i -
\sum_C w_j\varepsilon_j` with :math:`\tau = \sum_T d_i\{\bar Y_i(1) - \bar Y_i(0)\}`, the
effect on the weighted total of the treated units (each unit counts as one draw carrying its
weight, as a survey's probability weight; the variance is conditional on the sampled
treated units, as without weights). So

.. math:: V = \sum_T d_i^2\sigma^2(m_i) + \sum_C w_j^2\sigma^2(m_j).

Balance now transports :math:`\sum_T d_i\sigma^2(m_i) = \sum_C w_j\sigma^2(m_j)`, not the
:math:`d_i^2`-weighted sum; with :math:`\kappa = \sum_T d_i^2/\sum_T d_i`,
:math:`\sum_T d_i^2\sigma^2(m_i) = \kappa\sum_T d_i\sigma^2(m_i)` exactly when
:math:`\sigma^2(m_i)` and :math:`d_i` are uncorrelated among the treated units under the
:math:`d`-weighting (always when the treated weights are equal, or the variance constant),
and the control rows become :math:`\psi_j = -n\sqrt{w_j(\kappa + w_j)/(1-h_{jj})}\,\hat e_j`
(:math:`\beta_g = \sqrt{\omega_g(\kappa+\omega_g)} - \omega_g` with clusters). Without
weights :math:`\kappa = 1` and the rows above. The residuals stay those of the unweighted
regression among the controls: the working model :math:`E[\bar Y(0)\mid m] = m^\top\beta`
does not involve the weights. Where the treated weights vary with the unit's variance the
transported part is off by :math:`\sum_T d_i(d_i - \kappa)\sigma^2(m_i)`; measured in the
coverage world ``weighted`` (sampling weights that fall with the first covariate, an effect
that grows with it).

References
----------
Deville, J.-C. & Särndal, C.-E. (1992). Calibration estimators in survey sampling. *JASA* 87(418).
Särndal, C.-E., Swensson, B. & Wretman, J. (1992). *Model Assisted Survey Sampling*,
sec. 6.6-6.7 (the GREG estimator and its residual variance). Springer.
Cameron, A.C. & Miller, D.L. (2015). A practitioner's guide to cluster-robust inference.
*J. Human Resources* 50(2).
MacKinnon, J.G. & White, H. (1985). Some heteroskedasticity-consistent covariance matrix
estimators with improved finite sample properties. *J. Econometrics* 29(3).
Robbins, M.W., Saunders, J. & Kilmer, B. (2017). A framework for synthetic control methods
with high-dimensional, micro-level data. *JASA* 112(517).
"""

from __future__ import annotations

import numpy as np

from causalkit.contracts import Clusters
from causalkit_plugins.estimators.microsynth.panel_calibration import independent_columns
from causalkit_plugins.estimators.microsynth.panel_data import WindowArrays

__all__ = ["control_residuals", "unit_influence"]

_LEVERAGE_ONE = 1e-10
"""A leverage within this of 1: the residual is zero and its variance unknown (row zero)."""


def control_residuals(Mc: np.ndarray, Yc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Least-squares residuals and leverages of the controls' outcomes on their balance columns.

    Parameters
    ----------
    Mc : ndarray, shape (n_C, p)
        Balance columns of the controls (dependent columns are dropped left to right, as
        :func:`~causalkit_plugins.estimators.microsynth.panel_calibration.independent_columns`).
    Yc : ndarray, shape (n_C, q)
        One outcome per column.

    Returns
    -------
    resid : ndarray, shape (n_C, q)
        :math:`(I - H) Y_C`, :math:`H = M(M^\top M)^{-1}M^\top` over the kept columns.
    leverage : ndarray, shape (n_C,)
        :math:`h_{jj}`.
    """
    Q, _ = np.linalg.qr(Mc[:, independent_columns(Mc)])
    return Yc - Q @ (Q.T @ Yc), np.einsum("ij,ij->i", Q, Q)


def _cluster_shift(
    codes: np.ndarray, n_clusters: int, w: np.ndarray, kappa: float = 1.0
) -> np.ndarray:
    r""":math:`\beta_g = \sqrt{\omega_g(\kappa+\omega_g)} - \omega_g`, :math:`\omega_g = W_g/m_g`, per control.

    Parameters
    ----------
    codes : ndarray of int, shape (n_C,)
        The controls' clusters.
    n_clusters : int
        :math:`G`.
    w : ndarray, shape (n_C,)
        Control weights.
    kappa : float
        :math:`\kappa` of the sampling weights (module docstring); 1 without them.
    """
    m = np.bincount(codes, minlength=n_clusters)
    omega = np.bincount(codes, weights=w, minlength=n_clusters) / np.maximum(m, 1)
    return (np.sqrt(omega * (kappa + omega)) - omega)[codes]


def unit_influence(
    arr: WindowArrays,
    outcomes: tuple[str, ...],
    M: np.ndarray,
    w_controls: np.ndarray,
    log_ratio_defined: np.ndarray,
    clusters: Clusters | None = None,
    kappa: float = 1.0,
) -> np.ndarray:
    r"""The n x k influence matrix of every estimate (module docstring), units in ``arr`` order.

    Parameters
    ----------
    arr : WindowArrays
        The study window.
    outcomes : tuple of str
        Result outcomes, the ``outcome`` role first.
    M : ndarray, shape (n, p)
        Balance columns of every unit.
    w_controls : ndarray, shape (n_C,)
        Control weights.
    log_ratio_defined : ndarray of bool, shape (len(outcomes),)
        Whether each outcome's log ratio is finite (its column is NaN otherwise).
    clusters : Clusters, optional
        The units' clusters: control rows are :math:`-n(w_j + \beta_{g})\tilde e_j` (module
        docstring, *Clusters*) instead of :math:`-n\sqrt{w_j(1+w_j)}\,\tilde e_j`.
    kappa : float
        :math:`\kappa = \sum_T d_i^2/\sum_T d_i` of the treated units' sampling weights
        (module docstring, *Sampling weights*): the rows carry :math:`w_j(\kappa + w_j)`;
        1 without weights.

    Returns
    -------
    ndarray, shape (n, k)
        Columns in the order of :func:`~causalkit_plugins.estimators.microsynth.panel.estimate_names`.
    """
    post, controls = arr.post, ~arr.treated
    n = controls.size
    ybar = [arr.outcomes[o][controls][:, post].mean(axis=1) for o in outcomes]
    per_period = arr.outcomes[outcomes[0]][controls][:, post] if post.sum() > 1 else None
    Yc = np.column_stack([*ybar, *(() if per_period is None else per_period.T)])
    resid, lev = control_residuals(M[controls], Yc)
    w = w_controls
    ok = lev < 1.0 - _LEVERAGE_ONE
    scale = np.zeros(w.size)
    if clusters is None:
        scale[ok] = np.sqrt(w[ok] * (kappa + w[ok]) / (1.0 - lev[ok]))
    else:
        shift = _cluster_shift(clusters.codes[controls], clusters.n_clusters, w, kappa)
        scale[ok] = (w[ok] + shift[ok]) / np.sqrt(1.0 - lev[ok])
    psi_c = -n * scale[:, None] * resid
    k_o = len(outcomes)
    con = np.array([w @ y for y in ybar])
    ratio = np.full((psi_c.shape[0], k_o), np.nan)
    for j in np.flatnonzero(log_ratio_defined):
        ratio[:, j] = psi_c[:, j] / con[j]
    psi = np.zeros((n, Yc.shape[1] + k_o))
    psi[controls] = np.column_stack([psi_c[:, :k_o], ratio, psi_c[:, k_o:]])
    return psi
