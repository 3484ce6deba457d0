r"""Performance measures of a simulation study with their Monte Carlo standard errors.

:func:`summarise` is what every Monte Carlo cell reports (over its successful
replications); :func:`paired` compares a method with a reference on the same simulated
datasets; :func:`summarise_table` applies both to any table of estimates, so simulations
run elsewhere are summarised the same way (``ck.summarise``).

The measures and their MCSEs are those of Morris, White & Crowther (2019), Table 6, as
rsimsum computes them (White 2010; Gasparini 2018). With :math:`R` replications,
estimates :math:`\hat\theta_r`, model SEs :math:`\widehat{se}_r`, true value
:math:`\theta`, :math:`\bar\theta` the mean and :math:`s^2` the variance of the estimates:

=========================  ==========================================  ==============================================================
measure                    estimate                                    Monte Carlo SE
=========================  ==========================================  ==============================================================
bias                       :math:`\bar\theta-\theta`                   :math:`s/\sqrt R`
relative bias              :math:`(\bar\theta-\theta)/\theta`          :math:`s/(|\theta|\sqrt R)`
empirical SE               :math:`s`                                   :math:`s/\sqrt{2(R-1)}`
MSE                        :math:`m=\overline{(\hat\theta-\theta)^2}`  :math:`\sqrt{\sum((\hat\theta_r-\theta)^2-m)^2/(R(R-1))}`
RMSE                       :math:`\sqrt m`                             delta method: MCSE(MSE) :math:`/(2\sqrt m)`
model SE                   :math:`\mathrm{ms}=\sqrt{\overline{se^2}}`  :math:`\sqrt{\mathrm{var}(se^2)/(4R\,\mathrm{ms}^2)}`
rel. % error in model SE   :math:`100(\mathrm{ms}/s-1)`                :math:`100\frac{\mathrm{ms}}{s}\sqrt{\frac{\mathrm{var}(se^2)}{4R\,\mathrm{ms}^4}+\frac{1}{2(R-1)}}`
coverage                   share of CIs containing :math:`\theta`      :math:`\sqrt{c(1-c)/R}`
bias-eliminated coverage   share of CIs containing :math:`\bar\theta`  :math:`\sqrt{c(1-c)/R}`
power                      share of CIs excluding 0                    :math:`\sqrt{p(1-p)/R}`
=========================  ==========================================  ==============================================================

``mean_se`` (the mean of the model SEs, kept from earlier versions) differs from rsimsum's
model SE :math:`\sqrt{\overline{se^2}}`; the relative error uses the latter. Where the
truth is 0 the power is the type I error and is reported again as ``type1_error``.

References
----------
Morris, T.P., White, I.R. & Crowther, M.J. (2019). Using simulation studies to evaluate
statistical methods. *Stat. Med.* 38(11), 2074-2102, Table 6.
White, I.R. (2010). simsum: Analyses of simulation studies including Monte Carlo error.
*Stata Journal* 10(3), 369-385.
Gasparini, A. (2018). rsimsum: Summarise results from Monte Carlo simulation studies.
*JOSS* 3(26), 739.
"""

from __future__ import annotations

import math
import statistics
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from causalkit.errors import DataError

__all__ = [
    "COVERAGE_INTERVAL_LEVEL",
    "MEASURES",
    "PAIRED_MEASURES",
    "PerformanceSummary",
    "paired",
    "summarise",
    "summarise_table",
    "wilson_interval",
]

MEASURES: tuple[str, ...] = (
    "mean_estimate",
    "bias",
    "bias_mcse",
    "rel_bias",
    "rel_bias_mcse",
    "emp_se",
    "emp_se_mcse",
    "mean_se",
    "mean_se_mcse",
    "model_se",
    "model_se_mcse",
    "rel_error_model_se",
    "rel_error_model_se_mcse",
    "mse",
    "mse_mcse",
    "rmse",
    "rmse_mcse",
    "coverage",
    "coverage_mcse",
    "coverage_lower",
    "coverage_upper",
    "be_coverage",
    "be_coverage_mcse",
    "power",
    "power_mcse",
    "type1_error",
    "type1_error_mcse",
    "ci_width",
    "ci_width_mcse",
)
"""Performance measures of one method (a Monte Carlo cell) with their MCSEs (:func:`summarise`)."""

PAIRED_MEASURES: tuple[str, ...] = (
    "n_pairs",
    "rel_precision",
    "rel_precision_mcse",
    "bias_diff",
    "bias_diff_mcse",
    "rmse_diff",
    "rmse_diff_mcse",
    "corr",
)
"""Measures of a method against a reference on the same datasets (:func:`paired`)."""

COVERAGE_INTERVAL_LEVEL = 0.95
"""Level of the Wilson interval reported for coverage (whatever the CIs' own level)."""


def wilson_interval(
    successes: int, trials: int, level: float = COVERAGE_INTERVAL_LEVEL
) -> tuple[float, float]:
    r"""Wilson score interval for a binomial proportion.

    With :math:`\hat c = x/R` and :math:`z = z_{(1+\text{level})/2}`,

    .. math::
        \frac{\hat c + z^2/(2R) \pm z\sqrt{\hat c(1-\hat c)/R + z^2/(4R^2)}}{1 + z^2/R}.

    Unlike the Wald interval :math:`\hat c \pm z\sqrt{\hat c(1-\hat c)/R}` it does not
    collapse to a point at :math:`\hat c \in \{0, 1\}`: with all :math:`R` intervals
    covering, the lower end is :math:`R/(R+z^2)` (0.981 for R = 200 at 95%).

    References
    ----------
    Wilson, E.B. (1927). Probable inference, the law of succession, and statistical
    inference. *JASA* 22(158).
    Brown, L.D., Cai, T.T. & DasGupta, A. (2001). Interval estimation for a binomial
    proportion. *Statist. Sci.* 16(2).
    """
    if trials <= 0:
        return math.nan, math.nan
    z = statistics.NormalDist().inv_cdf(0.5 + level / 2)
    c = successes / trials
    denom = 1 + z * z / trials
    centre = (c + z * z / (2 * trials)) / denom
    half = z * math.sqrt(c * (1 - c) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _share(hits: np.ndarray) -> tuple[float, float]:
    """Return a proportion and its binomial MCSE."""
    p = float(hits.mean())
    return p, math.sqrt(p * (1 - p) / hits.size)


def summarise(
    est: np.ndarray,
    se: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    truth: float | np.ndarray | None,
) -> dict[str, float]:
    r"""Monte Carlo performance measures (:data:`MEASURES`) and their Monte Carlo SEs.

    The arrays hold the :math:`R` *successful* replications only: a replication that raised
    or whose inference refused is counted in ``n_failed`` by the caller and left out of every
    measure. With failures, the measures describe the estimator conditional on success,
    which is why ``n_failed`` is reported beside them.

    Parameters
    ----------
    est, se, lo, hi : ndarray, shape (R,)
        Estimates, model SEs and confidence limits of the replications.
    truth : float, ndarray of shape (R,), or None
        The true value; without it only the truth-free measures are given (the others NaN).
        An array gives each replication its own truth (a sample estimand such as the SATE of
        a plasmode world, which changes with the drawn sample): errors, coverage and the
        bias's MCSE (the SD of the errors) are then taken replication by replication and the
        relative bias is against the mean truth.

    Returns
    -------
    dict
        :data:`MEASURES`, NaN where undefined (a measure needing the truth, the SEs or the
        CIs when they are missing; relative bias when the truth is 0; type I error when it
        is not). The coverage MCSE is 0 at :math:`\hat c \in \{0, 1\}`, which is not
        exactness: ``coverage_lower`` and ``coverage_upper`` give the 95% Wilson interval
        (:func:`wilson_interval`), which stays honest there. Power is the share of CIs
        that exclude 0 (for a Wald CI, :math:`|\hat\theta/\widehat{se}| \ge z`).

    References
    ----------
    Morris, T.P., White, I.R. & Crowther, M.J. (2019). Using simulation studies to evaluate
    statistical methods. *Stat. Med.* 38(11), Table 6.
    """
    R = est.size
    nan = math.nan
    out = dict.fromkeys(MEASURES, nan)
    if R == 0:
        return out
    sd = float(est.std(ddof=1)) if R > 1 else nan
    out["mean_estimate"] = float(est.mean())
    out["emp_se"] = sd
    out["emp_se_mcse"] = sd / math.sqrt(2 * (R - 1)) if R > 1 else nan
    if np.isfinite(se).all():
        out["mean_se"] = float(se.mean())
        out["mean_se_mcse"] = float(se.std(ddof=1) / math.sqrt(R)) if R > 1 else nan
        var2 = float(np.var(se**2, ddof=1)) if R > 1 else nan
        ms = math.sqrt(float(np.mean(se**2)))
        out["model_se"] = ms
        if ms > 0:
            out["model_se_mcse"] = math.sqrt(var2 / (4 * R * ms**2))
            if sd > 0:
                out["rel_error_model_se"] = 100 * (ms / sd - 1)
                out["rel_error_model_se_mcse"] = (
                    100 * (ms / sd) * math.sqrt(var2 / (4 * R * ms**4) + 1 / (2 * (R - 1)))
                )
    width = hi - lo
    cis = bool(np.isfinite(width).all())
    if cis:
        out["ci_width"] = float(width.mean())
        out["ci_width_mcse"] = float(width.std(ddof=1) / math.sqrt(R)) if R > 1 else nan
        out["be_coverage"], out["be_coverage_mcse"] = _share(
            (lo <= est.mean()) & (est.mean() <= hi)
        )
        out["power"], out["power_mcse"] = _share((lo > 0) | (hi < 0))
    if truth is not None:
        err = est - truth
        varying = isinstance(truth, np.ndarray)
        centre = float(np.mean(truth)) if varying else float(truth)
        out["bias"] = float(err.mean())
        spread = float(err.std(ddof=1)) if varying and R > 1 else sd
        out["bias_mcse"] = spread / math.sqrt(R) if R > 1 else nan
        if centre != 0:
            out["rel_bias"] = out["bias"] / centre
            out["rel_bias_mcse"] = out["bias_mcse"] / abs(centre)
        elif cis and not np.any(truth):
            out["type1_error"], out["type1_error_mcse"] = out["power"], out["power_mcse"]
        mse = float(np.mean(err**2))
        out["mse"] = mse
        out["rmse"] = math.sqrt(mse)
        if R > 1:
            out["mse_mcse"] = float(np.std(err**2, ddof=1) / math.sqrt(R))
            if mse > 0:
                out["rmse_mcse"] = out["mse_mcse"] / (2 * math.sqrt(mse))
        if cis:
            hits = (lo <= truth) & (truth <= hi)
            out["coverage"], out["coverage_mcse"] = _share(hits)
            out["coverage_lower"], out["coverage_upper"] = wilson_interval(int(hits.sum()), R)
    return out


def paired(est: np.ndarray, ref: np.ndarray, truth: float | None) -> dict[str, float]:
    r"""Compare a method with a reference on the same :math:`R` datasets (:data:`PAIRED_MEASURES`).

    Parameters
    ----------
    est, ref : ndarray, shape (R,)
        The method's and the reference's estimates, dataset by dataset.
    truth : float or None
        The true value (the bias and RMSE differences need it).

    Returns
    -------
    dict
        ``rel_precision``: the % gain in precision :math:`100(s_{ref}^2/s^2-1)`, MCSE
        :math:`200\frac{s_{ref}^2}{s^2}\sqrt{(1-\rho^2)/(R-1)}` with :math:`\rho` the
        correlation of the two estimates over the datasets (Morris et al. 2019, Table 6);
        ``bias_diff`` :math:`\overline{\hat\theta-\hat\theta_{ref}}` with the paired MCSE
        :math:`\mathrm{sd}(\hat\theta-\hat\theta_{ref})/\sqrt R`; ``rmse_diff``
        :math:`\sqrt{m}-\sqrt{m_{ref}}` with the delta-method MCSE
        :math:`\sqrt{g^\top \hat\Sigma g/R}`, :math:`g=(1/(2\sqrt m),-1/(2\sqrt{m_{ref}}))`
        and :math:`\hat\Sigma` the covariance of the paired squared errors. Paired MCSEs are
        smaller than unpaired ones by the correlation the shared datasets induce — the
        reason to simulate every method on the same draws.
    """
    R = est.size
    out: dict[str, float] = dict.fromkeys(PAIRED_MEASURES, math.nan)
    out["n_pairs"] = float(R)
    if R < 2:
        return out
    v, v_ref = float(np.var(est, ddof=1)), float(np.var(ref, ddof=1))
    if v > 0 and v_ref > 0:
        rho = float(np.corrcoef(est, ref)[0, 1])
        out["corr"] = rho
        out["rel_precision"] = 100 * (v_ref / v - 1)
        out["rel_precision_mcse"] = 200 * (v_ref / v) * math.sqrt(max(0.0, 1 - rho**2) / (R - 1))
    if truth is not None:
        diff = est - ref
        out["bias_diff"] = float(diff.mean())
        out["bias_diff_mcse"] = float(diff.std(ddof=1) / math.sqrt(R))
        sq = np.vstack([(est - truth) ** 2, (ref - truth) ** 2])
        m, m_ref = sq.mean(axis=1)
        if m > 0 and m_ref > 0:
            out["rmse_diff"] = math.sqrt(m) - math.sqrt(m_ref)
            g = np.array([1 / (2 * math.sqrt(m)), -1 / (2 * math.sqrt(m_ref))])
            out["rmse_diff_mcse"] = math.sqrt(max(0.0, float(g @ np.cov(sq) @ g)) / R)
    return out


@dataclass(frozen=True)
class PerformanceSummary:
    """Performance measures of each method of a simulation study (:func:`summarise_table`).

    Attributes
    ----------
    table : DataFrame
        One row per method (index ``method``): ``reps``, ``n_failed``, :data:`MEASURES` and,
        with a reference, :data:`PAIRED_MEASURES` (NaN in the reference's own row).
    truth : float or None
        The true value.
    reference : str or None
        The reference method of the paired measures.
    level : float
        Level of the confidence intervals built from the SEs (when no limits were given).
    """

    table: pd.DataFrame
    truth: float | None
    reference: str | None
    level: float
    warnings: tuple[str, ...] = field(default=())

    def long(self) -> pd.DataFrame:
        """Return the table as rows of ``method, measure, value, mcse`` (rsimsum's ``tidy``)."""
        rows = []
        for method, row in self.table.iterrows():
            for name in self.table.columns:
                if name.endswith("_mcse") or name in {"coverage_lower", "coverage_upper"}:
                    continue
                mcse = row.get(f"{name}_mcse", math.nan)
                rows.append((method, name, row[name], mcse))
        return pd.DataFrame(rows, columns=["method", "measure", "value", "mcse"])

    def summary(self) -> str:
        """Plain text: one block per method, each measure with its MCSE in parentheses."""
        shown = [
            ("bias", "Bias"),
            ("rel_bias", "Relative bias"),
            ("emp_se", "Empirical SE"),
            ("mse", "MSE"),
            ("rmse", "RMSE"),
            ("model_se", "Model SE"),
            ("rel_error_model_se", "Relative % error in model SE"),
            ("coverage", "Coverage"),
            ("be_coverage", "Bias-eliminated coverage"),
            ("power", "Power"),
            ("type1_error", "Type I error"),
            ("rel_precision", f"% gain in precision vs {self.reference}"),
            ("bias_diff", f"Bias difference vs {self.reference}"),
            ("rmse_diff", f"RMSE difference vs {self.reference}"),
        ]
        head = f"Performance measures (truth {self.truth}; MCSE in parentheses)"
        lines = [head, "-" * len(head)]
        for method, row in self.table.iterrows():
            lines.append(
                f"{method}  ({int(row['reps'])} replications, {int(row['n_failed'])} failed)"
            )
            for key, label in shown:
                value = row.get(key, math.nan)
                if value is None or not np.isfinite(value):
                    continue
                lines.append(
                    f"  {label:<38}{value:>10.4f} ({row.get(key + '_mcse', math.nan):.4f})"
                )
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)


def _column(frame: pd.DataFrame, name: str | None, what: str) -> None:
    if name is not None and name not in frame.columns:
        raise DataError(what, f"a column of the table ({', '.join(map(str, frame.columns))})", name)


def summarise_table(
    frame: pd.DataFrame,
    *,
    estimate: str,
    se: str | None = None,
    truth: float | None = None,
    method: str | None = None,
    reference: str | None = None,
    dataset: str | None = None,
    ci_lower: str | None = None,
    ci_upper: str | None = None,
    level: float = 0.95,
) -> PerformanceSummary:
    r"""Summarise a table of simulation results as Monte Carlo cells are summarised.

    Parameters
    ----------
    frame : DataFrame
        One row per (dataset, method).
    estimate, se : str
        Columns of the estimates and their model SEs.
    truth : float, optional
        The true value.
    method : str, optional
        Column naming the method of each row (default: one method, ``"all"``).
    reference : str, optional
        The method the others are compared with (paired measures); needs ``method``.
    dataset : str, optional
        Column identifying the simulated dataset, which pairs the methods' rows (default:
        their order within each method).
    ci_lower, ci_upper : str, optional
        Columns of the confidence limits; default the Wald interval
        :math:`\hat\theta \pm z_{(1+\text{level})/2}\,\widehat{se}` (as rsimsum builds it).
    level : float
        Level of that Wald interval.

    Returns
    -------
    PerformanceSummary

    Raises
    ------
    DataError
        A named column missing, a reference that is not a method, duplicated datasets within
        a method, or a ``level`` outside (0, 1) — one line each.

    Notes
    -----
    A row whose estimate (or SE, or limits) is missing counts as a failed replication: it is
    left out of its method's measures, counted in ``n_failed`` and warned about (as rsimsum
    drops them). Paired measures use the datasets where both the method and the reference
    succeeded (``n_pairs``).
    """
    for what, name in (
        ("estimate", estimate),
        ("se", se),
        ("method", method),
        ("dataset", dataset),
        ("ci_lower", ci_lower),
        ("ci_upper", ci_upper),
    ):
        _column(frame, name, what)
    if (ci_lower is None) != (ci_upper is None):
        raise DataError("ci_lower/ci_upper", "both confidence limits or neither", "one of them")
    if not 0 < level < 1:
        raise DataError("level", "a number in (0, 1)", level)
    if reference is not None and method is None:
        raise DataError("reference", "a method column to find the reference in", "method=None")
    z = statistics.NormalDist().inv_cdf(0.5 + level / 2)
    methods = frame[method].astype(str) if method is not None else pd.Series("all", frame.index)
    names = list(dict.fromkeys(methods))
    if reference is not None and reference not in names:
        raise DataError("reference", f"one of the methods {', '.join(names)}", reference)
    rows: dict[str, dict[str, float]] = {}
    kept: dict[str, pd.Series] = {}
    notes: list[str] = []
    for name in names:
        sub = frame[(methods == name).to_numpy()]
        est = sub[estimate].to_numpy(dtype=float)
        s = sub[se].to_numpy(dtype=float) if se is not None else np.full(est.size, np.nan)
        if ci_lower is not None and ci_upper is not None:
            lo, hi = sub[ci_lower].to_numpy(dtype=float), sub[ci_upper].to_numpy(dtype=float)
        else:
            lo, hi = est - z * s, est + z * s
        ok = np.isfinite(est)
        if se is not None:
            ok &= np.isfinite(s)
        if se is not None or ci_lower is not None:
            ok &= np.isfinite(lo) & np.isfinite(hi)
        if not ok.all():
            notes.append(f"{name}: {int((~ok).sum())} of {ok.size} replications failed (left out)")
        m = summarise(est[ok], s[ok], lo[ok], hi[ok], truth)
        rows[name] = {"reps": float(est.size), "n_failed": float((~ok).sum()), **m}
        key = sub[dataset].to_numpy() if dataset is not None else np.arange(est.size)
        if len(set(key.tolist())) != key.size:
            raise DataError("dataset", f"one row per dataset for method {name}", "duplicates")
        kept[name] = pd.Series(est[ok], index=key[ok])
    if reference is not None:
        ref = kept[reference]
        for name in names:
            if name == reference:
                rows[name].update(dict.fromkeys(PAIRED_MEASURES, math.nan))
                continue
            both = kept[name].index.intersection(ref.index)
            rows[name].update(paired(kept[name][both].to_numpy(), ref[both].to_numpy(), truth))
    for note in notes:
        warnings.warn(note, stacklevel=2)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "method"
    return PerformanceSummary(table, truth, reference, level, tuple(notes))
