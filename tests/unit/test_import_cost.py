"""Commands import only what they use (issue 20 item 5): structural checks on ``sys.modules``
in a fresh interpreter, no timings. Each subprocess takes ~1-3 s on the 2-core CI machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HEAVY = ("mlflow", "sklearn", "cvxpy", "statsmodels", "matplotlib", "scipy.stats", "formulaic")


def _imported(tmp_path: Path, body: str) -> list[str]:
    """Run ``body`` (output silenced) in a fresh interpreter; return the modules it imported.

    The plugin-listing cache is ``tmp_path/cache`` (empty at a test's first call)."""
    script = (
        "import contextlib, io, sys\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        + "".join(f"    {line}\n" for line in body.splitlines())
        + "print(' '.join(sorted(sys.modules)))\n"
    )
    env = {**os.environ, "CAUSALKIT_CACHE_DIR": str(tmp_path / "cache")}
    p = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert p.returncode == 0, p.stderr
    return p.stdout.split()


def test_listing_and_help_import_no_estimation_stack(tmp_path: Path) -> None:
    mods = _imported(
        tmp_path,
        "from causalkit import cli, plugins\n"
        "plugins.main([])\n"
        "plugins.main(['--json'])\n"
        "cli.main(['--help'])",
    )
    assert "causalkit_plugins.estimators.aipw.estimator" in mods  # every plugin was listed
    assert [m for m in HEAVY if m in mods] == []


def test_repeated_listing_reads_the_cache_and_imports_no_plugin(tmp_path: Path) -> None:
    first = _imported(tmp_path, "from causalkit import plugins\nplugins.main([])")
    assert "causalkit_plugins.estimators.aipw.estimator" in first
    again = _imported(
        tmp_path, "from causalkit import plugins\nplugins.main([])\nplugins.main(['--json'])"
    )
    stack = ("pandas", "pydantic", "numpy", "causalkit_plugins")
    assert [m for m in again if m.split(".")[0] in stack] == []


def test_help_imports_neither_pandas_nor_plugins(tmp_path: Path) -> None:
    mods = _imported(tmp_path, "from causalkit import cli\ncli.main(['--help'])")
    assert [m for m in mods if m == "pandas" or m.startswith("causalkit_plugins.")] == []


def test_untracked_run_imports_only_its_plugins(tmp_path: Path) -> None:
    mods = _imported(
        tmp_path,
        "from causalkit import cli\n"
        "cli.main(['tracking=none', 'estimator=itt', 'inference=analytic'])",
    )
    assert "causalkit_plugins.estimators.differences" in mods
    assert [m for m in HEAVY if m in mods] == []
    estimators = [m for m in mods if m.startswith("causalkit_plugins.estimators.")]
    assert estimators == ["causalkit_plugins.estimators.differences"]
