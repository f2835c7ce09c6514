#!/usr/bin/env python3
"""Browser check of the status page (`make check-ui`).

Starts a private mosquitto, a gateway and a small simulated fleet, then loads `GET /` in headless Chromium:
the rendered DOM must list every simulated device (rows with `data-device`), show the gateway id in
`#gateway-id` and a non-empty `#updated`, with the error banner hidden. Then, driving the same browser over
the DevTools protocol without reloading the page: the device table and the sparklines change as updates are
pushed over the status WebSocket, thermostats mark a pending desired setpoint, and the camera's live tile,
opened with a viewer token from the page's `?token=`, shows frames that change (two decoded frames compared
pixel by pixel). A screenshot of the page with the tile playing is saved for a human to look at.

Environment:
  BIN           directory with `gatehouse` and `gatehouse-sim` (default .build/debug, relative to the repo root)
  CHECK_UI_OUT  screenshot path (default .build/check-ui/status.png)
  CHROMIUM      Chromium/Chrome executable (default: the first of chromium, chromium-browser, google-chrome,
                google-chrome-stable on PATH)
  MOSQUITTO_BIN mosquitto executable (default: mosquitto on PATH, then /usr/sbin/mosquitto)
  CHECK_UI_KEEP set to 1 to keep the temporary directory (configs, logs) for inspection

Exit status: 0 pass, 1 failure, 2 no Chromium installed. Everything started here is stopped by PID.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

GATEWAY_ID = "ui-gw"
PREFIX = "ui"
THERMOSTATS, CAMERAS, SENSORS = 2, 1, 2
EXPECTED_DEVICES = sorted(
    [f"{PREFIX}-thermo-{i}" for i in range(1, THERMOSTATS + 1)]
    + [f"{PREFIX}-cam-{i}" for i in range(1, CAMERAS + 1)]
    + [f"{PREFIX}-sensor-{i}" for i in range(1, SENSORS + 1)]
)
SIM_DURATION_S = 40
READY_TIMEOUT_S = 30
DEVICES_TIMEOUT_S = 20
CHROMIUM_TIMEOUT_S = 90
MIN_SCREENSHOT_BYTES = 10 * 1024
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class CheckFailed(Exception):
    pass


def viewer_token(key: bytes, sub: str = "check-ui") -> str:
    """An HS256 viewer token (scope view) for the live tile, signed with the fleet key."""
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = b64(json.dumps({"sub": sub, "scope": "view", "exp": int(time.time()) + 3600}).encode())
    signature = hmac.new(key, f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{b64(signature)}"


class DevTools:
    """A page in headless Chromium driven over the DevTools protocol (a WebSocket): evaluate, wait, screenshot."""

    def __init__(self, chromium: str, url: str, tmp: Path):
        from websockets.sync.client import connect
        self.port = free_port()
        profile = tempfile.mkdtemp(prefix="chromium-cdp-", dir=tmp)
        self.proc = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
             "--window-size=1280,1100", f"--remote-debugging-port={self.port}", f"--user-data-dir={profile}", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 30
        target = None
        while time.monotonic() < deadline and target is None:
            try:
                pages = json.loads(http_get(self.port, "/json/list")[1])
                target = next((p for p in pages if p.get("type") == "page"), None)
            except (OSError, ValueError):
                time.sleep(0.2)
        if target is None:
            self.close()
            raise CheckFailed("chromium's DevTools endpoint did not come up within 30s")
        self.ws = connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=10, proxy=None, legacy=True)
        self.next_id = 0

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=30))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise CheckFailed(f"DevTools {method}: {message['error']}")
                return message["result"]

    def js(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise CheckFailed(f"page script failed: {result['exceptionDetails'].get('text')}: {expression[:200]}")
        return result["result"].get("value")

    def wait(self, expression: str, what: str, timeout: float = 20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.2)
        raise CheckFailed(f"{what} within {timeout}s")

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        self.proc.wait()


# ------------------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"check-ui: {message}", flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "  <no log>"
    return "\n".join("  " + line for line in text.splitlines()[-lines:]) or "  <empty>"


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def clean_env() -> dict[str, str]:
    """This environment without GATEHOUSE_* variables (they would override the generated config)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}


def stop(proc: subprocess.Popen | None, name: str, timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after `timeout`; only the process started here, by its PID."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log(f"{name} (pid {proc.pid}) ignored SIGTERM for {timeout:.0f}s; killing it")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
    except ProcessLookupError:
        pass


def find_chromium() -> str | None:
    override = os.environ.get("CHROMIUM")
    if override:
        return shutil.which(override) or (override if os.access(override, os.X_OK) else None)
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def find_mosquitto() -> str | None:
    override = os.environ.get("MOSQUITTO_BIN")
    if override:
        return override if os.access(override, os.X_OK) else None
    path = shutil.which("mosquitto")
    if path:
        return path
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


class DomScan(HTMLParser):
    """Collects `data-device` of table rows and the text of a few elements by id."""

    def __init__(self, ids: tuple[str, ...]):
        super().__init__(convert_charrefs=True)
        self.wanted = set(ids)
        self.text: dict[str, str] = {}
        self.attrs_by_id: dict[str, dict[str, str | None]] = {}
        self.devices: list[str] = []
        self._open: list[list] = []  # [id, tag, nesting depth of the same tag]

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "tr" and "data-device" in attributes:
            self.devices.append(attributes["data-device"] or "")
        for capture in self._open:
            if capture[1] == tag:
                capture[2] += 1
        element_id = attributes.get("id")
        if element_id in self.wanted:
            self.attrs_by_id[element_id] = attributes
            self.text[element_id] = ""
            self._open.append([element_id, tag, 0])

    def handle_endtag(self, tag):
        for capture in list(self._open):
            if capture[1] == tag:
                if capture[2] == 0:
                    self._open.remove(capture)
                else:
                    capture[2] -= 1

    def handle_data(self, data):
        for capture in self._open:
            self.text[capture[0]] += data


# ------------------------------------------------------------------------------------------------------------
# The check
# ------------------------------------------------------------------------------------------------------------


class Check:
    def __init__(self, bin_dir: Path, chromium: str, out: Path):
        self.bin_dir = bin_dir
        self.chromium = chromium
        self.out = out
        self.tmp = Path(tempfile.mkdtemp(prefix="gatehouse-check-ui-"))
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.gateway_log = self.tmp / "gatehouse.log"
        self.sim_log = self.tmp / "sim.log"
        self.broker_log = self.tmp / "mosquitto.log"
        self.http_port = 0
        self.key_file = self.tmp / "fleet.key"

    # -- processes

    def spawn(self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=self.tmp, env=env)
        self.procs.append((name, proc))
        return proc

    def cleanup(self) -> None:
        for name, proc in reversed(self.procs):  # devices, then gateway, then broker
            stop(proc, name)
        if os.environ.get("CHECK_UI_KEEP") == "1":
            log(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def start_broker(self) -> int:
        mosquitto = find_mosquitto()
        if not mosquitto:
            raise CheckFailed("mosquitto not found (apt-get install -y mosquitto, or set MOSQUITTO_BIN)")
        for _ in range(5):  # the free port may be taken between probing and binding: retry on a new one
            port = free_port()
            conf = self.tmp / "mosquitto.conf"
            conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
            proc = self.spawn("mosquitto", [mosquitto, "-c", str(conf)], self.broker_log)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and proc.poll() is None:
                if port_open(port):
                    return port
                time.sleep(0.02)
            stop(proc, "mosquitto")
        raise CheckFailed(f"mosquitto did not start:\n{tail(self.broker_log)}")

    def start_gateway(self, mqtt_port: int) -> None:
        gatehouse = self.bin_dir / "gatehouse"
        fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as key:
            key.write(base64.b64encode(os.urandom(32)).decode() + "\n")
        spool = self.tmp / "spool"
        spool.mkdir()
        self.http_port = free_port()
        config = self.tmp / "gatehouse.yaml"
        q = json.dumps  # a JSON string is a valid double-quoted YAML scalar
        config.write_text(
            f"gateway:\n  id: {GATEWAY_ID}\n  listen: {q(f'127.0.0.1:{self.http_port}')}\n"
            f"mqtt:\n  url: {q(f'mqtt://127.0.0.1:{mqtt_port}')}\n"
            f"auth:\n  key_file: {q(str(self.key_file))}\n"
            f"spool:\n  dir: {q(str(spool))}\n"
        )
        proc = self.spawn("gatehouse", [str(gatehouse), "--config", str(config)], self.gateway_log, env=clean_env())
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise CheckFailed(f"gatehouse exited with status {proc.returncode} before it was ready")
            try:
                if http_get(self.http_port, "/readyz", timeout=1)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise CheckFailed(f"gatehouse not ready (GET /readyz != 200) within {READY_TIMEOUT_S}s")

    def start_devices(self) -> None:
        sim = self.bin_dir / "gatehouse-sim"
        argv = [
            str(sim), "--url", f"ws://127.0.0.1:{self.http_port}/v1/connect", "--key-file", str(self.key_file),
            "--thermostats", str(THERMOSTATS), "--cameras", str(CAMERAS), "--sensors", str(SENSORS),
            "--rate", "2", "--duration", str(SIM_DURATION_S), "--prefix", PREFIX,
        ]
        proc = self.spawn("gatehouse-sim", argv, self.sim_log)
        deadline = time.monotonic() + DEVICES_TIMEOUT_S
        last = "no answer"
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise CheckFailed(f"gatehouse-sim exited with status {proc.returncode}:\n{tail(self.sim_log)}")
            try:
                status, body = http_get(self.http_port, "/api/status")
                if status != 200:
                    last = f"HTTP {status}: {body[:200]!r}"
                else:
                    listed = sorted(d.get("device") for d in json.loads(body).get("devices") or [])
                    last = f"devices {listed}"
                    if listed == EXPECTED_DEVICES:
                        return
            except (OSError, ValueError, AttributeError) as error:
                last = f"{type(error).__name__}: {error}"
            time.sleep(0.25)
        raise CheckFailed(
            f"/api/status did not list {EXPECTED_DEVICES} within {DEVICES_TIMEOUT_S}s (last: {last})\n"
            f"gatehouse-sim log:\n{tail(self.sim_log)}"
        )

    # -- browser

    def run_chromium(self, extra: list[str], what: str) -> bytes:
        profile = tempfile.mkdtemp(prefix="chromium-", dir=self.tmp)
        argv = [
            self.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--mute-audio",
            f"--user-data-dir={profile}", *extra, f"http://127.0.0.1:{self.http_port}/",
        ]
        # Own session: on a timeout the browser and its helper processes go down together, by this group id.
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                cwd=self.tmp, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=CHROMIUM_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise CheckFailed(f"chromium ({what}) did not finish within {CHROMIUM_TIMEOUT_S}s")
        if proc.returncode != 0:
            raise CheckFailed(
                f"chromium ({what}) exited with status {proc.returncode}:\n"
                + "\n".join("  " + line for line in err.decode(errors="replace").splitlines()[-20:])
            )
        self.chromium_stderr = err
        return out

    def check_dom(self) -> None:
        dom = self.run_chromium(["--virtual-time-budget=5000", "--dump-dom"], "--dump-dom").decode(errors="replace")
        scan = DomScan(("gateway-id", "updated", "banner", "devices"))
        scan.feed(dom)
        scan.close()
        problems = []
        if "devices" not in scan.attrs_by_id:
            problems.append("no element with id=\"devices\" (is GET / the status page?)")
        if sorted(scan.devices) != EXPECTED_DEVICES:
            problems.append(f"device rows {sorted(scan.devices)} != expected {EXPECTED_DEVICES}")
        gateway_id = scan.text.get("gateway-id", "").strip()
        if gateway_id != GATEWAY_ID:
            problems.append(f"#gateway-id is {gateway_id!r}, expected {GATEWAY_ID!r}")
        if not scan.text.get("updated", "").strip():
            problems.append("#updated is empty (the page never got a successful /api/status)")
        banner = scan.attrs_by_id.get("banner")
        if banner is not None and "hidden" not in banner:
            problems.append(f"#banner is showing: {scan.text.get('banner', '').strip()!r}")
        if problems:
            snippet = dom if len(dom) < 4000 else dom[:4000] + "\n  ..."
            raise CheckFailed("rendered DOM is wrong:\n  - " + "\n  - ".join(problems) + f"\nDOM:\n{snippet}")

    def check_live_page(self) -> int:
        """The page without a reload: pushed updates, sparklines, a pending setpoint, a live tile that plays."""
        token = viewer_token(self.key_file.read_bytes()[:-1])
        page = DevTools(self.chromium, f"http://127.0.0.1:{self.http_port}/?token={token}", self.tmp)
        try:
            page.wait(f"document.querySelectorAll('tr[data-device]').length === {len(EXPECTED_DEVICES)}",
                      "the device table did not list every device")
            page.js("window.__loaded = performance.timeOrigin")
            first = page.js("document.getElementById('updated').textContent")
            points = f"[...document.querySelectorAll('tr[data-device=\"{PREFIX}-sensor-1\"] svg.spark')].map(s => +s.dataset.points)"
            page.wait(f"{points}.some(n => n >= 3)", "no sparkline with three points for a sensor")
            before = page.js(f"Math.max(...{points})")
            page.wait(f"Math.max(...{points}) > {before} && document.getElementById('updated').textContent !== {json.dumps(first)}",
                      "the sparklines and the table did not change")
            # Thermostats render the desired-state fields when present: a pending delta is marked.
            pending = page.js("""(() => {
                const d = JSON.parse(JSON.stringify(gatehouse.last()));
                d.devices.filter(r => r.kind === 'thermostat').forEach(r => {
                    r.reported = {setpoint: 20}; r.delta = {setpoint: 22.5}; r.desired_version = 3; r.delta_pending_since = Date.now();
                });
                gatehouse.receive(d);
                return [...document.querySelectorAll('[data-pending=setpoint]')].map(e => e.textContent);
            })()""")
            if len(pending) != THERMOSTATS or not all("22.5" in text for text in pending):
                raise CheckFailed(f"pending setpoints rendered as {pending}, expected {THERMOSTATS} showing 22.5")
            # The live tile: open it, then compare two decoded frames pixel by pixel.
            camera = f"{PREFIX}-cam-1"
            tile = f"document.querySelector('[data-live=\"{camera}\"]')"
            page.wait(f"{tile} !== null", f"no live tile for {camera}")
            page.js(f"{tile}.querySelector('button').click()")
            page.wait(f"+{tile}.dataset.frames >= 2", f"the live tile of {camera} showed no frames")
            # A decode fails when the next frame replaces the image meanwhile (10 fps): that one is decoded instead.
            # A decode that fails with the image unchanged fails the check.
            grab = f"""(async () => {{
                let img;
                for (let tries = 0; ; tries++) {{
                    img = {tile}.querySelector('img');
                    const src = img.src;
                    try {{ await img.decode(); if (img.src === src) break; }}
                    catch (e) {{ if (img.src === src || tries >= 20) throw e; }}
                }}
                const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
                const g = c.getContext('2d'); g.drawImage(img, 0, 0);
                const px = g.getImageData(0, 0, c.width, c.height).data;
                let h = 0; for (let i = 0; i < px.length; i += 7) h = (h * 31 + px[i]) | 0;
                return [+{tile}.dataset.frames, c.width, c.height, h];
            }})()"""
            a = page.js(grab)
            page.wait(f"+{tile}.dataset.frames >= {a[0] + 3}", "the live tile stopped getting frames")
            b = page.js(grab)
            if a[1] < 100 or a[2] < 100:
                raise CheckFailed(f"the live frame decoded as {a[1]}x{a[2]}")
            if a[3] == b[3]:
                raise CheckFailed(f"two live frames ({a[0]} and {b[0]}) decoded to the same pixels")
            state = page.js(f"{tile}.querySelector('.state').textContent")
            if state != "streaming":
                raise CheckFailed(f"the live tile says {state!r}, expected 'streaming'")
            if page.js("window.__loaded") is None:
                raise CheckFailed("the page reloaded during the check")
            self.out.parent.mkdir(parents=True, exist_ok=True)
            shot = base64.b64decode(page.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"])
            self.out.write_bytes(shot)
            self.live_summary = f"live tile frames {a[0]} -> {b[0]} differ ({a[1]}x{a[2]})"
            return len(shot)
        finally:
            page.close()

    def take_screenshot(self) -> int:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        if self.out.exists():
            self.out.unlink()
        self.run_chromium(
            ["--hide-scrollbars", "--window-size=1280,900", "--virtual-time-budget=5000", f"--screenshot={self.out}"],
            "--screenshot",
        )
        if not self.out.is_file():
            raise CheckFailed(f"chromium wrote no screenshot at {self.out}")
        size = self.out.stat().st_size
        if size <= MIN_SCREENSHOT_BYTES:
            raise CheckFailed(f"screenshot {self.out} is only {size} bytes (blank page?)")
        return size

    def run(self) -> str:
        for binary in ("gatehouse", "gatehouse-sim"):
            if not (self.bin_dir / binary).is_file():
                raise CheckFailed(f"{self.bin_dir / binary} not found (build first, or set BIN)")
        started = time.monotonic()
        mqtt_port = self.start_broker()
        self.start_gateway(mqtt_port)
        self.start_devices()
        self.check_dom()
        size = self.check_live_page()
        if size <= MIN_SCREENSHOT_BYTES:
            raise CheckFailed(f"screenshot {self.out} is only {size} bytes (blank page?)")
        return (
            f"PASS: status page shows gateway {GATEWAY_ID} and {len(EXPECTED_DEVICES)} devices, updates pushed "
            f"without a reload, sparklines and pending setpoints drawn, {self.live_summary}; "
            f"screenshot {self.out} ({size // 1024} KiB) in {time.monotonic() - started:.1f}s"
        )


def main() -> int:
    os.chdir(ROOT)
    bin_dir = Path(os.environ.get("BIN") or ".build/debug")
    bin_dir = bin_dir if bin_dir.is_absolute() else ROOT / bin_dir
    out = Path(os.environ.get("CHECK_UI_OUT") or ".build/check-ui/status.png")
    out = out if out.is_absolute() else ROOT / out

    chromium = find_chromium()
    if not chromium:
        print(
            "check-ui: no Chromium found (looked for " + ", ".join(CHROMIUM_NAMES) + " on PATH, or $CHROMIUM).\n"
            "check-ui: install it with: apt-get install -y chromium",
            file=sys.stderr,
        )
        return 2

    # SIGTERM/SIGHUP (e.g. make killed) unwind through `finally` like Ctrl-C does.
    def terminate(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)

    check = Check(bin_dir, chromium, out)
    try:
        print(check.run(), flush=True)
        return 0
    except CheckFailed as failure:
        print(f"check-ui: FAIL: {failure}", file=sys.stderr)
        if check.gateway_log.exists():
            print(f"check-ui: gatehouse log (last lines):\n{tail(check.gateway_log)}", file=sys.stderr)
        return 1
    finally:
        check.cleanup()


if __name__ == "__main__":
    sys.exit(main())
