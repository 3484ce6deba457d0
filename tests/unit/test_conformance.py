"""Every registered plugin (the built-ins through their entry points) passes causalkit.testing."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
from scipy import stats

from causalkit import testing
from causalkit.contracts import (
    Capability,
    Dataset,
    Estimand,
    Fit,
    InferenceOutcome,
    Params,
    Resampler,
)
from causalkit.registry import Registry
from causalkit.testing import parametrize_with_checks
from causalkit_plugins.estimators.differences import difference_in_means
from causalkit_plugins.inference.common import InferenceParams

# A registry of its own, read from the entry points: what a user's installation holds.
REGISTRY = Registry().load_entry_points()


@parametrize_with_checks(REGISTRY)
def test_plugin_conformance(check):
    check()


# --- The checks catch what they are for -------------------------------------------------------


class _MeanParams(Params):
    pass


class _Mean:
    """Difference in means with its influence values and a refit (a well-behaved estimator)."""

    name: ClassVar[str] = "mean_diff"
    Params: ClassVar[type[Params]] = _MeanParams
    required_roles: ClassVar[tuple[str, ...]] = ("outcome", "treatment")
    default_inference: ClassVar[str] = "wald"

    def __init__(self, params: Params | None = None) -> None:
        self.params = params

    @classmethod
    def capabilities(cls, params: Params) -> frozenset[Capability]:
        return frozenset({Capability.INFLUENCE, Capability.RESAMPLE})

    def _parts(self, data: Dataset) -> tuple[np.ndarray, np.ndarray]:
        return data.frame["y"].to_numpy(float), data.frame["treated"].to_numpy(bool)

    def fit(self, data: Dataset, rng: np.random.Generator) -> Fit:
        y, d = self._parts(data)
        est, psi = difference_in_means(y, d)
        return Fit(
            Estimand.ATE,
            est,
            y.size,
            influence=psi,
            resampler=Resampler(
                y.size, refit=lambda idx: np.array([difference_in_means(y[idx], d[idx])[0]])
            ),
        )


class _Overclaiming(_Mean):
    @classmethod
    def capabilities(cls, params: Params) -> frozenset[Capability]:
        return frozenset({Capability.INFLUENCE, Capability.PLACEBO})


class _Noisy(_Mean):
    def fit(self, data: Dataset, rng: np.random.Generator) -> Fit:
        fit = super().fit(data, rng)
        return Fit(
            fit.estimand,
            fit.estimate + np.random.default_rng().normal(),
            fit.n,
            influence=fit.influence,
            resampler=fit.resampler,
        )


class _ScalarRefit(_Mean):
    def fit(self, data: Dataset, rng: np.random.Generator) -> Fit:
        y, d = self._parts(data)
        fit = super().fit(data, rng)
        return Fit(
            fit.estimand,
            fit.estimate,
            fit.n,
            influence=fit.influence,
            resampler=Resampler(y.size, refit=lambda idx: difference_in_means(y[idx], d[idx])[0]),
        )


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (_Overclaiming, "declares placebo but the fit does not offer it"),
        (_Noisy, "fit is not deterministic"),
        (_ScalarRefit, r"refit returned shape \(\), expected \(1,\)"),
    ],
)
def test_check_estimator_catches(cls, message):
    testing.check_estimator(_Mean)
    with pytest.raises(AssertionError, match=message):
        testing.check_estimator(cls)


class _Wald(InferenceParams):
    pass


class _Analytic:
    """Wald intervals from the influence values or the model SEs."""

    name: ClassVar[str] = "wald"
    Params: ClassVar[type[Params]] = _Wald
    requires_any: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.INFLUENCE, Capability.MODEL_SE}
    )

    def __init__(self, params: _Wald) -> None:
        self.params = params

    def _se(self, fit: Fit) -> np.ndarray:
        if fit.influence is not None:
            return np.sqrt((fit.influence**2).sum(axis=0)) / fit.n
        assert fit.model_se is not None
        return fit.model_se

    def _z(self) -> float:
        return float(stats.norm.ppf(0.5 + self.params.level / 2))

    def infer(self, fit: Fit, rng: np.random.Generator) -> InferenceOutcome:
        se = self._se(fit)
        p = 2 * stats.norm.sf(np.abs(fit.estimates) / se)
        z = self._z()
        if self.params.joint:  # Bonferroni: conservative simultaneous intervals, Holm p-values
            z = float(stats.norm.ppf(1 - (1 - self.params.level) / (2 * fit.k)))
            adj = np.minimum(1, p * fit.k)
            return InferenceOutcome(
                self.name,
                se,
                fit.estimates - z * se,
                fit.estimates + z * se,
                adj,
                self.params.level,
                joint=True,
                p_value_raw=p,
            )
        return InferenceOutcome(
            self.name, se, fit.estimates - z * se, fit.estimates + z * se, p, self.params.level
        )


class _InfluenceOnly(_Analytic):
    def _se(self, fit: Fit) -> np.ndarray:
        assert fit.influence is not None, "needs the influence values"
        return super()._se(fit)


class _FixedLevel(_Analytic):
    def _z(self) -> float:
        return 1.96


class _Mutating(_Analytic):
    def infer(self, fit: Fit, rng: np.random.Generator) -> InferenceOutcome:
        if fit.influence is not None:
            fit.influence[0] += 1.0
        return super().infer(fit, rng)


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (_InfluenceOnly, "needs the influence values"),
        (_FixedLevel, "as wide as the 95% ones"),
        (_Mutating, "mutated the fit"),
    ],
)
def test_check_inference_catches(cls, message):
    testing.check_inference(_Analytic)
    with pytest.raises(AssertionError, match=message):
        testing.check_inference(cls)


def test_every_plugin_and_pairing_gets_its_checks():
    reg = Registry()
    reg.register("estimator", _Mean)
    reg.register("inference", _Analytic)
    reg.broken[("dgp", "gone")] = "dgp plugin 'gone' is broken: no module"
    ids = [i for i, _ in testing.plugin_checks(reg)]
    assert ids == ["dgp:gone", "estimator:mean_diff", "inference:wald", "pairing:mean_diff+wald"]
    checks = dict(testing.plugin_checks(reg))
    with pytest.raises(AssertionError, match="no module"):
        checks["dgp:gone"]()
    checks["pairing:mean_diff+wald"]()
    assert {i for i, _ in testing.plugin_checks(REGISTRY)} >= {
        f"{kind}:{name}"
        for kind in ("data", "dgp", "estimator", "inference")
        for name in REGISTRY.names(kind)
    } | {f"pairing:{e}+{i}" for e in REGISTRY.names("estimator") for i in REGISTRY.pairings(e)}
