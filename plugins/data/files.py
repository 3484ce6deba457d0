"""CSV and parquet data sources: a user's own table plus the roles of its columns.

``parquet_units`` reduces a parquet long panel to one row per unit while reading, or, with
``lazy=true``, reads nothing and hands on a :class:`~causalkit.contracts.LazySource` for
estimators that stream the file themselves (``estimator=microsynth`` with
``estimator.backend=columnar|spark``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from causalkit.contracts import Dataset, LazySource, Params, Roles
from causalkit.errors import DataError
from causalkit.formulas import formula_variables
from causalkit.redact import read_error

__all__ = ["CsvSource", "ParquetSource", "FileParams", "ParquetUnitsSource", "ParquetUnitsParams"]


class FileParams(Params):
    """Where the table is and which column plays which role."""

    path: str | None = Field(None, description="file to read")
    roles: Roles = Field(default_factory=Roles)
    columns: tuple[str, ...] = Field(
        (), description="further columns to read besides the role columns"
    )

    def seed_dump(self) -> dict[str, Any]:
        """The parameters that seed a cell: ``path`` by its file (or folder) name alone.

        A copy of the data in another folder, or a fresh checkout elsewhere, draws the same
        folds, resamples and permutations (:attr:`causalkit.config.RunConfig.seed_hash`);
        what the file holds is in the cell's identity (:mod:`causalkit.identity`).
        """
        out = super().seed_dump()
        if self.path is not None:
            out["path"] = Path(self.path).name
        return out


def _wanted(params: FileParams) -> list[str]:
    return list(dict.fromkeys([*params.roles.columns(), *params.columns]))


def check_columns(available: list[str], wanted: list[str], roles: Roles, path: str) -> None:
    """Fail with one line when a wanted column is not in the file.

    A column a covariate formula reads is reported with the role and the formula.

    The file's header is never quoted (any file can be named as data: its first line may be
    a secret); the line names the file, how many columns it has and the names not found.
    """
    for role in Roles.formula_roles:
        formula = getattr(roles, role)
        if isinstance(formula, str):
            absent = [c for c in formula_variables(formula) if c not in available]
            if absent:
                raise DataError(
                    f"data.roles.{role}",
                    f"the columns of the formula {formula!r} in the header of {path} "
                    f"({len(available)} there, not shown)",
                    ", ".join(absent),
                )
    missing = [c for c in wanted if c not in available]
    if not missing:
        return
    shown = f"{path} ({len(available)} there, not shown)"
    for role in type(roles).model_fields:
        value = getattr(roles, role)
        names = value if isinstance(value, tuple) else (value,)
        absent = [c for c in names if isinstance(c, str) and c in missing]
        if absent:
            what = "columns" if isinstance(value, tuple) else "a column"
            raise DataError(f"data.roles.{role}", f"{what} of {shown}", ", ".join(absent))
    raise DataError("data.columns", f"columns of {shown}", ", ".join(missing))


def _unreadable(path: Path, expected: str, exc: BaseException) -> DataError:
    """One line naming the file and why it could not be read, never what it holds."""
    return DataError("data.path", expected, f"{path} ({read_error(exc)})")


_EXCEL_SUFFIXES = frozenset({".xlsx", ".xlsm", ".xlsb", ".xls"})
_EXCEL_MAGIC = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")
"""Zip (``.xlsx``, ``.xlsm``) and OLE2 (``.xls``) signatures."""


def _head(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(8)
    except OSError:
        return b""


def _check_not_excel(path: Path, expected: str) -> None:
    """Refuse, in one line, an Excel workbook given where ``expected`` is wanted.

    By suffix, or by the zip/OLE2 signature of a file not named ``.zip`` (pandas reads a
    zipped CSV by that suffix). The line says to save the workbook as CSV or parquet.
    """
    suffix = path.suffix.lower()
    if suffix in _EXCEL_SUFFIXES or (suffix != ".zip" and _head(path).startswith(_EXCEL_MAGIC)):
        raise DataError(
            "data.path",
            f"{expected} (save the workbook as CSV or parquet in Excel, then point data.path at it)",
            f"{path}, which looks like an Excel workbook",
        )


def _parquet_names(path: Path) -> list[str]:
    import pyarrow.dataset as ds

    if path.is_file():
        _check_not_excel(path, "a parquet file")
        if _head(path)[:4] not in (b"PAR1", b"PARE"):  # PARE: an encrypted footer
            raise DataError(
                "data.path",
                "a parquet file (it starts with PAR1; a CSV file is read with data=csv)",
                f"{path}, which is not parquet",
            )

    try:
        return [str(n) for n in ds.dataset(path, format="parquet").schema.names]
    except Exception as exc:
        raise _unreadable(path, "a readable parquet file or dataset", exc) from None


class _FileSource:
    suffixes: ClassVar[tuple[str, ...]]
    Params: ClassVar[type[Params]] = FileParams

    def __init__(self, params: FileParams | None = None) -> None:
        self.params = params or FileParams()

    def _path(self) -> Path:
        if self.params.path is None:
            raise DataError("data.path", "a file path", "nothing")
        path = Path(self.params.path).expanduser()
        if not path.is_file():
            raise DataError("data.path", "an existing file", str(path))
        return path

    def _available(self, path: Path) -> list[str]:
        raise NotImplementedError

    def _read(self, path: Path, columns: list[str]) -> pd.DataFrame:
        raise NotImplementedError

    def load(self) -> Dataset:
        path = self._path()
        roles = self.params.roles
        wanted = _wanted(self.params)
        check_columns(self._available(path), wanted, roles, str(path))
        return Dataset(frame=self._read(path, wanted), roles=roles)


class CsvSource(_FileSource):
    """A CSV file (compressed files are read by extension, e.g. ``.csv.gz``)."""

    name: ClassVar[str] = "csv"

    def _available(self, path: Path) -> list[str]:
        _check_not_excel(path, "a CSV file")
        try:
            return [str(c) for c in pd.read_csv(path, nrows=0).columns]
        except Exception as exc:
            raise _unreadable(path, "a readable CSV file", exc) from None

    def _read(self, path: Path, columns: list[str]) -> pd.DataFrame:
        try:
            return pd.read_csv(path, usecols=columns)
        except Exception as exc:
            raise _unreadable(path, "a readable CSV file", exc) from None


class ParquetSource(_FileSource):
    """A parquet file or dataset directory; only the columns named by roles are read."""

    name: ClassVar[str] = "parquet"

    def _path(self) -> Path:
        if self.params.path is None:
            raise DataError("data.path", "a file path", "nothing")
        path = Path(self.params.path).expanduser()
        if not path.exists():
            raise DataError("data.path", "an existing parquet file or directory", str(path))
        return path

    def _available(self, path: Path) -> list[str]:
        return _parquet_names(path)

    def _read(self, path: Path, columns: list[str]) -> pd.DataFrame:
        try:
            return pd.read_parquet(path, columns=columns)
        except Exception as exc:
            raise _unreadable(path, "a readable parquet file or dataset", exc) from None


class ParquetUnitsParams(Params):
    """Where the parquet panel is, its roles, the covariate precision, and whether to defer reading."""

    path: str | None = Field(None, description="parquet file or dataset directory")
    roles: Roles = Field(default_factory=Roles)
    dtype: Literal["float64", "float32"] = Field(
        "float64", description="covariate precision in memory"
    )
    lazy: bool = Field(
        False,
        description="read nothing now; estimator=microsynth reads the file itself (backend=columnar or spark)",
    )


class ParquetUnitsSource:
    """A parquet panel reduced to one row per unit while reading (``data=parquet_units``).

    Only the role columns are read, in record batches
    (:func:`~causalkit_plugins.estimators.microsynth.unit_arrays.read_unit_arrays`, the rules of
    :func:`causalkit.panel.unit_table`). The table handed on has one row per unit: unit,
    treatment (ever treated), outcome (mean over the post periods) and the covariates, with
    roles for a cross-section, so any estimator can use it. With ``lazy=true`` nothing is read
    here: the dataset holds a :class:`~causalkit.contracts.LazySource` (path and schema) and no
    table, for ``estimator=microsynth estimator.backend=columnar|spark`` (which keep the
    per-period gaps); any other estimator fails with a one-line error.
    """

    name: ClassVar[str] = "parquet_units"
    Params: ClassVar[type[Params]] = ParquetUnitsParams

    def __init__(self, params: ParquetUnitsParams | None = None) -> None:
        self.params = params or ParquetUnitsParams()

    def load(self) -> Dataset:
        """Check the path and columns, then read (or, lazily, only describe) the panel."""
        from causalkit_plugins.estimators.microsynth.unit_arrays import read_unit_arrays

        p = self.params
        if p.path is None:
            raise DataError("data.path", "a parquet file or directory", "nothing")
        path = Path(p.path).expanduser()
        if not path.exists():
            raise DataError("data.path", "an existing parquet file or directory", str(path))
        names = _parquet_names(path)
        check_columns(names, p.roles.columns(), p.roles, str(path))
        if p.roles.outcome is None:
            raise DataError("data.roles.outcome", "a column name", "nothing")
        if p.lazy:
            return Dataset.from_source(LazySource("parquet", str(path), tuple(names)), p.roles)
        formula = p.roles.covariates if isinstance(p.roles.covariates, str) else None
        read = p.roles
        if formula is not None:  # read the columns the formula uses
            read = read.model_copy(update={"covariates": formula_variables(formula)})
        arr = read_unit_arrays(path, read, p.dtype)
        unit = p.roles.unit or "unit"
        treat, out = p.roles.treatment, p.roles.outcome
        assert treat is not None and out is not None
        g = arr.group

        def unit_order(c_part: np.ndarray, t_part: np.ndarray) -> np.ndarray:
            full = np.empty(arr.n, dtype=np.result_type(c_part, t_part))
            full[~g], full[g] = c_part, t_part
            return full

        cols: dict[str, np.ndarray] = {
            unit: np.arange(arr.n),
            treat: g.astype(np.int8),
            out: unit_order(arr.Yc.mean(axis=1), arr.Yt.mean(axis=1)),
        }
        cols.update(
            {c: unit_order(arr.Xc[:, j], arr.Xt[:, j]) for j, c in enumerate(arr.covariates)}
        )
        # a formula stays one: the core expands it on this one-row-per-unit table
        roles = Roles(unit=unit, treatment=treat, outcome=out, covariates=formula or arr.covariates)
        return Dataset(pd.DataFrame(cols, copy=False), roles)
