"""Hostile input at the frame level (issue 4): many connections send thousands of random and malformed
WebSocket frames while well-behaved devices stream telemetry. The gateway stays up, its memory stays
bounded, and the good devices lose nothing."""

import base64
import json
import random
import secrets
import socket
import struct
import threading
import time
from pathlib import Path

from conftest import report_figures, uid
from streams import Observer, StreamDevice, account

FUZZERS = 16
SECONDS = 12


def frame(opcode, payload, fin=True, mask=True, rsv=0):
    """One WebSocket frame built by hand, so it can break every rule."""
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | (opcode & 0x0F)])
    length = len(payload)
    mask_bit = 0x80 if mask else 0
    if length < 126:
        head += bytes([mask_bit | length])
    elif length < 65536:
        head += bytes([mask_bit | 126]) + struct.pack(">H", length)
    else:
        head += bytes([mask_bit | 127]) + struct.pack(">Q", length)
    if not mask:
        return head + payload
    key = secrets.token_bytes(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def hostile_message(rng):
    """A text or binary payload that is wrong in one of many ways."""
    choice = rng.randrange(12)
    if choice == 0:
        return 1, b"{" * rng.randrange(1, 5000)  # deep nesting
    if choice == 1:
        return 1, b'{"type":"telemetry","seq":1,"data":{"x":1e999}}'  # overflowing number
    if choice == 2:
        return 1, b'{"type":"telemetry","seq":' + b"9" * rng.randrange(20, 400) + b',"data":{}}'  # huge seq
    if choice == 3:
        return 1, bytes([0xC3, 0x28, 0xFF, 0xFE])  # invalid UTF-8
    if choice == 4:
        return 1, bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))  # random bytes as text
    if choice == 5:
        return 2, bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))  # random media frame
    if choice == 6:
        return 2, b"\xff\xff" + b"{}"  # media header length past the end
    if choice == 7:
        return 1, json.dumps({"type": rng.choice(["telemetry", "state", "event", "hello", "response", "x"]),
                              "seq": rng.choice([-1, 1.5, "7", None, 2 ** 64]), "data": rng.choice([[], "s", 3, None])}).encode()
    if choice == 8:
        return 1, b'{"type":"event","seq":3,"name":"a/b/#","data":{}}'
    if choice == 9:
        return 1, b'{"type":"state","seq":4,"data":' + b'{"a":' * 200 + b"1" + b"}" * 200 + b"}"
    if choice == 10:
        return 1, b'"\\ud800"'  # lone surrogate
    return 1, b'{"type":"telemetry","data":{}}' + b" " * rng.randrange(0, 100) + b"trailing"


class Fuzzer(threading.Thread):
    def __init__(self, g, seed, deadline):
        super().__init__(daemon=True)
        self.g, self.rng, self.deadline = g, random.Random(seed), deadline
        self.frames = self.connections = 0

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.g.port), timeout=5)
        key = base64.b64encode(secrets.token_bytes(16)).decode()
        token = self.g.token(uid("fz"))
        s.sendall((f"GET /v1/connect HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n").encode())
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = s.recv(4096)
            if not chunk:
                raise OSError("closed during handshake")
            response += chunk
        if b" 101 " not in response.split(b"\r\n", 1)[0]:
            raise OSError(response[:100])
        s.settimeout(0)
        self.connections += 1
        return s

    def run(self):
        while time.monotonic() < self.deadline:
            try:
                s = self.connect()
            except OSError:
                time.sleep(0.05)
                continue
            try:
                for _ in range(self.rng.randrange(1, 200)):
                    s.sendall(self.next_frame())
                    self.frames += 1
                    try:
                        while s.recv(65536):
                            pass
                    except BlockingIOError:
                        pass
            except OSError:
                pass  # the gateway closed us: expected for protocol violations
            finally:
                s.close()

    def next_frame(self):
        rng = self.rng
        kind = rng.randrange(8)
        if kind == 0:
            return frame(rng.choice([3, 4, 5, 6, 7, 11, 12, 13, 14, 15]), b"x")  # reserved opcodes
        if kind == 1:
            return frame(1, b'{"type":"telemetry","data":{}}', mask=False)  # unmasked client frame
        if kind == 2:
            return frame(0, b"continuation with nothing before it")
        if kind == 3:
            return frame(1, b'{"type":', fin=False) + frame(1, b"new message inside a fragmented one")
        if kind == 4:
            return frame(1, b"{}", rsv=rng.choice([2, 4, 6]))  # reserved bits
        if kind == 5:
            return frame(9, b"p" * rng.choice([10, 200]))  # ping, sometimes too long
        opcode, payload = hostile_message(rng)
        return frame(opcode, payload)


def rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_hostile_frames_from_many_connections_hurt_no_good_device(gateway, broker):
    g = gateway(limits={"max_connects_per_s": 0})
    observer = Observer(broker, g.base)
    good = [StreamDevice(g, uid("good"), rate=30) for _ in range(5)]
    for d in good:
        d.start()
    time.sleep(1)
    rss_before = rss_mib(g.proc.pid)
    deadline = time.monotonic() + SECONDS
    fuzzers = [Fuzzer(g, seed, deadline) for seed in range(FUZZERS)]
    for f in fuzzers:
        f.start()
    for f in fuzzers:
        f.join(SECONDS + 30)
    rss_after = rss_mib(g.proc.pid)
    assert g.running, f"the gateway died:\n{g.log_tail()}"
    assert g.http_get("/healthz")[0] == 200
    for d in good:
        d.stop(20)
    for d in good:
        d.join_drained()
    figures, problems = account(good, observer)
    frames = sum(f.frames for f in fuzzers)
    connections = sum(f.connections for f in fuzzers)
    report_figures(f"[hostile frames] {frames} frames on {connections} connections; good devices: {figures}; "
                   f"gateway RSS {rss_before:.1f} -> {rss_after:.1f} MiB")
    assert frames >= 2000, f"only {frames} hostile frames were sent"
    assert not problems, problems
    assert figures.nacked == 0 and all(d.connects == 1 for d in good), "good devices were disturbed"
    assert rss_after < rss_before + 64, f"memory grew from {rss_before:.1f} to {rss_after:.1f} MiB"
    observer.close()
