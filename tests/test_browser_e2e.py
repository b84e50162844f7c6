"""End to end, as a new user: `streamlit run app.py` in a real headless Chromium. The test first
sees Compare open on the shipped reference runs (empty cache), then designs
quick runs (ResNet-8, original vs full pre-activation, synthetic data, 20 iterations), launches
them, watches a live curve appear, finds their final rows in the comparison table, and saves
screenshots (UPDATE_SCREENSHOT=1 also refreshes docs/screenshot.png for the README)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.timeout(420),
    pytest.mark.skipif(
        not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
        reason="needs Debian's chromium and chromedriver at /usr/bin (apt-get install chromium chromium-driver)",
    ),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, every: float = 0.5):
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - stale elements while Streamlit redraws
            last_error = e
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last_error})")


@pytest.fixture
def app_url(tmp_path):
    port = free_port()
    cache = tmp_path / "cache"
    env = {**os.environ, "RESNET_EXPLORER_CACHE": str(cache), "TRAINERS_IDLE_EXIT_S": "5"}
    log = open(tmp_path / "streamlit.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.headless", "true"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://localhost:{port}"

    def healthy():
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
            return r.status == 200

    try:
        wait_until(healthy, 60, "the streamlit server to start")
        yield url, cache
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        _cancel_leftovers(cache)


def _cancel_leftovers(cache: Path) -> None:
    """A failed test must not leave a run training: cancel what is still queued or running."""
    if not (cache / "store").exists():
        return
    from trainers.runs import Store, cancel

    with Store(cache) as s:
        active = [r["key"] for r in s.list_runs() if r["status"] in ("queued", "running")]
    for key in active:
        cancel(key, cache)


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--window-size=1400,1250",
        f"--user-data-dir={tmp_path / 'chrome'}",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


# --- small helpers over Streamlit's DOM ----------------------------------------------------------


def css(d, selector):
    from selenium.webdriver.common.by import By

    return d.find_elements(By.CSS_SELECTOR, selector)


def page_text(d) -> str:
    return css(d, "body")[0].text


def choose(d, label: str, option: str) -> None:
    """Open the selectbox labelled `label` and click `option`."""
    box = wait_until(lambda: css(d, f'input[aria-label="{label}"]'), 30, f"the {label!r} selectbox")[0]
    box.click()
    opt = wait_until(
        lambda: [o for o in css(d, '[role="option"]') if o.text.strip() == option],
        15,
        f"option {option!r} of {label!r}",
    )[0]
    opt.click()
    wait_until(
        lambda: css(d, f'input[aria-label="{label}"]')[0].get_attribute("value") == option,
        15,
        f"{label!r} to read {option!r}",
    )


def click_radio(d, option: str) -> None:
    label = wait_until(
        lambda: [el for el in css(d, '[data-testid="stRadio"] label') if el.text.strip() == option],
        30,
        f"radio option {option!r}",
    )[0]
    label.click()


def click_button(d, text: str):
    # a button's text also holds its icon's ligature name (e.g. "rocket_launch"), hence `in`
    btn = wait_until(
        lambda: [b for b in css(d, "button") if text in b.text and b.is_enabled()], 60, f"an enabled button {text!r}"
    )[0]
    d.execute_script("arguments[0].scrollIntoView({block: 'center'});", btn)
    btn.click()


def grid_cells(d) -> list[str]:
    return [c.get_attribute("textContent") for c in css(d, '[data-testid="stDataFrame"] [role="gridcell"]')]


def curve_points(d) -> int:
    """How many curves of the first plotly chart have a drawn line segment (2+ points)."""
    paths = css(d, '[data-testid="stPlotlyChart"] .scatterlayer .trace path.js-line')
    return sum(1 for p in paths if "L" in (p.get_attribute("d") or ""))


def test_design_launch_watch_compare(app_url, browser, tmp_path):
    url, cache = app_url
    d = browser
    # first start, empty cache: Compare opens on the shipped reference comparison (explorer/reference/)
    d.get(f"{url}/compare")
    wait_until(lambda: "Reference runs" in page_text(d), 60, "the reference runs on Compare")
    from trainers.core.reference_packs import campaign_group, load_shipped

    group = campaign_group(load_shipped()[0])  # issue #17: Table 1 on ResNet-110, the paper's schedule
    assert group is not None and group["depth"] == 110
    title = f"Table 1 on ResNet-110: the first {group['trained']:,} iterations"
    wait_until(lambda: title in page_text(d), 60, "the campaign's title")
    verdict = ("beyond that spread", "no variant differs")  # the caption renders after the title
    wait_until(lambda: any(v in page_text(d) for v in verdict), 60, "the caption's verdict on the seed spread")
    refs = wait_until(
        lambda: [c for c in grid_cells(d) if c.startswith("reference · ")], 60, "the reference runs' rows"
    )
    assert any("original" in c for c in refs) and any("full_preact" in c for c in refs), refs
    wait_until(lambda: curve_points(d) >= 4, 60, "the reference curves (loss and error of two runs)")
    assert "Traceback" not in page_text(d)
    d.save_screenshot(str(tmp_path / "0-compare-reference.png"))
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(tmp_path / "0-compare-reference.png", ROOT / "docs" / "screenshot-reference.png")

    d.get(url)
    wait_until(lambda: "Design & launch" in page_text(d), 60, "the Design page")
    # the favicon is drawn locally (an emoji as an SVG data URL), never fetched from a font CDN
    icon = wait_until(
        lambda: d.execute_script(
            "const l = document.querySelector(\"link[rel='shortcut icon']\"); return l && l.href;"
        ),
        30,
        "the favicon",
    )
    assert icon.startswith("data:image/svg"), icon

    # a new user's quick comparison: the default orderings (original vs full pre-activation),
    # synthetic data, the smoke schedule (20 iterations), ResNet-8
    choose(d, "Dataset", "Synthetic (smoke test)")
    click_radio(d, "smoke")
    choose(d, "Depth", "ResNet-8")
    names = ["ResNet-8 original / identity", "ResNet-8 full_preact / identity"]
    wait_until(
        lambda: all(n in grid_cells(d) for n in names) and "synthetic" in grid_cells(d),
        60,
        "the plan to show the two ResNet-8 synthetic runs",
    )
    wait_until(lambda: "estimated time" in page_text(d), 90, "the time estimate")
    d.save_screenshot(str(tmp_path / "1-design.png"))
    click_button(d, "Launch 2 new run")

    # Live: the jobs, the curve of the first, then both ends
    wait_until(lambda: css(d, "h1") and css(d, "h1")[0].text.startswith("Live"), 60, "the Live page")
    wait_until(lambda: curve_points(d) > 0, 180, "the live curve to appear")
    d.save_screenshot(str(tmp_path / "2-live.png"))
    wait_until(lambda: page_text(d).count("final test error") == 2, 300, "both runs to finish", every=1.0)
    d.save_screenshot(str(tmp_path / "3-live-done.png"))

    # Compare: its final row in the table, and no traceback anywhere on the way
    link = wait_until(
        lambda: [
            a
            for a in css(d, '[data-testid="stSidebarNav"] a')
            if (a.get_attribute("href") or "").rstrip("/").endswith("/compare")
        ],
        30,
        "the Compare link",
    )[0]
    link.click()
    rows = [f"{n} [synthetic, 20 it]" for n in names]
    cells = wait_until(
        lambda: (lambda c: c if all(r in c for r in rows) else None)(grid_cells(d)),
        60,
        "the runs' rows in the comparison table",
    )
    for r in rows:  # run, ours, paper, difference, n, min, max, dataset, iterations, note
        row = cells[cells.index(r) : cells.index(r) + 10]
        assert re.fullmatch(r"fail \(\d+\.\d\)|\d+\.\d\d", row[1]), row  # ours: median (or fail)
        assert row[4] == "1" and row[7] == "synthetic" and row[8] == "20", row
    wait_until(lambda: curve_points(d) >= 4, 30, "both runs' curves in the comparison chart")
    assert "Traceback" not in page_text(d)
    shot = tmp_path / "4-compare.png"
    d.save_screenshot(str(shot))
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, ROOT / "docs" / "screenshot.png")
