"""Headless Chromium driven over the DevTools protocol (no selenium/playwright: the
``websockets`` package viser brings and Debian's ``chromium``).

:class:`Browser` starts ``chromium --headless`` with a private profile, software WebGL
(SwiftShader) and the DevTools endpoint on 127.0.0.1, opens one page and offers
:meth:`Browser.evaluate` (JavaScript in the page) and :meth:`Browser.screenshot` (PNG bytes).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

#: Debian's package installs chromium; other names for the same browser
CANDIDATES = ('chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable')


def find_chromium() -> str | None:
    """Path of a Chromium-like browser, or None."""
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """One headless Chromium process with one page (see the module docstring).

    Args:
        executable: the browser.
        width, height: window size [px].
    """

    def __init__(self, executable: str, width: int = 1280, height: int = 800) -> None:
        from websockets.sync.client import connect

        self.profile = tempfile.mkdtemp(prefix='l2l_nmhw_chromium_')
        self.proc = subprocess.Popen(
            [executable, '--headless=new', '--no-sandbox', '--disable-gpu-sandbox',
             '--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--ignore-gpu-blocklist',
             '--no-first-run', '--no-default-browser-check', '--disable-extensions',
             '--disable-background-networking', '--disable-component-update',
             '--disable-sync', '--metrics-recording-only', '--mute-audio',
             f'--user-data-dir={self.profile}', '--remote-debugging-address=127.0.0.1',
             '--remote-debugging-port=0', f'--window-size={width},{height}', 'about:blank'],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        port_file = Path(self.profile) / 'DevToolsActivePort'
        deadline = time.monotonic() + 30.0
        while not (port_file.is_file() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError('chromium did not open its DevTools port')
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f'http://127.0.0.1:{port}/json/list', timeout=10) as r:
            pages = [t for t in json.loads(r.read()) if t.get('type') == 'page']
        self.ws = connect(pages[0]['webSocketDebuggerUrl'], max_size=64 * 2**20,
                          open_timeout=10)
        self._id = 0
        self.send('Page.enable')
        self.send('Runtime.enable')
        self.send('Emulation.setDeviceMetricsOverride', width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def send(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        """Call a DevTools method; return its result.

        Raises:
            RuntimeError: the browser answered with an error.
            TimeoutError: no answer within ``timeout`` s.
        """
        self._id += 1
        mid = self._id
        self.ws.send(json.dumps({'id': mid, 'method': method, 'params': params}))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f'{method}: no answer in {timeout} s')
            msg = json.loads(self.ws.recv(timeout=left))
            if msg.get('id') == mid:
                if 'error' in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get('result', {})

    def goto(self, url: str) -> None:
        """Navigate to ``url``."""
        self.send('Page.navigate', url=url)

    def evaluate(self, expression: str) -> Any:
        """Return the value of a JavaScript expression in the page."""
        res = self.send('Runtime.evaluate', expression=expression, returnByValue=True,
                        awaitPromise=True)
        if 'exceptionDetails' in res:
            raise RuntimeError(f"page error: {res['exceptionDetails']}")
        return res.get('result', {}).get('value')

    def wait_for(self, expression: str, timeout: float) -> Any:
        """Evaluate ``expression`` until it is truthy; return it (None after ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except RuntimeError:
                value = None
            if value:
                return value
            time.sleep(0.5)
        return None

    def screenshot(self) -> bytes:
        """Return a PNG of the page as rendered now."""
        return base64.b64decode(self.send('Page.captureScreenshot', format='png')['data'])

    def close(self) -> None:
        """Close the connection, stop the browser (its process group), remove the profile."""
        ws = getattr(self, 'ws', None)
        if ws is not None:
            ws.close()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        shutil.rmtree(self.profile, ignore_errors=True)
