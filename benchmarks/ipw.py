"""IPW with the stacked-EE analytic SE on 1M rows: causalkit vs the obvious statsmodels route.

The statsmodels route: ``GLM(Binomial)`` propensity model, inverse-probability weights by
hand, then a weighted least squares of the outcome on the treatment with robust (HC0) SEs;
its SE treats the weights as known (no propensity-score correction), ours does not. Both
estimate the same normalised (Hajek) ATE, which is printed to show agreement.

Run: ``python benchmarks/ipw.py [--n 1000000]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import statsmodels.api as sm

from causalkit.contracts import Dataset, Roles
from causalkit_plugins.dgps.selection_on_observables import (
    SelectionOnObservables,
    SelectionOnObservablesParams,
)
from causalkit_plugins.estimators.selection.ipw import IPW
from causalkit_plugins.inference.basic import Analytic


def _timed(f):
    t0 = time.perf_counter()
    out = f()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    args = ap.parse_args()
    sim = SelectionOnObservables(SelectionOnObservablesParams(n=args.n)).simulate(
        np.random.default_rng(0), None
    )
    frame = sim.dataset.frame
    data = Dataset(frame, Roles(outcome="y", treatment="treat", covariates=("x1", "x2")))

    def ours():
        fit = IPW().fit(data, np.random.default_rng(0))
        return fit.estimate, Analytic().infer(fit, np.random.default_rng(0)).se[0]

    def statsmodels_route():
        d = frame["treat"].to_numpy()
        Z = sm.add_constant(frame[["x1", "x2"]].to_numpy())
        e = sm.GLM(d, Z, family=sm.families.Binomial()).fit().predict(Z)
        w = np.where(d == 1, 1 / e, 1 / (1 - e))
        wls = sm.WLS(frame["y"].to_numpy(), sm.add_constant(d.astype(float)), weights=w).fit(
            cov_type="HC0"
        )
        return wls.params[1], wls.bse[1]

    (est_o, se_o), t_o = _timed(ours)
    (est_s, se_s), t_s = _timed(statsmodels_route)
    print(f"n = {args.n:,}  truth ATE = {sim.truth.values['ATE']:.4f}")
    print(f"causalkit ipw (stacked-EE SE): {t_o:7.2f} s  ATE {est_o:.6f}  SE {se_o:.6f}")
    print(f"statsmodels GLM + WLS (HC0):   {t_s:7.2f} s  ATE {est_s:.6f}  SE {se_s:.6f}")
    print(f"time ratio statsmodels / causalkit = {t_s / t_o:.2f}")


if __name__ == "__main__":
    main()
