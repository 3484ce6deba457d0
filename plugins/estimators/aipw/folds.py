"""Cross-fitting folds: drawn from the run's Generator, stratified by treatment, or given."""

from __future__ import annotations

import numpy as np
import pandas as pd

from causalkit.errors import ConfigError, DataError

__all__ = ["stratified_folds", "folds_from_column", "fold_splits"]


def stratified_folds(d: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Fold id in ``0..k-1`` per row, balanced within the treated and within the controls.

    Each arm is randomly permuted with ``rng`` and dealt round-robin into the ``k`` folds, so
    fold sizes within an arm differ by at most one. ``k=1`` puts every row in fold 0 (no
    cross-fitting: nuisances are fitted and predicted on all rows).
    """
    n = d.shape[0]
    out = np.zeros(n, dtype=np.int64)
    if k == 1:
        return out
    for arm in (False, True):
        idx = np.flatnonzero(d == arm)
        if idx.size < k:
            raise DataError(
                "roles.treatment",
                f"at least folds={k} rows in each arm",
                f"{idx.size} with treatment={int(arm)}",
            )
        perm = rng.permutation(idx)
        out[perm] = np.arange(idx.size) % k
    return out


def folds_from_column(values: pd.Series, field: str) -> np.ndarray:
    """Fold ids ``0..k-1`` from a column of given fold labels (any hashable labels, sorted)."""
    if values.isna().any():
        raise DataError(
            field,
            "no missing fold labels",
            f"{int(values.isna().sum())} missing in {values.name!r}",
        )
    codes, labels = pd.factorize(values, sort=True)
    if len(labels) < 1:
        raise DataError(field, "at least one fold", "none")
    return codes.astype(np.int64)


def fold_splits(folds: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train, test)`` index pairs, one per fold; with a single fold both are all rows."""
    k = int(folds.max()) + 1
    if k == 1:
        all_rows = np.arange(folds.shape[0])
        return [(all_rows, all_rows)]
    out = []
    for f in range(k):
        test = np.flatnonzero(folds == f)
        if test.size == 0:
            raise ConfigError(
                "roles.fold", "fold labels with rows in every fold", f"empty fold {f}"
            )
        out.append((np.flatnonzero(folds != f), test))
    return out
