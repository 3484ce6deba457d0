"""Helpers of the worlds on real covariates: packaged tables, dummy coding, standardising."""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files

import numpy as np
import pandas as pd

from causalkit.errors import DataError

__all__ = ["packaged_table", "numeric_covariates", "standardise", "free_name"]


@lru_cache(maxsize=16)
def _read(name: str) -> pd.DataFrame:
    with files("causalkit_plugins.dgps").joinpath("data").joinpath(name).open("rb") as fh:
        return pd.read_csv(fh, compression="gzip")


def packaged_table(name: str) -> pd.DataFrame:
    """Return a copy of the table ``name`` shipped in ``causalkit_plugins/dgps/data/`` (read once)."""
    return _read(name).copy()


def numeric_covariates(
    frame: pd.DataFrame, columns: tuple[str, ...], field: str
) -> tuple[pd.DataFrame, dict[str, tuple[str, ...]]]:
    """Numeric columns of ``frame[columns]``, text or categorical ones dummy-coded.

    A text or pandas ``Categorical`` column ``c`` becomes one 0/1 column ``c.<level>`` per level
    but the first (the lowest sorted value; a ``Categorical``'s first category), the treatment
    contrasts :mod:`causalkit.formulas` uses. Booleans become 0/1.

    Returns
    -------
    DataFrame
        The numeric design, float64, in the order of ``columns``.
    dict
        For every column of ``columns``, the design columns it became.

    Raises
    ------
    DataError
        One line naming ``field`` for a missing value, or a dummy name already a column.
    """
    out: dict[str, np.ndarray] = {}
    groups: dict[str, tuple[str, ...]] = {}
    for col in columns:
        values = frame[col]
        if values.isna().any():
            raise DataError(
                field, f"no missing values in {col!r}", f"{int(values.isna().sum())} missing"
            )
        dtype = values.dtype
        if isinstance(dtype, pd.CategoricalDtype) or not (
            pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)
        ):
            cat = values.astype("category")
            if not isinstance(dtype, pd.CategoricalDtype):
                cat = cat.cat.reorder_categories(sorted(cat.cat.categories))
            names = []
            for level in cat.cat.categories[1:]:
                name = f"{col}.{level}"
                if name in frame.columns or name in out:
                    raise DataError(field, f"a free name for a dummy of {col!r}", name)
                out[name] = (cat == level).to_numpy(dtype=np.float64)
                names.append(name)
            groups[col] = tuple(names)
        else:
            out[col] = values.to_numpy(dtype=np.float64)
            groups[col] = (col,)
    return pd.DataFrame(out, index=frame.index), groups


def standardise(x: np.ndarray, names: list[str], field: str) -> np.ndarray:
    """Columns of ``x`` centred and divided by their SD (ddof 0); a constant column is an error."""
    sd = x.std(axis=0)
    flat = [n for n, s in zip(names, sd, strict=True) if not s > 0]
    if flat:
        raise DataError(field, "covariates that vary", f"{flat[0]!r} is constant")
    return (x - x.mean(axis=0)) / sd


def free_name(name: str, taken: set[str]) -> str:
    """``name``, or ``name`` with leading underscores added until it is not in ``taken``."""
    while name in taken:
        name = "_" + name
    return name
