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


def _check(frame: pd.DataFrame, roles: Roles, path: str) -> Dataset:
    missing = [c for c in roles.columns() if c not in frame.columns]
    if missing:
        shown = ", ".join(map(str, frame.columns[:15]))
        raise DataError("data.roles", f"columns of {path} ({shown})", f"{', '.join(missing)}")
    if roles.outcome is None:
        raise DataError("data.roles.outcome", "a column name", "nothing")
    return Dataset(frame=frame, roles=roles)


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

    def _read(self, path: Path, columns: list[str]) -> pd.DataFrame:
        raise NotImplementedError

    def load(self) -> Dataset:
        path = self._path()
        cols = self.params.roles.columns()
        return _check(self._read(path, cols), self.params.roles, str(path))


class CsvSource(_FileSource):
    """A CSV file (compressed files are read by extension, e.g. ``.csv.gz``)."""

    name: ClassVar[str] = "csv"

    def _read(self, path: Path, columns: list[str]) -> pd.DataFrame:
        try:
            header = pd.read_csv(path, nrows=0).columns
        except Exception as exc:
            raise DataError("data.path", "a readable CSV file", f"{path} ({exc})") from None
        use = [c for c in header if c in columns] or None
        return pd.read_csv(path, usecols=use)


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

    def _read(self, path: Path, columns: list[str]) -> pd.DataFrame:
        import pyarrow.parquet as pq

        try:
            schema = pq.read_schema(path) if path.is_file() else None
            names = schema.names if schema is not None else None
            use = [c for c in columns if names is None or c in names]
            return pd.read_parquet(path, columns=use or None)
        except Exception as exc:
            raise DataError("data.path", "a readable parquet file", f"{path} ({exc})") from None
