"""Results: the effect result over a vector of estimates, the Monte Carlo cell result, their
summaries (text, HTML, LaTeX) and ``ck.compare``."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

import causalkit as ck
from causalkit.cli import compose
from causalkit.config import validate
from causalkit.contracts import Estimand, Fit, InferenceOutcome
from causalkit.montecarlo import cell_result, run_cell, summarise
from causalkit.results import CELL_METRICS, CellResult, EffectResult, build_result
from causalkit.summary import Summary


def _fit(k: int = 1) -> Fit:
    names = None if k == 1 else tuple(f"segment_{j}" for j in range(k))
    est = np.arange(1, k + 1) * 0.1
    return Fit(
        Estimand.ATE,
        est,
        500,
        names=names,
        influence=np.ones((500, k)),
        diagnostics={"ess": 417.12345, "feasible": True, "solver": "dual"},
    )


def _outcome(k: int = 1, joint: bool = False) -> InferenceOutcome:
    est = np.arange(1, k + 1) * 0.1
    se = np.full(k, 0.02)
    raw = np.linspace(0.001, 0.04, k)
    return InferenceOutcome(
        "analytic",
        se,
        est - 2 * se,
        est + 2 * se,
        np.minimum(1, raw * k) if joint else raw,
        0.95,
        joint=joint,
        p_value_raw=raw if joint else None,
        diagnostics={"z": 1.96},
    )


def test_headline_is_the_first_effect_and_the_result_is_immutable():
    res = build_result("naive", _fit(3), _outcome(3), truth=("ATE", 0.12))
    eff = res.effects
    assert list(eff.index) == ["segment_0", "segment_1", "segment_2"] and eff.index.name == "effect"
    assert list(eff.columns) == ["estimate", "se", "ci_lower", "ci_upper", "p_value"]
    assert (res.estimate, res.se, res.ci_lower, res.ci_upper, res.p_value) == tuple(eff.iloc[0])
    assert res.k == 3 and res.n == 500 and res.covers is True and res.truth_estimand == "ATE"
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.estimate = 0.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        res.diagnostics["ess"] = 1.0  # type: ignore[index]
    eff.iloc[0, 0] = 99.0  # a fresh table each time: the result does not change
    assert res.estimate == pytest.approx(0.1) and res.effects.iloc[0, 0] == pytest.approx(0.1)
    assert res.to_dict()["inference.z"] == 1.96 and res.to_dict()["ess"] == 417.12345


def test_joint_effects_carry_the_raw_p_values():
    res = build_result("aipw", _fit(3), _outcome(3, joint=True))
    assert res.joint and list(res.effects.columns)[-1] == "p_value_raw"
    assert np.all(res.effects["p_value"] >= res.effects["p_value_raw"])
    text = str(res.summary())
    assert "95% CI (simultaneous)" in text and "p-value (Holm)" in text
    assert "effects (3; 95% sup-t bands, Holm-adjusted p-values)" in text
    assert "segment_2" in text and "p_value_raw" in text


def test_inference_arrays_must_match_the_fit():
    with pytest.raises(
        ValueError, match=r"inference 'analytic': se has shape \(1,\), expected \(3,\)"
    ):
        build_result("naive", _fit(3), _outcome(1))


def test_summary_text_keeps_its_layout():
    res = build_result("naive", _fit(), _outcome(), truth=("ATE", 0.12))
    assert (
        str(res.summary())
        == str(res)
        == "\n".join(
            [
                "causalkit result: naive / analytic",
                "=" * 64,
                "estimand              ATE (average effect over everyone)",
                "estimate              +0.1000",
                "std. error            0.0200",
                "95% CI                [+0.0600, +0.1400]",
                "p-value               0.0010",
                "n                     500",
                "truth (ATE)           +0.1200",
                "-" * 64,
                "diagnostics",
                "  ess                       417.1",
                "  feasible                  yes",
                "  solver                    dual",
                "  inference.z               1.96",
                "=" * 64,
            ]
        )
    )
    assert "effects" not in str(res.summary())  # one effect: the headline says it all


def test_summary_renders_html_and_latex():
    fit = Fit(
        Estimand.ATT,
        [0.5],
        10,
        tables={"balance": pd.DataFrame({"smd_after": [1e-9]}, index=["x_1"])},
        warnings=("weights & 100% < 5_000",),
    )
    s = build_result("microsynth", fit, _outcome()).summary()
    assert isinstance(s, Summary)
    html = s._repr_html_()
    assert (
        html.startswith('<div class="causalkit-summary">')
        and "<th>estimate</th><td>+0.5000</td>" in html
    )
    assert "weights &amp; 100% &lt; 5_000" in html and "smd_after" in html
    tex = s.as_latex()
    assert tex.startswith("\\begin{center}") and tex.endswith("\\end{center}")
    assert "95\\% CI & [+0.0600, +0.1400] \\\\" in tex and "weights \\& 100\\% < 5\\_000" in tex
    assert (
        tex.count("\\begin{tabular}") == tex.count("\\end{tabular}") == 3
    )  # headline, diagnostics, balance
    assert "+1.00e-09" in str(s)  # the balance table keeps its format


def test_diagnostics_may_not_shadow_fields():
    fit = Fit(Estimand.ATE, [0.5], 10, diagnostics={"se": 1.0})
    with pytest.raises(KeyError, match="shadows"):
        build_result("naive", fit, _outcome()).to_dict()


def _table(errors: int = 0) -> pd.DataFrame:
    rows = []
    for r in range(6):
        est = 0.1 + 0.01 * (r - 2.5)
        row = {
            "replication": r,
            "estimate": est,
            "se": 0.02,
            "ci_lower": est - 0.04,
            "ci_upper": est + 0.04,
            "p_value": 0.01,
            "level": 0.9,
            "n": 100,
            "truth": 0.1,
            "covers": True,
            "truth_estimand": "ATE",
            "estimand": "ATE",
            "inference": "analytic",
            "error": None,
        }
        if r < errors:
            row = {"replication": r, "error": "EstimationError: singular"}
        rows.append(row)
    return pd.DataFrame(rows)


def test_cell_result_from_its_replications():
    cfg = validate(compose(["tracking=none", "estimator=itt", "mc.reps=6"]))
    table = _table(errors=2)
    cell = cell_result(cfg, table, 1.5)
    ok = table.iloc[2:]
    want = summarise(
        *(ok[c].to_numpy(float) for c in ("estimate", "se", "ci_lower", "ci_upper")), 0.1
    )
    assert set(cell.metrics) == set(CELL_METRICS)
    assert all(
        cell.metrics[k] == v or (math.isnan(v) and math.isnan(cell.metrics[k]))
        for k, v in want.items()
    )
    assert cell.metrics["n_failed"] == 2 and cell.metrics["reps"] == 6 and not cell.failed
    assert cell.errors == (
        "replication 0: EstimationError: singular",
        "replication 1: EstimationError: singular",
    )
    assert (cell.estimand, cell.truth, cell.truth_estimand, cell.level) == ("ATE", 0.1, "ATE", 0.9)
    text = str(cell.summary())
    assert text.splitlines()[0] == "causalkit Monte Carlo cell: itt / analytic"
    assert (
        "replications              6 (2 failed)" in text
        and "coverage of 90% CI        1.0000  (MCSE 0.0000, at the boundary: not exact; "
        "95% Wilson [0.5101, 1.0000])"
        in text
    )
    assert (
        "failed replications" in text
        and "<caption>failed replications</caption>" not in cell.summary().as_html()
    )
    with pytest.raises(TypeError):
        cell.metrics["bias"] = 0.0  # type: ignore[index]
    assert cell_result(cfg, _table(errors=6), 1.0).failed


def test_one_replication_cell_keeps_the_full_result():
    cell = run_cell(validate(compose(["tracking=none", "estimator=naive"])))
    assert isinstance(cell, CellResult) and isinstance(cell.single, EffectResult)
    assert str(cell.summary()) == str(cell.single.summary())
    assert cell.metrics["reps"] == 1 and cell.metrics["mean_estimate"] == cell.single.estimate
    assert cell.replications["estimate"].tolist() == [cell.single.estimate]


def test_compare_puts_results_side_by_side():
    a = build_result("naive", _fit(), _outcome(), truth=("ATE", 0.12))
    b = build_result("aipw", Fit(Estimand.ATE, [0.2], 300, diagnostics={"ess": 250.0}), _outcome())
    cfg = validate(compose(["tracking=none", "estimator=itt", "mc.reps=6"]))
    cell = cell_result(cfg, _table(), 0.5)
    table = ck.compare([a, b, cell])
    assert list(table.columns) == ["naive", "aipw", "itt"]
    assert table.loc["estimate", "naive"] == a.estimate and table.loc["se", "aipw"] == b.se
    assert table.loc["n", "aipw"] == 300 and table.loc["diag.ess", "aipw"] == 250.0
    assert (
        table.loc["estimator", "itt"] == "itt"
        and table.loc["coverage", "itt"] == cell.metrics["coverage"]
    )
    assert math.isnan(table.loc["bias", "naive"]) and math.isnan(table.loc["diag.solver", "aipw"])
    assert list(table.index[:6]) == [
        "estimator",
        "inference",
        "estimand",
        "estimate",
        "se",
        "ci_lower",
    ]

    same = ck.compare([a, a])
    assert list(same.columns) == ["naive/analytic [0]", "naive/analytic [1]"]
    named = ck.compare({"first": a, "second": b}, diagnostics=["ess"])
    assert list(named.columns) == ["first", "second"] and named.index[-1] == "diag.ess"
    assert not any(i.startswith("diag.") for i in named.index[:-1])
    with pytest.raises(TypeError, match="expected EffectResult or CellResult"):
        ck.compare([a.to_dict()])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="at least one result"):
        ck.compare([])


def test_results_compare_by_value():
    a = build_result("naive", _fit(3), _outcome(3, joint=True), truth=("ATE", float("nan")))
    b = build_result("naive", _fit(3), _outcome(3, joint=True), truth=("ATE", float("nan")))
    assert a == b and a is not b  # NaN equals NaN, arrays and mappings by value
    assert a != build_result("naive", _fit(3), _outcome(3), truth=("ATE", float("nan")))
    assert a != a.to_dict()
    cfg = validate(compose(["tracking=none", "estimator=itt", "mc.reps=6"]))
    assert cell_result(cfg, _table(1), 1.0) == cell_result(cfg, _table(1), 1.0)
    assert cell_result(cfg, _table(1), 1.0) != cell_result(cfg, _table(2), 1.0)
    with pytest.raises(TypeError):
        hash(a)
