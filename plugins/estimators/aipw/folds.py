"""Cross-fitting folds: drawn from the run's Generator, stratified by treatment, or given."""

from __future__ import annotations

import numpy as np
import pandas as pd

from causalkit.errors import ConfigError, DataError

__all__ = ["cluster_folds", "stratified_folds", "folds_from_column", "fold_splits"]


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


def cluster_folds(codes: np.ndarray, d: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Fold id in ``0..k-1`` per row with every cluster in one fold (seeded GroupKFold).

    Clusters are split into strata by treatment (all treated, all control, mixed); within a
    stratum they are permuted with ``rng``, ordered by size (largest first, ties in the
    permuted order) and each is put in the fold holding the fewest rows of that stratum (ties:
    the fewest rows overall, then the lowest fold). So fold sizes are balanced within each
    arm as far as cluster sizes allow, and every fold gets a cluster when there are at least
    ``k``. ``k=1`` puts every row in fold 0.

    Parameters
    ----------
    codes : ndarray of int
        Cluster code ``0..G-1`` per row.
    d : ndarray of bool
        Treatment per row.
    k : int
        Number of folds.
    rng : Generator
        Draws the permutations.
    """
    out = np.zeros(codes.shape[0], dtype=np.int64)
    if k == 1:
        return out
    g = int(codes.max()) + 1
    if g < k:
        raise DataError("roles.cluster", f"at least folds={k} clusters", f"{g} clusters")
    size = np.bincount(codes, minlength=g)
    treated = np.bincount(codes, weights=d.astype(np.float64), minlength=g)
    stratum = np.where(treated == 0, 0, np.where(treated == size, 1, 2))
    fold_of = np.zeros(g, dtype=np.int64)
    total = np.zeros(k)
    for s in (0, 1, 2):
        ids = rng.permutation(np.flatnonzero(stratum == s))
        ids = ids[np.argsort(-size[ids], kind="stable")]
        load = np.zeros(k)
        for c in ids:
            f = int(np.lexsort((total, load))[0])
            fold_of[c] = f
            load[f] += size[c]
            total[f] += size[c]
    out[:] = fold_of[codes]
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
