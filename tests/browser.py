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


# each visible table cell's content height, as laid out and forced onto one line: a cell that
# wraps is taller than its one-line self (the page's tables must read without wrapping)
CELL_HEIGHTS = """
return Array.from(document.querySelectorAll('td, th')).filter(c => c.getClientRects().length > 0)
  .map(c => {
    const range = document.createRange();
    range.selectNodeContents(c);
    const laid = range.getBoundingClientRect().height;
    const before = c.style.whiteSpace;
    c.style.whiteSpace = 'nowrap';
    const one = range.getBoundingClientRect().height;
    c.style.whiteSpace = before;
    return [c.textContent, laid, one];
  });
"""
# every image: its src, the width it is shown at, its own width, and the width of the page's column
IMAGE_WIDTHS = """
const column = document.body.getBoundingClientRect().width;
return Array.from(document.images).map(i => [i.getAttribute('src'), i.getBoundingClientRect().width,
  i.naturalWidth, column]);
"""


def wrapped_cells(driver: Any) -> list[str]:
    """The text of every visible table cell whose content wraps onto more than one line."""
    return [text for text, laid, one in driver.execute_script(CELL_HEIGHTS) if laid > one + 1]


def image_widths(driver: Any) -> list[tuple[str, float, int, float]]:
    """(src, shown width, natural width, column width) of every image of the page."""
    return [tuple(row) for row in driver.execute_script(IMAGE_WIDTHS)]
