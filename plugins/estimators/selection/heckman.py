"""The ``heckman`` estimator: sample-selection model by two-step (corrected covariance) or ML."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from causalkit.clusters import fit_clusters, fit_weights, weight_diagnostics
from causalkit.contracts import (
    Capability,
    Clusters,
    Dataset,
    DiagnosticValue,
    Estimand,
    Fit,
    Params,
    Resampler,
)
from causalkit.contracts import Params as PluginParams
from causalkit.coverage import World
from causalkit.errors import EstimationError
from causalkit.evalue import e_value
from causalkit_plugins.dgps.heckman_selection import CLUSTERED_1000
from causalkit_plugins.estimators.selection.heckman_data import SelectionData, selection_data
from causalkit_plugins.estimators.selection.heckman_ml import MLResult, heckman_ml, heckman_scores
from causalkit_plugins.estimators.selection.heckman_twostep import (
    TwoStepResult,
    heckman_twostep,
    twostep_influence,
)
from causalkit_plugins.inference.basic import influence_se
from causalkit_plugins.inference.common import influence_rows

__all__ = ["Heckman", "HeckmanParams"]

_RHO_START_BOUND = 0.99
_IMR_R2_WARN = 0.9


class HeckmanParams(Params):
    """Parameters of the ``heckman`` estimator."""

    method: Literal["twostep", "ml"] = Field("twostep", description="two-step (heckit) or full ML")
    add_intercept: bool = Field(True, description="add an intercept to both equations")
    max_iter: int = Field(200, ge=1, description="maximum Newton iterations (probit and ML)")
    tol: float = Field(
        1e-14, gt=0, lt=1e-4, description="ML convergence: Newton decrement g'(-H)^-1 g"
    )


@dataclass(frozen=True)
class _Estimates:
    """Both methods' results in one shape: named coefficients, covariance and extras.

    ``influence`` (n units by coefficients) is set unless a refit asked for none; ``vcov`` is
    the model covariance, or with a design (clustered or weighted) the influence's sandwich.
    """

    names: tuple[str, ...]  # coef.<name> keys: outcome eq., lambda, selection eq. as sel.<name>
    coef: np.ndarray
    vcov: np.ndarray
    scalars: dict[str, DiagnosticValue]
    converged: bool
    influence: np.ndarray | None = None


@dataclass(frozen=True)
class _Design:
    """A clustered or weighted fit: SEs from influence values (clusters ``None``: robust)."""

    clusters: Clusters | None


def _sandwich(psi: np.ndarray, clusters: Clusters | None) -> np.ndarray:
    r""":math:`n^{-2}\sum_g\tilde\psi_g\tilde\psi_g^\top` with the CR1-scaled cluster sums
    :math:`\tilde\psi_g` (the units themselves without clusters): analytic inference's
    variance (:func:`~causalkit_plugins.inference.common.influence_rows`) for every coefficient."""
    rows = psi if clusters is None else np.sqrt(clusters.factor()) * clusters.sums(psi)
    return rows.T @ rows / psi.shape[0] ** 2


def _twostep_estimates(
    sd: SelectionData, ts: TwoStepResult, design: _Design | None = None, influence: bool = True
) -> _Estimates:
    k = sd.X.shape[1]
    q = sd.W.shape[1]
    names = (*sd.outcome_names, "lambda", *(f"sel.{c}" for c in sd.selection_names))
    coef = np.concatenate([ts.coef, ts.probit.coef])
    psi = twostep_influence(ts, sd.X, sd.W, sd.d) if influence or design is not None else None
    if design is None:
        vcov = np.zeros((k + 1 + q, k + 1 + q))
        vcov[: k + 1, : k + 1] = ts.vcov
        vcov[k + 1 :, k + 1 :] = ts.probit.vcov
    else:
        assert psi is not None
        vcov = _sandwich(psi, design.clusters)
    scalars: dict[str, DiagnosticValue] = {
        "sigma": ts.sigma,
        "rho": ts.rho,
        "rho_raw": ts.rho_raw,
        "probit_loglik": ts.probit.loglik,
    }
    return _Estimates(names, coef, vcov, scalars, ts.probit.converged, psi)


def _independent_loglik(sd: SelectionData, probit_loglik: float) -> float:
    """Maximised log-likelihood under rho = 0: probit plus normal regression on the selected."""
    resid = sd.y - sd.X @ np.linalg.lstsq(sd.X, sd.y, rcond=None)[0]
    n1 = sd.y.shape[0]
    return probit_loglik - 0.5 * n1 * (np.log(2.0 * np.pi * (resid @ resid) / n1) + 1.0)


def _ml_estimates(
    sd: SelectionData,
    ml: MLResult,
    probit_loglik: float,
    design: _Design | None = None,
    influence: bool = True,
) -> _Estimates:
    from scipy import stats

    q, k = sd.W.shape[1], sd.X.shape[1]
    names = (*sd.outcome_names, "lambda", *(f"sel.{c}" for c in sd.selection_names))
    # reorder (gamma, beta, sigma, rho) into (beta, lambda = rho*sigma, gamma); lambda by delta method
    p = q + k + 2
    jac = np.zeros((k + 1 + q, p))
    jac[:k, q : q + k] = np.eye(k)
    jac[k, q + k] = ml.rho
    jac[k, q + k + 1] = ml.sigma
    jac[k + 1 :, :q] = np.eye(q)
    coef = np.concatenate([ml.beta, [ml.rho * ml.sigma], ml.gamma])
    psi = None
    vcov_nat = ml.vcov
    if influence or design is not None:
        # influence n(-H)^{-1}s_i in the working parameters, mapped by the delta method
        scores = heckman_scores(ml.theta, sd.y, sd.X, sd.W, sd.d, sd.weights)
        to_nat = np.eye(p)
        to_nat[q + k, q + k] = ml.sigma
        to_nat[q + k + 1, q + k + 1] = 1.0 - ml.rho**2
        psi_nat = sd.n * scores @ ml.vcov_theta @ to_nat.T
        psi = psi_nat @ jac.T
        if design is not None:  # the sandwich
            vcov_nat = _sandwich(psi_nat, design.clusters)
    vcov = jac @ vcov_nat @ jac.T
    scalars: dict[str, DiagnosticValue] = {
        "sigma": ml.sigma,
        "se.sigma": float(np.sqrt(vcov_nat[q + k, q + k])),
        "rho": ml.rho,
        "se.rho": float(np.sqrt(vcov_nat[q + k + 1, q + k + 1])),
        "loglik": ml.loglik,
        "ml_iterations": ml.n_iter,
        "ml_newton_decrement": ml.grad_norm,
    }
    if design is None:  # a likelihood-ratio test needs independent, unweighted units
        lr = max(2.0 * (ml.loglik - _independent_loglik(sd, probit_loglik)), 0.0)
        scalars["lr_rho0"] = lr  # likelihood-ratio test of rho = 0 (no selection bias), chi2(1)
        scalars["lr_rho0_p"] = float(stats.chi2.sf(lr, 1))
    return _Estimates(names, coef, vcov, scalars, ml.converged, psi)


def _imr_collinearity(X: np.ndarray, imr: np.ndarray) -> tuple[float, float]:
    """R² of the IMR on the outcome regressors, and the condition number of the scaled [X, λ]."""
    fitted = X @ np.linalg.lstsq(X, imr, rcond=None)[0]
    tss = float(((imr - imr.mean()) ** 2).sum())
    r2 = 1.0 - float(((imr - fitted) ** 2).sum()) / tss if tss > 0 else 1.0
    Z = np.column_stack([X, imr])
    Z = Z / np.sqrt((Z**2).mean(axis=0))
    return r2, float(np.linalg.cond(Z))


def _e_value(sd: SelectionData, coef: np.ndarray) -> dict[str, DiagnosticValue]:
    r"""The ``e_value.*`` diagnostics of a 0/1 treatment's coefficient; none otherwise.

    Computed on the selected units, whose outcome is observed: the SD of a continuous outcome
    is their pooled within-arm SD (weighted with the ``weight`` role), the baseline risk of a
    0/1 outcome their mean outcome-equation prediction :math:`x_i'\hat\beta` with the
    treatment set to 0 (weighted). Both describe the selected sample, not the population
    the latent-outcome effect is for.
    """
    if sd.treatment is None:
        return {}
    j = sd.outcome_names.index(sd.treatment)
    t = sd.X[:, j]
    w = None if sd.weights is None else sd.weights[sd.d]
    arms = t.astype(bool)
    if not np.isin(t, (0.0, 1.0)).all() or arms.all() or not arms.any():
        return {}
    if w is not None and not (w[arms].sum() > 0 and w[~arms].sum() > 0):
        return {}
    beta = coef[: sd.X.shape[1]]
    baseline = float(np.average(sd.X @ beta - t * beta[j], weights=w))
    return e_value(float(beta[j]), sd.y, arms, baseline, w).diagnostics()


class Heckman:
    r"""Heckman sample-selection model.

    Model: selection :math:`d_i = 1[w_i^\top\gamma + u_i > 0]`, outcome
    :math:`y_i = x_i^\top\beta + \varepsilon_i` observed only when :math:`d_i = 1`, with
    :math:`(u, \varepsilon)` bivariate normal, :math:`\operatorname{sd}(u)=1`,
    :math:`\operatorname{sd}(\varepsilon)=\sigma`, :math:`\operatorname{corr}=\rho`. Then
    :math:`E[y\mid x, d=1] = x^\top\beta + \beta_\lambda\lambda(w^\top\gamma)` with
    :math:`\beta_\lambda = \rho\sigma` and :math:`\lambda = \phi/\Phi` (inverse Mills ratio).

    ``method="twostep"``: probit, IMR, OLS on the selected units, with the Heckman/Greene
    corrected covariance (:func:`~.heckman_twostep.corrected_covariance`), as R
    ``sampleSelection::heckit`` and Stata ``heckman, twostep``. ``method="ml"``: full
    information ML started from the two-step estimates, Newton to a stationary point with a
    negative-definite Hessian; SEs from the observed information; ``coef.lambda`` is
    :math:`\hat\rho\hat\sigma` (delta-method SE).

    Roles: ``outcome`` (may be missing where ``selected`` is 0), ``selected``,
    ``covariates`` (outcome equation), ``selection_covariates`` (selection equation). The
    exclusion restriction is the selection covariates absent from the outcome equation;
    without one, identification rests on the normality of the errors alone (warned).

    Estimates: when ``treatment`` is set its column joins the outcome equation (if not listed)
    and the headline estimate is its coefficient, the effect on the latent outcome
    (``Estimand.ATE`` under the model's constant effect), followed by the selection term
    :math:`\beta_\lambda` (named ``lambda``). Otherwise the only estimate is
    :math:`\beta_\lambda` (``Estimand.DIFF``). Inference on :math:`\beta_\lambda` is the test of
    selection bias. ``model_se`` holds the corrected (two-step) or ML standard errors of the
    estimates; the resampler refits both steps (ML from the full-sample optimum) on units
    drawn from the whole sample, unstratified: the treated share and the selected share are
    random in the population the ATE describes, and fixing either would drop their
    sampling variation from the bootstrap SE. Every
    coefficient and its model SE is in the diagnostics as ``coef.<name>`` / ``se.<name>``
    (the model's coefficient table, as R's ``summary``); selection-equation ones as
    ``coef.sel.<name>``. With ``method="ml"``, ``lr_rho0`` and ``lr_rho0_p`` are the
    likelihood-ratio specification test of :math:`\rho = 0` against the independent model.
    With a 0/1 treatment the diagnostics include the E-value of its coefficient
    (``e_value.*``, :func:`_e_value`: SD or baseline risk from the selected units).

    Clusters and sampling weights: with the ``cluster`` or ``weight`` role the fit carries
    influence values of every coefficient and every standard error (``se.<name>``, the
    inference plugins' analytic SE) is a sandwich. Two-step: the stacked probit and
    second-step equations (:func:`~.heckman_twostep.twostep_influence`); ML: :math:`n(-H)^{-1}`
    times the per-unit scores (:func:`~.heckman_ml.heckman_scores`), mapped to
    :math:`(\beta, \rho\sigma, \gamma)` by the delta method. Clustered, the influence values
    are summed within clusters with the CR1 factor :math:`\frac{G}{G-1}\frac{N-1}{N-K}` for
    the two-step, :math:`N` all units and :math:`K` the second-step regressors (the outcome
    covariates, intercept included, and the IMR), and :math:`\frac{G}{G-1}` alone for ML, as
    Stata's ``heckman, vce(cluster c)`` (Stata's two-step has no clustered variance). Weighted,
    the probit and the second step (WLS) or the likelihood are weighted, so the coefficients
    are those of the weighted population (pweights), and the influence values are those of
    the weighted equations; without clusters that is the robust sandwich without a
    finite-sample factor (Stata's ML ``[pw=]`` multiplies it by :math:`N/(N-1)`, which
    singleton clusters give here). The likelihood-ratio test of :math:`\rho = 0` is then left out (it
    needs independent, unweighted units; ``se.rho`` gives a Wald test). The bootstrap
    resamples whole clusters and refits with the resampled units' weights. Without these
    roles the SEs are the model's (``se.<name>``; analytic inference uses them: a fit that
    gives model SEs is judged by them) and the fit carries the same unit-level influence
    values, unclustered and unweighted, for the ``multiplier`` bootstrap (its SE the robust
    sandwich of the stacked equations, which the model SE estimates too when the model
    holds) and the correlation of a joint band (sup-t). With a role the model SEs are the
    analytic SEs of those influence values, computed as analytic inference computes them.

    References
    ----------
    Heckman, J. (1979). Sample selection bias as a specification error. *Econometrica* 47(1).
    Toomet, O. & Henningsen, A. (2008). Sample selection models in R: package sampleSelection.
    *J. Stat. Softw.* 27(7). Wooldridge, J. (2010). *Econometric Analysis of Cross Section
    and Panel Data*, 2nd ed., ch. 19.
    """

    name: ClassVar[str] = "heckman"
    Params: ClassVar[type[Params]] = HeckmanParams
    required_roles: ClassVar[tuple[str, ...]] = (
        "outcome",
        "selected",
        "covariates",
        "selection_covariates",
    )
    default_inference: ClassVar[str] = "analytic"
    handles_roles: ClassVar[frozenset[str]] = frozenset({"cluster", "weight"})
    coverage_worlds: ClassVar[tuple[World, ...]] = (
        World(
            "heckman_valid",
            (
                "dgp=heckman_selection_valid",
                "dgp.n=600",
            ),
            note="probit selection on an unobservable, exposure exogenous, z excluded from spend",
        ),
        World(
            "small_sample",
            ("dgp=heckman_selection_valid", "dgp.n=250"),
            note="250 units, about 140 buyers",
        ),
        World(
            "clustered",
            CLUSTERED_1000,
            inferences=frozenset({"analytic", "multiplier"}),
            note="1000 users in 100 clusters sharing covariates, exposure and noise; cluster "
            "role set (without it: coverage 0.81, SE ratio 0.68 at R=300)",
        ),
    )

    def __init__(self, params: HeckmanParams | None = None) -> None:
        self.params = params or HeckmanParams()

    @classmethod
    def capabilities(cls, params: PluginParams) -> frozenset[Capability]:
        """The model's standard errors, the stacked equations' influence values and a refit."""
        return frozenset({Capability.MODEL_SE, Capability.INFLUENCE, Capability.RESAMPLE})

    def _estimate(
        self,
        sd: SelectionData,
        ml_start: np.ndarray | None = None,
        design: _Design | None = None,
        influence: bool = True,
    ) -> tuple[_Estimates, TwoStepResult, MLResult | None]:
        p = self.params
        ts = heckman_twostep(sd.y, sd.X, sd.W, sd.d, max_iter=p.max_iter, weights=sd.weights)
        rank = np.linalg.matrix_rank(np.column_stack([sd.X, ts.imr]))
        if rank < sd.X.shape[1] + 1:
            raise EstimationError(
                f"heckman: outcome regressors and the inverse Mills ratio are collinear (rank {rank} < {sd.X.shape[1] + 1})"
            )
        if p.method == "twostep":
            return _twostep_estimates(sd, ts, design, influence), ts, None
        if ml_start is None:
            rho0 = float(np.clip(ts.rho, -_RHO_START_BOUND, _RHO_START_BOUND))
            ml_start = np.concatenate(
                [ts.probit.coef, ts.coef[:-1], [np.log(ts.sigma), np.arctanh(rho0)]]
            )
        ml = heckman_ml(
            sd.y, sd.X, sd.W, sd.d, ml_start, max_iter=p.max_iter, tol=p.tol, weights=sd.weights
        )
        return _ml_estimates(sd, ml, ts.probit.loglik, design, influence), ts, ml

    def fit(self, data: Dataset, rng: np.random.Generator) -> Fit:
        sd = selection_data(data, self.params.add_intercept, who=self.name)
        # every row is analysed (the unselected ones in the probit), so not only the selected
        analysed = Dataset(data.frame, data.roles.model_copy(update={"selected": None}))
        w = fit_weights(analysed, sd.n)
        # CR1's K: the second-step regressors (outcome covariates and the IMR); ML: G/(G-1) only
        k_cr1 = sd.X.shape[1] + 1 if self.params.method == "twostep" else None
        cl = fit_clusters(analysed, sd.n, self.name, regressors=k_cr1)
        design = None if cl.clusters is None and w is None else _Design(cl.clusters)
        sd = replace(sd, weights=w)
        est, ts, ml = self._estimate(sd, design=design)
        se = np.sqrt(np.clip(np.diag(est.vcov), 0.0, None))
        estimand = Estimand.ATE if sd.treatment is not None else Estimand.DIFF
        targets = (sd.treatment, "lambda") if sd.treatment is not None else ("lambda",)
        j = [est.names.index(t) for t in targets]

        diag: dict[str, DiagnosticValue] = {"method": self.params.method}
        if design is not None:
            diag["vcov_type"] = "robust" if cl.clusters is None else "cluster"
        for name, b, s in zip(est.names, est.coef, se, strict=True):
            diag[f"coef.{name}"] = float(b)
            diag[f"se.{name}"] = float(s)
        diag.update(est.scalars)
        imr_r2, cond = _imr_collinearity(sd.X, ts.imr)
        diag.update(
            {
                "imr_r2": imr_r2,
                "imr_vif": 1.0 / max(1.0 - imr_r2, 1e-300),
                "imr_condition_number": cond,
                "exclusion_restriction": bool(sd.excluded),
                "excluded_variables": ",".join(sd.excluded),
                "n_selected": int(sd.d.sum()),
                "n_unselected": int((~sd.d).sum()),
                "probit_converged": ts.probit.converged,
                "probit_separation": ts.probit.separation,
                "converged": est.converged,
                **(cl.diagnostics or {}),
                **weight_diagnostics(w),
                **_e_value(sd, est.coef),
            }
        )

        warnings: list[str] = []
        if not sd.excluded:
            warnings.append(
                "heckman: no exclusion restriction (every selection covariate is in the outcome "
                "equation); identification rests on normality alone"
            )
        if imr_r2 > _IMR_R2_WARN:
            warnings.append(
                f"heckman: inverse Mills ratio nearly collinear with the outcome regressors "
                f"(R^2 = {imr_r2:.3f}); estimates are fragile"
            )
        if ts.probit.separation or not ts.probit.converged:
            warnings.append(
                "heckman: selection probit did not converge cleanly (separation or iteration limit)"
            )
        if abs(ts.rho_raw) > 1:
            warnings.append(
                f"heckman: two-step rho = {ts.rho_raw:.3f} outside [-1, 1]; truncated in the covariance"
            )
        if ml is not None and not ml.converged:
            warnings.append(
                f"heckman: ML did not reach a stationary point with a negative-definite Hessian "
                f"in {ml.n_iter} iterations (Newton decrement {ml.grad_norm:.2e})"
            )
        if sd.treatment is not None and sd.treatment not in sd.selection_names:
            warnings.append(
                f"heckman: treatment {sd.treatment!r} is not a selection covariate; assumed not to affect selection"
            )
        warnings.extend(cl.warnings)

        ml_start = None if ml is None else ml.theta

        def refit(idx: np.ndarray) -> np.ndarray:
            sub = sd.subset(np.asarray(idx))
            if not 0 < sub.d.sum() < sub.n:
                raise EstimationError(
                    "heckman: resample without both selected and unselected units"
                )
            try:
                e, _, m = self._estimate(sub, ml_start, influence=False)
            except np.linalg.LinAlgError as exc:
                raise EstimationError(f"heckman: refit failed ({exc})") from exc
            if m is not None and not m.converged:
                raise EstimationError("heckman: ML refit did not converge")
            return e.coef[j]

        names = (str(estimand), *targets[1:])
        assert est.influence is not None
        influence, model_se = est.influence[:, j], se[j]
        if design is not None:  # the sandwich exactly as analytic inference computes it
            carrier = Fit(estimand, est.coef[j], sd.n, names=names, influence=influence,
                          clusters=cl.clusters)  # fmt: skip
            model_se = influence_se(*influence_rows(carrier))
        return Fit(
            estimand,
            est.coef[j],
            sd.n,
            names=names,
            influence=influence,
            model_se=model_se,
            resampler=Resampler(sd.n, strata=None, refit=refit),
            clusters=cl.clusters,
            weights=w,
            diagnostics=diag,
            warnings=tuple(warnings),
        )
