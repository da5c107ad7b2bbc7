"""`msabench leaderboard --html`: one static page, opened in a real headless Chromium through Selenium.

Debian's chromium and chromium-driver (installed by .ci/run) work offline. Without them the test is
skipped with the reason, except where MSABENCH_REQUIRE_BROWSER=1 (CI), where that is a failure. The
screenshot is kept in $MSABENCH_TEST_ARTIFACTS (default: build/test-artifacts).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, small_dataset
from msabench import executors, protocols

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
ARTIFACTS = Path(os.environ.get("MSABENCH_TEST_ARTIFACTS", ROOT / "build" / "test-artifacts"))


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("html")
    data = small_dataset(sizes=(60, 20, 50))
    for model in ("mean", "text-only:epochs=2", "late-fusion:epochs=2"):
        executors.run(protocols.load("synth-intra"), model, out=tmp / "results", dataset=data, seeds=[1111, 1112])
    executors.run(protocols.load("synth-inter"), "mean", out=tmp / "results", dataset=data, seeds=[1111, 1112])
    proc = subprocess.run([sys.executable, "-m", "msabench", "leaderboard", "--results", str(tmp / "results"),
                           "--out", str(tmp / "board"), "--html", "--resamples", "500"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "index.html" in proc.stdout
    return tmp / "board" / "index.html"


def test_the_page_is_self_contained(page):
    text = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)  # nothing fetched at view time
    assert "<script" in text and "Mean (constant)" in text and "synth-intra" in text
    for fig in ("synth-intra-curve.svg", "synth-intra-curve.pdf", "synth-intra-curve.png"):
        assert (page.parent / fig).stat().st_size > 1000


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and DRIVER):
        if os.environ.get("MSABENCH_REQUIRE_BROWSER") == "1":
            pytest.fail("MSABENCH_REQUIRE_BROWSER=1 but chromium/chromedriver are not installed")
        pytest.skip("chromium and chromedriver are not installed (Debian: apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1300,1600"):
        opts.add_argument(arg)
    opts.binary_location = CHROMIUM
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield driver
    driver.quit()


def test_the_page_works_in_a_real_browser(page, browser):
    from selenium.webdriver.common.by import By

    browser.get(page.as_uri())
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert not errors, errors
    section = browser.find_element(By.ID, "p-synth-intra")
    table = section.find_element(By.CSS_SELECTOR, "table.main")

    def column(i):
        return [r.find_elements(By.TAG_NAME, "td")[i].text for r in table.find_elements(By.CSS_SELECTOR, "tbody tr")]

    names = column(1)
    assert sorted(names) == sorted(["Mean (constant)", "Text only [epochs=2]", "Late fusion [epochs=2]"])
    heads = table.find_elements(By.TAG_NAME, "th")
    heads[1].click()  # by model name
    assert column(1) == sorted(names) and heads[1].get_attribute("aria-sort") == "ascending"
    heads[1].click()
    assert column(1) == sorted(names, reverse=True)
    heads[0].click()  # back to rank, numerically
    assert [int(x) for x in column(0)] == [1, 2, 3]
    curve = section.find_element(By.CSS_SELECTOR, 'g.curve[data-model="Text only [epochs=2]"]')
    toggle = section.find_element(By.CSS_SELECTOR, 'input[data-model="Text only [epochs=2]"]')
    assert curve.is_displayed()
    toggle.click()
    assert not curve.is_displayed()
    assert section.find_element(By.CSS_SELECTOR, 'g.curve[data-model="Mean (constant)"]').is_displayed()
    toggle.click()
    assert curve.is_displayed()
    overview = browser.find_element(By.CSS_SELECTOR, "#overview table")
    assert len(overview.find_elements(By.CSS_SELECTOR, "tbody tr")) == 3  # models x protocols
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "leaderboard-page.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
