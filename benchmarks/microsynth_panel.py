"""``microsynth_panel`` (R microsynth's panel mode) vs mlsynth 1.0.0's panel QP: 50k areas, 12 pre + 4 post periods, 5 covariates.

Both fit from the same long data frame in one process; the placebo figure is the time of one
placebo-permutation refit (mlsynth: ``panel_permutation_test`` with ``n_perm`` draws,
divided by ``n_perm``). Run: ``python benchmarks/microsynth_panel.py``.
"""

from __future__ import annotations

import time

import numpy as np

from causalkit_plugins.dgps.area_panel import AreaPanel, AreaPanelParams
from causalkit_plugins.estimators.microsynth.panel_estimator import (
    MicroSynthPanel,
    MicroSynthPanelParams,
)

N_UNITS, N_TREATED, N_PRE, N_POST, N_COV, N_PERM = 50_000, 100, 12, 4, 5, 5


def _best(fn, repeat: int = 3) -> float:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return min(out)


def main() -> None:
    import mlsynth
    from mlsynth.utils.microsynth_helpers.panel_inference import panel_permutation_test

    world = AreaPanelParams(
        n_units=N_UNITS, n_treated=N_TREATED, n_pre=N_PRE, n_post=N_POST, n_covariates=N_COV
    )
    sim = AreaPanel(world).simulate(np.random.default_rng(0), None)
    frame, covs = sim.dataset.frame, list(sim.dataset.roles.covariates)
    config = {
        "df": frame,
        "outcome": "y",
        "treat": "treated",
        "unitid": "unit",
        "time": "time",
        "covariates": covs,
        "outcome_lag_periods": list(range(1, N_PRE + 1)),
        "weight_method": "panel",
        "panel_ridge": 1e-6,
        "display_graphs": False,
        "run_inference": False,
    }
    res = {}
    t_ml = _best(lambda: res.setdefault("ml", mlsynth.MicroSynth(config).fit()), repeat=1)

    # mlsynth placebo refits (its own loop), per draw.
    wide = frame.pivot(index="unit", columns="time", values="y").to_numpy()
    tr = frame.groupby("unit").treated.max().to_numpy() == 1
    X = frame.groupby("unit")[covs].first().to_numpy(float)
    t0 = time.perf_counter()
    panel_permutation_test(
        cov_C=X[~tr],
        lag_C=wide[~tr, :N_PRE],
        Y_C_post=wide[~tr, N_PRE:],
        n_T=int(tr.sum()),
        obs_gap_trajectory=np.zeros(N_POST),
        obs_att=0.0,
        ridge=1e-6,
        n_perm=N_PERM,
    )
    t_ml_perm = (time.perf_counter() - t0) / N_PERM

    print(
        f"panel mode: {N_UNITS} units x {N_PRE}+{N_POST} periods, {N_COV} covariates, {N_TREATED} treated"
    )
    print(
        f"mlsynth 1.0.0 fit (cvxpy/Clarabel QP)      {t_ml:8.3f} s   placebo refit {t_ml_perm:8.3f} s"
    )
    for method in ("qp", "calibration"):
        est = MicroSynthPanel(MicroSynthPanelParams(weighting=method))
        fit = est.fit(sim.dataset, np.random.default_rng(0))
        t_fit = _best(lambda est=est: est.fit(sim.dataset, np.random.default_rng(0)))
        rng = np.random.default_rng(1)
        t_perm = _best(lambda fit=fit, rng=rng: [fit.placebo(rng) for _ in range(N_PERM)]) / N_PERM
        rel = abs(fit.estimate / res["ml"].att - 1)
        print(
            f"causalkit weighting={method:<12s}          {t_fit:8.3f} s   placebo refit {t_perm:8.3f} s"
            f"   speed-up fit {t_ml / t_fit:6.1f}x  placebo {t_ml_perm / t_perm:6.1f}x"
            f"   |ATT/ATT_mlsynth - 1| = {rel:.1e}"
        )


if __name__ == "__main__":
    main()
