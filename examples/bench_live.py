#!/usr/bin/env python3
"""`make bench` (live view, PROTOCOL.md §8): one camera at 10 fps with 50 KB frames to 1, 10 and 30 WebSocket
viewers that read, each run once alone and once with one more viewer that never reads.

For each run: frames the camera sent, frames each reading viewer got (the slowest of them, to see that the
non-reading one holds nobody back), the gateway's CPU per delivered frame (/proc/<pid>/stat), frames dropped
for the non-reading viewer (gatehouse_live_frames_dropped_total), and the gateway's memory (VmRSS) at the end.
The camera and the viewers are Python WebSocket clients in this process; the gateway and mosquitto are
children bound to loopback, stopped by PID at the end. Everything stops by itself.

Environment: BIN (default .build/release), BENCH_LIVE_SECONDS (per run, default 8), BENCH_LIVE_FRAME_BYTES
(default 51200), BENCH_LIVE_VIEWERS (default "1,10,30").
"""
import base64, hashlib, hmac, json, os, socket, subprocess, tempfile, threading, time, urllib.request

from bench_common import cpu_seconds, free_port, wait_ready

from websockets.sync.client import connect

BIN = os.environ.get("BIN", ".build/release")
SECONDS = float(os.environ.get("BENCH_LIVE_SECONDS", "8"))
FRAME_BYTES = int(os.environ.get("BENCH_LIVE_FRAME_BYTES", str(50 * 1024)))
VIEWERS = [int(n) for n in os.environ.get("BENCH_LIVE_VIEWERS", "1,10,30").split(",")]
FPS = 10




def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def token(key, claims):
    b64 = lambda data: base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64(json.dumps(claims).encode())
    return head + "." + b64(hmac.new(key, head.encode(), hashlib.sha256).digest())


def metric(http_port, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


class Camera:
    """A camera device: hello with capabilities.live, then FPS frames per second while the gateway asks."""

    def __init__(self, http_port, key):
        self.ws = connect(f"ws://127.0.0.1:{http_port}/v1/connect", additional_headers={
            "Authorization": "Bearer " + token(key, {"sub": "bench-cam", "kind": "camera"})}, max_size=None, proxy=None, legacy=True)
        json.loads(self.ws.recv(timeout=5))  # welcome
        self.ws.send(json.dumps({"type": "hello", "seq": 1, "kind": "camera", "capabilities": {"live": {"max_fps": FPS}}}))
        json.loads(self.ws.recv(timeout=5))  # ack
        header = json.dumps({"stream": "live", "content_type": "image/jpeg"}).encode()
        self.prefix = len(header).to_bytes(2, "big") + header
        self.started = threading.Event()
        self.sent = 0
        self.stop = threading.Event()
        threading.Thread(target=self.read, daemon=True).start()
        threading.Thread(target=self.stream, daemon=True).start()

    def read(self):
        try:
            for message in self.ws:
                if isinstance(message, str) and json.loads(message).get("type") == "live":
                    (self.started.set if json.loads(message)["action"] == "start" else self.started.clear)()
        except Exception:
            pass

    def stream(self):
        body = os.urandom(FRAME_BYTES - 4)
        next_at = time.monotonic()
        while not self.stop.is_set():
            if self.started.is_set():
                self.ws.send(self.prefix + self.sent.to_bytes(4, "big") + body)
                self.sent += 1
            next_at += 1 / FPS
            time.sleep(max(0, next_at - time.monotonic()))


class Viewer:
    """A WebSocket viewer that reads every message and counts frames; a `slow` one never reads (tiny buffer)."""

    def __init__(self, http_port, viewer_token, slow=False):
        sock = socket.socket()
        if slow:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", http_port))
        self.ws = connect(f"ws://127.0.0.1:{http_port}/v1/live/bench-cam", sock=sock, max_size=None, proxy=None,
                          additional_headers={"Authorization": "Bearer " + viewer_token}, legacy=True)
        self.frames = 0
        if not slow:
            threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        try:
            for message in self.ws:
                if isinstance(message, bytes):
                    self.frames += 1
        except Exception:
            pass

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass


def run(http_port, gateway_pid, viewer_token, camera, readers, slow):
    viewers = [Viewer(http_port, viewer_token) for _ in range(readers)]
    if slow:
        viewers.append(Viewer(http_port, viewer_token, slow=True))
    camera.started.wait(5)
    time.sleep(1)  # the first second: connections settle
    counts = [v.frames for v in viewers[:readers]]
    sent, cpu, dropped = camera.sent, cpu_seconds(gateway_pid), metric(http_port, "gatehouse_live_frames_dropped_total")
    delivered = metric(http_port, "gatehouse_live_frames_sent_total")
    time.sleep(SECONDS)
    got = [v.frames - c for v, c in zip(viewers, counts)]
    sent = camera.sent - sent
    cpu = cpu_seconds(gateway_pid) - cpu
    delivered = metric(http_port, "gatehouse_live_frames_sent_total") - delivered
    dropped = metric(http_port, "gatehouse_live_frames_dropped_total") - dropped
    rss = rss_mib(gateway_pid)
    for v in viewers:
        v.close()
    return sent, got, cpu, dropped, rss, delivered


def main():
    work = tempfile.mkdtemp(prefix="gatehouse-bench-live-")
    mqtt_port, http_port = free_port(), free_port()
    with open(f"{work}/m.conf", "w") as f:
        f.write(f"listener {mqtt_port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    broker = subprocess.Popen(["mosquitto", "-c", f"{work}/m.conf"], stderr=subprocess.DEVNULL)
    key = os.urandom(24).hex().encode()
    with open(f"{work}/key", "wb") as f:
        f.write(key + b"\n")
    env = dict(os.environ, GATEHOUSE_MQTT_URL=f"mqtt://127.0.0.1:{mqtt_port}", GATEHOUSE_AUTH_KEY_FILE=f"{work}/key",
               GATEHOUSE_GATEWAY_LISTEN=f"127.0.0.1:{http_port}", GATEHOUSE_SPOOL_DIR=f"{work}/spool", GATEHOUSE_LOG_LEVEL="warning",
               GATEHOUSE_LIVE_IDLE_S="0")
    gateway = subprocess.Popen([f"{BIN}/gatehouse", "--config", "examples/demo.yaml"], env=env, stderr=open(f"{work}/gw.log", "w"))
    try:
        wait_ready(http_port)
        camera = Camera(http_port, key)
        viewer_token = token(key, {"sub": "bench-viewer", "scope": "view", "exp": int(time.time()) + 3600})
        print(f"live view: 1 camera at {FPS} fps, {FRAME_BYTES // 1024} KiB frames, {SECONDS:.0f} s per run ({BIN})")
        print(f"{'viewers':>16} {'camera frames':>14} {'slowest reader':>15} {'µs CPU/frame':>13} {'dropped (slow)':>15} {'RSS MiB':>8}")
        print(f"{'none':>16} {'-':>14} {'-':>15} {'-':>13} {'-':>15} {rss_mib(gateway.pid):>8.1f}")
        for readers in VIEWERS:
            for slow in (False, True):
                # delivered: frames the gateway wrote to any viewer (the non-reading one's kernel buffer included)
                sent, got, cpu, dropped, rss, delivered = run(http_port, gateway.pid, viewer_token, camera, readers, slow)
                label = f"{readers}" + (" + 1 not reading" if slow else "")
                print(f"{label:>16} {sent:>14} {min(got[:readers]):>15} {cpu / max(delivered, 1) * 1e6:>13.0f} "
                      f"{(f'{dropped:.0f}' if slow else '-'):>15} {rss:>8.1f}")
                time.sleep(0.5)
        camera.stop.set()
    finally:
        for p in (gateway, broker):
            p.terminate()
        for p in (gateway, broker):
            p.wait(timeout=20)


if __name__ == "__main__":
    main()
