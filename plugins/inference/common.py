r"""What every inference plugin shares: the level and joint parameters, Wald intervals,
simultaneous (sup-t) critical values and Holm's step-down adjustment.

For a vector of :math:`k` estimates :math:`\hat\theta_j` with standard errors
:math:`\widehat{se}_j`, a pointwise interval is :math:`\hat\theta_j \pm z_{1-\alpha/2}\widehat{se}_j`.
A simultaneous band replaces :math:`z_{1-\alpha/2}` by the :math:`1-\alpha` quantile :math:`c`
of :math:`\max_j |T_j|`, where :math:`T` is the studentised estimation error (Gaussian with the
estimates' correlation, or its bootstrap analogue), so that all :math:`k` intervals cover
together with probability :math:`1-\alpha` (Montiel Olea & Plagborg-Møller 2019; DoubleML's
``confint(joint=True)``). With ``joint`` the p-values are Holm-adjusted, which controls the
family-wise error rate (Holm 1979).

References
----------
Holm, S. (1979). A simple sequentially rejective multiple test procedure. *Scand. J. Stat.* 6.
Montiel Olea, J.L. & Plagborg-Møller, M. (2019). Simultaneous confidence bands: theory,
implementation, and an application to SVARs. *J. Appl. Econometrics* 34(1).
Chernozhukov, V., Chetverikov, D. & Kato, K. (2013). Gaussian approximations and multiplier
bootstrap for maxima of sums of high-dimensional random vectors. *Ann. Statist.* 41.
Cameron, A.C. & Miller, D.L. (2015). A practitioner's guide to cluster-robust inference.
*J. Human Resources* 50(2), 317-372.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np
from pydantic import Field

from causalkit.contracts import DiagnosticValue, Fit, InferenceOutcome, Params

__all__ = [
    "InferenceParams",
    "ResamplingParams",
    "MAX_FAILED",
    "REFUSED",
    "resampling_failures",
    "refused_outcome",
    "holm",
    "normal_p_values",
    "gaussian_sup_t",
    "draws_sup_t",
    "outcome",
    "wald_outcome",
    "GAUSSIAN_DRAWS",
    "influence_rows",
]

GAUSSIAN_DRAWS = 10_000
"""Gaussian draws behind a sup-t critical value from a correlation matrix."""


class InferenceParams(Params):
    """Parameters every inference plugin has."""

    level: float = Field(0.95, gt=0, lt=1, description="confidence level of every interval")
    joint: bool = Field(
        False,
        description="simultaneous (sup-t) bands over all estimates and Holm-adjusted p-values",
    )


def influence_rows(fit: Fit) -> tuple[np.ndarray, int]:
    r"""The independent rows of a fit's influence matrix and the number of units :math:`n`.

    Without clusters, the :math:`n\times k` matrix :math:`\psi` itself. With clusters
    (:attr:`~causalkit.contracts.Fit.clusters`), the :math:`G\times k` cluster sums scaled by
    the square root of the CR1 factor,

    .. math:: \tilde\psi_{gj} = \sqrt{c}\sum_{i\in g}\psi_{ij}, \qquad
        c = \frac{G}{G-1}\,\frac{N-1}{N-K} \ \text{(a regression with } K
        \text{ coefficients) or } \frac{G}{G-1},

    so that :math:`n^{-2}\sum_g\tilde\psi_{gj}^2` is the cluster-robust (CR1) variance
    (Cameron & Miller 2015, section II.C; Stata's and statsmodels' clustered OLS).
    """
    assert fit.influence is not None
    psi = fit.influence
    if fit.clusters is None:
        return psi, psi.shape[0]
    return np.sqrt(fit.clusters.factor()) * fit.clusters.sums(psi), psi.shape[0]


MAX_FAILED = 0.05
"""Default largest fraction of failed resamples (``max_failed``)."""


class ResamplingParams(InferenceParams):
    """Parameters of inference from resamples or placebo draws that can fail one by one.

    ``max_failed`` is dumped only when it differs from :data:`MAX_FAILED`, so the config
    hashes (and the seeds drawn from them) of cells that keep the default are those they had
    before the parameter existed (:attr:`~causalkit.contracts.Params.added_fields`).
    """

    max_failed: float = Field(
        MAX_FAILED,
        ge=0,
        le=1,
        description="largest fraction of failed resamples/draws; above it no SE, CI or p-value",
    )

    added_fields: ClassVar[frozenset[str]] = frozenset({"max_failed"})


REFUSED = "refused"
"""Diagnostic (``True``) of an outcome that withheld the headline's SE, CI and p-value because
too many resamples failed; the Monte Carlo loop counts such a replication as failed."""


def resampling_failures(
    method: str, n_failed: int, n_total: int, max_failed: float, what: str
) -> tuple[bool, tuple[str, ...]]:
    r"""Apply the failure policy to :math:`F` failed out of :math:`B` resamples.

    Resamples that fail (an infeasible refit, an empty arm, a NaN estimate) are not missing
    at random: they are the ones that look least like the sample, so quantities computed from
    the :math:`B - F` that worked describe the resampling distribution conditional on success
    (near a boundary of the design, a too narrow one).
    Above :math:`F/B >` ``max_failed`` (or with fewer than two successes) nothing is
    reported (the outcome is *refused*); at or below it the count is reported with a warning.

    Returns
    -------
    refused : bool
        Whether SE, CI and p-value must be withheld.
    warnings : tuple of str
        The warning that says so (empty without failures).
    """
    if n_failed == 0:
        return False, ()
    share = n_failed / n_total
    if share > max_failed or n_total - n_failed < 2:
        return True, (
            f"{method}: {n_failed} of {n_total} {what} failed ({share:.1%} > max_failed "
            f"{max_failed:.1%}); no SE, interval or p-value is reported, since the {what} "
            "that could be estimated are not a sample of the ones that could not",
        )
    return False, (
        f"{method}: {n_failed} of {n_total} {what} failed and were left out ({share:.1%}, "
        f"within max_failed {max_failed:.1%}); the SE and interval describe the {what} "
        "that could be estimated",
    )


def refused_outcome(
    method: str,
    params: InferenceParams,
    k: int,
    diagnostics: Mapping[str, DiagnosticValue],
    warnings: tuple[str, ...],
) -> InferenceOutcome:
    """An outcome with NaN SE, CI and p-values for all ``k`` estimates, flagged :data:`REFUSED`."""
    nan = np.full(k, np.nan)
    return outcome(method, params, nan, nan, nan, nan, {**diagnostics, REFUSED: True}, warnings)


def holm(p: np.ndarray) -> np.ndarray:
    r"""Holm's step-down adjusted p-values.

    With :math:`p_{(1)}\le\dots\le p_{(k)}`,
    :math:`\tilde p_{(i)} = \max_{j\le i}\min\{1, (k-j+1)\,p_{(j)}\}`; NaN stays NaN.
    """
    p = np.asarray(p, dtype=np.float64)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if ok.size == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    k = order.size
    scaled = np.minimum(1.0, (k - np.arange(k)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


def normal_p_values(estimates: np.ndarray, se: np.ndarray) -> np.ndarray:
    r"""Two-sided normal p-values for zero effect, :math:`2\Phi(-|\hat\theta_j|/\widehat{se}_j)`;
    NaN where the SE is not positive."""
    from scipy.special import ndtr

    est = np.asarray(estimates, dtype=np.float64)
    se = np.asarray(se, dtype=np.float64)
    out = np.full(est.shape, np.nan)
    pos = np.isfinite(se) & (se > 0)
    out[pos] = 2 * ndtr(-(np.abs(est[pos]) / se[pos]))
    return out


def gaussian_sup_t(cov: np.ndarray, level: float, rng: np.random.Generator) -> float:
    r"""The ``level`` quantile of :math:`\max_j |Z_j|/\sigma_j`, :math:`Z\sim N(0, \Sigma)`.

    Drawn with :data:`GAUSSIAN_DRAWS` standard normals from ``rng`` through the eigen-root of
    the correlation matrix (singular correlations allowed).
    """
    sd = np.sqrt(np.diag(cov))
    keep = sd > 0
    corr = cov[np.ix_(keep, keep)] / np.outer(sd[keep], sd[keep])
    vals, vecs = np.linalg.eigh(corr)
    root = vecs * np.sqrt(np.clip(vals, 0.0, None))
    z = rng.standard_normal((GAUSSIAN_DRAWS, corr.shape[0])) @ root.T
    return float(np.quantile(np.max(np.abs(z), axis=1), level))


def draws_sup_t(draws: np.ndarray, center: np.ndarray, se: np.ndarray, level: float) -> float:
    r"""The ``level`` quantile of :math:`\max_j |\theta^*_{bj} - c_j|/\widehat{se}_j` over draws ``b``."""
    t = np.abs(draws - center[None, :]) / se[None, :]
    return float(np.quantile(np.max(t, axis=1), level))


def outcome(
    method: str,
    params: InferenceParams,
    se: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    p_raw: np.ndarray,
    diagnostics: Mapping[str, DiagnosticValue] | None = None,
    warnings: tuple[str, ...] = (),
) -> InferenceOutcome:
    """An :class:`InferenceOutcome`; with ``params.joint`` the p-values are Holm-adjusted."""
    joint = params.joint and np.asarray(p_raw).size > 1
    return InferenceOutcome(
        method,
        se,
        lower,
        upper,
        holm(p_raw) if joint else p_raw,
        params.level,
        joint=joint,
        p_value_raw=np.asarray(p_raw, dtype=np.float64) if joint else None,
        diagnostics=dict(diagnostics or {}),
        warnings=warnings,
    )


def wald_outcome(
    method: str,
    params: InferenceParams,
    estimates: np.ndarray,
    se: np.ndarray,
    critical: float | np.ndarray | None = None,
    diagnostics: Mapping[str, DiagnosticValue] | None = None,
    warnings: tuple[str, ...] = (),
) -> InferenceOutcome:
    r"""Intervals :math:`\hat\theta_j \pm c\,\widehat{se}_j` and normal p-values.

    ``critical`` defaults to :math:`z_{(1+\text{level})/2}` (pointwise).
    """
    from scipy.special import ndtri

    est = np.asarray(estimates, dtype=np.float64)
    se = np.asarray(se, dtype=np.float64)
    c = ndtri(0.5 + params.level / 2) if critical is None else critical
    half = c * se
    return outcome(
        method, params, se, est - half, est + half, normal_p_values(est, se), diagnostics, warnings
    )
