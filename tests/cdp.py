"""A small Chrome DevTools Protocol client for the dashboard tests: starts Debian's
headless Chromium, opens pages, evaluates JavaScript, waits (always with a
deadline), and records console errors, failed requests and JavaScript dialogs."""

import base64
import ctypes
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

import websocket

CHROMIUM = os.environ.get("VGC_CHROMIUM", "/usr/bin/chromium")
# Deadline for page loads and waits: generous, because the ASan build on a loaded
# two-core machine can take many seconds to serve a page (a pass is usually < 2 s).
WAIT_S = float(os.environ.get("VGC_UI_TIMEOUT", "60"))


class CdpError(Exception):
    pass


def _die_with_parent():
    """In the child before exec: SIGKILL when the test process dies, however it dies
    (PR_SET_PDEATHSIG), so no browser outlives a killed test run."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


class Browser:
    """One headless Chromium process with its own throwaway profile."""

    def __init__(self, timeout=WAIT_S):
        self.profile = tempfile.mkdtemp(prefix="vgc-chromium-")
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--remote-debugging-port=0",
             "--remote-debugging-address=127.0.0.1", f"--user-data-dir={self.profile}",
             "--no-sandbox", "--no-first-run", "--no-default-browser-check",
             "--disable-gpu", "--disable-dev-shm-usage", "--disable-extensions",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--metrics-recording-only", "--mute-audio",
             "--hide-scrollbars", "--force-color-profile=srgb", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise CdpError(f"chromium exited {self.proc.returncode} before it listened")
            try:
                with open(port_file) as f:
                    lines = f.read().split()
                if len(lines) >= 2:
                    self.port = int(lines[0])
                    break
            except (FileNotFoundError, ValueError):
                pass
            if time.monotonic() >= deadline:
                self.close()
                raise CdpError(f"chromium wrote no DevToolsActivePort within {timeout} s")
            time.sleep(0.05)

    def _json(self, path, method="GET"):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method)
        with urllib.request.urlopen(req, timeout=WAIT_S) as r:
            return json.loads(r.read())

    def new_page(self, width=1280, height=800, mobile=False):
        target = self._json("/json/new?about:blank", method="PUT")
        return Page(self, target, width, height, mobile)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


class Page:
    """One tab. Every call waits for its answer with a deadline; events are kept."""

    def __init__(self, browser, target, width, height, mobile):
        self.browser = browser
        self.target_id = target["id"]
        self.ws = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=WAIT_S,
                                              suppress_origin=True)
        self.seq = 0
        self.events = []
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self.resize(width, height, mobile)

    # -- the protocol --------------------------------------------------------

    def _read(self, timeout):
        self.ws.settimeout(max(0.01, timeout))
        msg = json.loads(self.ws.recv())
        if "method" in msg:
            self.events.append(msg)
            if msg["method"] == "Page.javascriptDialogOpening":
                # Recorded for the test to see; dismissed so the page never blocks.
                self.seq += 1
                self.ws.send(json.dumps({"id": self.seq, "method": "Page.handleJavaScriptDialog",
                                         "params": {"accept": False}}))
        return msg

    def call(self, method, timeout=WAIT_S, **params):
        self.seq += 1
        my = self.seq
        self.ws.send(json.dumps({"id": my, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CdpError(f"{method}: no answer within {timeout} s")
            try:
                msg = self._read(left)
            except websocket.WebSocketTimeoutException:
                continue
            if msg.get("id") == my:
                if "error" in msg:
                    raise CdpError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def pump(self, seconds):
        """Reads events for up to seconds."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self._read(deadline - time.monotonic())
            except websocket.WebSocketTimeoutException:
                pass

    def eval(self, expr, timeout=WAIT_S):
        """The value of a JavaScript expression (promises awaited)."""
        r = self.call("Runtime.evaluate", timeout=timeout, expression=expr, awaitPromise=True,
                      returnByValue=True)
        if "exceptionDetails" in r:
            raise CdpError(f"{expr[:80]}: {r['exceptionDetails'].get('exception', {}).get('description') or r['exceptionDetails']}")
        return r["result"].get("value")

    def wait(self, expr, timeout=WAIT_S, what=None):
        """Waits until expr is truthy and returns its value; fails after timeout."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            last = self.eval(expr)
            if last:
                return last
            if time.monotonic() >= deadline:
                raise AssertionError(f"{what or expr}: not within {timeout} s (last: {last!r})")
            self.pump(0.05)

    # -- pages ---------------------------------------------------------------

    def resize(self, width, height, mobile=False):
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=mobile)

    def goto(self, url, timeout=WAIT_S):
        self.call("Page.navigate", url=url)
        self.wait("document.readyState === 'complete'", timeout, f"{url} loaded")

    def screenshot(self, path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        data = self.call("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def click(self, selector):
        self.eval(f"document.querySelector({json.dumps(selector)}).click(), true")

    # -- what went wrong -----------------------------------------------------

    def console_errors(self):
        out = []
        for e in self.events:
            m, p = e["method"], e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console." + p["type"] + ": " + " ".join(
                    str(a.get("value", a.get("description"))) for a in p.get("args", [])))
            elif m == "Runtime.exceptionThrown":
                out.append("exception: " + json.dumps(p.get("exceptionDetails", {}))[:400])
            elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                out.append("log: " + p["entry"].get("text", "") + " " + p["entry"].get("url", ""))
        return out

    def failed_requests(self):
        return [e["params"] for e in self.events if e["method"] == "Network.loadingFailed"]

    def responses(self):
        return [e["params"]["response"] for e in self.events
                if e["method"] == "Network.responseReceived"]

    def dialogs(self):
        return [e["params"] for e in self.events if e["method"] == "Page.javascriptDialogOpening"]

    def close(self):
        try:
            self.ws.close()
        finally:
            try:
                self.browser._json(f"/json/close/{self.target_id}")
            except Exception:
                pass
