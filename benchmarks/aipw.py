"""AIPW vs DoubleML ``DoubleMLIRM``: 150k rows x 10 covariates, 3 folds, logistic nuisances.

Both get the same folds (ours, passed to DoubleML by ``set_sample_splitting``) and the same
learners (our preprocessing pipeline around ``LogisticRegression``). Prints times, the ratio
and the estimates. Run: ``python benchmarks/aipw.py``.
"""

from __future__ import annotations

import time

import doubleml as dml
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from causalkit.contracts import Dataset, Roles
from causalkit_plugins.estimators.aipw.estimator import AIPW, AIPWParams
from causalkit_plugins.estimators.aipw.folds import stratified_folds
from causalkit_plugins.estimators.aipw.learners import LEARNERS, Recipe, make_pipeline


def main(n: int = 150_000, p: int = 10, n_jobs: int = 2) -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, p))
    d = rng.binomial(1, 1 / (1 + np.exp(-(X[:, 0] - 0.5 * X[:, 1] - 1))))
    y = rng.binomial(1, 1 / (1 + np.exp(-(X[:, 0] + 0.3 * d - 2))))
    cols = [f"x{j}" for j in range(p)]
    frame = pd.DataFrame(X, columns=cols).assign(d=d, y=y)
    frame["fold"] = stratified_folds(d.astype(bool), 3, np.random.default_rng(1))
    smpls = [
        (np.flatnonzero(frame["fold"] != k), np.flatnonzero(frame["fold"] == k)) for k in range(3)
    ]
    # the same preprocessing and learner, columns by position (DoubleML passes arrays)
    learner = make_pipeline(
        LogisticRegression(max_iter=1000), list(range(p)), [], Recipe(), LEARNERS["logit"]
    )

    data = dml.DoubleMLData(frame, "y", "d", cols)
    t0 = time.perf_counter()
    ref = dml.DoubleMLIRM(data, learner, learner, n_folds=3, draw_sample_splitting=False)
    ref.set_sample_splitting([smpls])
    ref.fit()
    t_ref = time.perf_counter() - t0

    est = AIPW(
        AIPWParams(
            propensity_model="logit",
            outcome_model="logit",
            n_jobs=n_jobs,
        )
    )
    roles = Roles(outcome="y", treatment="d", covariates=tuple(cols), fold="fold")
    t0 = time.perf_counter()
    fit = est.fit(Dataset(frame, roles), np.random.default_rng(2))
    t_ours = time.perf_counter() - t0
    print(f"DoubleMLIRM: {t_ref:.2f} s  estimate {ref.coef[0]:.12f}  se {ref.se[0]:.12f}")
    print(f"causalkit aipw (n_jobs={n_jobs}): {t_ours:.2f} s  estimate {fit.estimate:.12f}")
    print(
        f"ratio ours/DoubleML: {t_ours / t_ref:.2f}; relative difference {abs(fit.estimate / ref.coef[0] - 1):.1e}"
    )


if __name__ == "__main__":
    main()
