"""An estimand parameter narrowed to the estimands one estimator targets, and its bootstrap strata."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BeforeValidator

from causalkit.contracts import Estimand

__all__ = ["WHOLE_SAMPLE", "estimand_in", "resampling_strata"]


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


def resampling_strata(estimand: Estimand, d: np.ndarray) -> np.ndarray | None:
    r"""Bootstrap strata of an observational estimator: none for the ATE, the arms otherwise.

    Parameters
    ----------
    estimand : Estimand
        The fit's estimand.
    d : ndarray of bool, shape (n,)
        Treatment of each resampling unit.

    Returns
    -------
    ndarray of int64 or None
        ``d`` as integers (resample within the treated and within the controls) for the ATT
        or ATC; ``None`` (resample the whole sample) for the ATE and the potential-outcome
        means ``MEAN1``/``MEAN0`` (whose influence contains :math:`\mu_a(X) - E[Y(a)]`).

    Notes
    -----
    With :math:`p = P(D=1)` and :math:`\tau(x)` the conditional effect, the efficient
    influence function of the ATE contains :math:`\tau(X) - \tau`, whose variance splits as

    .. math::
        \operatorname{Var}\tau(X) = E\{\operatorname{Var}(\tau(X)\mid D)\}
            + p(1-p)(\tau_{ATT} - \tau_{ATC})^2 .

    Resampling within arms fixes the treated share, hence the covariate mix between the arms,
    and drops the second term: the stratified bootstrap SE of an observational ATE is too
    small whenever the ATT and ATC differ. The ATT (ATC) is an average over the treated
    (controls) only; its influence function has no between-arm term, so resampling within
    arms is valid there and keeps every resample's arms non-empty.

    References
    ----------
    Hahn, J. (1998). On the role of the propensity score in efficient semiparametric
    estimation of average treatment effects. *Econometrica* 66(2), 315-331.
    """
    return None if estimand in WHOLE_SAMPLE else np.asarray(d).astype(np.int64)


WHOLE_SAMPLE = frozenset({Estimand.ATE, Estimand.MEAN1, Estimand.MEAN0})
"""Estimands averaged over every unit: their influence has a between-arm term (see
:func:`resampling_strata`), so their bootstrap resamples the whole sample."""


LOGIT_CONFOUNDING = (
    "dgp=selection_on_observables",
    "dgp.n=1000",
    "dgp.propensity.x1=0.5",
    "dgp.propensity.x2=-0.4",
    "dgp.outcome.x1_sq=0",
)
"""The coverage world of the propensity-score estimators (ipw, psm): a correctly specified logit
propensity with moderate overlap and a linear outcome."""

WEAK_OVERLAP = (
    "dgp=selection_on_observables",
    "dgp.n=1000",
    "dgp.propensity.x1=2.0",
    "dgp.propensity.x2=-1.5",
    "dgp.outcome.x1_sq=0",
)
"""The propensity-score estimators' edge world: a correct logit whose index has SD 2.5, so the
inverse-probability weights are heavy-tailed (estimated tail index about 1.5 < 2)."""
