"""A real headless Chromium (Debian's `chromium` driven by Debian's `chromium-driver` through selenium; nothing
is downloaded at run time) on the Node-RED console's pages, for tests/test_node_red_console.py and
bench/node_red_upload.py: open a page, wait for a text, press a button by its label, pick from a select, save
a screenshot of the 1280x800 viewport, throttle or cut the network, collect downloads."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import JavascriptException, StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
WIDTH, HEIGHT = 1280, 800


def browser_missing() -> str | None:
    """Why the browser cannot run here, or None."""
    for exe, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if shutil.which(exe) is None:
            return f"{exe} is missing: bash scripts/apt-install-missing.sh {package} (as root)"
    return None


class Browser:
    """One browser (its own profile: its own sessionStorage and localStorage) on a Node-RED's dashboard."""

    def __init__(self, url: str, downloads: Path) -> None:
        self.url = url
        self.downloads = downloads
        downloads.mkdir(parents=True, exist_ok=True)
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                    "--autoplay-policy=no-user-gesture-required", f"--window-size={WIDTH},{HEIGHT + 200}"):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        # the driver is Debian's: selenium is given its path and looks nothing up or down
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.target()

    def target(self) -> None:
        """The viewport and the download folder: set again for every tab (they hold for one DevTools target)."""
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                    {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False})
        self.driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                                    {"behavior": "allow", "downloadPath": str(self.downloads), "eventsEnabled": True})

    def close(self) -> None:
        with contextlib.suppress(WebDriverException):
            self.driver.quit()

    # ---- pages ---------------------------------------------------------------------------------------
    def open(self, page: str, wait_for: str | None = None) -> None:
        self.target()
        self.driver.get(f"{self.url}/dashboard/{page}")
        if wait_for:
            self.wait_text(wait_for)

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def text(self) -> str:
        try:
            return str(self.js("return document.body ? document.body.innerText : ''"))
        except JavascriptException:
            return ""

    def until(self, what: str, check: Callable[[], Any], timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                got = check()
                if got:
                    return got
            except (StaleElementReferenceException, JavascriptException):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the page did not show {what} within {timeout} s; it shows:\n"
                                     f"{self.text()[:3000]}\nconsole: {self.console()[-2000:]}")
            time.sleep(0.2)

    def wait_text(self, text: str, timeout: float = 30) -> None:
        self.until(repr(text), lambda: text in self.text(), timeout)

    def console(self) -> str:
        try:
            return "\n".join(e["message"] for e in self.driver.get_log("browser"))
        except WebDriverException:
            return ""

    def el(self, css: str, timeout: float = 20) -> WebElement:
        found: WebElement = self.until(css, lambda: next(iter(self.driver.find_elements(By.CSS_SELECTOR, css)), None),
                                       timeout)
        return found

    def button(self, label: str, within: str = "body", timeout: float = 20) -> WebElement:
        def find() -> WebElement | None:
            for b in self.driver.find_elements(By.CSS_SELECTOR, f"{within} button"):
                if b.text.strip() == label and b.is_enabled():
                    return b
            return None

        found: WebElement = self.until(f"an enabled button {label!r} in {within}", find, timeout)
        return found

    def press(self, label: str, within: str = "body", timeout: float = 20) -> None:
        self.button(label, within, timeout).click()

    def select(self, css: str, value: str | None = None, text_contains: str | None = None,
               timeout: float = 20) -> None:
        def options() -> Select | None:
            sel = Select(self.el(css))
            wanted = [o for o in sel.options if (value is not None and o.get_attribute("value") == value)
                      or (text_contains is not None and text_contains in o.text)]
            return sel if wanted else None

        sel = self.until(f"an option {value or text_contains!r} in {css}", options, timeout)
        if value is not None:
            sel.select_by_value(value)
        else:
            sel.select_by_visible_text(next(o.text for o in sel.options if text_contains and text_contains in o.text))

    def fill(self, css: str, text: str) -> None:
        field = self.el(css)
        field.send_keys(Keys.CONTROL, "a")  # clear() would not tell Vue's v-model
        field.send_keys(Keys.DELETE)
        field.send_keys(text)

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.js("window.scrollTo(0, 0)")
        time.sleep(0.6)  # images and transitions finish drawing
        path.write_bytes(self.driver.get_screenshot_as_png())
        return path

    # ---- network -------------------------------------------------------------------------------------
    def network(self, offline: bool = False, upload_bytes_s: float = -1) -> None:
        self.driver.execute_cdp_cmd("Network.enable", {})
        self.driver.execute_cdp_cmd("Network.emulateNetworkConditions", {
            "offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": upload_bytes_s})

    def downloaded(self, name: str, timeout: float = 60) -> Path:
        target = self.downloads / name

        def done() -> Path | None:
            partial = list(self.downloads.glob("*.crdownload"))
            return target if target.exists() and not partial else None

        found: Path = self.until(f"the download {name}", done, timeout)
        return found
