"""Inference over a vector of estimates: Holm, sup-t bands, and k = 1 unchanged by ``joint``.

References: Holm's adjustment against statsmodels' ``multipletests(method="holm")`` (exact);
for k independent estimates the sup-t critical value is Šidák's
:math:`z_{(1+\\text{level}^{1/k})/2}` exactly, which the simulated critical values must match
within their Monte Carlo error (tolerance 0.05 at 10,000 draws).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from causalkit.contracts import Capability, Estimand, Fit, Resampler
from causalkit.registry import Registry
from causalkit_plugins.inference.basic import Analytic, AnalyticParams, NoInference
from causalkit_plugins.inference.bootstrap import Bootstrap, BootstrapParams
from causalkit_plugins.inference.common import holm
from causalkit_plugins.inference.multiplier import MultiplierBootstrap, MultiplierParams
from causalkit_plugins.inference.permutation import Permutation, PermutationParams

K = 4


def _means_fit(seed: int = 0, n: int = 400, shift: float = 0.0) -> Fit:
    """k column means of independent N(shift, 1) columns, with influence and a resampler."""
    y = np.random.default_rng(seed).standard_normal((n, K)) + shift
    est = y.mean(axis=0)
    psi = (y - est) * np.sqrt(n / (n - 1))

    def refit(idx: np.ndarray) -> np.ndarray:
        return y[idx].mean(axis=0)

    def placebo(rng: np.random.Generator) -> np.ndarray:
        return (y - est)[rng.integers(0, n, n)].mean(axis=0)

    return Fit(
        Estimand.DIFF,
        est,
        n,
        names=tuple(f"m{j}" for j in range(K)),
        influence=psi,
        resampler=Resampler(n, refit=refit),
        placebo=placebo,
    )


def test_holm_matches_statsmodels() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.2, 0.005, 0.5])
    assert np.array_equal(holm(p), multipletests(p, method="holm")[1])
    assert np.isnan(holm(np.array([np.nan, 0.01])))[0]


@pytest.mark.parametrize(
    "plugin",
    [
        Analytic(AnalyticParams(joint=True)),
        MultiplierBootstrap(MultiplierParams(joint=True, n_boot=10_000)),
        Bootstrap(BootstrapParams(joint=True, n_boot=4000)),
    ],
    ids=["analytic", "multiplier", "bootstrap"],
)
def test_sup_t_critical_value_is_sidak_for_independent_estimates(plugin: object) -> None:
    fit = _means_fit()
    out = plugin.infer(fit, np.random.default_rng(5))  # type: ignore[attr-defined]
    sidak = stats.norm.ppf((1 + 0.95 ** (1 / K)) / 2)
    assert out.joint and out.p_value_raw is not None
    assert out.diagnostics["critical_value"] == pytest.approx(sidak, abs=0.05)
    assert np.array_equal(out.p_value, holm(out.p_value_raw))
    assert (out.ci_upper - out.ci_lower > 0).all() and out.se.shape == (K,)


def test_joint_changes_nothing_for_one_estimate() -> None:
    y = np.random.default_rng(1).standard_normal(200)
    fit = Fit(Estimand.ATE, y.mean(), 200, influence=y - y.mean())
    a = Analytic(AnalyticParams()).infer(fit, np.random.default_rng(0))
    b = Analytic(AnalyticParams(joint=True)).infer(fit, np.random.default_rng(0))
    assert np.array_equal(a.ci_lower, b.ci_lower) and not b.joint


def test_joint_band_covers_all_estimates_at_nominal_rate() -> None:
    """1,000 worlds of 4 true-zero means: the sup-t band covers all four ~95% of the time
    (binomial MCSE 0.007; tolerance 3 MCSE); pointwise intervals cover all four ~0.95^4."""
    rng = np.random.default_rng(11)
    joint = pointwise = 0
    reps = 1000
    for _r in range(reps):
        y = rng.standard_normal((300, K))
        est = y.mean(axis=0)
        fit = Fit(
            Estimand.DIFF, est, 300, names=tuple("abcd"), influence=(y - est) * np.sqrt(300 / 299)
        )
        j = Analytic(AnalyticParams(joint=True)).infer(fit, rng)
        p = Analytic(AnalyticParams()).infer(fit, rng)
        joint += bool(((j.ci_lower <= 0) & (0 <= j.ci_upper)).all())
        pointwise += bool(((p.ci_lower <= 0) & (0 <= p.ci_upper)).all())
    assert joint / reps == pytest.approx(0.95, abs=0.021)
    assert pointwise / reps == pytest.approx(0.95**K, abs=0.045)


def test_permutation_and_none_work_on_vectors() -> None:
    fit = _means_fit(shift=0.3)
    out = Permutation(PermutationParams(joint=True, n_perm=199)).infer(
        fit, np.random.default_rng(2)
    )
    # Holm over four add-one p-values of 1/200 each: 4 x 0.005.
    assert out.p_value.shape == (K,) and (out.p_value <= 0.02 + 1e-12).all()
    none = NoInference().infer(fit, np.random.default_rng(2))
    assert none.se.shape == (K,) and np.isnan(none.se).all()


def test_pairings_are_derived_from_declarations() -> None:
    class Est:
        name = "est"
        Params = AnalyticParams  # any Params model forbidding extras
        required_roles = ()
        default_inference = "analytic"

        @classmethod
        def capabilities(cls, params: object) -> frozenset[Capability]:
            return frozenset({Capability.INFLUENCE})

        def fit(self, data: object, rng: object) -> None: ...

    reg = Registry()
    reg.register("estimator", Est)
    for cls in (Analytic, NoInference, Bootstrap, MultiplierBootstrap, Permutation):
        reg.register("inference", cls)
    assert reg.pairings("est") == ("analytic", "multiplier", "none")
    assert reg.default_inference("est") == "analytic"


def test_multiplier_joint_band_with_an_undefined_column_says_so() -> None:
    """A NaN influence column (an undefined estimate) is left out of the joint band, loudly;
    the band over the others is the same as without that column."""
    fit = _means_fit()
    psi = fit.influence.copy()
    psi[:, 1] = np.nan
    est = fit.estimates.copy()
    est[1] = np.nan
    broken = Fit(Estimand.DIFF, est, fit.n, names=fit.names, influence=psi)
    params = MultiplierParams(joint=True, n_boot=2000)
    out = MultiplierBootstrap(params).infer(broken, np.random.default_rng(3))
    assert np.isnan(out.ci_lower[1]) and out.warnings and "m1" in out.warnings[0]
    keep = [0, 2, 3]
    ref_fit = Fit(
        Estimand.DIFF,
        fit.estimates[keep],
        fit.n,
        names=("m0", "m2", "m3"),
        influence=fit.influence[:, keep],
    )
    ref = MultiplierBootstrap(params).infer(ref_fit, np.random.default_rng(3))
    # Same multipliers (one per unit, shared by the columns): the same draws, the same band.
    assert out.diagnostics["critical_value"] == pytest.approx(
        ref.diagnostics["critical_value"], rel=1e-12
    )
    assert np.allclose(out.ci_lower[keep], ref.ci_lower, rtol=1e-12)
