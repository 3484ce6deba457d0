"""Heckman two-step and ML on 1M rows: causalkit vs the obvious statsmodels route; prints ratios.

The statsmodels route for the two-step is ``Probit`` + inverse Mills ratio + ``OLS`` (which
gives the naive second-step SEs, not the corrected ones we compute). statsmodels has no
Heckman ML, so its obvious ML route is ``GenericLikelihoodModel`` with the same
log-likelihood, numerical derivatives and BFGS, started from the two-step estimates like ours.

Run: ``python benchmarks/heckman.py [--n 1000000] [--skip-ml-reference]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import statsmodels.api as sm
from scipy.special import log_ndtr
from scipy.stats import norm
from statsmodels.base.model import GenericLikelihoodModel

from causalkit.contracts import Dataset
from causalkit_plugins.dgps.heckman_selection import (
    HeckmanSelection,
    HeckmanSelectionParams,
    SelectionCoefficients,
    TreatmentCoefficients,
)
from causalkit_plugins.estimators.selection.heckman import Heckman, HeckmanParams


class _HeckmanLL(GenericLikelihoodModel):
    """Selection-model likelihood for statsmodels (numerical derivatives)."""

    def __init__(self, y, X, W, d, **kw):
        self.y_, self.X_, self.W_, self.d_ = y, X, W, d
        super().__init__(np.zeros(len(d)), np.zeros((len(d), 1)), **kw)

    def loglikeobs(self, params):
        q, k = self.W_.shape[1], self.X_.shape[1]
        g, b, s, t = params[:q], params[q : q + k], params[q + k], params[q + k + 1]
        eta = self.W_ @ g
        out = log_ndtr(-eta)
        r = (self.y_ - self.X_ @ b) * np.exp(-s)
        a = np.cosh(t) * eta[self.d_] + np.sinh(t) * r
        out[self.d_] = log_ndtr(a) - s + norm.logpdf(r)
        return out


def _timed(f):
    t0 = time.perf_counter()
    out = f()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--skip-ml-reference", action="store_true")
    args = ap.parse_args()

    params = HeckmanSelectionParams(n=args.n, treatment=TreatmentCoefficients(u=0.0),
                                    selection=SelectionCoefficients(link="probit"))  # fmt: skip
    sim = HeckmanSelection(params).simulate(np.random.default_rng(0))
    frame, roles = sim.dataset.frame, sim.dataset.roles
    rng = np.random.default_rng(1)
    print(f"n = {args.n:,}, selected = {int(frame['buy'].sum()):,}")

    ours2, t_ours2 = _timed(lambda: Heckman().fit(Dataset(frame, roles), rng))

    def sm_twostep():
        d = frame["buy"].to_numpy().astype(bool)
        W = sm.add_constant(frame[["x1", "x2", "treat", "z"]].to_numpy())
        pr = sm.Probit(d.astype(float), W).fit(disp=False)
        xb = W[d] @ pr.params
        lam = norm.pdf(xb) / norm.cdf(xb)
        X = sm.add_constant(np.column_stack([frame.loc[d, ["treat", "x1", "x2"]].to_numpy(), lam]))
        return pr, sm.OLS(frame.loc[d, "spend"].to_numpy(), X).fit()

    (pr, ols), t_sm2 = _timed(sm_twostep)
    assert abs(ols.params[1] - ours2.estimate) < 1e-8, "two-step estimates differ"
    print(f"two-step   causalkit {t_ours2:7.2f} s   statsmodels Probit+OLS {t_sm2:7.2f} s   "
          f"ratio (statsmodels / causalkit) {t_sm2 / t_ours2:5.2f}   "
          f"[ours includes the corrected covariance; statsmodels' SE is the naive OLS one]")  # fmt: skip

    oursml, t_oursml = _timed(
        lambda: Heckman(HeckmanParams(method="ml")).fit(Dataset(frame, roles), rng)
    )
    print(f"ML         causalkit {t_oursml:7.2f} s   ({oursml.diagnostics['ml_iterations']} Newton steps, "
          f"decrement {oursml.diagnostics['ml_newton_decrement']:.1e})")  # fmt: skip
    if args.skip_ml_reference:
        return
    d = frame["buy"].to_numpy().astype(bool)
    W = sm.add_constant(frame[["x1", "x2", "treat", "z"]].to_numpy())
    X = sm.add_constant(frame.loc[d, ["treat", "x1", "x2"]].to_numpy())
    y = frame.loc[d, "spend"].to_numpy()
    dg = ours2.diagnostics
    start = np.concatenate(
        [pr.params, ols.params[:-1], [np.log(dg["sigma"]), np.arctanh(dg["rho"])]]
    )

    def sm_ml():
        return _HeckmanLL(y, X, W, d).fit(
            start_params=start, method="bfgs", maxiter=500, disp=False
        )

    ref, t_smml = _timed(sm_ml)
    gap = abs(ref.params[W.shape[1] + 1] - oursml.estimate)
    print(f"ML         statsmodels GenericLikelihoodModel {t_smml:7.2f} s   ratio (statsmodels / causalkit) "
          f"{t_smml / t_oursml:5.2f}   |treat coef gap| {gap:.1e}, loglik ours {oursml.diagnostics['loglik']:.4f} "
          f"vs {ref.llf:.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
