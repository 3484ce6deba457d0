r"""The coverage matrix: every registered (estimator, inference) pairing run on its declared worlds.

Each estimator class declares ``coverage_worlds``: a tuple of :class:`World` — a DGP with its
parameters and the estimand whose truth is known, at the estimator's **default** settings.
:func:`cells` crosses every pairing the registry derives (``registry.pairings(estimator)``,
default parameters, ``none`` excluded) with the worlds that apply to it; a pairing without a
world is an error (:func:`missing_worlds`), so registering a plugin adds its rows.

Every cell is a Monte Carlo cell run through :func:`causalkit.montecarlo.run_cell` (the same
seeding, failure accounting and summaries users get) and judged by :func:`judge`:

- coverage within :math:`1-\alpha \pm 3\sqrt{(1-\alpha)\alpha/R}` (the MCSE at the nominal
  rate, so an observed 1.000 is not a zero-MCSE pass); ``conservative`` worlds only require
  coverage :math:`\ge 1-\alpha - 3\,\mathrm{MCSE}` and mean model SE :math:`\ge` empirical SE
  minus 3 MCSE;
- relative error of the model SE, :math:`q = \overline{\widehat{se}}/s - 1`, within
  :math:`\pm 3\,\mathrm{MCSE}(q)`, where by the delta method (Morris, White & Crowther 2019,
  Table 6, "relative % error in ModSE", with the mean SE in place of the root mean variance)

  .. math:: \mathrm{MCSE}(q) = \frac{\overline{\widehat{se}}}{s}
            \sqrt{\frac{\widehat{\mathrm{Var}}(\widehat{se})}{R\,\overline{\widehat{se}}^2}
            + \frac{\hat\kappa - 1}{4(R-1)}},

  with :math:`\hat\kappa` the kurtosis of the estimates. Morris et al. take normal estimates
  (:math:`\kappa = 3`, the term :math:`1/(2(R-1))`); the empirical SE of a heavy-tailed
  estimator (IPW with small samples, Student-t outcomes) varies more than that
  (:math:`\mathrm{Var}(s)/\sigma^2 \approx (\kappa-1)/(4R)`), and the normal-theory MCSE
  would fail correct SEs there. :math:`\hat\kappa` is floored at 3: light tails never
  narrow the band;

- :math:`|\mathrm{bias}| \le 3\,\mathrm{MCSE}` (:math:`s/\sqrt R`);
- failed replications :math:`\le 1\%`; in a ``refuse`` world the method must refuse instead
  (validation rejects the cell, or every replication fails or reports no interval);
- in a ``flagged`` world (an edge its users meet where the method is known not to be valid,
  e.g. IPW under overlap too weak for the weights to have a finite variance) the result
  must carry a warning in at least :data:`FLAGGED_SHARE` of the replications; its coverage
  and SE are measured and shown, not judged;
- in a ``null`` world (no effect) the test's size too: the rejection rate of the reported
  p-value at :math:`\alpha` within :math:`\alpha \pm 3\sqrt{\alpha(1-\alpha)/R}` (at most
  its upper end in a ``conservative`` world).

The number of replications, :math:`R = 600` by default: at the 95% level the coverage band
is :math:`0.95 \pm 0.027`; a true coverage of 0.90 or 0.99 then fails with probability 0.97
and 0.999, a model SE 15% too large (:math:`q = 0.15` against :math:`\pm 3 \cdot 1.15/\sqrt{2R}
= \pm 0.10`) with probability 0.94 and 15% too small with 0.998. At :math:`R = 500` the
too-large SE is caught with probability only 0.87. :func:`power` computes these.

References
----------
Morris, T. P., White, I. R. & Crowther, M. J. (2019). Using simulation studies to evaluate
statistical methods. *Statistics in Medicine* 38(11), 2074-2102.

Run ``python -m causalkit.coverage --markdown`` to run the matrix and print the README table.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = [
    "World",
    "Cell",
    "Verdict",
    "INFERENCE_OVERRIDES",
    "cells",
    "missing_worlds",
    "rel_se_mcse",
    "judge",
    "power",
    "run",
    "markdown",
    "main",
]

Expect = Literal["nominal", "conservative", "refuse", "flagged"]

FLAGGED_SHARE = 0.9
"""Least share of replications that must warn in a ``flagged`` world."""

INFERENCE_OVERRIDES: dict[str, tuple[str, ...]] = {
    "bootstrap": ("inference.n_boot=199",),
    "multiplier": ("inference.n_boot=499",),
    "permutation": ("inference.n_perm=199", "inference.test=twosided"),
}
"""Resampling sizes of the matrix (B + 1 a multiple of 20: the two-sided 5% test is exact)."""


@dataclass(frozen=True)
class World:
    r"""A world in which an estimator's pairings are checked.

    Parameters
    ----------
    name : str
        Short name (the row label).
    overrides : tuple of str
        Config overrides of the DGP, data and ``mc.target`` (never of the estimator's
        parameters: the matrix checks the defaults).
    expect : {"nominal", "conservative", "refuse", "flagged"}
        What the pairing must do there (see the module docstring).
    reps : int
        Monte Carlo replications R.
    inferences : frozenset of str, optional
        The pairings this world applies to (default: every pairing of the estimator).
    null : bool
        The effect is zero: the size of the reported p-value is checked too.
    note : str
        Why the world (or its expectation) is what it is.
    known : str
        A documented departure: the method is known to miss the criteria here (why, and
        what was measured). The cell is run and its row shown as it is; the test does not
        fail on it (``xfail``), and passes it when it meets the criteria after all.
    conditional : bool
        The truth is the draw's own (it changes from draw to draw, e.g. the effect on the
        drawn treated units' weighted total) and the method's SE is conditional on it, as
        its documentation says: the model SE is compared with the SD of the errors
        :math:`\hat\theta_r - \theta_r` instead of the SD of the estimates, which also holds
        the truth's own spread.
    """

    name: str
    overrides: tuple[str, ...]
    expect: Expect = "nominal"
    reps: int = 600
    inferences: frozenset[str] | None = None
    null: bool = False
    note: str = ""
    known: str = ""
    conditional: bool = False

    def applies_to(self, inference: str) -> bool:
        """Whether this world checks the pairing with ``inference``."""
        return self.inferences is None or inference in self.inferences


@dataclass(frozen=True)
class Cell:
    """One row of the matrix: an estimator, an inference method and a world."""

    estimator: str
    inference: str
    world: World

    @property
    def label(self) -> str:
        """``estimator/inference @ world``."""
        return f"{self.estimator}/{self.inference} @ {self.world.name}"

    def overrides(self, n_jobs: int = 1) -> list[str]:
        """Return the cell's complete command-line overrides (tracking off)."""
        return [
            "tracking=none",
            f"estimator={self.estimator}",
            f"inference={self.inference}",
            *INFERENCE_OVERRIDES.get(self.inference, ()),
            *self.world.overrides,
            f"mc.reps={self.world.reps}",
            f"mc.n_jobs={n_jobs}",
        ]


def _worlds(plugin: Any) -> tuple[World, ...]:
    return tuple(getattr(plugin, "coverage_worlds", ()))


def _pairings(registry: Any, estimator: str) -> tuple[str, ...]:
    return tuple(i for i in registry.pairings(estimator) if i != "none")


def missing_worlds(registry: Any) -> list[tuple[str, str]]:
    """Pairings (estimator, inference) with no world where they must be nominal or conservative."""
    out: list[tuple[str, str]] = []
    for est in registry.names("estimator"):
        worlds = _worlds(registry.get("estimator", est))
        for inf in _pairings(registry, est):
            if not any(
                w.applies_to(inf) and w.expect in ("nominal", "conservative") for w in worlds
            ):
                out.append((est, inf))
    return out


def cells(registry: Any) -> list[Cell]:
    """Every pairing x applicable world of the registry, in name order."""
    out: list[Cell] = []
    for est in registry.names("estimator"):
        worlds = _worlds(registry.get("estimator", est))
        for inf in _pairings(registry, est):
            out.extend(Cell(est, inf, w) for w in worlds if w.applies_to(inf))
    return out


def rel_se_mcse(
    se: np.ndarray, emp_se: float, estimates: np.ndarray | None = None
) -> tuple[float, float]:
    r"""Relative error of the model SE, ``mean(se) / emp_se - 1``, and its MCSE (delta method).

    ``estimates`` give the kurtosis :math:`\hat\kappa` (floored at 3) of the empirical SE's
    own Monte Carlo error; without them the estimates are taken as normal (:math:`\kappa=3`).
    """
    R = se.size
    m = float(se.mean())
    ratio = m / emp_se
    kappa = 3.0
    if estimates is not None and estimates.size > 3:
        centred = estimates - estimates.mean()
        m2 = float(np.mean(centred**2))
        if m2 > 0:
            kappa = max(3.0, float(np.mean(centred**4)) / (m2 * m2))
    mcse = ratio * math.sqrt(float(se.var(ddof=1)) / (R * m * m) + (kappa - 1) / (4 * (R - 1)))
    return ratio - 1, mcse


def power(reps: int, level: float = 0.95) -> dict[str, float]:
    r"""Probability that the criteria reject coverage ``level - 0.05`` / ``level + 0.04`` and a model SE 15 % off.

    Normal approximations: the observed coverage is :math:`N(c, c(1-c)/R)`; with a model SE
    :math:`(1+q)` times the true one (negligible spread) the relative error is
    :math:`N(q, (1+q)^2/(2R))` and its band :math:`\pm 3(1+q)/\sqrt{2R}`.
    """
    from scipy.stats import norm

    half = 3 * math.sqrt(level * (1 - level) / reps)
    out = {}
    for c in (level - 0.05, min(level + 0.04, 0.999)):
        sd = math.sqrt(c * (1 - c) / reps)
        out[f"coverage {c:.2f}"] = float(
            1 - (norm.cdf((level + half - c) / sd) - norm.cdf((level - half - c) / sd))
        )
    for q in (0.15, -0.15):
        sd = (1 + q) / math.sqrt(2 * reps)
        out[f"SE {q:+.0%}"] = float(
            1 - (norm.cdf((3 * sd - q) / sd) - norm.cdf((-3 * sd - q) / sd))
        )
    return out


@dataclass
class Verdict:
    """The measured figures of one cell and whether it passes."""

    label: str
    estimator: str
    inference: str
    world: str
    expect: str
    reps: int
    seconds: float
    coverage: float = math.nan
    coverage_band: float = math.nan
    rel_se: float = math.nan
    rel_se_mcse: float = math.nan
    bias: float = math.nan
    bias_mcse: float = math.nan
    emp_se: float = math.nan
    mean_se: float = math.nan
    failed: float = math.nan
    size: float = math.nan
    warned: float = math.nan
    known: str = ""
    reasons: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """No criterion failed."""
        return not self.reasons


def judge(cell: Cell, result: Any, refused: str | None = None) -> Verdict:
    """Apply the matrix criteria to a :class:`~causalkit.results.CellResult` (or a refusal)."""
    w = cell.world
    v = Verdict(cell.label, cell.estimator, cell.inference, w.name, w.expect, w.reps, 0.0)
    v.known = w.known
    if refused is not None:
        v.failed = 1.0
        if w.expect != "refuse":
            v.reasons.append(f"refused at validation: {refused}")
        return v
    m, reps = result.metrics, result.replications
    v.seconds = float(result.seconds)
    R = int(m["reps"])
    ok = reps[reps["error"].isna()] if "error" in reps else reps
    se = ok["se"].to_numpy(float) if len(ok) else np.empty(0)
    no_ci = (~np.isfinite(se)).sum() if se.size else 0
    v.failed = (m["n_failed"] + no_ci) / R
    if w.expect == "refuse":
        if v.failed < 1:
            v.reasons.append(f"must refuse, but {1 - v.failed:.1%} of replications reported")
        return v
    level = float(result.level)
    v.coverage, v.bias, v.bias_mcse = m["coverage"], m["bias"], m["bias_mcse"]
    v.emp_se, v.mean_se = m["emp_se"], m["mean_se"]
    v.coverage_band = 3 * math.sqrt(level * (1 - level) / R)
    if "n_warnings" in ok:
        v.warned = float(np.sum(ok["n_warnings"].to_numpy(float) > 0)) / R
    if v.failed > 0.01:
        v.reasons.append(f"failed {v.failed:.1%} > 1%")
    finite = se[np.isfinite(se)]
    est = ok["estimate"].to_numpy(float) if len(ok) else np.empty(0)
    if w.conditional and len(ok) > 1:
        est = est - ok["truth"].to_numpy(float)  # the errors (World.conditional)
        v.emp_se = float(np.std(est[np.isfinite(est)], ddof=1))
    if finite.size > 2 and math.isfinite(v.emp_se) and v.emp_se > 0:
        v.rel_se, v.rel_se_mcse = rel_se_mcse(finite, v.emp_se, est[np.isfinite(est)])
    if w.expect == "flagged":
        if not v.warned >= FLAGGED_SHARE:
            v.reasons.append(f"warned in {v.warned:.1%} of replications < {FLAGGED_SHARE:.0%}")
        return v
    if not math.isfinite(v.coverage):
        v.reasons.append("no coverage (no intervals)")
    elif w.expect == "conservative":
        if v.coverage < level - v.coverage_band:
            v.reasons.append(f"coverage {v.coverage:.3f} < {level} - {v.coverage_band:.3f}")
    elif abs(v.coverage - level) > v.coverage_band:
        v.reasons.append(f"coverage {v.coverage:.3f} outside {level} ± {v.coverage_band:.3f}")
    if math.isfinite(v.rel_se):
        low = v.rel_se < -3 * v.rel_se_mcse
        if (
            w.expect == "conservative"
            and low
            or w.expect == "nominal"
            and (abs(v.rel_se) > 3 * v.rel_se_mcse)
        ):
            v.reasons.append(
                f"model SE relative error {v.rel_se:+.3f} beyond 3 x {v.rel_se_mcse:.3f}"
            )
    if not abs(v.bias) <= 3 * v.bias_mcse:
        v.reasons.append(f"bias {v.bias:+.4g} beyond 3 x {v.bias_mcse:.4g}")
    if w.null and "p_value" in ok:
        p = ok["p_value"].to_numpy(float)
        alpha = 1 - level
        v.size = float(np.mean(p <= alpha + 1e-12))
        band = 3 * math.sqrt(alpha * (1 - alpha) / R)
        if w.expect == "conservative" and v.size > alpha + band:
            v.reasons.append(f"size {v.size:.3f} > {alpha:.2f} + {band:.3f}")
        elif w.expect == "nominal" and abs(v.size - alpha) > band:
            v.reasons.append(f"size {v.size:.3f} outside {alpha:.2f} ± {band:.3f}")
    return v


def run(
    registry: Any | None = None,
    n_jobs: int = 1,
    only: Iterable[str] = (),
    echo: bool = True,
) -> list[Verdict]:
    """Run the matrix (cells whose label contains one of ``only``, default all); print each cell's time."""
    from causalkit.cli import compose
    from causalkit.config import validate
    from causalkit.errors import CausalkitError
    from causalkit.montecarlo import run_cell
    from causalkit.registry import default_registry
    from causalkit.session import Session

    registry = registry if registry is not None else default_registry()
    session = Session(registry)
    wanted = list(only)
    out = []
    t0 = time.perf_counter()
    for cell in cells(registry):
        if wanted and not any(s in cell.label for s in wanted):
            continue
        try:
            cfg = validate(compose(cell.overrides(n_jobs)), registry)
        except CausalkitError as exc:
            v = judge(cell, None, refused=str(exc))
        else:
            v = judge(cell, run_cell(cfg, session))
        out.append(v)
        if echo:
            status = "ok  " if v.passed else "FAIL"
            print(f"{status} {v.seconds:7.1f} s  {v.label}  {'; '.join(v.reasons)}", flush=True)
    if echo:
        print(f"matrix: {len(out)} cells, {time.perf_counter() - t0:.0f} s", flush=True)
    return out


def _nested(overrides: Sequence[str]) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """Split ``group=option`` choices from ``a.b=value`` settings (as a nested mapping)."""
    import yaml

    groups: list[dict[str, str]] = []
    values: dict[str, Any] = {}
    for o in overrides:
        key, value = o.split("=", 1)
        if "." not in key:
            groups.append({f"override /{key}": value})
            continue
        node = values
        *path, leaf = key.split(".")
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return groups, values


def cell_file(cell: Cell) -> str:
    """Name of the cell's option in the ``coverage_cell`` config group."""
    return re.sub(r"[^A-Za-z0-9_]+", "-", f"{cell.estimator}-{cell.inference}-{cell.world.name}")


def conf_files(registry: Any) -> dict[str, str]:
    """Return the sweep preset and one ``coverage_cell`` option per cell, as file path -> text.

    ``conf/experiment/coverage_matrix.yaml`` sweeps ``+coverage_cell`` over every cell;
    each ``conf/coverage_cell/<estimator>-<inference>-<world>.yaml`` selects the plugins
    and sets the world (``# @package _global_``). ``refuse`` cells are left out of the sweep
    (validation rejects them before any cell runs). Written by ``--write-conf``; a test checks
    they match the registry.
    """
    import yaml

    head = "# Generated by `python -m causalkit.coverage --write-conf` from the estimators' coverage_worlds.\n"
    out = {}
    names = []
    for cell in cells(registry):
        if cell.world.expect == "refuse":
            continue
        groups, values = _nested(
            [
                f"estimator={cell.estimator}",
                f"inference={cell.inference}",
                *INFERENCE_OVERRIDES.get(cell.inference, ()),
                *cell.world.overrides,
                f"mc.reps={cell.world.reps}",
            ]
        )
        body = yaml.safe_dump({"defaults": groups, **values}, sort_keys=False)
        name = cell_file(cell)
        names.append(name)
        out[f"conf/coverage_cell/{name}.yaml"] = (
            f"# @package _global_\n{head}# {cell.label} (expect: {cell.world.expect}). "
            f"{cell.world.note}\n{body}"
        )
    out["conf/experiment/coverage_matrix.yaml"] = (
        "# @package _global_\n"
        + head
        + "# The coverage matrix as a sweep (one cell per registered pairing x world), logged to MLflow:\n"
        + "#   python -m causalkit -m experiment=coverage_matrix mc.reps=200 mc.n_jobs=2\n"
        + "#   python -m causalkit.report\n"
        + "# The pass/fail criteria: python -m causalkit.coverage --markdown (see causalkit/coverage.py).\n"
        + yaml.safe_dump(
            {"hydra": {"sweeper": {"params": {"+coverage_cell": ",".join(names)}}}},
            sort_keys=False,
            width=10_000,
        )
    )
    return out


README_START = (
    "<!-- coverage-matrix: generated by python -m causalkit.coverage --readme README.md -->"
)
README_END = "<!-- /coverage-matrix -->"


def _f(x: float, fmt: str) -> str:
    return format(x, fmt) if math.isfinite(x) else "–"


def markdown(verdicts: Sequence[Verdict], matrix: Sequence[Cell] = ()) -> str:
    """Render the README table: one row per cell with R, the measured figures and the verdict.

    Cells of ``matrix`` without a verdict get a row saying they were not measured.
    """
    have = {v.label for v in verdicts}
    verdicts = [*verdicts]
    for c in matrix:
        if c.label not in have:
            v = Verdict(
                c.label, c.estimator, c.inference, c.world.name, c.world.expect, c.world.reps, 0.0
            )
            v.reasons.append("not measured yet")
            verdicts.append(v)
    verdicts.sort(key=lambda v: v.label)
    head = (
        "| estimator / inference | world | expect | R | coverage (± 3 MCSE band) | SE rel. error ± MCSE "
        "| bias / MCSE | failed | size | warned | s | verdict |\n"
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    )
    rows = [head]
    for v in verdicts:
        bias = v.bias / v.bias_mcse if v.bias_mcse else math.nan
        verdict = (
            "pass"
            if v.passed
            else "not measured yet"
            if v.reasons == ["not measured yet"]
            else f"known departure ({v.known}): " + "; ".join(v.reasons)
            if v.known
            else "**FAIL**: " + "; ".join(v.reasons)
        )
        rows.append(
            f"| {v.estimator} / {v.inference} | {v.world} | {v.expect} | {v.reps} "
            f"| {_f(v.coverage, '.3f')} (± {_f(v.coverage_band, '.3f')}) "
            f"| {_f(v.rel_se, '+.3f')} ± {_f(v.rel_se_mcse, '.3f')} | {_f(bias, '+.1f')} "
            f"| {_f(v.failed, '.1%')} | {_f(v.size, '.3f')} | {_f(v.warned, '.0%')} "
            f"| {v.seconds:.0f} | {verdict} |"
        )
    return "\n".join(rows)


def save(verdicts: Sequence[Verdict], path: Path) -> None:
    """Write the verdicts as JSON (read back by ``--results``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(v) for v in verdicts], indent=1))


def load(path: Path) -> list[Verdict]:
    """Read verdicts written by :func:`save` (a file, or a directory of them in name order)."""
    files = sorted(path.glob("*.json")) if path.is_dir() else [path] if path.exists() else []
    return [Verdict(**d) for f in files for d in json.loads(f.read_text())]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m causalkit.coverage [--markdown] [--n-jobs N] [--only S ...] [--results FILE]``."""
    parser = argparse.ArgumentParser(prog="python -m causalkit.coverage", description=__doc__)
    parser.add_argument("--markdown", action="store_true", help="print the README table")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--only", nargs="*", default=[], help="run cells whose label has one")
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="render saved verdicts: a file or a directory (the test writes runs/coverage/cells/)",
    )
    parser.add_argument("--save", type=Path, default=Path("runs/coverage/matrix.json"))
    parser.add_argument(
        "--readme",
        type=Path,
        default=None,
        help="replace the table between the coverage-matrix markers of this file",
    )
    parser.add_argument(
        "--write-conf", action="store_true", help="write the sweep preset and its cells to conf/"
    )
    args = parser.parse_args(argv)
    from causalkit.registry import default_registry

    if args.write_conf:
        root = Path(__file__).resolve().parent.parent
        for rel, text in conf_files(default_registry()).items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
            print(f"written: {rel}")
        return 0
    matrix = cells(default_registry())
    if args.results is not None:
        verdicts = load(args.results)
    else:
        verdicts = run(n_jobs=args.n_jobs, only=args.only, echo=True)
        save(verdicts, args.save)
    if args.markdown:
        print(markdown(verdicts, matrix))
    if args.readme is not None:
        text = args.readme.read_text()
        start, end = text.index(README_START) + len(README_START), text.index(README_END)
        args.readme.write_text(text[:start] + "\n" + markdown(verdicts, matrix) + "\n" + text[end:])
    return 0 if all(v.passed for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
