"""A page opened in headless Chromium, driven over the DevTools protocol through a pipe.

    with Chromium() as browser:
        page = browser.open("runs/search/report.html", ready="document.body.dataset.rendered")
        page.errors                 # console errors, uncaught exceptions, failed loads
        page.requests               # every URL the page asked for
        browser.evaluate("document.title")
        browser.screenshot("report.png", width=1280, height=900)

Chromium (Debian's `chromium` package) is started with `--remote-debugging-pipe`: it reads
protocol commands from file descriptor 3 and writes answers and events to descriptor 4, each a
JSON message ended by a NUL byte. That needs no port, no websocket library and no browser
download. The flags are the ones that work headless in a container (no sandbox, no GPU, no
network services of the browser's own) and a fresh profile per browser.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BINARIES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--remote-debugging-pipe")
INSTALL = "apt-get install -y chromium (Debian; install.sh, and so .ci/run, installs it as root)"


class BrowserError(RuntimeError):
    """Chromium is missing, died, or did not answer in time."""


def find_chromium() -> str:
    """The path of a Chromium binary on PATH; BrowserError saying how to install one."""
    for name in BINARIES:
        path = shutil.which(name)
        if path:
            return path
    raise BrowserError(f"no Chromium found ({', '.join(BINARIES)} on PATH): {INSTALL}")


def _above_four(fd: int) -> int:
    """`fd` moved to a descriptor above 4, so that placing the pipes at 3 and 4 in the
    browser cannot overwrite one with the other."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


@dataclass
class Page:
    """What a page did while it loaded: its errors and the URLs it requested."""

    url: str
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


class Chromium:
    """One headless Chromium with one tab (see the module docstring)."""

    def __init__(self, binary: str | None = None, timeout: float = 60.0):
        self.timeout, self._next_id, self._buffer = timeout, 0, b""
        self._events: list[dict[str, Any]] = []
        self._profile = tempfile.TemporaryDirectory(prefix="nas-chromium-")
        to_browser, self._in = os.pipe()          # we write commands, it reads fd 3
        self._out, from_browser = os.pipe()       # it writes fd 4, we read answers
        to_browser, from_browser = _above_four(to_browser), _above_four(from_browser)
        # bash (sh takes no descriptor above 9) puts the pipe ends at 3 and 4, starts Chromium
        redirect = f'exec "$0" "$@" 3<&{to_browser} 4>&{from_browser}'
        self._proc = subprocess.Popen(
            ["/bin/bash", "-c", redirect, binary or find_chromium(), *FLAGS,
             f"--user-data-dir={self._profile.name}", "about:blank"],
            pass_fds=(to_browser, from_browser), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser)
        os.close(from_browser)
        try:
            target = self.send("Target.createTarget", url="about:blank")["targetId"]
            self._session = self.send("Target.attachToTarget", targetId=target,
                                      flatten=True)["sessionId"]
        except BaseException:
            self.close()
            raise

    # -- the protocol -----------------------------------------------------------------------
    def send(self, method: str, session: bool = False, **params: Any) -> dict[str, Any]:
        """Send one command (to the tab when `session`) and return its result."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        os.write(self._in, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            msg = self._receive(deadline)
            if msg.get("id") == self._next_id:
                if "error" in msg:
                    raise BrowserError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self._events.append(msg)

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._out], [], [], left)[0]:
                raise BrowserError(f"Chromium did not answer within {self.timeout:g} s")
            chunk = os.read(self._out, 1 << 20)
            if not chunk:
                raise BrowserError(f"Chromium exited (code {self._proc.poll()})")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def _drain(self, seconds: float) -> None:
        """Collect the events that arrive within `seconds`."""
        deadline = time.monotonic() + seconds
        try:
            while True:
                self._events.append(self._receive(deadline))
        except BrowserError:
            if self._proc.poll() is not None:
                raise

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the tab (promises awaited)."""
        result = self.send("Runtime.evaluate", session=True, expression=expression,
                           awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    # -- pages ------------------------------------------------------------------------------
    def open(self, path: str | Path, ready: str = "true", width: int = 1280,
             height: int = 900) -> Page:
        """Load the file `path` in a `width` x `height` window and wait until the JavaScript
        expression `ready` is truthy (or an error is logged); the page's errors and
        requests."""
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.send(f"{domain}.enable", session=True)
        self.send("Emulation.setDeviceMetricsOverride", session=True, width=width,
                  height=height, deviceScaleFactor=1, mobile=False)
        url = Path(path).resolve().as_uri()
        self._events.clear()
        self.send("Page.navigate", session=True, url=url)
        deadline = time.monotonic() + self.timeout
        check = (f"(() => {{ try {{ return Boolean({ready}) || Boolean(document.body.dataset"
                 f".error); }} catch (e) {{ return false; }} }})()")    # body: null at first
        while not self.evaluate(check):
            if time.monotonic() > deadline:
                raise BrowserError(f"{url}: `{ready}` not true within {self.timeout:g} s")
            self._drain(0.2)
        self._drain(0.5)                         # late console messages
        return self._page(url)

    def _page(self, url: str) -> Page:
        page = Page(url)
        for event in self._events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error",
                                                                               "assert"):
                page.errors.append("console: " + " ".join(
                    str(a.get("value", a.get("description", ""))) for a in params["args"]))
            elif method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                page.errors.append("exception: " + str(details.get("exception", {}).get(
                    "description", details.get("text"))))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                page.errors.append("log: " + params["entry"]["text"])
            elif method == "Network.requestWillBeSent":
                page.requests.append(params["request"]["url"])
        return page

    def screenshot(self, path: str | Path) -> Path:
        """A PNG of the tab's window."""
        data = self.send("Page.captureScreenshot", session=True, format="png")["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)

    # -- lifetime ---------------------------------------------------------------------------
    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (BrowserError, OSError):
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for fd in (self._in, self._out):
            os.close(fd)
        self._profile.cleanup()

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Chromium", "Page", "BrowserError", "find_chromium", "FLAGS", "INSTALL"]
