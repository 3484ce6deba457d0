"""Parameters of the MicroSynth estimator (all modes)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from causalkit.contracts import Params

__all__ = ["MicroSynthParams"]


class MicroSynthParams(Params):
    """Parameters of MicroSynth."""

    weight_method: Literal["simplex"] = Field("simplex", description="weighting program")
    estimand: Literal["att"] = Field("att", description="att: effect on the actually treated")
    balance_tol: float = Field(1e-8, gt=0, description="max |SMD| after weighting to call a fit feasible")
    tol: float = Field(1e-11, gt=0, description="dual residual tolerance (standardised units)")
    max_iter: int = Field(50, ge=1, description="maximum semismooth Newton steps")
