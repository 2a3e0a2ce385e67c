"""Drives gangway's status page in headless Chromium through the DevTools protocol.

Starts `chromium --headless=new` in a process group of its own, opens the page at --url,
waits for the backend table, clicks the `start` button of --backend (which must show as
stopped), waits for its row to say `ready`, saves a screenshot at --screenshot, clicks
`stop` and waits for `stopped`. --other names a backend whose row must stay `stopped`
throughout. With --token, every request of the page carries it as a Basic password.

Prints `ok {JSON}` (the states each row went through) and exits 0, or exits non-zero with
the reason. Every wait has a deadline; chromium is killed on every path. Run by
tests/gateway/service.rs with PYTHONPATH pointing at .peers/py-tools (websocket-client).
"""

import argparse
import base64
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time

import websocket

# How often a wait looks at the page again (the waits themselves have deadlines).
POLL = 0.05


class Failure(Exception):
    pass


def on_signal(signum, _frame):
    raise Failure(f"stopped by signal {signum} (the test's deadline)")


def on_alarm(_signum, _frame):
    raise Failure("the script's overall deadline passed")


class Chromium:
    """A headless Chromium in a process group of its own, and its stderr."""

    def __init__(self, program, profile, deadline):
        self.lines = []
        self.profile = profile
        # Its crash handler keeps its database under HOME's config: keep that in the profile.
        env = dict(os.environ, HOME=profile, XDG_CONFIG_HOME=profile, XDG_CACHE_HOME=profile)
        self.proc = subprocess.Popen(
            [
                program,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env=env,
        )
        found = queue.Queue()
        threading.Thread(target=self._read, args=(found,), daemon=True).start()
        try:
            url = found.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            url = None
        if not url:
            raise Failure("chromium printed no `DevTools listening on` line:\n" + self.tail())
        self.url = url

    def _read(self, found):
        marker = "DevTools listening on "
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            if marker in line:
                found.put(line.split(marker, 1)[1].strip())
        found.put(None)

    def tail(self, n=30):
        # Without a system bus, chromium complains about D-Bus at length: not the news.
        return "\n".join([l for l in self.lines if "dbus/" not in l][-n:])

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        # The crash handlers run in sessions of their own; their command lines name the
        # profile.
        for pid in self.strays():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def strays(self):
        mark = self.profile.encode()
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if mark in f.read():
                        found.append(int(entry))
            except OSError:
                pass
        return found


class Page:
    """One page target, driven over the browser's DevTools WebSocket (flat sessions)."""

    def __init__(self, browser_url):
        self.ws = websocket.create_connection(browser_url, timeout=10, suppress_origin=True)
        self.next_id = 0
        self.session = None
        self.errors = []
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send(
            "Target.attachToTarget", {"targetId": target, "flatten": True}
        )["sessionId"]

    def send(self, method, params=None, timeout=10.0):
        self.next_id += 1
        ident = self.next_id
        msg = {"id": ident, "method": method, "params": params or {}}
        if self.session:
            msg["sessionId"] = self.session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failure(f"{method}: no answer within {timeout} s")
            self.ws.settimeout(left)
            try:
                answer = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                continue
            if answer.get("id") == ident:
                if "error" in answer:
                    raise Failure(f"{method} failed: {answer['error']}")
                return answer.get("result", {})
            self.event(answer)

    def event(self, msg):
        method = msg.get("method")
        params = msg.get("params", {})
        if method == "Page.javascriptDialogOpening":
            # The page alerts when a control's POST fails: that is the failure to report.
            raise Failure(f"the page opened a dialog: {params.get('message')!r}")
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text")
            self.errors.append(f"the page's script threw: {text}")

    def evaluate(self, expression):
        result = self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}
        )
        if "exceptionDetails" in result:
            raise Failure(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait(self, what, expression, done, timeout):
        """Evaluates `expression` until `done(value)` holds; returns the values seen, in order
        and without repeats."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            value = self.evaluate(expression)
            if not seen or seen[-1] != value:
                seen.append(value)
            if done(value):
                return seen
            if time.monotonic() >= deadline:
                raise Failure(f"{what}: not within {timeout} s; values seen: {seen}")
            time.sleep(POLL)


def state_of(name):
    row = json.dumps(f'tr[data-backend="{name}"] td.state')
    return f"(() => {{ const td = document.querySelector({row}); return td ? td.dataset.state : null; }})()"


def press(page, name, action, until):
    """Clicks the `action` button of backend `name`'s row and waits until the row shows
    the state `until`; returns the states seen on the way."""
    selector = json.dumps(f'tr[data-backend="{name}"] button[data-do={action}]')
    clicked = page.evaluate(
        f"(() => {{ const b = document.querySelector({selector}); if (!b) return false; b.click(); return true; }})()"
    )
    if not clicked:
        raise Failure(f"no {action} button in the row of {name!r}")
    return page.wait(
        f"{name} {until} after its {action} button",
        state_of(name),
        lambda s: s == until,
        20,
    )


def run(args, chromium_deadline):
    with tempfile.TemporaryDirectory(prefix="gangway-chromium-") as profile:
        chromium = Chromium(args.chromium, profile, chromium_deadline)
        try:
            return drive(args, chromium)
        except Failure as e:
            raise Failure(f"{e}\n--- chromium's stderr (last lines):\n{chromium.tail()}") from None
        finally:
            chromium.kill()


def drive(args, chromium):
    page = Page(chromium.url)
    page.send("Page.enable")
    page.send("Runtime.enable")
    page.send(
        "Emulation.setDeviceMetricsOverride",
        {"width": 1280, "height": 360, "deviceScaleFactor": 1, "mobile": False},
    )
    if args.token:
        basic = base64.b64encode(f"status-test:{args.token}".encode()).decode()
        page.send("Network.enable")
        page.send("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {basic}"}})
    nav = page.send("Page.navigate", {"url": args.url})
    if nav.get("errorText"):
        raise Failure(f"navigating to {args.url} failed: {nav['errorText']}")
    row = json.dumps(f'tr[data-backend="{args.backend}"]')
    page.wait(
        "the backend table",
        f"document.readyState === 'complete' && document.querySelector({row}) !== null",
        bool,
        15,
    )
    names = page.evaluate(
        "Array.from(document.querySelectorAll('tr[data-backend]')).map(r => r.dataset.backend)"
    )
    rows = [args.backend] + ([args.other] if args.other else [])
    for name in rows:
        state = page.evaluate(state_of(name))
        if state != "stopped":
            raise Failure(f"backend {name!r} shows {state!r} before any click, not 'stopped' (rows: {names})")

    started = press(page, args.backend, "start", "ready")
    process = page.evaluate(
        f"document.querySelector({row}).children[2].textContent"
    )
    if not process.startswith("pid "):
        raise Failure(f"the ready row shows no pid in its process cell: {process!r}")
    other_then = page.evaluate(state_of(args.other)) if args.other else None
    shot = page.send("Page.captureScreenshot", {"format": "png"})
    os.makedirs(os.path.dirname(os.path.abspath(args.screenshot)), exist_ok=True)
    with open(args.screenshot, "wb") as f:
        f.write(base64.b64decode(shot["data"]))
    print(f"screenshot: {os.path.abspath(args.screenshot)}", flush=True)

    stopped = press(page, args.backend, "stop", "stopped")
    if args.other:
        other_end = page.evaluate(state_of(args.other))
        if other_then != "stopped" or other_end != "stopped":
            raise Failure(f"{args.other!r} changed though nobody touched it: {other_then!r}, then {other_end!r}")
    if page.errors:
        raise Failure("\n".join(page.errors))
    seen = ["stopped"] + started + stopped
    return {
        "rows": names,
        "states": {args.backend: [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s]},
        "process": process,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--other")
    parser.add_argument("--token")
    parser.add_argument("--screenshot", required=True)
    parser.add_argument("--chromium", default="chromium")
    parser.add_argument("--deadline", type=int, default=60, help="seconds for the whole run")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(args.deadline)
    try:
        result = run(args, time.monotonic() + 30)
    except Failure as e:
        print(f"failed: {e}", file=sys.stderr)
        sys.exit(1)
    finally:
        signal.alarm(0)
    print("ok " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
