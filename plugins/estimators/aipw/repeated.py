"""Repeated cross-fitting: effects of several fold splits aggregated as DoubleML does."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["DOUBLEML_Z", "Aggregate", "aggregate"]

DOUBLEML_Z = 1.96
"""The critical value DoubleML (0.11) aggregates the repetitions' upper bounds with (any level)."""


@dataclass(frozen=True)
class Aggregate:
    """Aggregated estimates and SEs (k,), the influence matrix (n, k) and each repetition's SEs."""

    estimates: np.ndarray
    se: np.ndarray
    influence: np.ndarray
    rep_se: np.ndarray


def aggregate(
    estimates: np.ndarray,
    influences: Sequence[np.ndarray],
    se_of: Callable[[np.ndarray], np.ndarray],
) -> Aggregate:
    r"""Median aggregation over :math:`R` repetitions (DoubleML 0.11 ``_aggregate_coefs_and_ses``).

    Parameters
    ----------
    estimates : ndarray, shape (R, k)
        :math:`\hat\theta_{rj}`, one row per repetition.
    influences : sequence of ndarray, shape (n, k)
        Each repetition's influence matrix :math:`\psi_r` (the same units in the same order).
    se_of : callable
        The standard errors analytic inference computes from an influence matrix (clustered
        when the fit is).

    Returns
    -------
    Aggregate
        :math:`\tilde\theta_j = \mathrm{med}_r\,\hat\theta_{rj}` and
        :math:`\tilde s_j = (\mathrm{med}_r(\hat\theta_{rj} + z\,s_{rj}) - \tilde\theta_j)/z`
        with :math:`z = 1.96` and :math:`s_{rj}` = ``se_of``:math:`(\psi_r)_j`, so the spread of
        the repetitions' estimates widens the SE; and the influence matrix
        :math:`\tilde\psi_{\cdot j} = \bar\psi_{\cdot j}\,\tilde s_j/\mathrm{se}(\bar\psi)_j`
        (:math:`\bar\psi` the repetitions' mean), whose analytic SE is :math:`\tilde s_j` and
        whose correlations across the k estimates are those of :math:`\bar\psi`, so
        multiplier draws and sup-t bands use the aggregated variance.

    Notes
    -----
    Chernozhukov et al. (2018, Definition 3.3) and DoubleML before 0.8 used
    :math:`\tilde s_j^2 = \mathrm{med}_r(s_{rj}^2 + (\hat\theta_{rj} - \tilde\theta_j)^2)`;
    DoubleML 0.11, the reference here, takes the median of the upper bounds instead.
    """
    est = np.asarray(estimates, dtype=np.float64)
    rep_se = np.array([se_of(psi) for psi in influences])
    theta = np.median(est, axis=0)
    se = (np.median(est + DOUBLEML_Z * rep_se, axis=0) - theta) / DOUBLEML_Z
    mean = np.mean(np.stack(influences), axis=0)
    base = se_of(mean)
    scale = np.divide(se, base, out=np.zeros_like(se), where=base > 0)
    return Aggregate(theta, se, np.asfortranarray(mean * scale), rep_se)
