"""Headless Chromium driven by Selenium, for tests that check pages as a browser draws them.

Uses Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them); the driver's path is
given to Selenium, so Selenium Manager never runs and nothing is downloaded. Tests that need the
browser skip cleanly when either program is absent.
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
CHROMEDRIVER = "chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
)


def find_programs() -> tuple[str, str] | None:
    """``(chromium, chromedriver)`` paths, or None when either is missing."""
    browser = next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)
    driver = shutil.which(CHROMEDRIVER)
    return (browser, driver) if browser and driver else None


@contextmanager
def chromium(browser: str, driver_path: str) -> Iterator[Browser]:
    """A headless Chromium with a fresh profile, closed (and its profile removed) on exit."""
    os.environ.setdefault("SE_OFFLINE", "true")  # belt and braces: Selenium must never download a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="medaug-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in (*FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
        try:
            yield Browser(driver)
        finally:
            driver.quit()


class Browser:
    """The few things the page tests do with the driver: open, size, emulate print, read, capture."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    def open(self, page: Path, *, width: int, height: int = 900, media: str = "screen") -> None:
        """Load ``page`` in a viewport of exactly ``width`` x ``height`` CSS pixels, for ``media``."""
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        self.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "" if media == "screen" else media})
        self.driver.get(page.resolve().as_uri())
        self.driver.get_log("browser")  # forget what earlier pages logged

    def run(self, script: str, *args: object) -> Any:
        """The value of a JavaScript function body run in the page."""
        return self.driver.execute_script(script, *args)

    def severe_logs(self) -> list[str]:
        """Console errors (and failed loads) the page logged since it was opened."""
        return [entry["message"] for entry in self.driver.get_log("browser") if entry["level"] == "SEVERE"]

    def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page (beyond the viewport) at the current width."""
        metrics = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        size = metrics["cssContentSize"]
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
            },
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def pdf(self, path: Path) -> bytes:
        """The page printed to PDF as Chromium prints it (its ``@page`` rules apply)."""
        printed = self.driver.execute_cdp_cmd("Page.printToPDF", {"preferCSSPageSize": True, "printBackground": True})
        data = base64.b64decode(printed["data"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return data
