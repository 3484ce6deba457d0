"""The HTML report fits a 1,400-pixel browser window (issue 20, item 8), checked in headless Chromium.

The page is built in-process from a table with long cell names, a failed cell and the
comparison figure, then loaded with Playwright driving Debian's Chromium at 1400x900: nothing
may scroll sideways, neither the page nor its results table. A screenshot is saved (to
``$CAUSALKIT_ARTIFACTS`` when set, else the test's temporary directory). Skipped without
Chromium or Playwright unless ``CAUSALKIT_REQUIRE_BROWSER=1`` (as ``tests/cli/test_mlflow_ui.py``).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from causalkit.report_page import PAGE_WIDTH, html_page

pytestmark = pytest.mark.cli

CHROMIUM = os.environ.get("CAUSALKIT_CHROMIUM", "/usr/bin/chromium")


def _playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or not Path(CHROMIUM).exists():
        reason = f"needs Chromium at {CHROMIUM} and the playwright package"
        if os.environ.get("CAUSALKIT_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return sync_playwright


def _page() -> str:
    import numpy as np
    import pandas as pd
    from PIL import Image

    from causalkit.results import CELL_METRICS

    rows = []
    for i, est in enumerate(("naive", "itt", "ols", "ipw", "psm", "aipw", "heckman", "microsynth")):
        row = {c: 1234.5678 * (i + 1) for c in CELL_METRICS}  # wide numbers
        row["bias"] = -row["bias"]
        name = f"experiment=contaminated_holdout,estimator={est},dgp.n_users=20000,mc.reps=10000"
        name += ",dgp.lift=0.05" if i % 2 else ""  # one factor varies: the names stay long
        row.update(cell=name, status="FINISHED", reps=10000.0, n_failed=12.0, coverage=0.9512)
        row.update(coverage_lower=0.94, coverage_upper=0.96, coverage_mcse=0.0021)
        row.update(estimand="ATT", truth_estimand="SATE", truth=-1234.5678, error="")
        rows.append(row)
    table = pd.DataFrame(rows)
    table.loc[3, ["status", "error"]] = ["FAILED", "replication 17: " + "singular matrix " * 20]
    table.loc[4, "bias"] = np.nan
    buf = io.BytesIO()
    Image.new("RGB", (1700, 400), "white").save(buf, "PNG")  # wider than the window
    config = {
        "data": {"name": "csv", "path": "/a/very/long/path/" * 8 + "panel.csv"},
        "dgp": {"name": "none"},
        "estimator": {"name": "ols", "formula": "y ~ " + " + ".join(f"x{i}" for i in range(60))},
        "inference": {"name": "bootstrap", "n_boot": 999},
        "mc": {"reps": 10000, "seed": 1},
    }
    figures = [("measures.png", buf.getvalue()), ("zip/a.png", buf.getvalue())]
    return html_page(table, "f" * 32, "sweep: estimator ∈ {…}", buf.getvalue(), figures, [config])


def test_report_fits_a_1400_pixel_window(tmp_path: Path) -> None:
    sync_playwright = _playwright()
    page_file = tmp_path / "report.html"
    page_file.write_text(_page(), encoding="utf-8")
    shots = Path(os.environ.get("CAUSALKIT_ARTIFACTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"], headless=True
        )
        try:
            page = browser.new_page(viewport={"width": PAGE_WIDTH, "height": 900})
            page.goto(page_file.as_uri())
            page.screenshot(path=str(shots / "report_1400.png"), full_page=True)
            width = page.evaluate("document.documentElement.scrollWidth")
            tables = page.evaluate(
                "[...document.querySelectorAll('table')]"
                ".map(t => [t.scrollWidth, t.parentElement.clientWidth])"
            )
            images = page.evaluate(
                "[...document.images].map(i => [i.getBoundingClientRect().right, i.naturalWidth])"
            )
        finally:
            browser.close()
    assert width <= PAGE_WIDTH, width
    assert tables and all(inner <= outer for inner, outer in tables), tables
    assert images and all(0 < right <= PAGE_WIDTH and n > 0 for right, n in images), images
