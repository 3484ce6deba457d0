"""The ``none`` DGP: a real analysis, the data source's table as it is, no truth."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from causalkit.contracts import Dataset, Params, Simulated, Truth
from causalkit.errors import ConfigError

__all__ = ["NoDGP"]


class NoDGPParams(Params):
    """No parameters."""


class NoDGP:
    """Passes the loaded table through; there is no truth."""

    name: ClassVar[str] = "none"
    Params: ClassVar[type[Params]] = NoDGPParams
    needs_base: ClassVar[bool] = True

    def __init__(self, params: NoDGPParams | None = None) -> None:
        self.params = params or NoDGPParams()

    def simulate(self, rng: np.random.Generator, base: Dataset | None) -> Simulated:
        if base is None:
            raise ConfigError(
                "data", "a data source with a table (csv, parquet) when dgp=none", "synthetic"
            )
        return Simulated(dataset=base, truth=Truth(values={}))
