"""A real browser for the tests: Debian's Chromium and ChromeDriver driven through Selenium.
`.ci/run` installs them when missing; where none can be had the test is skipped with NO_BROWSER
in its reason, which `.ci/run` turns into a failure."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

NO_BROWSER = "no browser"


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium WebDriver (1280 x 2000 window), its console log recorded."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not binary or not driver_path:
        pytest.skip(f"{NO_BROWSER}: install Debian's chromium and chromium-driver (.ci/run does)")
    webdriver = pytest.importorskip("selenium.webdriver", reason=f"{NO_BROWSER}: selenium missing")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,2000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()
