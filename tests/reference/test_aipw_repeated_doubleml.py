"""Repeated cross-fitting (``n_rep``) vs DoubleML 0.11 ``DoubleMLIRM(n_rep=...)`` on the 401(k) data.

Our repetitions draw their folds from the run's Generator; DoubleML is given the same splits
(``draw_sample_splitting=False`` and ``set_sample_splitting`` with one list of folds per
repetition) and the same learners, as in ``test_aipw_doubleml.py``. DoubleML aggregates
the coefficient as the median over repetitions and the SE as
``(median(theta_r + 1.96 se_r) - median(theta_r)) / 1.96``. Tolerance: 1e-8 relative.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from causalkit.contracts import Dataset, Roles
from causalkit_plugins.estimators.aipw.estimator import AIPW, AIPWParams
from causalkit_plugins.inference.basic import Analytic
from causalkit_plugins.inference.multiplier import MultiplierBootstrap

dml = pytest.importorskip("doubleml")
from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

pytestmark = pytest.mark.reference

DATA = Path(__file__).resolve().parents[1] / "data" / "sipp1991.csv.gz"
X = ["age", "inc", "educ", "fsize", "marr", "twoearn", "db", "pira", "hown"]
ROLES = Roles(outcome="net_tfa", treatment="e401", covariates=tuple(X))
RTOL = 1e-8
N_REP = 3


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return pd.read_csv(DATA)


def _params(estimand: str, n_rep: int = N_REP) -> AIPWParams:
    return AIPWParams(estimand=estimand, outcome_model="linear", n_rep=n_rep)


def _doubleml(df: pd.DataFrame, score: str, folds: list[np.ndarray]):
    splits = [
        [(np.flatnonzero(f != k), np.flatnonzero(f == k)) for k in range(int(f.max()) + 1)]
        for f in folds
    ]
    model = dml.DoubleMLIRM(
        dml.DoubleMLData(df, "net_tfa", "e401", X),
        LinearRegression(),
        make_pipeline(StandardScaler(), LogisticRegression()),
        score=score,
        ps_processor_config=dml.utils.PSProcessorConfig(clipping_threshold=0.01),
        draw_sample_splitting=False,
    )
    model.set_sample_splitting(splits)
    return model.fit()


@pytest.mark.parametrize("estimand,score", [("ate", "ATE"), ("att", "ATTE")])
def test_repeated_crossfitting_matches_doubleml_n_rep(frame, estimand, score):
    data = Dataset(frame, ROLES)
    reps = AIPW(_params(estimand)).repetitions(data, np.random.default_rng(4))
    folds = [cf.nuisances.folds for cf in reps]
    assert len({f.tobytes() for f in folds}) == N_REP  # distinct splits
    fit = AIPW(_params(estimand)).fit(data, np.random.default_rng(4))
    ref = _doubleml(frame, score, folds)
    assert ref.n_rep == N_REP and fit.diagnostics["n_rep"] == N_REP
    np.testing.assert_allclose(fit.tables["repetitions"]["estimate"], ref.all_coef[0], rtol=RTOL)
    np.testing.assert_allclose(fit.tables["repetitions"]["se"], ref.all_se[0], rtol=RTOL)
    np.testing.assert_allclose(fit.estimate, ref.coef[0], rtol=RTOL)
    se = Analytic().infer(fit, np.random.default_rng(0)).se
    np.testing.assert_allclose(se[0], ref.se[0], rtol=RTOL)
    print(f"{score}: coef {abs(fit.estimate / ref.coef[0] - 1):.1e}, "
          f"se {abs(se[0] / ref.se[0] - 1):.1e} relative to DoubleML")  # fmt: skip


def test_one_repetition_is_the_single_split_fit(frame):
    data = Dataset(frame, ROLES)
    one = AIPW(_params("ate", 1)).fit(data, np.random.default_rng(4))
    rep = AIPW(_params("ate", 1)).repetitions(data, np.random.default_rng(4))[0]
    assert one.estimate == rep.estimate and "n_rep" not in one.diagnostics
    assert AIPWParams(n_rep=1).model_dump() == AIPWParams().model_dump()
    assert "n_rep" not in AIPWParams().model_dump()


def test_multiplier_uses_the_aggregated_variance(frame):
    fit = AIPW(_params("ate")).fit(Dataset(frame, ROLES), np.random.default_rng(4))
    analytic = Analytic().infer(fit, np.random.default_rng(0)).se[0]
    multiplier = MultiplierBootstrap().infer(fit, np.random.default_rng(0)).se[0]
    np.testing.assert_allclose(multiplier, analytic, rtol=0.1)


def _fold_columns(
    smpls: list[list[tuple[np.ndarray, np.ndarray]]], n: int
) -> dict[str, np.ndarray]:
    """DoubleML's ``smpls`` (per repetition, per fold a (train, test) pair) as fold-id columns."""
    out = {}
    for r, folds in enumerate(smpls):
        col = np.full(n, -1)
        for k, (_, test) in enumerate(folds):
            col[test] = k
        assert (col >= 0).all()
        out[f"fold_rep{r}"] = col
    return out


@pytest.mark.parametrize("estimand,score", [("ate", "ATE"), ("att", "ATTE")])
def test_fold_columns_reproduce_doubleml_smpls(frame, estimand, score):
    """DoubleML's own splits (``model.smpls``, unstratified) given as one fold column per repetition.

    The splits are drawn from a Generator independent of ours and set on DoubleML; its
    ``smpls`` become the columns of the ``fold`` role. Tolerance 1e-8 relative (as above).
    """
    rng = np.random.default_rng(8)
    draws = [rng.permutation(len(frame)) % 5 for _ in range(N_REP)]
    ref = _doubleml(frame, score, draws)
    cols = _fold_columns(ref.smpls, len(frame))
    roles = ROLES.model_copy(update={"fold": tuple(cols)})
    fit = AIPW(_params(estimand)).fit(
        Dataset(frame.assign(**cols), roles), np.random.default_rng(0)
    )
    np.testing.assert_allclose(fit.tables["repetitions"]["estimate"], ref.all_coef[0], rtol=RTOL)
    np.testing.assert_allclose(fit.estimate, ref.coef[0], rtol=RTOL)
    se = Analytic().infer(fit, np.random.default_rng(0)).se
    np.testing.assert_allclose(se[0], ref.se[0], rtol=RTOL)
    print(f"{score} (fold columns): coef {abs(fit.estimate / ref.coef[0] - 1):.1e}, "
          f"se {abs(se[0] / ref.se[0] - 1):.1e} relative to DoubleML")  # fmt: skip
