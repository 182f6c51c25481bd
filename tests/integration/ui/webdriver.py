"""Headless Chromium for the UI tests, driven by Selenium (chromedriver from the system, found as
``CHROMEDRIVER`` / ``chromedriver`` on PATH: Selenium Manager never downloads anything here).

A thin layer over Selenium's API with the few habits the tests share: CSS lookups, typing at a
human pace into React inputs, full-page screenshots into the artifacts directory, polling waits
that treat WebDriver errors as "not yet".
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

WINDOW = (1400, 1600)
T = TypeVar("T")
WebDriverError = WebDriverException

INSTALL_HINT = (
    "headless Chromium and chromedriver are needed for the UI tests: run scripts/bootstrap.sh browser "
    "(apt packages chromium, chromium-driver) or set CHROMIUM / CHROMEDRIVER to their paths"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_executables() -> tuple[str, str]:
    """Paths of Chromium and chromedriver; a clear AssertionError when either is missing."""
    chromium = shutil.which(os.environ.get("CHROMIUM") or "chromium") or shutil.which("chromium-browser")
    driver = shutil.which(os.environ.get("CHROMEDRIVER") or "chromedriver")
    assert chromium and driver, f"{INSTALL_HINT} (found chromium={chromium}, chromedriver={driver})"
    return chromium, driver


class Element:
    """A page element (Selenium's ``WebElement``) with the tests' vocabulary."""

    def __init__(self, browser: Browser, element: WebElement) -> None:
        self.browser, self.web = browser, element

    def click(self) -> None:
        self.scroll()
        self.web.click()

    def scroll(self) -> None:
        """Into the middle of the view (clear of fixed headers)."""
        self.browser.js("arguments[0].scrollIntoView({block: 'center', inline: 'nearest'})", self)

    def clear(self) -> None:
        self.web.clear()

    def type(self, text: str) -> None:
        self.web.send_keys(text)

    def fill(self, text: str, attempts: int = 3) -> None:
        """Replaces the value by typing ``text`` at a human pace, checking what the field holds.

        React-controlled inputs can lose a keystroke typed in the same frame as a re-render; a
        person types slower, so do we (chunks with a pause), and retype when the value differs.
        """
        for _ in range(attempts):
            self.clear()
            for i in range(0, len(text), 8):
                self.type(text[i : i + 8])
                time.sleep(0.05)
            if self.prop("value") == text:
                return
        raise AssertionError(f"the field holds {self.prop('value')!r} after typing {text!r}")

    @property
    def text(self) -> str:
        return self.web.text

    @property
    def tag(self) -> str:
        return self.web.tag_name

    def attribute(self, name: str) -> str | None:
        """The attribute as written in the page (W3C Get Element Attribute: ``href="#x"`` is ``#x``)."""
        return self.web.get_dom_attribute(name)

    def prop(self, name: str) -> Any:
        return self.web.get_property(name)

    def find(self, css: str) -> Element:
        return Element(self.browser, self.web.find_element(By.CSS_SELECTOR, css))

    def find_all(self, css: str) -> list[Element]:
        return [Element(self.browser, e) for e in self.web.find_elements(By.CSS_SELECTOR, css)]


class Browser:
    """One headless Chromium session."""

    def __init__(self, artifacts: Path) -> None:
        chromium, driver = find_executables()
        self.artifacts = artifacts
        self.artifacts.mkdir(parents=True, exist_ok=True)
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--lang=en-US",
                    f"--window-size={WINDOW[0]},{WINDOW[1]}", "--no-first-run", "--disable-extensions"):  # fmt: skip
            options.add_argument(arg)
        # no speculative connections: a sync-worker web server would sit waiting on them
        options.add_experimental_option("prefs", {"net": {"network_prediction_options": 2}})
        service = webdriver.ChromeService(
            executable_path=driver, log_output=str(artifacts / "chromedriver.log"), env={**os.environ, "TZ": "UTC"}
        )
        self.driver = webdriver.Chrome(options=options, service=service)
        self.driver.set_page_load_timeout(60)
        self.driver.set_script_timeout(30)

    def _wrap(self, value: Any) -> Any:
        if isinstance(value, WebElement):
            return Element(self, value)
        if isinstance(value, dict):
            return {k: self._wrap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._wrap(v) for v in value]
        return value

    # -- navigation and queries ---------------------------------------------------------------
    def get(self, url: str) -> None:
        self.driver.get(url)

    @property
    def url(self) -> str:
        return self.driver.current_url

    def find(self, css: str) -> Element:
        return Element(self, self.driver.find_element(By.CSS_SELECTOR, css))

    def find_all(self, css: str) -> list[Element]:
        return [Element(self, e) for e in self.driver.find_elements(By.CSS_SELECTOR, css)]

    def find_text(self, text: str, tag: str = "*") -> list[Element]:
        """Elements whose own text (normalised) equals ``text``."""
        literal = "concat('" + "', \"'\", '".join(text.split("'")) + "', '')"  # any text as an XPath literal
        xpath = f"//{tag}[normalize-space(text())={literal}]"
        return [Element(self, e) for e in self.driver.find_elements(By.XPATH, xpath)]

    def js(self, script: str, *args: Any) -> Any:
        wire = [a.web if isinstance(a, Element) else a for a in args]
        return self._wrap(self.driver.execute_script(script, *wire))

    def keys(self, text: str) -> None:
        """Types into whatever has the focus, e.g. Tab or Escape."""
        ActionChains(self.driver).send_keys(text).perform()

    def page_text(self) -> str:
        return self.find("body").text

    # -- pictures ------------------------------------------------------------------------------
    def emulate(self, width: int, height: int, mobile: bool = False, scale: float = 1) -> None:
        """Render as a device of this viewport (Chrome DevTools ``Emulation.setDeviceMetricsOverride``)."""
        metrics = {"width": width, "height": height, "mobile": mobile, "deviceScaleFactor": scale}
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)

    def png(self) -> bytes:
        return self.driver.get_screenshot_as_png()

    def screenshot(self, name: str, width: int = WINDOW[0], mobile: bool = False) -> Path:
        """A full-page PNG in the artifacts directory, rendered ``width`` CSS pixels wide."""
        path = self.artifacts / f"{name}.png"
        try:
            self.emulate(width, WINDOW[1], mobile)
            height = int(self.js("return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)"))
            self.emulate(width, min(max(height, 1), 6000), mobile)
            data = self.png()
            self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        except WebDriverException:
            data = self.png()
        path.write_bytes(data)
        return path

    def wait(self, condition: Callable[[], T], timeout: float = 30.0, what: str = "condition",
             interval: float = 0.25) -> T:  # fmt: skip
        """Polls ``condition`` until it returns something truthy (WebDriver errors count as not yet)."""
        deadline, last = time.monotonic() + timeout, None
        while True:
            try:
                value = condition()
                if value:
                    return value
            except WebDriverException as exc:
                last = exc
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last.msg})" if last else ""))
            time.sleep(interval)

    def quit(self) -> None:
        self.driver.quit()
