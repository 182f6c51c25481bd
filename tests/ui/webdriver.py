"""A small W3C WebDriver client for headless Chromium (chromedriver over HTTP, urllib + json).

Only what the trigger-form tests need: navigate, find elements by CSS, click, type, read text and
attributes, run a script, take screenshots, wait for a condition. chromedriver listens on
127.0.0.1 on a free port and is stopped (its process group) by :meth:`Browser.quit`.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

ELEMENT_KEY = "element-6066-11e4-a52e-4f735466cecf"  # the W3C web element identifier
WINDOW = (1400, 1600)
T = TypeVar("T")

INSTALL_HINT = (
    "headless Chromium and chromedriver are needed for the trigger-form tests: run scripts/bootstrap.sh browser "
    "(apt packages chromium, chromium-driver) or set CHROMIUM / CHROMEDRIVER to their paths"
)


class WebDriverError(RuntimeError):
    """An error answered by chromedriver (W3C ``error`` + ``message``)."""


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
    def __init__(self, browser: Browser, element_id: str) -> None:
        self.browser, self.id = browser, element_id

    def _call(self, method: str, path: str, body: dict | None = None) -> Any:
        return self.browser.call(method, f"/element/{self.id}{path}", body)

    def click(self) -> None:
        self.scroll()
        self._call("POST", "/click", {})

    def scroll(self) -> None:
        """Into the middle of the view (clear of fixed headers)."""
        self.browser.js("arguments[0].scrollIntoView({block: 'center', inline: 'nearest'})", self)

    def clear(self) -> None:
        self._call("POST", "/clear", {})

    def type(self, text: str) -> None:
        self._call("POST", "/value", {"text": text})

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
        return self._call("GET", "/text")

    @property
    def tag(self) -> str:
        return self._call("GET", "/name")

    def attribute(self, name: str) -> str | None:
        return self._call("GET", f"/attribute/{name}")

    def prop(self, name: str) -> Any:
        return self._call("GET", f"/property/{name}")

    def find(self, css: str) -> Element:
        return self.browser._element(self._call("POST", "/element", {"using": "css selector", "value": css}))

    def find_all(self, css: str) -> list[Element]:
        found = self._call("POST", "/elements", {"using": "css selector", "value": css})
        return [self.browser._element(e) for e in found]

    def to_json(self) -> dict:
        return {ELEMENT_KEY: self.id}


class Browser:
    """One headless Chromium session driven through chromedriver."""

    def __init__(self, artifacts: Path, timeout: float = 30.0) -> None:
        chromium, driver = find_executables()
        self.artifacts = artifacts
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self._log = open(artifacts / "chromedriver.log", "wb")  # noqa: SIM115 — closed in quit()
        self._proc = subprocess.Popen(
            [driver, f"--port={self.port}", "--log-level=WARNING"],  # loopback only (no --allowed-ips)
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, "TZ": "UTC"},
        )  # fmt: skip
        self.base = f"http://127.0.0.1:{self.port}"
        self.session: str | None = None
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self._request("GET", "/status").get("ready"):
                    break
            except OSError:
                pass
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.quit()
                raise RuntimeError(f"chromedriver did not start: {(artifacts / 'chromedriver.log').read_text()[-2000:]}")
            time.sleep(0.1)
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--lang=en-US",
                f"--window-size={WINDOW[0]},{WINDOW[1]}", "--no-first-run", "--disable-extensions"]  # fmt: skip
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            # no speculative connections: a sync-worker web server would sit waiting on them
            "goog:chromeOptions": {"binary": chromium, "args": args,
                                   "prefs": {"net": {"network_prediction_options": 2}}},
            "timeouts": {"implicit": 0, "pageLoad": 60000, "script": 30000},
        }}}  # fmt: skip
        try:
            self.session = self._request("POST", "/session", caps)["sessionId"]
        except Exception:
            self.quit()
            raise

    # -- protocol -----------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: dict | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})  # fmt: skip
        try:
            with urllib.request.urlopen(req, timeout=90) as resp:
                payload = json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            payload = json.loads(exc.read() or b"{}")
            value = payload.get("value") or {}
            raise WebDriverError(f"{value.get('error')}: {value.get('message', '')[:500]}") from None
        return payload.get("value")

    def call(self, method: str, path: str, body: dict | None = None) -> Any:
        return self._request(method, f"/session/{self.session}{path}", body)

    def _element(self, ref: dict) -> Element:
        return Element(self, ref[ELEMENT_KEY])

    # -- navigation and queries ---------------------------------------------------------------
    def get(self, url: str) -> None:
        self.call("POST", "/url", {"url": url})

    @property
    def url(self) -> str:
        return self.call("GET", "/url")

    def find(self, css: str) -> Element:
        return self._element(self.call("POST", "/element", {"using": "css selector", "value": css}))

    def find_all(self, css: str) -> list[Element]:
        return [self._element(e) for e in self.call("POST", "/elements", {"using": "css selector", "value": css})]

    def find_text(self, xpath_text: str, tag: str = "*") -> list[Element]:
        """Elements whose own text (normalised) equals ``xpath_text``."""
        xpath = f"//{tag}[normalize-space(text())={json.dumps(xpath_text)}]"
        return [self._element(e) for e in self.call("POST", "/elements", {"using": "xpath", "value": xpath})]

    def js(self, script: str, *args: Any) -> Any:
        wire = [a.to_json() if isinstance(a, Element) else a for a in args]
        return self._wrap(self.call("POST", "/execute/sync", {"script": script, "args": wire}))

    def _wrap(self, value: Any) -> Any:
        """Element references in a script's result become :class:`Element` objects."""
        if isinstance(value, dict):
            return self._element(value) if ELEMENT_KEY in value else {k: self._wrap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._wrap(v) for v in value]
        return value

    def keys(self, text: str) -> None:
        """Types into whatever has the focus (W3C actions), e.g. Tab or Escape."""
        actions = [{"type": "keyDown", "value": c} for c in text] + [{"type": "keyUp", "value": c} for c in text]
        self.call("POST", "/actions", {"actions": [{"type": "key", "id": "kbd", "actions": actions}]})
        self.call("DELETE", "/actions")

    def page_text(self) -> str:
        return self.find("body").text

    def screenshot(self, name: str) -> Path:
        """A full-page PNG in the artifacts directory."""
        path = self.artifacts / f"{name}.png"
        try:  # chromedriver's full-page screenshot via the DevTools protocol
            height = int(self.js("return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)"))
            metrics = {"mobile": False, "width": WINDOW[0], "height": min(max(height, WINDOW[1]), 6000),
                       "deviceScaleFactor": 1}  # fmt: skip
            self.call("POST", "/goog/cdp/execute", {"cmd": "Emulation.setDeviceMetricsOverride", "params": metrics})
            data = self.call("GET", "/screenshot")
            self.call("POST", "/goog/cdp/execute", {"cmd": "Emulation.clearDeviceMetricsOverride", "params": {}})
        except WebDriverError:
            data = self.call("GET", "/screenshot")
        path.write_bytes(base64.b64decode(data))
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
            except WebDriverError as exc:
                last = exc
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last})" if last else ""))
            time.sleep(interval)

    def quit(self) -> None:
        if self.session:
            try:
                self.call("DELETE", "")
            except (OSError, WebDriverError):
                pass
            self.session = None
        if self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGTERM)
                self._proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self._proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self._log.close()
