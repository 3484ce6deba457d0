"""A whitelist of named scikit-learn nuisance learners and the covariate preprocessing recipe.

Configs name learners (``"logit"``, ``"gbm"``, ...) and pass plain parameters; nothing in a
config can import a callable. Parameters are checked against the learner's ``get_params()``
keys before anything is fitted.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from causalkit.errors import ConfigError

if TYPE_CHECKING:
    from sklearn.base import BaseEstimator
    from sklearn.pipeline import Pipeline

__all__ = [
    "LearnerSpec",
    "LEARNERS",
    "PROPENSITY_LEARNERS",
    "OUTCOME_LEARNERS",
    "ParamValue",
    "Recipe",
    "check_learner_params",
    "check_sample_weight",
    "tasks",
    "make_learner",
    "make_pipeline",
    "split_columns",
]

ParamValue = float | int | str | bool | None


def _dense(X: object) -> np.ndarray:
    toarray = getattr(X, "toarray", None)
    return np.asarray(toarray() if toarray is not None else X, dtype=np.float64)


Kind = Literal["classifier", "regressor"]
Link = Literal["identity", "logit", "probit", "none"]


@dataclass(frozen=True)
class LearnerSpec:
    """One whitelisted learner: a factory per task and, for parametric ones, its link.

    ``link`` is ``"identity"``/``"logit"``/``"probit"`` for unpenalised GLMs (which the
    stacked estimating-equation SE supports) and ``"none"`` otherwise. ``flexible`` marks the
    learners that are not a fixed-dimension parametric (possibly L2-penalised) GLM: lasso
    (data-driven selection), gradient boosting and random forests. Fitted and evaluated on
    the same rows (``folds=1``) they overfit, the AIPW score's residuals shrink, and the
    influence-function SE is too small (Chernozhukov et al. 2018, section 3): they need
    cross-fitting.
    """

    classifier: Callable[[], BaseEstimator] | None
    regressor: Callable[[], BaseEstimator] | None
    link: Link = "none"
    flexible: bool = False
    seeded: bool = False  # takes a random_state
    sparse: bool = False  # accepts a sparse design (one-hot blocks stay sparse)


def _lazy(path: str, **kwargs: Any) -> Callable[[], BaseEstimator]:
    """A factory of ``module:Class(**kwargs)`` that imports the module (scikit-learn) when called."""
    module, name = path.split(":")

    def make() -> BaseEstimator:
        return getattr(importlib.import_module(module), name)(**kwargs)

    return make


_LINEAR = "sklearn.linear_model"
_ENSEMBLE = "sklearn.ensemble"
LEARNERS: Mapping[str, LearnerSpec] = {
    "logit": LearnerSpec(_lazy(f"{_LINEAR}:LogisticRegression", max_iter=1000), None, sparse=True),
    "logit_unpenalized": LearnerSpec(
        _lazy(
            f"{_LINEAR}:LogisticRegression",
            penalty=None,
            solver="newton-cholesky",
            tol=1e-10,
            max_iter=200,
        ),
        None,
        "logit",
    ),
    "probit": LearnerSpec(
        _lazy("causalkit_plugins.estimators.aipw.probit_learner:ProbitClassifier"), None, "probit"
    ),
    "linear": LearnerSpec(None, _lazy(f"{_LINEAR}:LinearRegression"), "identity"),
    "ridge": LearnerSpec(None, _lazy(f"{_LINEAR}:Ridge"), sparse=True),
    "lasso": LearnerSpec(
        None, _lazy(f"{_LINEAR}:Lasso", max_iter=5000), sparse=True, flexible=True
    ),
    "gbm": LearnerSpec(
        _lazy(f"{_ENSEMBLE}:HistGradientBoostingClassifier"),
        _lazy(f"{_ENSEMBLE}:HistGradientBoostingRegressor"),
        seeded=True,
        flexible=True,
    ),
    "random_forest": LearnerSpec(
        _lazy(f"{_ENSEMBLE}:RandomForestClassifier", n_estimators=200, min_samples_leaf=5),
        _lazy(f"{_ENSEMBLE}:RandomForestRegressor", n_estimators=200, min_samples_leaf=5),
        seeded=True,
        flexible=True,
    ),
}
PROPENSITY_LEARNERS = tuple(k for k, v in LEARNERS.items() if v.classifier is not None)
OUTCOME_LEARNERS = tuple(LEARNERS)


def _factory(name: str, kind: Kind, field: str) -> tuple[Callable[[], BaseEstimator], LearnerSpec]:
    spec = LEARNERS.get(name)
    model_field = field.replace("_params", "_model")
    if spec is None:
        raise ConfigError(model_field, f"one of {', '.join(LEARNERS)}", name)
    factory = spec.classifier if kind == "classifier" else spec.regressor
    if factory is None:
        allowed = [n for n, _ in tasks_of(kind)]
        task = "a binary target" if kind == "classifier" else "a continuous outcome"
        raise ConfigError(model_field, f"a learner for {task} ({', '.join(allowed)})", name)
    return factory, spec


def tasks(name: str) -> list[tuple[str, Kind]]:
    """``(name, kind)`` for every task the whitelisted learner ``name`` serves."""
    spec = LEARNERS[name]
    pairs: list[tuple[str, Kind]] = [(name, "classifier"), (name, "regressor")]
    return [(n, k) for n, k in pairs if (spec.classifier if k == "classifier" else spec.regressor)]


def check_learner_params(
    learners: Sequence[tuple[str, Kind]], params: Mapping[str, ParamValue], field: str
) -> None:
    """Fail with a one-line :class:`ConfigError` on a key that none of ``learners`` takes.

    ``learners`` are ``(name, kind)`` pairs: the parameter model passes every learner and task
    a choice may resolve to (before any work), :func:`make_learner` the one it builds.
    """
    factories = [_factory(name, kind, field)[0] for name, kind in learners]
    if not params:  # nothing to check: the learners (and scikit-learn) stay unbuilt
        return
    keys: set[str] = set()
    for factory in factories:
        keys |= set(factory().get_params(deep=False))
    unknown = sorted(set(params) - keys)
    if unknown:
        names = " or ".join(dict.fromkeys(name for name, _ in learners))
        raise ConfigError(
            f"{field}.{unknown[0]}",
            f"a parameter of {names} ({', '.join(sorted(keys))})",
            unknown[0],
        )


def check_sample_weight(name: str, kind: Kind, field: str) -> None:
    """Fail with a one-line :class:`ConfigError` when learner ``name`` takes no ``sample_weight``.

    ``field`` is the model's config path (``"estimator.propensity_model"``); the message lists
    the learners for ``kind`` that do take sampling weights.
    """
    from sklearn.utils.validation import has_fit_parameter

    factory, _ = _factory(name, kind, field)
    if has_fit_parameter(factory(), "sample_weight"):
        return
    ok = [
        n
        for n, k in tasks_of(kind)
        if has_fit_parameter(_factory(n, k, field)[0](), "sample_weight")
    ]
    raise ConfigError(
        field, f"a learner that takes sample_weight with roles.weight ({', '.join(ok)})", name
    )


def tasks_of(kind: Kind) -> list[tuple[str, Kind]]:
    """``(name, kind)`` for every whitelisted learner serving ``kind``."""
    return [
        (n, kind)
        for n, v in LEARNERS.items()
        if (v.classifier if kind == "classifier" else v.regressor)
    ]


def make_learner(
    name: str, kind: Kind, params: Mapping[str, ParamValue], field: str, seed: int
) -> tuple[BaseEstimator, LearnerSpec]:
    """Build the whitelisted learner ``name`` for ``kind`` with ``params`` validated.

    Parameters
    ----------
    name : str
        A key of :data:`LEARNERS`.
    kind : {"classifier", "regressor"}
        Task: propensity and binary outcomes use classifiers, continuous outcomes regressors.
    params : mapping
        Learner parameters; every key must be one of the learner's ``get_params()`` keys.
    field : str
        Config path shown in errors, e.g. ``"estimator.propensity_params"``.
    seed : int
        Integer ``random_state`` for randomised learners (derived from the run's Generator).
    """
    factory, spec = _factory(name, kind, field)
    check_learner_params([(name, kind)], params, field)
    learner = factory()
    fixed: dict[str, ParamValue] = dict(params)
    if spec.seeded and "random_state" not in fixed:
        fixed["random_state"] = seed
    try:
        learner.set_params(**fixed)
    except (TypeError, ValueError) as exc:
        raise ConfigError(field, f"valid parameters for {name}", f"{fixed} ({exc})") from None
    return learner, spec


@dataclass(frozen=True)
class Recipe:
    """Covariate preprocessing: median/mode imputation, scaling, one-hot with rare levels grouped.

    Imputation (fitted on the training fold) only ever meets missing values when the user
    asked for it (``estimator.impute=median``): otherwise the core input check
    (:mod:`causalkit.inputs`) refuses missing covariates before the fit, and counts and
    reports them when imputation was asked for.

    Attributes
    ----------
    scale : bool
        Standardise numeric columns (fitted on the training fold only).
    rare_min_count : int
        Levels seen fewer times in the training fold are grouped into one "infrequent" level;
        unseen levels at prediction time go there too.
    """

    scale: bool = True
    rare_min_count: int = 50


def split_columns(
    frame: pd.DataFrame, columns: Sequence[str], categorical: Sequence[str]
) -> tuple[list[str], list[str]]:
    """Numeric and categorical columns: non-numeric dtypes and ``categorical`` are categorical."""
    cat = [
        c
        for c in columns
        if c in categorical or not pd.api.types.is_numeric_dtype(frame[c]) or frame[c].dtype == bool
    ]
    num = [c for c in columns if c not in cat]
    return num, cat


def make_pipeline(
    learner: BaseEstimator,
    numeric: Sequence[str],
    categorical: Sequence[str],
    recipe: Recipe,
    spec: LearnerSpec,
) -> Pipeline:
    """A fresh ``Pipeline(preprocess, model)`` for the given columns and recipe.

    Unpenalised GLMs (``spec.link`` set) drop the first level of each one-hot block to keep
    a full-rank design with their intercept; learners that accept sparse input get the
    design as a sparse matrix when it has one-hot blocks.
    """
    from sklearn.base import clone
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    drop_first = spec.link != "none"
    steps: list[tuple[str, object]] = [("impute", SimpleImputer(strategy="median"))]
    if recipe.scale:
        steps.append(("scale", StandardScaler()))
    parts: list[tuple[str, object, list[str]]] = []
    if numeric:
        parts.append(("num", Pipeline(steps), list(numeric)))
    if categorical:
        onehot = OneHotEncoder(
            handle_unknown="infrequent_if_exist",
            min_frequency=recipe.rare_min_count,
            sparse_output=spec.sparse,
            dtype=np.float64,
            drop="first" if drop_first else None,
        )
        parts.append(
            (
                "cat",
                Pipeline([("impute", SimpleImputer(strategy="most_frequent")), ("onehot", onehot)]),
                list(categorical),
            )
        )
    pre = ColumnTransformer(parts, sparse_threshold=1.0 if spec.sparse else 0.0)
    return Pipeline([("preprocess", pre), ("model", clone(learner))])
