"""PROTOCOL.md section 3.4 (close codes) with the availability reasons of section 4."""

import base64
import json
import secrets
import signal
import socket
import time

from conftest import fetch_retained, fetch_retained_json, uid


def offline_reason(mqtt, gw, dev, timeout=5):
    m, body = mqtt.wait_json(gw.topic(dev, "availability"), lambda b: b["state"] == "offline", timeout=timeout)
    assert m.retain
    return body["reason"]


def follow(mqtt, gw, dev):
    mqtt.subscribe(gw.topic(dev, "availability"))


def test_takeover_closes_older_connection_4000_and_stays_online(gw, mqtt):
    dev = uid("take")
    follow(mqtt, gw, dev)
    first = gw.connect(gw.token(dev))
    mqtt.wait_json(gw.topic(dev, "availability"), lambda b: b["state"] == "online")
    second = gw.connect(gw.token(dev))
    assert second.welcome["session"] > first.welcome["session"]
    first.expect_close(4000)
    time.sleep(0.5)
    seen = [m.json() for m in mqtt.collect(gw.topic(dev, "availability"), 0.3) if m.payload]
    assert not [b for b in seen if b["state"] == "offline"], f"takeover published offline: {seen}"
    stored = fetch_retained(gw.broker, gw.topic(dev, "availability")).json()
    assert stored["state"] == "online" and stored["session"] == second.welcome["session"], stored
    # The new connection works.
    second.send_json({"type": "telemetry", "seq": 1, "data": {}})
    second.expect_ack(1)


def test_token_expiring_while_connected_closes_4001(gw, mqtt):
    dev = uid("tok")
    follow(mqtt, gw, dev)
    d = gw.connect(gw.token(dev, exp=int(time.time()) + 2))
    t0 = time.monotonic()
    d.expect_close(4001, timeout=5)
    assert time.monotonic() - t0 <= 4.0
    assert offline_reason(mqtt, gw, dev) == "token_expired"


def test_revoked_device_closed_1008(gw, mqtt):
    dev = uid("rev")
    follow(mqtt, gw, dev)
    d = gw.connect(gw.token(dev))
    mqtt.wait_json(gw.topic(dev, "availability"), lambda b: b["state"] == "online")
    with open(gw.revoked_path, "a") as f:
        f.write(f"{dev}\n")
    d.expect_close(1008, timeout=4)
    assert offline_reason(mqtt, gw, dev) == "revoked"
    # And it cannot come back.
    status, _, _ = gw.raw_upgrade(token=gw.token(dev))
    assert status == 401


def test_revoked_jti_closed_1008(gw, mqtt):
    dev = uid("revj")
    jti = uid("jti")
    follow(mqtt, gw, dev)
    d = gw.connect(gw.token(dev, jti=jti))
    with open(gw.revoked_path, "a") as f:
        f.write(f"# token of {dev}\n{jti}\n")
    d.expect_close(1008, timeout=4)
    assert offline_reason(mqtt, gw, dev) == "revoked"


def test_revocation_reread_on_sighup(gateway, mqtt):
    g = gateway()
    dev = uid("hup")
    follow(mqtt, g, dev)
    d = g.connect(g.token(dev))
    mqtt.wait_json(g.topic(dev, "availability"), lambda b: b["state"] == "online")
    with open(g.revoked_path, "a") as f:
        f.write(f"{dev}\n")
    g.send_signal(signal.SIGHUP)
    d.expect_close(1008, timeout=4)
    assert offline_reason(mqtt, g, dev) == "revoked"
    assert g.running


def test_invalid_utf8_text_closes_1007(gw, mqtt):
    dev = uid("utf")
    follow(mqtt, gw, dev)
    d = gw.connect(gw.token(dev))
    d.send_text(b'{"type":"telemetry","data":{"v":"\xff\xfe"}}')
    d.expect_close(1007)
    assert offline_reason(mqtt, gw, dev) == "invalid_utf8"


def test_text_at_limit_ok_and_over_limit_closes_1009(gw, mqtt):
    dev = uid("big")
    follow(mqtt, gw, dev)
    d = gw.connect(gw.token(dev))
    limit = d.welcome["max_message_bytes"]
    head = '{"type":"telemetry","seq":1,"data":{"pad":"'
    tail = '"}}'
    exact = head + "x" * (limit - len(head) - len(tail)) + tail
    assert len(exact.encode()) == limit
    d.send_text(exact)
    d.expect_ack(1)
    over = head + "x" * (limit - len(head) - len(tail) + 1) + tail
    d.send_text(over)
    d.expect_close(1009)
    assert offline_reason(mqtt, gw, dev) == "message_too_big"


def test_binary_over_max_media_bytes_closes_1009(gateway, mqtt):
    g = gateway(limits={"max_media_bytes": 100000})
    dev = uid("bigm")
    follow(mqtt, g, dev)
    mqtt.subscribe(g.topic(dev, "media/#"))
    d = g.connect(g.token(dev))
    # Larger than max_message_bytes but within max_media_bytes: fine.
    d.send_media({"stream": "s"}, b"\x00" * 90000)
    mqtt.wait_for(g.topic(dev, "media/s"))
    d.send_media({"stream": "s"}, b"\x00" * 100001)
    d.expect_close(1009)
    assert offline_reason(mqtt, g, dev) == "message_too_big"


def test_too_many_bad_messages_closes_1008(gateway, mqtt):
    g = gateway(limits={"max_bad_messages": 5})
    dev = uid("abuse")
    follow(mqtt, g, dev)
    d = g.connect(g.token(dev))
    for _ in range(5):
        d.send_text("garbage")
        d.expect_error("bad_message")
    d.send_json({"type": "telemetry", "seq": 1, "data": {}})
    d.expect_ack(1)  # 5 bad messages are allowed
    d.send_text("garbage")  # the 6th is one too many
    d.expect_close(1008)
    assert offline_reason(mqtt, g, dev) == "bad_messages"


class RawWebSocket:
    """A client that completes the handshake and then never answers pings."""

    def __init__(self, port, token):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        key = base64.b64encode(secrets.token_bytes(16)).decode()
        self.sock.sendall(
            (f"GET /v1/connect HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n").encode()
        )
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            assert chunk, "connection closed during handshake"
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def frame(self):
        b0, b1 = self._read(2)
        length = b1 & 0x7F
        if length == 126:
            length = int.from_bytes(self._read(2), "big")
        elif length == 127:
            length = int.from_bytes(self._read(8), "big")
        if b1 & 0x80:
            self._read(4)
        return b0 & 0x0F, self._read(length)


def test_heartbeat_pings_and_drops_silent_device(gateway, mqtt):
    g = gateway(gateway={"heartbeat_s": 1})
    dev = uid("hb")
    follow(mqtt, g, dev)
    raw = RawWebSocket(g.port, g.token(dev))
    t0 = time.monotonic()
    opcodes = []
    welcome = None
    try:
        while True:
            opcode, data = raw.frame()
            opcodes.append(opcode)
            if opcode == 1 and welcome is None:
                welcome = json.loads(data)
            if opcode == 8:
                break
    except (EOFError, OSError):
        pass
    elapsed = time.monotonic() - t0
    assert welcome and welcome["type"] == "welcome" and welcome["heartbeat_s"] == 1
    assert 0x9 in opcodes, f"no ping from the gateway (opcodes {opcodes})"
    assert 1.5 <= elapsed <= 5, f"silent device dropped after {elapsed:.1f}s (2 x heartbeat_s = 2s)"
    assert offline_reason(mqtt, g, dev) == "heartbeat_timeout"
    raw.sock.close()


def test_answering_device_survives_heartbeats(gateway):
    g = gateway(gateway={"heartbeat_s": 1})
    dev, d = g.device()
    time.sleep(3.5)  # the websockets client answers pings
    d.send_json({"type": "telemetry", "seq": 1, "data": {}})
    d.expect_ack(1)


def test_sigterm_closes_devices_1001_and_publishes_offline(gateway, mqtt):
    g = gateway()
    devs = []
    for _ in range(2):
        dev = uid("term")
        follow(mqtt, g, dev)
        devs.append((dev, g.connect(g.token(dev))))
    mqtt.subscribe(g.bridge("state"))
    mqtt.wait_json(g.bridge("state"), lambda b: b["state"] == "online")
    t0 = time.monotonic()
    g.send_signal(signal.SIGTERM)
    for dev, d in devs:
        d.expect_close(1001, timeout=10)
    for dev, _ in devs:
        assert offline_reason(mqtt, g, dev, timeout=10) == "gateway_shutdown"
    m, state = mqtt.wait_json(g.bridge("state"), lambda b: b["state"] == "offline", timeout=10)
    assert m.retain
    rc = g.proc.wait(timeout=max(0.1, 10 - (time.monotonic() - t0)))  # shutdown_grace_s 5 + 5
    assert rc == 0, f"exit status {rc}:\n{g.log_tail()}"
    assert fetch_retained(g.broker, g.bridge("state")).json()["state"] == "offline"
    # Device offline is published before the gateway's own offline.
    order = [x.topic for x in mqtt.seen(lambda x: x.payload and (x.topic.endswith("/availability") or
                                                                  x.topic == g.bridge("state")))
             if x.json()["state"] == "offline"]
    assert order[-1] == g.bridge("state"), order


def test_sigterm_closes_a_connection_still_sending_its_request(gateway):
    """A connection that has not finished its upgrade request when the gateway stops is closed at once, without an
    answer: the shutdown does not wait for its handshake timeout, and it cannot become a device after the devices
    were closed."""
    g = gateway(limits={"handshake_timeout_s": 60})
    with socket.create_connection(("127.0.0.1", g.port), timeout=10) as s:
        s.sendall(f"GET /v1/connect HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {g.token(uid('slow'))}\r\n".encode())
        time.sleep(0.3)  # read by the gateway
        t0 = time.monotonic()
        g.send_signal(signal.SIGTERM)
        assert s.recv(4096) == b""
        closed_after = time.monotonic() - t0
    rc = g.proc.wait(timeout=20)
    assert rc == 0, f"exit status {rc}:\n{g.log_tail()}"
    assert closed_after < 5, f"closed {closed_after:.1f} s after SIGTERM"


def test_restart_after_crash_publishes_gateway_restart(gateway, mqtt):
    g = gateway()
    dev = uid("crash")
    follow(mqtt, g, dev)
    d = g.connect(g.token(dev))
    mqtt.wait_json(g.topic(dev, "availability"), lambda b: b["state"] == "online")
    g.stop(sig=signal.SIGKILL)
    d.close()
    # The broker publishes the gateway's Will: bridge state offline.
    state = fetch_retained_json(g.broker, g.bridge("state"), lambda b: b["state"] == "offline", timeout=5)
    assert state and state["state"] == "offline", state
    g.start()
    assert offline_reason(mqtt, g, dev, timeout=10) == "gateway_restart"


def test_takeover_across_gateways_closes_older_4000(gateway, mqtt):
    a = gateway()
    b = gateway(fleet_of=a)
    dev = uid("move")
    follow(mqtt, a, dev)
    first = a.connect(a.token(dev))
    mqtt.wait_json(a.topic(dev, "availability"), lambda x: x["state"] == "online" and x["gateway"] == a.gw_id)
    second = b.connect(b.token(dev))
    assert second.welcome["gateway"] == b.gw_id
    assert second.welcome["session"] > first.welcome["session"], "session must never go backwards across gateways"
    first.expect_close(4000, timeout=5)
    time.sleep(0.5)
    stored = fetch_retained(a.broker, a.topic(dev, "availability")).json()
    assert stored["state"] == "online" and stored["gateway"] == b.gw_id, stored
    assert stored["session"] == second.welcome["session"]
