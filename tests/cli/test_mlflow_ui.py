"""The MLflow UI, checked in a real browser: a small sweep, ``python -m causalkit.ui``, headless Chromium.

What a user does after a sweep (README, "Comparing runs in the MLflow UI") is replayed with
Playwright driving Debian's Chromium (``/usr/bin/chromium``; Playwright's own browser download is
not used), from the address ``python -m causalkit.ui`` prints and a fresh browser profile, with
nothing dismissed: the runs table must be what opens; show the ``bias`` and ``rmse`` columns,
expand the sweep's parent run, and read every child run's name and metrics off the page; then
select the children and open MLflow's comparison view. The values on the page must equal those in
the store. Screenshots of the three pages are saved to ``$CAUSALKIT_ARTIFACTS`` when set (CI keeps
it), else to ``runs/artifacts/screenshots/`` in the test's folder, and their paths printed.

The browser test is skipped when Chromium or Playwright is missing, unless
``CAUSALKIT_REQUIRE_BROWSER=1`` (set by ``.ci/run``, which installs Chromium), where a missing
browser is a failure. Bad input to ``python -m causalkit.ui`` is checked in-process, without one.
"""

from __future__ import annotations

import os
import re
import signal
import socket
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
def ui(sweep_store, free_port):
    """``python -m causalkit.ui`` on the sweep's folder: (the runs-table address it prints, its process)."""
    cwd = sweep_store[0]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "causalkit.ui", "--port", str(free_port())],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline(), proc.stdout.readline()]  # waits for the server
        assert lines[1].startswith("http://127.0.0.1:"), (
            lines,
            proc.stderr.read() if proc.poll() is not None else "",
        )
        yield lines[1].strip(), proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _shots(cwd: Path) -> Path:
    """Where screenshots go: ``$CAUSALKIT_ARTIFACTS`` (CI keeps it), else under the test's runs/."""
    env = os.environ.get("CAUSALKIT_ARTIFACTS")
    folder = Path(env) if env else cwd / "runs" / "artifacts" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", text)]


def test_sweep_cells_and_their_metrics_are_on_the_page_causalkit_ui_opens(sweep_store, ui):
    sync_playwright = _browser_or_skip()
    cwd, exp_id, parent, children = sweep_store
    url, proc = ui
    assert url.endswith(f"/#/experiments/{exp_id}/runs?workflowType=machine_learning")
    shots = _shots(cwd)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            # A fresh profile (a new context has no storage), nothing dismissed: the README's steps.
            page = browser.new_page(viewport={"width": 2200, "height": 800})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url)
            page.get_by_text(parent.info.run_name, exact=True).wait_for()
            page.screenshot(path=str(shots / "mlflow_landing.png"))
            assert "/runs" in page.url and "workflowType=machine_learning" in page.url
            landing = page.inner_text("body")
            assert (
                "Detect Issues" not in landing and "Overview" not in landing
            )  # not the GenAI view
            # Playwright clicks only what nothing covers: a popover over the table fails here.
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
    proc.send_signal(signal.SIGINT)  # Ctrl-C: the server stops, one line, exit code 130
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and err.strip() == "causalkit.ui: stopped the MLflow UI", err
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
    names = ("mlflow_landing.png", "mlflow_runs_table.png", "mlflow_compare.png")
    print("screenshots: " + ", ".join(str(shots / n) for n in names))


def _ui_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    from causalkit import ui

    with pytest.raises(SystemExit) as exit_:
        ui.main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and len(err.splitlines()) == 1, err
    return err


def test_ui_without_a_store_is_one_line(workdir, capsys):
    err = _ui_error([], capsys)
    assert err.startswith("causalkit.ui: error: --backend-store: expected an MLflow store")
    assert str(workdir / "runs" / "mlflow.db") in err and "no such file" in err


def test_ui_on_a_port_in_use_is_one_line(workdir, capsys):
    from causalkit.store import seed_sqlite_store

    (workdir / "runs").mkdir()
    seed_sqlite_store(workdir / "runs" / "mlflow.db")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        err = _ui_error(["--port", str(port)], capsys)
    assert err.startswith("causalkit.ui: error: --port: expected a free port") and str(port) in err


def test_ui_on_a_store_without_runs_is_one_line(workdir, capsys, free_port):
    from causalkit.store import seed_sqlite_store

    (workdir / "runs").mkdir()
    seed_sqlite_store(workdir / "runs" / "mlflow.db")
    err = _ui_error(["--port", "0"], capsys)
    assert "--port: expected a port number from 1 to 65535, got 0" in err
    store = f"sqlite:///{workdir / 'runs' / 'mlflow.db'}"
    err = _ui_error(["--backend-store", store, "--port", str(free_port())], capsys)
    assert "--backend-store: expected a store with runs" in err


def test_runs_address_names_the_machine_learning_view():
    from causalkit.ui import runs_url

    assert (
        runs_url("http://127.0.0.1:5000/", "7")
        == "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning"
    )
