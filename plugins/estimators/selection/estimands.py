"""An estimand parameter narrowed to the estimands one estimator targets."""

from __future__ import annotations

from typing import Any

from pydantic import BeforeValidator

from causalkit.contracts import Estimand

__all__ = ["estimand_in"]


def estimand_in(*allowed: Estimand) -> BeforeValidator:
    """A validator admitting only ``allowed`` (any case) for an ``EstimandName`` field.

    Use as ``Annotated[EstimandName, estimand_in(Estimand.ATE, Estimand.ATT)]``; a value
    outside ``allowed`` fails validation with the one line "expected one of ATE, ATT".

    Parameters
    ----------
    *allowed : Estimand
        The admissible estimands.

    Returns
    -------
    pydantic.BeforeValidator
    """
    values = tuple(a.value for a in allowed)
    expected = f"one of {', '.join(values)}"

    def check(value: Any) -> Any:
        spelled = value.upper() if isinstance(value, str) else value
        if spelled not in values:
            raise ValueError(expected)
        return spelled

    return BeforeValidator(check)
