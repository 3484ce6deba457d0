"""AIPW vs DoubleML 0.11 ``DoubleMLIRM`` on the 401(k) data (SIPP 1991), same folds and learners.

Reference: DoubleML (Bach et al. 2022, JMLR 23(53)) run side by side in this process with the
folds passed through ``set_sample_splitting``. Tolerance: 1e-8 relative (observed ~1e-12).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from causalkit.contracts import Dataset, Roles
from causalkit_plugins.estimators.aipw.estimator import AIPW, AIPWParams
from causalkit_plugins.estimators.aipw.folds import stratified_folds
from causalkit_plugins.inference.basic import Analytic, AnalyticParams

dml = pytest.importorskip("doubleml")
from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

pytestmark = pytest.mark.reference

DATA = Path(__file__).resolve().parents[1] / "data" / "sipp1991.csv.gz"
X = ["age", "inc", "educ", "fsize", "marr", "twoearn", "db", "pira", "hown"]
RTOL = 1e-8


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    df = pd.read_csv(DATA)
    df["fold"] = stratified_folds(df["e401"].to_numpy().astype(bool), 5, np.random.default_rng(11))
    df["income_group"] = pd.cut(
        df["inc"], [-np.inf, 20_000, 40_000, np.inf], labels=["low", "mid", "high"]
    )
    return df


def _doubleml(df: pd.DataFrame, score: str, normalize: bool, clip: float):
    smpls = [(np.flatnonzero(df["fold"] != k), np.flatnonzero(df["fold"] == k)) for k in range(5)]
    data = dml.DoubleMLData(df, "net_tfa", "e401", X)
    model = dml.DoubleMLIRM(
        data,
        LinearRegression(),
        make_pipeline(StandardScaler(), LogisticRegression()),
        score=score,
        normalize_ipw=normalize,
        ps_processor_config=dml.utils.PSProcessorConfig(clipping_threshold=clip),
        draw_sample_splitting=False,
    )
    model.set_sample_splitting([smpls])
    return model.fit()


def _ours(df: pd.DataFrame, estimand: str, normalize: bool, clip: float, segments=(), **extra):
    params = AIPWParams(
        estimand=estimand,
        propensity_model="logit",
        outcome_model="linear",
        scale=True,
        normalize=normalize,
        clip=clip,
        **extra,
    )
    roles = Roles(
        outcome="net_tfa", treatment="e401", covariates=tuple(X), fold="fold", segments=segments
    )
    return AIPW(params).fit(Dataset(df, roles), np.random.default_rng(0))


@pytest.mark.parametrize("estimand,score", [("ate", "ATE"), ("att", "ATTE")])
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("clip", [0.01, 0.1])
def test_effect_and_se_match_doubleml(frame, estimand, score, normalize, clip):
    ref = _doubleml(frame, score, normalize, clip)
    fit = _ours(frame, estimand, normalize, clip)
    se = Analytic().infer(fit, np.random.default_rng(0)).se
    assert fit.k == 1
    np.testing.assert_allclose(fit.estimate, ref.coef[0], rtol=RTOL)
    np.testing.assert_allclose(se[0], ref.se[0], rtol=RTOL)


def test_group_effects_match_doubleml_gate(frame):
    """Segment effects and their SEs through the inference plugin over the whole vector."""
    ref = _doubleml(frame, "ATE", False, 0.01)
    gate = ref.gate(pd.DataFrame({"g": frame["income_group"].astype(str)}))
    fit = _ours(frame, "ate", False, 0.01, segments=("income_group",), min_segment_rows=1)
    out = Analytic(AnalyticParams(joint=True)).infer(fit, np.random.default_rng(0))
    assert fit.names[0] == "ATE" and out.joint
    np.testing.assert_allclose(fit.estimates[0], ref.coef[0], rtol=RTOL)
    np.testing.assert_allclose(out.se[0], ref.se[0], rtol=RTOL)
    position = {name: j for j, name in enumerate(fit.names)}
    blp = gate.blp_model[0] if isinstance(gate.blp_model, list) else gate.blp_model
    for name, coef, bse in zip(
        blp.params.index, blp.params.to_numpy(), blp.bse.to_numpy(), strict=True
    ):
        j = position[f"segment[income_group={name.removeprefix('Group_')}]"]
        np.testing.assert_allclose(fit.estimates[j], coef, rtol=RTOL)
        np.testing.assert_allclose(out.se[j], bse, rtol=RTOL)
