"""The ``synthetic`` data source: no table; the DGP makes its own units and covariates."""

from __future__ import annotations

from typing import ClassVar

from causalkit.contracts import Dataset, Params

__all__ = ["SyntheticSource"]


class SyntheticParams(Params):
    """No parameters."""


class SyntheticSource:
    """Yields no table: the DGP simulates everything."""

    name: ClassVar[str] = "synthetic"
    Params: ClassVar[type[Params]] = SyntheticParams

    def __init__(self, params: SyntheticParams | None = None) -> None:
        self.params = params or SyntheticParams()

    def load(self) -> Dataset | None:
        return None
