"""The coverage matrix: every registered (estimator, inference) pairing on its declared worlds.

Replaces the hand-picked coverage suite. The cells come from the registry
(:func:`causalkit.coverage.cells`): each estimator class declares ``coverage_worlds`` and every
pairing ``registry.pairings(estimator)`` derives (``none`` excluded) must have at least one, so
registering a plugin adds its rows. Each cell runs through ``compose -> validate -> run_cell``
with ``mc.n_jobs=2`` and is judged by :func:`causalkit.coverage.judge` (coverage within the
nominal level +- 3 MCSE at R = 600 unless a world says otherwise, model-SE relative error within 3 of its MCSE, |bias| <= 3
MCSE, failed replications <= 1 %, the test's size in worlds without an effect, refusal where
the world says so). The permutation cells keep the old suite's size check: with R + 1 = 200
placebo draws the add-one two-sided p-value rejects at 5 % with probability exactly 0.05 under
exchangeable treatment and no effect, and the placebo-inversion CI's coverage lies in
[0.94, 0.95], so nominal +- 3 MCSE applies to it too.

Each cell's verdict is written to ``runs/coverage/cells/`` and
``python -m causalkit.coverage --results runs/coverage/cells --markdown`` renders the README table.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from scipy.stats import norm

from causalkit import coverage
from causalkit.contracts import Capability, Params
from causalkit.registry import Registry, default_registry

OUT = Path("runs/coverage/cells")


class _Params(Params):
    pass


class _Estimator:
    name: ClassVar[str] = "fake"
    Params = _Params
    required_roles: ClassVar[tuple[str, ...]] = ("outcome",)
    default_inference: ClassVar[str] = "fake_inf"
    coverage_worlds: ClassVar[tuple[coverage.World, ...]] = ()

    @classmethod
    def capabilities(cls, params):
        return frozenset({Capability.INFLUENCE})

    def fit(self, data, rng):  # pragma: no cover - never called
        raise NotImplementedError


class _Inference:
    name: ClassVar[str] = "fake_inf"
    Params = _Params
    requires_any: ClassVar[frozenset[Capability]] = frozenset({Capability.INFLUENCE})

    def infer(self, fit, rng):  # pragma: no cover - never called
        raise NotImplementedError


def _fake_registry(*worlds: coverage.World) -> Registry:
    est = type("_Est", (_Estimator,), {"coverage_worlds": worlds})
    reg = Registry()
    reg.register("estimator", est)
    reg.register("inference", _Inference)
    return reg


def test_every_registered_pairing_has_a_world():
    assert coverage.missing_worlds(default_registry()) == []


def test_a_pairing_registered_without_a_world_fails():
    assert coverage.missing_worlds(_fake_registry()) == [("fake", "fake_inf")]
    refuse_only = coverage.World("w", ("dgp=none",), expect="refuse")
    assert coverage.missing_worlds(_fake_registry(refuse_only)) == [("fake", "fake_inf")]
    other = coverage.World("w", ("dgp=none",), inferences=frozenset({"bootstrap"}))
    assert coverage.missing_worlds(_fake_registry(other)) == [("fake", "fake_inf")]
    ok = coverage.World("w", ("dgp=none",))
    assert coverage.missing_worlds(_fake_registry(ok)) == []
    assert [c.label for c in coverage.cells(_fake_registry(ok))] == ["fake/fake_inf @ w"]


def test_rel_se_mcse_matches_its_sampling_spread():
    # model SE ~ sd 0.2 (10 % spread), true SE 0.2: q's spread over studies vs the formula
    rng = np.random.default_rng(5)
    R, studies = 500, 400
    q, mcse = np.empty(studies), np.empty(studies)
    for s in range(studies):
        est = rng.normal(0, 0.2, R)
        se = 0.2 * rng.gamma(100, 0.01, R)
        q[s], mcse[s] = coverage.rel_se_mcse(se, float(est.std(ddof=1)))
    assert abs(np.mean(mcse) / q.std(ddof=1) - 1) < 0.1
    assert abs(q.mean()) < 3 * q.std(ddof=1) / math.sqrt(studies)


def test_rel_se_mcse_follows_heavy_tailed_estimates():
    # Student-t(5) estimates (kurtosis 9): the normal-theory MCSE is about half the spread of
    # q over studies; with the estimates' kurtosis it matches it
    rng = np.random.default_rng(6)
    R, studies, df = 500, 400, 5
    sd = 0.2 * math.sqrt(df / (df - 2))
    q, mcse, normal = np.empty(studies), np.empty(studies), np.empty(studies)
    for s in range(studies):
        est = 0.2 * rng.standard_t(df, R)
        se = sd * rng.gamma(100, 0.01, R)
        emp = float(est.std(ddof=1))
        q[s], mcse[s] = coverage.rel_se_mcse(se, emp, est)
        normal[s] = coverage.rel_se_mcse(se, emp)[1]
    assert abs(np.mean(mcse) / q.std(ddof=1) - 1) < 0.15
    assert np.mean(normal) / q.std(ddof=1) < 0.8


def test_every_world_s_r_detects_the_issue_s_departures():
    # coverage 0.90 or 0.99, or a model SE 15 % off, fails with probability >= 0.9
    assert coverage.power(500)["SE +15%"] < 0.9  # why the default R is 600, not 500
    for cell in coverage.cells(default_registry()):
        if cell.world.expect in ("nominal", "conservative"):
            p = coverage.power(cell.world.reps)
            assert min(p.values()) >= 0.9, (cell.label, p)


def test_sweep_preset_is_generated_from_the_matrix():
    root = Path(__file__).resolve().parents[2]
    want = coverage.conf_files(default_registry())
    have = {
        str(f.relative_to(root)): f.read_text()
        for f in (root / "conf/coverage_cell").glob("*.yaml")
    }
    have["conf/experiment/coverage_matrix.yaml"] = (
        root / "conf/experiment/coverage_matrix.yaml"
    ).read_text()
    assert have == want, "run: python -m causalkit.coverage --write-conf"


_CELLS = coverage.cells(default_registry())


@pytest.mark.statistical
@pytest.mark.parametrize("cell", _CELLS, ids=[c.label.replace(" @ ", "@") for c in _CELLS])
def test_cell(cell):
    (v,) = [
        x for x in coverage.run(only=[cell.label], n_jobs=2, echo=False) if x.label == cell.label
    ]
    OUT.mkdir(parents=True, exist_ok=True)
    coverage.save([v], OUT / (re.sub(r"[^A-Za-z0-9_.-]+", "_", cell.label) + ".json"))
    print(
        f"{v.label} R={v.reps}: coverage {v.coverage:.3f} (± {v.coverage_band:.3f}), SE rel. "
        f"error {v.rel_se:+.3f} ± {v.rel_se_mcse:.3f}, bias {v.bias:+.4g} ± {v.bias_mcse:.4g}, "
        f"failed {v.failed:.1%}, size {v.size:.3f}, {v.seconds:.0f} s"
    )
    if cell.world.known and not v.passed:
        pytest.xfail(f"known departure: {cell.world.known} ({'; '.join(v.reasons)})")
    assert v.passed, "; ".join(v.reasons)


def _result(coverage_rate: float, se_scale: float, failed: int = 0, R: int = 600, warned: int = 0):
    """A fake CellResult: normal estimates around 0, SE ``se_scale`` times the true 1."""
    import pandas as pd

    from causalkit.montecarlo import summarise

    rng = np.random.default_rng(1)
    est = rng.normal(0, 1, R)
    se = np.full(R, se_scale)
    z = np.quantile(np.abs(est), coverage_rate) / se_scale
    lo, hi = est - z * se, est + z * se
    m = summarise(est, se, lo, hi, 0.0)
    m.update(n_failed=float(failed), reps=float(R + failed))
    p = 2 * norm.sf(np.abs(est) / se)
    table = pd.DataFrame(
        {
            "estimate": est,
            "se": se,
            "p_value": p,
            "error": None,
            "n_warnings": (np.arange(R) < warned).astype(int),
        }
    )
    return type("R", (), {"metrics": m, "replications": table, "level": 0.95, "seconds": 1.0})


def test_judge_applies_each_criterion():
    nominal = coverage.Cell("e", "i", coverage.World("w", (), null=True))
    assert coverage.judge(nominal, _result(0.95, 1.0)).passed
    assert "coverage" in coverage.judge(nominal, _result(0.90, 1.0)).reasons[0]
    assert any("model SE" in r for r in coverage.judge(nominal, _result(0.95, 1.2)).reasons)
    assert any(
        "failed" in r for r in coverage.judge(nominal, _result(0.95, 1.0, failed=10)).reasons
    )
    conservative = coverage.Cell(
        "e", "i", coverage.World("w", (), expect="conservative", null=True)
    )
    assert coverage.judge(conservative, _result(0.99, 1.5)).passed
    assert not coverage.judge(conservative, _result(0.95, 0.8)).passed
    refuse = coverage.Cell("e", "i", coverage.World("w", (), expect="refuse"))
    assert coverage.judge(refuse, None, refused="n_C < 2 n_T").passed
    assert not coverage.judge(refuse, _result(0.95, 1.0)).passed
    flagged = coverage.Cell("e", "i", coverage.World("w", (), expect="flagged"))
    v = coverage.judge(flagged, _result(0.85, 0.7, warned=570))
    assert v.passed and v.warned == 0.95 and v.rel_se < -0.2  # measured, not judged
    assert "warned in 50.0%" in coverage.judge(flagged, _result(0.95, 1.0, warned=300)).reasons[0]
    assert not coverage.judge(nominal, None, refused="no").passed


def test_a_conditional_world_compares_the_model_se_with_the_spread_of_the_errors():
    """Truth varying by draw (SD 2) around estimates with error SD 1 and model SE 1.

    Against the SD of the estimates (about sqrt(5)) the SE looks 55% small; a ``conditional``
    world (the SE is conditional on the draw's truth) compares it with the errors' SD, 1.
    """
    import pandas as pd

    from causalkit.montecarlo import summarise

    rng = np.random.default_rng(2)
    R = 600
    truth = rng.normal(0, 2, R)
    est = truth + rng.normal(0, 1, R)
    se = np.ones(R)
    m = summarise(est, se, est - 1.96 * se, est + 1.96 * se, truth)
    m.update(n_failed=0.0, reps=float(R))
    table = pd.DataFrame({"estimate": est, "se": se, "truth": truth, "error": None})
    result = type("R", (), {"metrics": m, "replications": table, "level": 0.95, "seconds": 1.0})
    plain = coverage.judge(coverage.Cell("e", "i", coverage.World("w", ())), result)
    assert plain.rel_se < -0.5 and any("model SE" in r for r in plain.reasons)
    cond = coverage.judge(
        coverage.Cell("e", "i", coverage.World("w", (), conditional=True)), result
    )
    assert cond.passed, cond.reasons
    assert cond.emp_se == pytest.approx(np.std(est - truth, ddof=1))
    assert abs(cond.rel_se) < 3 * cond.rel_se_mcse
