"""CSV and parquet data sources: a user's own table plus the roles of its columns."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pandas as pd
from pydantic import Field

from causalkit.contracts import Dataset, Params, Roles
from causalkit.errors import DataError

__all__ = ["CsvSource", "ParquetSource", "FileParams"]


class FileParams(Params):
    """Where the table is and which column plays which role."""

    path: str | None = Field(None, description="file to read")
    roles: Roles = Field(default_factory=Roles)
    columns: tuple[str, ...] = Field((), description="further columns to read besides the role columns")


def _wanted(params: FileParams) -> list[str]:
    return list(dict.fromkeys([*params.roles.columns(), *params.columns]))


def check_columns(available: list[str], wanted: list[str], roles: Roles, path: str) -> None:
    missing = [c for c in wanted if c not in available]
    if missing:
        shown = ", ".join(map(str, available[:15])) + (", ..." if len(available) > 15 else "")
        raise DataError("data.roles", f"columns of {path} ({shown})", ", ".join(missing))
    if roles.outcome is None:
        raise DataError("data.roles.outcome", "a column name", "nothing")


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
        try:
            return [str(c) for c in pd.read_csv(path, nrows=0).columns]
        except Exception as exc:
            raise DataError("data.path", "a readable CSV file", f"{path} ({exc})") from None

    def _read(self, path: Path, columns: list[str]) -> pd.DataFrame:
        return pd.read_csv(path, usecols=columns)


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
        import pyarrow.dataset as ds

        try:
            return [str(n) for n in ds.dataset(path, format="parquet").schema.names]
        except Exception as exc:
            raise DataError("data.path", "a readable parquet file or dataset", f"{path} ({exc})") from None

    def _read(self, path: Path, columns: list[str]) -> pd.DataFrame:
        return pd.read_parquet(path, columns=columns)
