r"""Omitted-variable-bias bounds for AIPW (Chernozhukov, Cinelli, Newey, Sharma & Syrgkanis 2022).

A latent confounder :math:`A` biases the effect estimated without it by at most

.. math::

    |\theta_s - \theta| \le |\rho|\, C_Y C_D\, S, \qquad
    S^2 = \sigma^2\nu^2, \qquad C_Y^2 = c_Y, \qquad C_D^2 = \frac{c_D}{1-c_D},

with :math:`\sigma^2 = E[(Y-g(D,X))^2]` the outcome residual variance, :math:`\nu^2 = E[\alpha^2]`
the second moment of the Riesz representer :math:`\alpha` of the effect,
:math:`c_Y` (``cf_y``) the share of the outcome's residual variation explained by :math:`A`,
:math:`c_D` (``cf_d``) the share of the Riesz representer's variation gained from :math:`A`, and
:math:`\rho` their correlation. The estimated pieces, their influence functions and the bounds
are those of DoubleML's ``DoubleMLIRM`` (``_sensitivity_element_est``) and
``DoubleMLFramework._calc_sensitivity_analysis`` (0.11), with one difference: the SE of each
bound uses the influence function of that bound (see :func:`bounds`). Repeated cross-fitting
(``n_rep > 1``) aggregates as DoubleML does: every bound, CI bound and benchmark statistic is
computed per repetition and the median taken; RV and RVa solve the median bounds
(:class:`Repetition`, :func:`report`).

The module serves any estimator that has a Riesz representer, influence values and an outcome
residual (:func:`riesz_elements`, :func:`report`): ``aipw`` (residuals of its cross-fitted
outcome models) and ``ipw``
(:mod:`~causalkit_plugins.estimators.selection.ipw_sensitivity`). With sampling weights (the
``weight`` role) the bounds are those of the weighted population, the effect the weighted fit
estimates (:func:`riesz_elements`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import BeforeValidator, Field, field_validator, model_validator

from causalkit.contracts import Clusters, DiagnosticValue, Estimand, Params

__all__ = [
    "OptionalSensitivity",
    "Bounds",
    "Elements",
    "Repetition",
    "SensitivityParams",
    "benchmark",
    "bounds",
    "bounds_table",
    "clipped_bound",
    "clustered",
    "contour_grid",
    "elements",
    "outcome_variance",
    "repeated_benchmark",
    "repeated_bounds",
    "repeated_robustness_values",
    "report",
    "riesz_elements",
    "robustness_values",
]

# Upper end of the search for a robustness value: C_D is infinite at cf_d = 1.
_RV_MAX = 1.0 - 1e-12
# The scenario's keys: both null with the rest at the defaults (the YAML default) is off;
# null when the analysis is on means DoubleML's default.
_SCENARIO = ("cf_y", "cf_d")
_DEFAULT_STRENGTH = 0.03


class SensitivityParams(Params):
    """The confounding scenario (``estimator.sensitivity``) and the benchmarks to compute.

    Giving the parameter at all (any key, or ``{}`` from Python) runs the analysis, with
    DoubleML's defaults (``sensitivity_analysis``, 0.11) for what is not given: ``cf_y = cf_d =
    0.03``, ``rho = 1``. ``benchmark_covariates`` names observed covariates to benchmark one
    at a time: a column, a formula term (``"C(education)"``, ``"I(age**2)"``) or a variable
    read by formula terms (``"education"``), each as one group; an entry ``"a+b"`` leaves out
    ``a`` and ``b`` together (:func:`causalkit.formulas.benchmark_groups`).
    """

    cf_y: float = Field(
        _DEFAULT_STRENGTH,
        ge=0,
        lt=1,
        description="share of the outcome's residual variance explained by the confounder",
    )
    cf_d: float = Field(
        _DEFAULT_STRENGTH,
        ge=0,
        lt=1,
        description="share of the Riesz representer's variance gained from the confounder",
    )
    rho: float = Field(1.0, ge=-1, le=1, description="correlation of the two confounding parts")
    level: float = Field(0.95, gt=0, lt=1, description="one-sided level of each CI bound")
    null_hypothesis: float = Field(
        0.0, allow_inf_nan=False, description="the value RV and RVa measure the distance to"
    )
    benchmark_covariates: tuple[str, ...] = Field(
        (), description="covariates (or a+b groups) to leave out one at a time"
    )

    @model_validator(mode="before")
    @classmethod
    def _scenario(cls, value: Any) -> Any:
        """A null ``cf_y`` or ``cf_d`` (the YAML's) takes DoubleML's default, 0.03."""
        if isinstance(value, Mapping):
            nulls = {k: _DEFAULT_STRENGTH for k in _SCENARIO if k in value and value[k] is None}
            return {**value, **nulls}
        return value

    @field_validator("benchmark_covariates", mode="before")
    @classmethod
    def _one_name(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @classmethod
    def off(cls, value: Any) -> bool:
        """Tell whether a raw ``sensitivity`` value leaves the analysis off.

        ``None``, or the YAML default: a mapping with ``cf_y`` and ``cf_d`` null and every
        other key at its default (Hydra can set keys only under a mapping, never under null).
        Anything else, ``{}`` included, is on. From the command line a key set to its YAML
        value (``estimator.sensitivity.rho=1.0``) cannot be told from the default: give
        ``cf_y`` (``estimator.sensitivity.cf_y=0.03``) to switch the analysis on.
        """
        if value is None:
            return True
        if not isinstance(value, Mapping) or any(
            k not in value or value[k] is not None for k in _SCENARIO
        ):
            return False
        rest = {k: v for k, v in value.items() if k not in _SCENARIO}
        defaults = {k: f.default for k, f in cls.model_fields.items() if k not in _SCENARIO}
        return all(k in defaults and _same(v, defaults[k]) for k, v in rest.items())


def clipped_bound(who: str, quantity: str, benchmark: str) -> str:
    """Return the warning for a benchmark's strength clipped to 1 (``aipw``, ``ipw``, ``ols``)."""
    return f"{who}: the bound on {quantity} for {benchmark} exceeds 1 and was set to 1"


OptionalSensitivity = Annotated[
    SensitivityParams | None,
    BeforeValidator(lambda value: None if SensitivityParams.off(value) else value),
]
"""The ``sensitivity`` parameter of ``aipw`` and ``ipw``: the YAML default (``cf_y`` and
``cf_d`` null) is off, like ``None`` (:meth:`SensitivityParams.off`)."""


def _same(value: Any, default: Any) -> bool:
    if isinstance(default, tuple):
        return isinstance(value, (list, tuple)) and tuple(value) == default
    return bool(value == default)


@dataclass(frozen=True)
class Elements:
    r"""Estimated :math:`\sigma^2`, :math:`\nu^2`, their influence values and the Riesz representer.

    Attributes
    ----------
    sigma2, nu2 : float
        :math:`\hat\sigma^2` and :math:`\hat\nu^2`.
    psi_sigma2, psi_nu2 : ndarray
        Per-row influence values (centred score elements; with sampling weights
        :math:`s_i`, times :math:`s_i/\bar s`, see :func:`riesz_elements`).
    riesz : ndarray
        :math:`\hat\alpha_i`.
    nu2_fallback : bool
        The orthogonal :math:`\hat\nu^2` was not positive and was re-estimated as
        :math:`\overline{\hat\alpha^2}` (as DoubleML does).
    """

    sigma2: float
    nu2: float
    psi_sigma2: np.ndarray
    psi_nu2: np.ndarray
    riesz: np.ndarray
    nu2_fallback: bool

    @property
    def max_bias(self) -> float:
        r""":math:`S = \sqrt{\hat\sigma^2\hat\nu^2}`."""
        return float(np.sqrt(self.sigma2 * self.nu2))

    @property
    def psi_max_bias(self) -> np.ndarray:
        r"""Influence values of :math:`S`: :math:`(\hat\sigma^2\psi_{\nu^2} + \hat\nu^2\psi_{\sigma^2})/(2S)`."""
        return (self.sigma2 * self.psi_nu2 + self.nu2 * self.psi_sigma2) / (2.0 * self.max_bias)


def elements(
    y: np.ndarray,
    d: np.ndarray,
    g0: np.ndarray,
    g1: np.ndarray,
    m: np.ndarray,
    estimand: Estimand,
    weights: np.ndarray | None = None,
) -> Elements:
    r"""Sensitivity elements of the AIPW ATE or ATT from its cross-fitted nuisances.

    Parameters
    ----------
    y, d : ndarray
        Outcome and 0/1 treatment (floats).
    g0, g1 : ndarray
        Out-of-fold :math:`\hat g_0(x)`, :math:`\hat g_1(x)`.
    m : ndarray
        The propensity the score uses (clipped; normalised with ``normalize``).
    estimand : Estimand
        ``ATE`` or ``ATT``.
    weights : ndarray, optional
        Sampling weights: the weighted population's elements (:func:`riesz_elements`).

    Notes
    -----
    :func:`riesz_elements` of the residuals :math:`y - d\hat g_1 - (1-d)\hat g_0`.
    """
    return riesz_elements(y - d * g1 - (1.0 - d) * g0, d, m, estimand, weights)


def riesz_elements(
    resid: np.ndarray,
    d: np.ndarray,
    m: np.ndarray,
    estimand: Estimand,
    weights: np.ndarray | None = None,
) -> Elements:
    r"""Sensitivity elements from outcome residuals and the propensity (any estimator).

    Parameters
    ----------
    resid : ndarray
        :math:`y_i - \hat g(d_i, x_i)`, the residuals of the outcome regression that
        :math:`\hat\sigma^2` is taken from (out of fold).
    d : ndarray
        0/1 treatment (floats).
    m : ndarray
        The propensity :math:`\hat m(x_i)` the Riesz representer is built from.
    estimand : Estimand
        ``ATE``, ``ATT`` or ``ATC``.
    weights : ndarray, optional
        Sampling weights :math:`s_i \ge 0` (the ``weight`` role): the elements of the
        weighted population (Notes). ``resid`` and ``m`` should come from nuisances fitted
        with them.

    Notes
    -----
    With weights :math:`h = 1, \bar h = 1` (ATE), :math:`h = d/p, \bar h = \hat m/p`
    (ATT) or :math:`h = (1-d)/(1-p), \bar h = (1-\hat m)/(1-p)` (ATC), :math:`p = \bar d`:
    :math:`\hat\sigma^2 = \overline{\text{resid}^2}`, the Riesz representer
    :math:`\hat\alpha = \bar h\,(d/\hat m - (1-d)/(1-\hat m))` (for the ATE
    :math:`d/\hat m - (1-d)/(1-\hat m)`) and
    :math:`\hat\nu^2 = \overline{2 h\bar h (1/\hat m + 1/(1-\hat m)) - \hat\alpha^2}`
    (the orthogonal form, Chernozhukov et al. 2022, Sec. 5: :math:`E[h\bar h\mid x] =
    E[\bar h^2\mid x]` and :math:`E[\alpha^2\mid x] = \bar h^2(1/m + 1/(1-m))`);
    influence values are the centred terms. A non-positive :math:`\hat\nu^2` is replaced by
    :math:`\overline{\hat\alpha^2}`. ATE and ATT are DoubleML's ``ATE`` and ``ATTE``; the
    ATC is the ATT with the arms swapped.

    Sampling weights. The target is the effect in the weighted population :math:`P_s`,
    :math:`dP_s = s\,dP/E[s]`, e.g. :math:`\theta_s = E_s[g(1,X) - g(0,X)]`, which the
    weighted fit estimates (weighted learners estimate :math:`P_s`'s :math:`m` and :math:`g`,
    the score is weighted). The bound of Chernozhukov et al. (2022) holds for any
    distribution of the data and the latent confounder, so in :math:`P_s`:
    :math:`|\theta_{s,\text{short}} - \theta_s|^2 \le \rho^2 C_Y^2 C_D^2\,\sigma_s^2\nu_s^2` with :math:`\sigma_s^2 = E_s[(Y-g(D,X))^2]`,
    :math:`\nu_s^2 = E_s[2\,m(W,\alpha) - \alpha^2]` and :math:`\alpha`,
    :math:`p = E_s[D]` those of :math:`P_s`. Every sample mean above becomes the weighted
    mean :math:`\bar f_s = \sum_i s_i f_i / \sum_i s_i`, and, each row being one draw from
    :math:`P` (as for the fit's SE,
    :func:`~causalkit_plugins.estimators.aipw.scores.aipw_scores`), the influence value of :math:`\bar f_s` is :math:`(s_i/\bar s)(f_i - \bar f_s)` (the
    ratio :math:`E[sf]/E[s]` linearised), for :math:`\hat\sigma^2` and :math:`\hat\nu^2`
    alike. Rows of weight 0 contribute nothing: dropping them changes no element. With
    integer (frequency) weights the elements, hence the bounds and RV, are those of the data
    with row :math:`i` repeated :math:`s_i` times; the CI bounds and RVa are not, because the
    repeated rows would count as :math:`s_i` draws (variance :math:`\sum s_i e_i^2/(\sum
    s_i)^2` instead of :math:`\sum s_i^2 e_i^2/(\sum s_i)^2`). DoubleML's ``weights=``
    argument is another target, a policy-weighted effect in the unweighted population
    (:math:`\hat\sigma^2` unweighted, :math:`h = \bar h = s` so :math:`\hat\nu^2` carries
    :math:`s^2`).

    References
    ----------
    Chernozhukov, V., Cinelli, C., Newey, W., Sharma, A. & Syrgkanis, V. (2022). Long story
    short: omitted variable bias in causal machine learning. NBER Working Paper 30302.
    """

    def mean(x: np.ndarray) -> float:
        return float(x.mean() if weights is None else np.average(x, weights=weights))

    if estimand == Estimand.ATE:
        h = h_bar = np.ones_like(m)
    elif estimand == Estimand.ATT:
        p = mean(d)
        h, h_bar = d / p, m / p
    else:
        q = 1.0 - mean(d)
        h, h_bar = (1.0 - d) / q, (1.0 - m) / q
    resid2 = np.square(resid)
    riesz = h_bar * (d / m - (1.0 - d) / (1.0 - m))
    nu2_terms = 2.0 * h * h_bar * (1.0 / m + 1.0 / (1.0 - m)) - np.square(riesz)
    fallback = bool(mean(nu2_terms) <= 0)
    if fallback:
        nu2_terms = np.square(riesz)
    sigma2, nu2 = mean(resid2), mean(nu2_terms)
    scale = 1.0 if weights is None else weights / weights.mean()
    return Elements(
        sigma2, nu2, scale * (resid2 - sigma2), scale * (nu2_terms - nu2), riesz, fallback
    )


def outcome_variance(y: np.ndarray, weights: np.ndarray | None = None) -> float:
    r""":math:`\widehat{Var}(Y)` (``ddof=0``) for the benchmarks' :math:`R^2`; weighted with ``weights``."""
    if weights is None:
        return float(np.var(y))
    return float(np.average(np.square(y - np.average(y, weights=weights)), weights=weights))


@dataclass(frozen=True)
class Bounds:
    """Bounds on the effect (``theta_*``) and on its confidence interval (``ci_*``)."""

    theta_lower: float
    theta_upper: float
    ci_lower: float
    ci_upper: float


def _strength(cf_y: np.ndarray, cf_d: np.ndarray, rho: float) -> np.ndarray:
    r""":math:`|\rho| C_Y C_D = |\rho|\sqrt{c_Y c_D/(1-c_D)}` (elementwise)."""
    return np.asarray(abs(rho) * np.sqrt(cf_y * cf_d / (1.0 - cf_d)))


@dataclass(frozen=True)
class Repetition:
    r"""One cross-fit's effect :math:`\hat\theta_r`, its influence values and sensitivity elements."""

    theta: float
    influence: np.ndarray
    el: Elements


def _median(values: Sequence[Any]) -> np.ndarray:
    """Elementwise median over repetitions (the value itself for one)."""
    return np.asarray(np.median(np.stack([np.asarray(v) for v in values]), axis=0))


def _limits(reps: Sequence[Repetition], cs: np.ndarray, level: float) -> dict[str, np.ndarray]:
    """The four bounds at each confounding strength ``cs``: medians over the repetitions.

    DoubleML 0.11 (``_calc_sensitivity_analysis``): per repetition the effect bounds and the CI
    bounds of :func:`bounds`, then the median of each over the repetitions.
    """
    from scipy.stats import norm

    z = float(norm.ppf(level))
    per_rep = []
    for r in reps:
        psi_s = r.el.psi_max_bias
        # mean((psi_theta -+ cs psi_S)^2) from three moments, for a whole grid of cs at once
        a, b, c = np.mean(r.influence**2), np.mean(r.influence * psi_s), np.mean(psi_s**2)
        se_lower = np.sqrt(np.maximum(a - 2.0 * cs * b + cs**2 * c, 0.0) / r.influence.size)
        se_upper = np.sqrt(np.maximum(a + 2.0 * cs * b + cs**2 * c, 0.0) / r.influence.size)
        lo, hi = r.theta - cs * r.el.max_bias, r.theta + cs * r.el.max_bias
        per_rep.append(
            {
                "theta_lower": lo,
                "theta_upper": hi,
                "ci_lower": lo - z * se_lower,
                "ci_upper": hi + z * se_upper,
            }
        )
    return {k: _median([p[k] for p in per_rep]) for k in per_rep[0]}


def bounds(
    theta: float,
    influence: np.ndarray,
    el: Elements,
    cf_y: float,
    cf_d: float,
    rho: float,
    level: float,
) -> Bounds:
    r"""The effect's bounds :math:`\hat\theta \mp |\rho| C_Y C_D S` and their one-sided CI bounds.

    Parameters
    ----------
    theta : float
        The effect.
    influence : ndarray
        Its influence values :math:`\psi_\theta` (mean zero).
    el : Elements
        The sensitivity elements.
    cf_y, cf_d, rho : float
        The confounding scenario.
    level : float
        Level :math:`1-a` of each one-sided bound: ``ci_lower`` is
        :math:`\theta_- - z_{1-a}\,\hat s_-` with
        :math:`\hat s_\mp^2 = n^{-2}\sum_i(\psi_{\theta,i} \mp |\rho|C_YC_D\,\psi_{S,i})^2`,
        the influence of :math:`\theta_\mp` (as DoubleML: uncentred, no clusters).

    Notes
    -----
    DoubleML 0.11 builds :math:`\hat s_\mp` from its ``scaled_psi``, which is
    :math:`-\psi_\theta` (the score divided by :math:`E[\psi_a] < 0`), so its lower CI bound
    uses :math:`\hat s_+` and its upper :math:`\hat s_-`; here each bound uses its own.
    """
    return repeated_bounds((Repetition(theta, influence, el),), cf_y, cf_d, rho, level)


def repeated_bounds(
    reps: Sequence[Repetition], cf_y: float, cf_d: float, rho: float, level: float
) -> Bounds:
    """:func:`bounds` of each repetition, aggregated by the median of each bound (DoubleML's)."""
    cs = _strength(np.asarray(cf_y), np.asarray(cf_d), rho)
    return Bounds(**{k: float(v) for k, v in _limits(reps, cs, level).items()})


def robustness_values(
    theta: float,
    influence: np.ndarray,
    el: Elements,
    rho: float,
    level: float,
    null: float,
) -> tuple[float, float]:
    r"""RV and RVa: the smallest :math:`c_Y = c_D = v` whose bound (RV) or CI bound (RVa) reaches ``null``.

    The bound on the side of ``null`` (the lower one when :math:`\hat\theta \ge` ``null``).
    RV has a closed form: with :math:`a = |\hat\theta - \text{null}|/(|\rho| S)`,
    :math:`v^2/(1-v) = a^2`, so :math:`v = (\sqrt{a^4 + 4a^2} - a^2)/2`. RVa is the root of
    the CI bound minus ``null`` (Brent, to 1e-14); 0 when the interval already reaches
    ``null`` without confounding. With :math:`\rho = 0` no confounding moves the bounds and
    both are 1. DoubleML searches the same quantities with a bounded minimiser of the squared
    distance on ``(0, 0.9999)`` (``xatol`` 1e-5).
    """
    return repeated_robustness_values((Repetition(theta, influence, el),), rho, level, null)


def repeated_robustness_values(
    reps: Sequence[Repetition], rho: float, level: float, null: float
) -> tuple[float, float]:
    r""":func:`robustness_values` of the median bounds of several repetitions.

    The side is that of the median effect :math:`\tilde\theta` (DoubleML's ``thetas``). With one
    repetition RV is :func:`robustness_values`' closed form; with more it is the root of the
    median effect bound minus ``null`` (Brent, to 1e-14), unique because each repetition's
    effect bound moves monotonically in :math:`v` and so does their median. RVa is, as with
    one split, Brent's root of the median CI bound minus ``null`` on :math:`[0, 1)`.
    """
    theta = float(_median([r.theta for r in reps]))
    upper = null > theta
    sign = 1.0 if upper else -1.0
    side = "upper" if upper else "lower"

    def root(kind: str) -> float:
        from scipy.optimize import brentq

        def gap(v: float) -> float:
            b = repeated_bounds(reps, v, v, rho, level)
            return sign * (getattr(b, f"{kind}_{side}") - null)

        if gap(0.0) >= 0:
            return 0.0
        if gap(_RV_MAX) < 0:
            return 1.0
        return float(brentq(gap, 0.0, _RV_MAX, xtol=1e-14))

    if abs(rho) * max(r.el.max_bias for r in reps) == 0:
        return 1.0, 1.0
    if len(reps) > 1:
        return root("theta"), root("ci")
    a2 = (abs(theta - null) / (abs(rho) * reps[0].el.max_bias)) ** 2
    return float((np.sqrt(a2 * a2 + 4.0 * a2) - a2) / 2.0), root("ci")


def benchmark(
    var_y: float,
    theta_long: float,
    long: Elements,
    theta_short: float,
    short: Elements,
) -> dict[str, float]:
    r"""Gain statistics of a benchmark: the strengths of a confounder like the left-out covariates.

    Parameters
    ----------
    var_y : float
        :math:`\widehat{Var}(Y)` (``ddof=0``).
    theta_long, long : float, Elements
        The effect and elements with every covariate.
    theta_short, short : float, Elements
        The same without the benchmark covariates (same folds and learners).

    Returns
    -------
    dict
        ``cf_y`` :math:`= (R^2_{Y,l}-R^2_{Y,s})/(1-R^2_{Y,l})` with
        :math:`R^2_Y = 1-\hat\sigma^2/\widehat{Var}(Y)`; ``cf_d`` :math:`= (1-R^2_\alpha)/R^2_\alpha`,
        :math:`R^2_\alpha = \hat\nu^2_s/\hat\nu^2_l` (both clipped to [0, 1]; :func:`report`
        warns when one is set to 1); ``rho``
        :math:`= \operatorname{sign}(\Delta)\min(1, |\Delta|/\sqrt{(\hat\sigma^2_s-\hat\sigma^2_l)(\hat\nu^2_l-\hat\nu^2_s)})`
        (:math:`\pm 1` when a variance gain is not positive); ``delta_theta``
        :math:`=\Delta = \hat\theta_s - \hat\theta_l`. As DoubleML's ``gain_statistics``.
    """
    r2_long = 1.0 - long.sigma2 / var_y
    r2_short = 1.0 - short.sigma2 / var_y
    r2_riesz = short.nu2 / long.nu2
    delta = theta_short - theta_long
    var_g = short.sigma2 - long.sigma2
    var_riesz = long.nu2 - short.nu2
    denom = np.sqrt(var_g * var_riesz) if var_g > 0 and var_riesz > 0 else 0.0
    rho = min(abs(delta) / denom, 1.0) if denom != 0 else 1.0
    return {
        "cf_y": float(np.clip((r2_long - r2_short) / (1.0 - r2_long), 0.0, 1.0)),
        "cf_d": float(np.clip((1.0 - r2_riesz) / r2_riesz, 0.0, 1.0)),
        "rho": float(np.sign(delta) * rho),
        "delta_theta": float(delta),
    }


def repeated_benchmark(
    var_y: float, longs: Sequence[Repetition], shorts: Sequence[tuple[float, Elements]]
) -> dict[str, float]:
    """:func:`benchmark` of each repetition (long and short on its folds); the median of each statistic.

    As DoubleML's ``gain_statistics`` with ``n_rep > 1``: ``cf_y``, ``cf_d``, ``rho`` and
    ``delta_theta`` are each the median of the repetitions' values.
    """
    rows = [
        benchmark(var_y, r.theta, r.el, theta_s, el_s)
        for r, (theta_s, el_s) in zip(longs, shorts, strict=True)
    ]
    return {k: float(_median([row[k] for row in rows])) for k in rows[0]}


def bounds_table(
    rows: Mapping[str, Mapping[str, float]],
    reps: Sequence[Repetition],
    level: float,
) -> pd.DataFrame:
    """One row per benchmark: its gain statistics and the (median) bounds at those strengths.

    A benchmark with ``cf_d = 1`` (the left-out covariates carry the whole Riesz
    representer) has unbounded effect bounds (``-inf``, ``inf``).
    """
    out = []
    for stats in rows.values():
        if stats["cf_d"] < 1:
            b = repeated_bounds(reps, stats["cf_y"], stats["cf_d"], stats["rho"], level)
        else:
            b = Bounds(-np.inf, np.inf, -np.inf, np.inf)
        out.append({**stats, **asdict(b)})
    return pd.DataFrame(out, index=pd.Index(list(rows), name="benchmark"))


def contour_grid(
    reps: Sequence[Repetition],
    sens: SensitivityParams,
    benchmarks: pd.DataFrame | None = None,
    size: int = 41,
) -> pd.DataFrame:
    """The (median) bounds over a ``size`` x ``size`` grid of ``cf_y`` and ``cf_d`` at the scenario's ``rho``.

    Each axis runs from 0 to 0.15 (DoubleML's ``sensitivity_plot`` default), or to 1.25 times
    the largest value of the scenario and the benchmarks on it (at most 0.95). The columns
    ``null_hypothesis`` and ``rho`` repeat the scenario's, ``theta`` is the (median) effect,
    for the contour plot.
    """
    marks = pd.DataFrame({"cf_y": [sens.cf_y], "cf_d": [sens.cf_d]})
    if benchmarks is not None:
        marks = pd.concat([marks, benchmarks[["cf_y", "cf_d"]]])
    axes = [np.linspace(0.0, min(0.95, max(0.15, 1.25 * marks[c].max())), size) for c in marks]
    cf_y, cf_d = (g.ravel() for g in np.meshgrid(*axes, indexing="ij"))
    limits = _limits(reps, _strength(cf_y, cf_d, sens.rho), sens.level)
    return pd.DataFrame({"cf_y": cf_y, "cf_d": cf_d, **limits}).assign(
        null_hypothesis=sens.null_hypothesis,
        rho=sens.rho,
        theta=float(_median([r.theta for r in reps])),
    )


def clustered(
    influence: np.ndarray, el: Elements, clusters: Clusters
) -> tuple[np.ndarray, Elements]:
    r"""The influence values of :math:`\hat\theta`, :math:`\hat\sigma^2`, :math:`\hat\nu^2` as cluster sums.

    Each is replaced by its :math:`G` cluster sums scaled by :math:`\sqrt{c}\,G/n` (CR
    factor :math:`c = G/(G-1)`), whose plain variance over :math:`G` units is the clustered
    variance :math:`c\,n^{-2}\sum_g(\sum_{i\in g}\psi_i)^2` of analytic inference; the
    bounds are linear in these influence values, so their CI bounds become clustered.
    """
    scale = np.sqrt(clusters.factor()) * clusters.n_clusters / influence.size

    def summed(psi: np.ndarray) -> np.ndarray:
        return np.asarray(scale * clusters.sums(psi[:, None])[:, 0])

    return summed(influence), dataclasses.replace(
        el, psi_sigma2=summed(el.psi_sigma2), psi_nu2=summed(el.psi_nu2)
    )


def _repetitions_table(reps: Sequence[Repetition], sens: SensitivityParams) -> pd.DataFrame:
    """Per repetition: the effect, :math:`\\hat\\sigma^2`, :math:`\\hat\\nu^2` and the scenario's bounds."""
    rows = [
        {
            "estimate": r.theta,
            "sigma2": r.el.sigma2,
            "nu2": r.el.nu2,
            **asdict(
                bounds(r.theta, r.influence, r.el, sens.cf_y, sens.cf_d, sens.rho, sens.level)
            ),
        }
        for r in reps
    ]
    return pd.DataFrame(rows, index=pd.RangeIndex(1, len(reps) + 1, name="repetition"))


def report(
    who: str,
    reps: Sequence[Repetition],
    sens: SensitivityParams,
    *,
    var_y: float,
    shorts: Mapping[str, Sequence[tuple[float, Elements]]],
    sigma2_source: str,
    clusters: Clusters | None = None,
) -> tuple[dict[str, DiagnosticValue], dict[str, pd.DataFrame], tuple[str, ...]]:
    r"""The whole analysis of one effect: bounds, RV and RVa, benchmarks and the contour grid.

    Parameters
    ----------
    who : str
        The estimator's name (warnings).
    reps : sequence of Repetition
        The effect, its influence values and sensitivity elements (:func:`riesz_elements`),
        one per repetition of the cross-fitting (one without repetitions).
    sens : SensitivityParams
        The scenario.
    var_y : float
        :math:`\widehat{Var}(Y)` (``ddof=0``; weighted with weights, :func:`outcome_variance`)
        for the benchmarks' :math:`R^2`.
    shorts : mapping
        Benchmark name -> effect and elements of the fit without its covariates, one per
        repetition (on that repetition's folds).
    sigma2_source : str
        Where :math:`\hat\sigma^2` comes from (diagnostic ``sensitivity.sigma2_source``).
    clusters : Clusters, optional
        Cluster the CI bounds (:func:`clustered`).

    Returns
    -------
    diagnostics, tables, warnings
        ``sensitivity.{theta_lower, theta_upper, ci_lower, ci_upper, rv, rva, sigma2, nu2,
        sigma2_source}``; ``sensitivity.bounds`` (with benchmarks) and ``sensitivity.contour``;
        with several repetitions also ``sensitivity.repetitions`` (each one's bounds).

    Notes
    -----
    Several repetitions (DoubleML 0.11, ``n_rep > 1``): each bound and CI bound is the median of
    the repetitions' (:func:`repeated_bounds`), RV and RVa solve those medians
    (:func:`repeated_robustness_values`), each benchmark statistic is the median of the
    repetitions' (:func:`repeated_benchmark`). ``sensitivity.sigma2`` and ``sensitivity.nu2``
    are the medians of the repetitions' (DoubleML keeps them per repetition only).
    """
    if clusters is not None:
        reps = [Repetition(r.theta, *clustered(r.influence, r.el, clusters)) for r in reps]
    b = repeated_bounds(reps, sens.cf_y, sens.cf_d, sens.rho, sens.level)
    rv, rva = repeated_robustness_values(reps, sens.rho, sens.level, sens.null_hypothesis)
    diag: dict[str, DiagnosticValue] = {
        "sensitivity.theta_lower": b.theta_lower,
        "sensitivity.theta_upper": b.theta_upper,
        "sensitivity.ci_lower": b.ci_lower,
        "sensitivity.ci_upper": b.ci_upper,
        "sensitivity.rv": rv,
        "sensitivity.rva": rva,
        "sensitivity.sigma2": float(_median([r.el.sigma2 for r in reps])),
        "sensitivity.nu2": float(_median([r.el.nu2 for r in reps])),
        "sensitivity.sigma2_source": sigma2_source,
    }
    warnings: tuple[str, ...] = (
        (
            f"{who}: the sensitivity element nu2 was not positive and was re-estimated as the "
            "mean squared Riesz representer (not orthogonal)",
        )
        if any(r.el.nu2_fallback for r in reps)
        else ()
    )
    tables: dict[str, pd.DataFrame] = {}
    if shorts:
        rows = {name: repeated_benchmark(var_y, reps, short) for name, short in shorts.items()}
        tables["sensitivity.bounds"] = bounds_table(rows, reps, sens.level)
        warnings += tuple(  # clipped as DoubleML does (cf_d = 1: unbounded, see bounds_table)
            clipped_bound(who, key, f"benchmark {name}")
            for name, stats in rows.items()
            for key in _SCENARIO
            if stats[key] >= 1.0
        )
    tables["sensitivity.contour"] = contour_grid(reps, sens, tables.get("sensitivity.bounds"))
    if len(reps) > 1:
        tables["sensitivity.repetitions"] = _repetitions_table(reps, sens)
    return diag, tables, warnings
