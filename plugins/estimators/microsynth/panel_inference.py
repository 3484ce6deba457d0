r"""R microsynth's linearization inference for panel mode: weighted regression, sandwich, delta CI.

For one outcome, R microsynth (``get.stats1``) stacks the post periods
:math:`t = 1..T` of every unit into rows :math:`r = (i, t)` with weight :math:`w_i`
(1 for treated units, the synthetic-control weight for controls) and fits by weighted least
squares (``survey::svyglm`` with ``svydesign(ids = ~0, weights = w)``)

.. math:: y_{it} = \beta D_i + \sum_t \alpha_t 1\{t\} + e_{it}.

The variance is the linearization (sandwich) estimator of a with-replacement design in
which every row is its own PSU,

.. math::
    \widehat V = \frac{N}{N-1}\,B^{-1}\Bigl(\sum_r w_r^2 e_r^2 x_r x_r^\top\Bigr)B^{-1},
    \qquad B = \sum_r w_r x_r x_r^\top ,

(N rows, zero-weight controls included). The test statistic is
:math:`z = \hat\beta/\widehat{se}(\hat\beta)` with a normal reference (one-sided for
``test="lower"``/``"upper"``). With :math:`\bar y_C = T^{-1}\sum_t\hat\alpha_t` and
:math:`\bar y_T = \bar y_C + \hat\beta`, the percent change is inferred on the log scale,
:math:`\log(\bar y_T/\bar y_C)`, whose delta-method variance uses the gradient
:math:`D_\beta = 1/(\hat\beta + \bar y_C)`,
:math:`D_{\alpha_t} = (D_\beta - 1/\bar y_C)/T` (R's ``my.delta``); the CI at level
``confidence`` (0.9 in R) is :math:`\exp(\log(\bar y_T/\bar y_C) \pm z_{(1+c)/2}\sqrt{v}) - 1`.

What is ignored (as in R): the weights are treated as fixed, not as estimated by
calibration, and rows of the same unit are treated as independent.

References
----------
Robbins, M.W. & Davenport, S. (2021). microsynth: synthetic control methods for
disaggregated and micro-level data in R. *J. Stat. Softw.* 97(2).
Binder, D.A. (1983). On the variances of asymptotically normal estimators from complex
surveys. *Int. Stat. Rev.* 51.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["LinearTest", "linear_test"]


@dataclass(frozen=True)
class LinearTest:
    """The linearization test of one outcome (R's ``Linear.pVal``, ``Linear.Lower/Upper``)."""

    beta: float
    se_beta: float
    z: float
    p_value: float
    log_ratio: float
    ci_lower: float
    ci_upper: float


def linear_test(
    y_post: np.ndarray, treated: np.ndarray, w_c: np.ndarray, test: str, confidence: float
) -> LinearTest:
    """Run the regression test on post-period outcomes.

    Parameters
    ----------
    y_post : ndarray, shape (n, T)
        Post-period outcomes of all units.
    treated : ndarray of bool, shape (n,)
        Treated-area indicator.
    w_c : ndarray, shape (n_C,)
        Control weights (in the order of the controls in ``y_post``).
    test : {"lower", "upper", "twosided"}
        Direction of the p-value.
    confidence : float
        Level of the delta-method CI for the percent change.

    Returns
    -------
    LinearTest
    """
    n, T = y_post.shape
    w = np.ones(n)
    w[~treated] = w_c
    d = treated.astype(np.float64)
    # Closed-form normal equations of y ~ D + period dummies (no intercept), weights w.
    W, W1 = w.sum(), (w * d).sum()
    B = np.zeros((T + 1, T + 1))
    B[0, 0] = T * W1
    B[0, 1:] = B[1:, 0] = W1
    B[1:, 1:] = np.diag(np.full(T, W))
    rhs = np.concatenate([[(w * d) @ y_post.sum(axis=1)], w @ y_post])
    coef = np.linalg.solve(B, rhs)
    beta, alpha = coef[0], coef[1:]
    resid = y_post - beta * d[:, None] - alpha[None, :]
    s = w[:, None] * resid  # w_r e_r per row
    # Meat: sum_r (w e)^2 x x' with x = (D, e_t).
    s2 = s**2
    meat = np.zeros((T + 1, T + 1))
    meat[0, 0] = (d[:, None] * s2).sum()
    meat[0, 1:] = meat[1:, 0] = (d[:, None] * s2).sum(axis=0)
    meat[1:, 1:] = np.diag(s2.sum(axis=0))
    N = n * T
    Binv = np.linalg.inv(B)
    V = N / (N - 1) * Binv @ meat @ Binv
    se = math.sqrt(V[0, 0])
    z = beta / se if se > 0 else math.nan
    if test == "lower":
        p = float(stats.norm.cdf(z))
    elif test == "upper":
        p = float(stats.norm.sf(z))
    else:
        p = float(2 * stats.norm.sf(abs(z)))
    yc = alpha.mean()
    yt = yc + beta
    grad = np.empty(T + 1)
    grad[0] = 1.0 / (beta + yc)
    grad[1:] = (grad[0] - 1.0 / yc) / T
    var_log = float(grad @ V @ grad)
    if yt / yc > 0 and var_log >= 0:
        lr = math.log(yt / yc)
        q = stats.norm.ppf(0.5 + confidence / 2) * math.sqrt(var_log)
        lo, hi = math.exp(lr - q) - 1.0, math.exp(lr + q) - 1.0
    else:
        lr = lo = hi = math.nan
    return LinearTest(float(beta), se, float(z), p, lr, lo, hi)
