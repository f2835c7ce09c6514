"""Hardening (issue 11), the device side, provoked from outside the process: ping floods and devices that
never read (backpressure, bounded memory), one device reconnecting in a loop and connections that never
finish their handshake (others still get in), revocation failing closed, weak fleet keys, and close codes
that must reach a device that keeps sending."""

import base64
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import GATEHOUSE_BIN, REVOKED_DEVICE, closed_by_peer, metric, report_figures, run_ctl, uid, wait_until

MiB = 1 << 20


# --------------------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------------------


def rss_bytes(g):
    """The gateway's resident memory (VmRSS of /proc/<pid>/status)."""
    with open(f"/proc/{g.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class PeakRSS(threading.Thread):
    """Samples the gateway's RSS every 50 ms until stopped; `peak` is the highest seen."""

    def __init__(self, g):
        super().__init__(daemon=True)
        self.g, self.peak, self.done = g, rss_bytes(g), threading.Event()
        self.start()

    def run(self):
        while not self.done.wait(0.05):
            try:
                self.peak = max(self.peak, rss_bytes(self.g))
            except OSError:
                return

    def stop(self):
        self.done.set()
        self.join(2)
        return self.peak


def masked(opcode, payload=b"", fin=True):
    """One client frame (masked, as RFC 6455 requires)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    key = secrets.token_bytes(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class RawDevice:
    """A device on a plain socket: completes the upgrade, then does exactly what a test says (for example
    never read). `rcvbuf` shrinks its receive buffer so that what the gateway sends piles up on the gateway.
    With `path` and `token`, another WebSocket endpoint (a live viewer)."""

    def __init__(self, g, device=None, rcvbuf=None, path="/v1/connect", token=None):
        self.device = device or uid("raw")
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", g.port))
        key = base64.b64encode(secrets.token_bytes(16)).decode()
        self.sock.sendall(
            (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
             f"Authorization: Bearer {token or g.token(self.device)}\r\n\r\n").encode())
        self.buf = bytearray()
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            assert chunk, "closed during the handshake"
            self.buf += chunk
        head, rest = self.buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head
        self.buf = bytearray(rest)

    def flood(self, data, seconds):
        """Sends `data` over and over for up to `seconds` without reading; returns (bytes sent, whether the
        gateway ended the connection)."""
        sent = 0
        view = memoryview(data)
        deadline = time.monotonic() + seconds
        self.sock.settimeout(0.5)
        while time.monotonic() < deadline:
            offset = sent % len(data)  # partial sends resume mid-frame: the byte stream stays well-formed
            try:
                sent += self.sock.send(view[offset:])
            except socket.timeout:
                continue
            except OSError:
                return sent, True
        return sent, False

    def send_until_stalled(self, data, stall, seconds):
        """Sends `data` over and over until a send blocks for `stall` seconds; returns (bytes sent, stalled)."""
        sent = 0
        view = memoryview(data)
        deadline = time.monotonic() + seconds
        self.sock.settimeout(stall)
        while time.monotonic() < deadline:
            try:
                sent += self.sock.send(view[sent % len(data):])
            except socket.timeout:
                return sent, True
        return sent, False

    def _fill(self, n):
        """Receives until `n` bytes are buffered (a timeout leaves what was received in the buffer)."""
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError
            self.buf += chunk

    def frame(self):
        """The next (unmasked) frame from the gateway: (opcode, payload). Consumes nothing until the frame is
        complete, so a timeout can be retried."""
        self._fill(2)
        n, head = self.buf[1] & 0x7F, 2
        if n >= 126:
            head += 2 if n == 126 else 8
            self._fill(head)
            n = int.from_bytes(self.buf[2:head], "big")
        self._fill(head + n)
        opcode, payload = self.buf[0] & 0x0F, bytes(self.buf[head:head + n])
        del self.buf[:head + n]
        return opcode, payload

    def drain_in_background(self):
        """Reads (and drops) every frame from now on, until the connection ends."""

        def drain():
            try:
                while True:
                    self.frame()
            except (EOFError, OSError):
                pass

        self.sock.settimeout(None)
        threading.Thread(target=drain, daemon=True).start()

    def close(self):
        self.sock.close()


def offline_reason(mqtt, g, dev, timeout=10):
    _, body = mqtt.wait_json(g.topic(dev, "availability"), lambda b: b["state"] == "offline", timeout=timeout)
    return body["reason"]


def still_serves(g):
    """A fresh device connects and gets an ack: the gateway is up and serving."""
    _, d = g.device()
    d.send_json({"type": "telemetry", "seq": 1, "data": {"ok": 1}})
    d.expect_ack(1)
    d.close()


# --------------------------------------------------------------------------------------------------------------
# 5. Backpressure towards a device
# --------------------------------------------------------------------------------------------------------------

PINGS = b"".join(masked(0x9, b"p" * 125) for _ in range(2000))  # 262 KB of pings


@pytest.mark.parametrize("control_limit", [10, 0], ids=["rate-limited", "rate-limit-off"])
def test_a_ping_flood_from_a_device_that_never_reads_is_closed_with_bounded_memory(gateway, mqtt, control_limit):
    # Off, the rate limit leaves the rest to the other defences: one pong at a time, and a ping is no answer to
    # the heartbeat, so a device that reads nothing is dropped after 2 x heartbeat_s.
    g = gateway(gateway={"heartbeat_s": 1}, limits={"max_control_frames_per_s": control_limit})
    raw = RawDevice(g, rcvbuf=4096)
    mqtt.subscribe(g.topic(raw.device, "availability"))
    before = rss_bytes(g)
    peak = PeakRSS(g)
    t0 = time.monotonic()
    sent, ended = raw.flood(PINGS, seconds=12)
    elapsed = time.monotonic() - t0
    grown = peak.stop() - before
    raw.close()
    report_figures(f"ping flood, never read (control limit {control_limit}): {sent / MiB:.0f} MiB of pings sent in "
                   f"{elapsed:.1f} s, gateway RSS +{grown / MiB:.1f} MiB")
    assert ended, f"the gateway still took pings after {elapsed:.1f} s ({sent / MiB:.0f} MiB)"
    assert grown < 48 * MiB, f"gateway RSS grew by {grown / MiB:.0f} MiB for {sent / MiB:.0f} MiB of pings"
    expected = "bad_messages" if control_limit else "heartbeat_timeout"
    assert offline_reason(mqtt, g, raw.device) == expected
    still_serves(g)


def test_a_device_that_does_not_read_is_not_read_either_until_it_catches_up(gateway):
    # Each message gets a nack of about its size (an unknown command id): a device that does not read them
    # fills the gateway's write buffer, and the gateway must stop reading it instead of buffering without end.
    g = gateway(limits={"max_messages_per_s": 0, "max_bytes_per_s": 0, "max_send_queue_bytes": "64MiB"})
    raw = RawDevice(g, rcvbuf=4096)
    # Long ids make long nacks ("no open command with id ..."): the buffers fill with fewer messages.
    frames = b"".join(masked(0x1, json.dumps({"type": "response", "id": f"{i:04}" + "n" * 124, "status": "ok", "seq": i}).encode())
                      for i in range(500))
    before = rss_bytes(g)
    peak = PeakRSS(g)
    sent, stalled = raw.send_until_stalled(frames, stall=1, seconds=20)
    assert stalled, f"the gateway kept reading a device that reads nothing ({sent / MiB:.1f} MiB sent)"
    # The device's sends block: what it sent waits unread on the gateway's side. Once the gateway has worked
    # through what it had read already, it handles nothing more although input waits.
    nacks = lambda: metric(g, "gatehouse_nacks_total", code="unknown_id")
    samples = [nacks()]

    def settled():
        samples.append(nacks())
        return samples[-1] == samples[-2]

    assert wait_until(settled, 20, interval=0.5), f"nacks kept growing: {samples}"
    first = samples[-1]
    more, _ = raw.send_until_stalled(frames, stall=0.5, seconds=1)  # whatever still fits the kernel's buffers
    time.sleep(0.5)
    assert nacks() == first, f"the gateway still reads a device that does not read ({more} bytes more sent)"
    grown = peak.stop() - before
    report_figures(f"device not reading: reading stopped after {first:.0f} nacks ({sent / MiB:.1f} MiB sent), "
                   f"gateway RSS +{grown / MiB:.1f} MiB")
    assert grown < 48 * MiB
    # It reads again: so does the gateway.
    raw.drain_in_background()
    assert wait_until(lambda: nacks() > first, 10), "reading did not resume once the device read"
    raw.close()


def test_a_device_that_reads_nothing_while_commands_pile_up_is_closed(gateway, mqtt):
    g = gateway(limits={"max_send_queue_bytes": "256KiB"})
    raw = RawDevice(g, rcvbuf=4096)
    mqtt.subscribe(g.topic(raw.device, "availability"))
    mqtt.wait_json(g.topic(raw.device, "availability"), lambda b: b["state"] == "online")
    before = rss_bytes(g)
    peak = PeakRSS(g)
    blob = "x" * 400_000
    for i in range(32):  # 12.8 MB: more than the kernel buffers hold, and far more than the cap
        mqtt.publish(g.topic(raw.device, "request/load"), {"id": f"c{i}", "params": {"blob": blob}})
    reason = offline_reason(mqtt, g, raw.device, timeout=15)
    grown = peak.stop() - before
    report_figures(f"commands to a device that reads nothing: 12.8 MB sent, closed ({reason}), gateway RSS +{grown / MiB:.1f} MiB")
    assert reason == "heartbeat_timeout"
    assert metric(g, "gatehouse_limit_hits_total", limit="send_queue") >= 1
    assert grown < 64 * MiB
    raw.close()
    still_serves(g)


# --------------------------------------------------------------------------------------------------------------
# 12. One device starving the others
# --------------------------------------------------------------------------------------------------------------


def test_a_device_reconnecting_in_a_loop_does_not_keep_the_others_out(gateway):
    g = gateway(limits={"max_connects_per_s": 10})
    looper = uid("loop")
    token = g.token(looper)
    statuses = []
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            statuses.append(g.raw_upgrade(token=token)[0])

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        time.sleep(0.3)  # the loop is under way
        others = []
        for _ in range(20):  # 10 per second, the gateway's whole rate
            others.append(g.raw_upgrade(token=g.token(uid("other")))[0])
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(10)
    accepted = statuses.count(101)
    report_figures(f"device reconnecting in a loop: {len(statuses)} attempts, {accepted} accepted; "
                   f"other devices: {others.count(101)} of {len(others)} accepted")
    assert others == [101] * len(others), others
    assert accepted <= 8 and statuses.count(429) >= len(statuses) - accepted, statuses[:20]
    assert metric(g, "gatehouse_limit_hits_total", limit="connects_per_device") >= 1


def test_connections_that_never_finish_the_handshake_cannot_keep_a_device_out(gateway):
    g = gateway(limits={"max_pending_connections": 100, "max_connections": 100, "handshake_timeout_s": 60})
    # A small open-file limit, so that idle connections would run the gateway out of descriptors.
    resource.prlimit(g.proc.pid, resource.RLIMIT_NOFILE, (400, 400))
    held = []
    try:
        for _ in range(1000):
            held.append(socket.create_connection(("127.0.0.1", g.port)))
        _, d = g.device()  # gets in although 1000 connections are held open
        d.send_json({"type": "telemetry", "seq": 1, "data": {}})
        d.expect_ack(1)

        closed = wait_until(lambda: (n := closed_by_peer(held)) >= 890 and n, 10, interval=0.2)
        report_figures(f"1000 idle connections, 100 pending allowed, 400 open files: {closed} closed, a device got in")
        assert closed, f"only {closed_by_peer(held)} of 1000 idle connections were closed"
        assert g.http_get("/readyz")[0] == 200
        assert metric(g, "gatehouse_limit_hits_total", limit="pending_connections") >= 890
    finally:
        for s in held:
            s.close()


# --------------------------------------------------------------------------------------------------------------
# 7. Revocation failing closed
# --------------------------------------------------------------------------------------------------------------


def refused(g, device):
    return g.raw_upgrade(token=g.token(device))[0] == 401


def stays_refused(g, devices, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for device in devices:
            assert refused(g, device), f"{device} was let in"
        time.sleep(0.1)


def test_revocation_fails_closed_on_a_bad_byte_a_missing_file_and_an_unreadable_one(gateway):
    g = gateway()
    late = uid("late")
    g.revoked_path.write_bytes(b"# list\n\xff\xfe not text\n" + f"{late}\n{REVOKED_DEVICE}\n".encode())
    assert wait_until(lambda: refused(g, late), 4), "a list with one non-UTF-8 line was not read"
    assert refused(g, REVOKED_DEVICE)
    assert "not valid UTF-8" in g.log()
    # Missing after it existed: the last list stays.
    g.revoked_path.unlink()
    stays_refused(g, [late, REVOKED_DEVICE], 1.5)
    assert metric(g, "gatehouse_revocation_file_unreadable") == 1
    assert "stays in force" in g.log()
    # Unreadable (a directory where the file was), also across a SIGHUP.
    g.revoked_path.mkdir()
    g.send_signal(signal.SIGHUP)
    stays_refused(g, [late, REVOKED_DEVICE], 1.2)
    # Readable again, without `late`: it is let in once the shorter list is confirmed.
    g.revoked_path.rmdir()
    g.revoked_path.write_text(f"{REVOKED_DEVICE}\n")
    assert wait_until(lambda: not refused(g, late), 5, interval=0.2), "the readable list was not applied"
    assert refused(g, REVOKED_DEVICE)
    assert metric(g, "gatehouse_revocation_file_unreadable") == 0


def test_a_revoked_file_being_rewritten_never_lets_a_revoked_device_in(gateway):
    g = gateway()
    content = g.revoked_path.read_text()
    # A rewrite caught half-way: the file is empty for a moment (read for sure: SIGHUP), then complete again.
    g.revoked_path.write_text("")
    g.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    assert refused(g, REVOKED_DEVICE)
    g.revoked_path.write_text(content)
    stays_refused(g, [REVOKED_DEVICE], 2)
    # An empty list meant as such still takes effect.
    g.revoked_path.write_text("")
    assert wait_until(lambda: not refused(g, REVOKED_DEVICE), 5, interval=0.2)


def test_an_unreadable_revoked_file_keeps_the_gateway_from_starting(gateway, tmp_path):
    directory = tmp_path / "revoked-dir"
    directory.mkdir()
    g = gateway(start=False, auth={"revoked_file": str(directory)})
    result = subprocess.run([GATEHOUSE_BIN, "--config", str(g.config_path)], capture_output=True, text=True, timeout=20)
    assert result.returncode != 0
    assert "auth.revoked_file" in result.stdout + result.stderr, result.stdout + result.stderr


# --------------------------------------------------------------------------------------------------------------
# 8. Weak keys
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["\n", "", "x\n", "fifteen-bytes!!\n"], ids=["newline", "empty", "one", "fifteen"])
def test_a_fleet_key_shorter_than_16_bytes_keeps_the_gateway_from_starting(gateway, key):
    g = gateway(start=False)
    g.key_path.write_text(key)
    result = subprocess.run([GATEHOUSE_BIN, "--config", str(g.config_path)], capture_output=True, text=True, timeout=20)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "auth.key_file" in output and "at least 16 bytes" in output, output


def test_a_16_byte_key_is_enough_and_gatehousectl_refuses_a_shorter_one(gateway, tmp_path):
    g = gateway(start=False)
    g.key_path.write_text("sixteen-bytes!!!\n")
    g.key = b"sixteen-bytes!!!"
    g.start()
    still_serves(g)
    short = tmp_path / "short.key"
    short.write_text("short\n")
    r = run_ctl(["token", "issue", "dev-1", "--key-file", str(short)])
    assert r.returncode != 0 and "at least 16 bytes" in r.stderr, r.stderr


def test_a_key_file_shortened_before_a_reload_is_refused_and_the_running_key_stays(gateway):
    g = gateway()
    g.key_path.write_text("short\n")
    g.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "at least 16 bytes" in g.log(), 5), g.log_tail()
    assert "not applied" in g.log()
    assert g.running
    still_serves(g)  # tokens of the key it started with still work


# --------------------------------------------------------------------------------------------------------------
# 16. Close codes that must arrive
# --------------------------------------------------------------------------------------------------------------


def test_a_device_that_keeps_sending_bad_messages_receives_1008(gateway):
    g = gateway(limits={"max_bad_messages": 5})
    garbage = masked(0x1, b"garbage") * 200
    results = {}

    def abuse(n):
        raw = RawDevice(g)
        codes = []

        def reader():
            while True:  # the socket's timeout is the sender's: a timeout here only means nothing came yet
                try:
                    opcode, data = raw.frame()
                except socket.timeout:
                    continue
                except (EOFError, OSError):
                    return
                if opcode == 0x8:
                    codes.append(int.from_bytes(data[:2], "big"))

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        raw.flood(garbage, seconds=10)  # never stops sending, never answers the close frame
        t.join(5)
        raw.close()
        results[n] = codes

    threads = [threading.Thread(target=abuse, args=(n,)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert results == {n: [1008] for n in range(5)}, results
