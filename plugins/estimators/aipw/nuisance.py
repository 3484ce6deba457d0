"""Cross-fitted nuisance predictions: propensity and arm-specific outcome regressions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from causalkit_plugins.estimators.aipw.folds import fold_splits
from causalkit_plugins.estimators.aipw.learners import (
    ParamValue,
    Recipe,
    make_learner,
    make_pipeline,
    split_columns,
)

if TYPE_CHECKING:
    from sklearn.base import BaseEstimator
    from sklearn.pipeline import Pipeline

__all__ = ["NuisanceSpec", "Nuisances", "crossfit_nuisances"]

_TREAT = "__treatment__"


@dataclass(frozen=True)
class NuisanceSpec:
    """What to fit: learners, their parameters, covariates and the outcome design."""

    propensity_model: str
    outcome_model: str
    propensity_params: Mapping[str, ParamValue]
    outcome_params: Mapping[str, ParamValue]
    outcome_covariates: tuple[str, ...]
    propensity_covariates: tuple[str, ...]
    categorical: tuple[str, ...]
    recipe: Recipe
    outcome_design: Literal["separate", "pooled"]
    binary_outcome: bool
    n_jobs: int = 1


@dataclass(frozen=True)
class Nuisances:
    """Out-of-fold predictions (rows in data order) and per-fold fitted pipelines.

    ``pipelines[k]`` maps ``"m"``, ``"g0"``, ``"g1"`` (or ``"g"`` for the pooled design) to
    the pipeline fitted without fold ``k``.
    """

    m: np.ndarray
    g0: np.ndarray
    g1: np.ndarray
    folds: np.ndarray
    metrics: pd.DataFrame
    pipelines: list[dict[str, Pipeline]] = field(default_factory=list)


def _predict(pipe: Pipeline, X: pd.DataFrame, classifier: bool) -> np.ndarray:
    if classifier:
        return pipe.predict_proba(X)[:, 1]
    return np.asarray(pipe.predict(X), dtype=np.float64)


def _fit_predict(
    pipe: Pipeline,
    X_train: pd.DataFrame,
    y_train: np.ndarray,
    X_tests: Sequence[pd.DataFrame],
    classifier: bool,
    sample_weight: np.ndarray | None = None,
) -> tuple[Pipeline, list[np.ndarray]]:
    pipe.fit(
        X_train,
        y_train,
        **({} if sample_weight is None else {"model__sample_weight": sample_weight}),
    )
    return pipe, [_predict(pipe, X, classifier) for X in X_tests]


def _binary_metrics(target: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    if np.unique(target).size < 2:
        return {
            "auc": np.nan,
            "average_precision": np.nan,
            "brier": float(brier_score_loss(target, pred)),
        }
    return {
        "auc": float(roc_auc_score(target, pred)),
        "average_precision": float(average_precision_score(target, pred)),
        "brier": float(brier_score_loss(target, pred)),
    }


def crossfit_nuisances(
    frame: pd.DataFrame,
    y: np.ndarray,
    d: np.ndarray,
    folds: np.ndarray,
    spec: NuisanceSpec,
    seeds: np.ndarray,
    weights: np.ndarray | None = None,
) -> Nuisances:
    r"""Fit the nuisances on each fold's complement and predict on the fold.

    Parameters
    ----------
    frame : DataFrame
        Covariates (any dtypes; preprocessing happens inside each fold's pipeline).
    y, d : ndarray
        Outcome and 0/1 treatment (floats).
    folds : ndarray of int
        Fold id per row; a single fold means no cross-fitting.
    spec : NuisanceSpec
        Learners and covariates.
    seeds : ndarray of int
        One integer ``random_state`` per fitted learner (3 per fold), drawn from the run's Generator.
    weights : ndarray, optional
        Sampling weights :math:`s_i`: every learner is fitted with ``sample_weight`` (its
        training rows' :math:`s_i`), so it estimates the weighted population's
        :math:`m(x)` or :math:`g_d(x)`. The preprocessing (imputation, scaling, grouping of
        rare levels) stays unweighted: a fixed transformation of the covariates learned from
        the training rows. The caller checks that the learners take ``sample_weight``.

    Notes
    -----
    ``separate`` (DoubleML's IRM, Stata's ``teffects``): :math:`\hat g_1` is fitted on the
    treated and :math:`\hat g_0` on the controls of the training folds. ``pooled`` (the
    design document): one outcome model with the treatment as a feature, predicted at
    :math:`d=1` and :math:`d=0`.
    """
    from joblib import Parallel, delayed
    from sklearn.metrics import r2_score

    n = y.shape[0]
    splits = fold_splits(folds)
    y_kind = "classifier" if spec.binary_outcome else "regressor"
    p_learner, p_spec = make_learner(
        spec.propensity_model,
        "classifier",
        spec.propensity_params,
        "estimator.propensity_params",
        0,
    )
    pnum, pcat = split_columns(frame, spec.propensity_covariates, spec.categorical)
    onum, ocat = split_columns(frame, spec.outcome_covariates, spec.categorical)
    Xp = frame[list(spec.propensity_covariates)]
    Xo = frame[list(spec.outcome_covariates)]
    if spec.outcome_design == "pooled":
        Xo = Xo.assign(**{_TREAT: d})
        onum = [*onum, _TREAT]

    tasks = []
    keys: list[tuple[int, str]] = []
    for k, (train, test) in enumerate(splits):
        s = iter(seeds[3 * k : 3 * k + 3].tolist())
        p_learner = make_learner(
            spec.propensity_model,
            "classifier",
            spec.propensity_params,
            "estimator.propensity_params",
            next(s),
        )[0]
        tasks.append(
            delayed(_fit_predict)(
                make_pipeline(p_learner, pnum, pcat, spec.recipe, p_spec),
                Xp.iloc[train],
                d[train],
                [Xp.iloc[test]],
                True,
                None if weights is None else weights[train],
            )
        )
        keys.append((k, "m"))
        o_learner, o_spec = make_learner(
            spec.outcome_model, y_kind, spec.outcome_params, "estimator.outcome_params", next(s)
        )
        if spec.outcome_design == "pooled":
            X1 = Xo.iloc[test].assign(**{_TREAT: 1.0})
            X0 = Xo.iloc[test].assign(**{_TREAT: 0.0})
            tasks.append(
                delayed(_fit_predict)(
                    make_pipeline(o_learner, onum, ocat, spec.recipe, o_spec),
                    Xo.iloc[train],
                    y[train],
                    [X0, X1],
                    spec.binary_outcome,
                    None if weights is None else weights[train],
                )
            )
            keys.append((k, "g"))
            continue
        for arm, name in ((0.0, "g0"), (1.0, "g1")):
            rows = train[d[train] == arm]
            learner: BaseEstimator = (
                o_learner
                if arm == 0.0
                else make_learner(
                    spec.outcome_model,
                    y_kind,
                    spec.outcome_params,
                    "estimator.outcome_params",
                    next(s),
                )[0]
            )
            tasks.append(
                delayed(_fit_predict)(
                    make_pipeline(learner, onum, ocat, spec.recipe, o_spec),
                    Xo.iloc[rows],
                    y[rows],
                    [Xo.iloc[test]],
                    spec.binary_outcome,
                    None if weights is None else weights[rows],
                )
            )
            keys.append((k, name))
    results = (
        Parallel(n_jobs=spec.n_jobs, prefer="threads")(tasks)
        if spec.n_jobs != 1
        else [t[0](*t[1], **t[2]) for t in tasks]
    )

    m = np.empty(n)
    g0 = np.empty(n)
    g1 = np.empty(n)
    pipelines: list[dict[str, Pipeline]] = [{} for _ in splits]
    for (k, name), (pipe, preds) in zip(keys, results, strict=True):
        test = splits[k][1]
        pipelines[k][name] = pipe
        if name == "m":
            m[test] = preds[0]
        elif name == "g":
            g0[test], g1[test] = preds
        elif name == "g0":
            g0[test] = preds[0]
        else:
            g1[test] = preds[0]

    rows = []
    for k, (_, test) in enumerate(splits):
        dt, yt = d[test], y[test]
        g_obs = np.where(dt == 1, g1[test], g0[test])
        rows.append(
            {
                "fold": k + 1,
                "model": "propensity",
                "n": int(test.size),
                **_binary_metrics(dt, m[test]),
            }
        )
        if spec.binary_outcome:
            rows.append(
                {
                    "fold": k + 1,
                    "model": "outcome",
                    "n": int(test.size),
                    **_binary_metrics(yt, g_obs),
                }
            )
        else:
            rows.append(
                {
                    "fold": k + 1,
                    "model": "outcome",
                    "n": int(test.size),
                    "r2": float(r2_score(yt, g_obs)),
                    "rmse": float(np.sqrt(np.mean((yt - g_obs) ** 2))),
                }
            )
    return Nuisances(m, g0, g1, folds, pd.DataFrame(rows), pipelines)
