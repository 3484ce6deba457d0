"""The MLflow UI, checked in a real browser: a small sweep, ``mlflow server`` on loopback, headless Chromium.

What a user does after a sweep (README, "Comparing runs in the MLflow UI") is replayed with
Playwright driving Debian's Chromium (``/usr/bin/chromium``; Playwright's own browser download is
not used): open the experiment's runs table, show the ``bias`` and ``rmse`` columns, expand the
sweep's parent run, and read every child run's name and metrics off the page; then select the
children and open MLflow's comparison view. The values on the page must equal those in the store.
Screenshots of both pages are saved (to ``CAUSALKIT_SCREENSHOT_DIR`` when set, else the test's
temporary directory).

The test is skipped when Chromium or Playwright is missing, unless ``CAUSALKIT_REQUIRE_BROWSER=1``
(set by ``.ci/run``, which installs Chromium), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.cli

CHROMIUM = os.environ.get("CAUSALKIT_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking switches Chromium keeps dialling Google on a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOWN = ("bias", "rmse")
COMPARED = ("bias", "coverage")
"""Metrics checked in MLflow's comparison view, whose grid renders only its first 19 rows
(alphabetical; a cell logs about 40 metrics, so ``rmse`` is out of reach without scrolling)."""
TIMEOUT_MS = 90_000


def _browser_or_skip():
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(f"Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing.append("the playwright package")
        sync_playwright = None
    if missing:
        reason = (
            "needs "
            + " and ".join(missing)
            + " (apt-get install chromium; pip install -e '.[test]')"
        )
        if os.environ.get("CAUSALKIT_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return sync_playwright


@pytest.fixture
def sweep_store(tmp_path):
    """A finished two-cell sweep in ``tmp_path/runs/mlflow.db``: (cwd, experiment id, parent, children)."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "causalkit",
            "-m",
            "estimator=naive,itt",
            "mc.reps=20",
            "inference=analytic",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("causalkit")
    assert exp.tags.get("mlflow.experimentKind") == "custom_model_development"
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and len(children) == 2
    return tmp_path, exp.experiment_id, parents[0], children


@pytest.fixture
def server(sweep_store, mlflow_server):
    cwd = sweep_store[0]
    store = ["--backend-store-uri", f"sqlite:///{cwd / 'runs' / 'mlflow.db'}"]
    store += ["--default-artifact-root", (cwd / "runs" / "artifacts").as_uri()]
    with mlflow_server(store, cwd / "mlflow_server.log") as url:
        yield url


def _numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", text)]


def test_sweep_cells_and_their_metrics_are_on_the_experiment_page(sweep_store, server, tmp_path):
    sync_playwright = _browser_or_skip()
    _, exp_id, parent, children = sweep_store
    shots = Path(os.environ.get("CAUSALKIT_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 2200, "height": 800})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{server}/#/experiments/{exp_id}/runs")
            page.get_by_text(parent.info.run_name, exact=True).wait_for()
            assistant = page.get_by_role("button", name="Close")
            if assistant.count():
                assistant.first.click()
            page.get_by_role("button", name="Columns").click()
            for metric in SHOWN:
                page.get_by_text(metric, exact=True).first.click()
            page.keyboard.press("Escape")
            # The cells of a sweep are nested under its parent run: expand it.
            page.locator("button[data-component-id*=runnamecellrenderer]").first.click()
            for child in children:
                page.get_by_text(child.info.run_name, exact=True).wait_for()
            for child in children:
                name_cell = page.locator("[role=gridcell][col-id='attributes.`Run Name`']").filter(
                    has_text=child.info.run_name
                )
                row = name_cell.locator("xpath=..").get_attribute("row-index")
                for metric in SHOWN:
                    cell = page.locator(
                        f"[role=row][row-index='{row}'] [role=gridcell][col-id='metrics.`{metric}`']"
                    )
                    shown = float(cell.first.inner_text().strip())
                    assert shown == pytest.approx(
                        child.data.metrics[metric], rel=1e-9, abs=1e-12
                    ), (
                        f"{child.info.run_name}: {metric} on the page {shown} != store {child.data.metrics[metric]}"
                    )
            page.screenshot(path=str(shots / "mlflow_runs_table.png"), full_page=True)

            # MLflow's comparison view of the selected cells.
            for child in children:
                name_cell = page.locator("[role=gridcell][col-id='attributes.`Run Name`']").filter(
                    has_text=child.info.run_name
                )
                row = name_cell.locator("xpath=..").get_attribute("row-index")
                page.locator(f"[role=row][row-index='{row}'] input[type=checkbox]").first.check()
            page.get_by_role("button", name="Compare").first.click()
            page.wait_for_url(re.compile(r".*compare-runs.*"))
            page.get_by_text("Show diff only").first.wait_for()
            body = page.inner_text("body")
            page.get_by_text("Show diff only").nth(1).scroll_into_view_if_needed()
            page.screenshot(path=str(shots / "mlflow_compare.png"), full_page=True)
        finally:
            browser.close()
    for child in children:
        assert child.info.run_name in body
    metrics_part = body[body.rfind("Metrics") :]
    for metric in COMPARED:
        assert re.search(rf"^{metric}$", metrics_part, re.M), (
            f"{metric} row missing from the comparison view"
        )
    shown = _numbers(metrics_part)
    for child in children:
        for metric in COMPARED:
            value = child.data.metrics[metric]
            assert any(abs(x - value) <= 5e-4 + 1e-3 * abs(value) for x in shown), (
                f"{child.info.run_name}: {metric}={value:.4f} not in the comparison view"
            )
    print(f"screenshots: {shots / 'mlflow_runs_table.png'}, {shots / 'mlflow_compare.png'}")
