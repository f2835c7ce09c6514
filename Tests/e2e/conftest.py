"""Fixtures and helpers for the Gatehouse black-box end-to-end suite.

Everything here talks to the gateway only over its public surfaces (WebSocket, HTTP, MQTT, CLI), as
described in PROTOCOL.md. Processes (mosquitto, gatehouse) are started by these fixtures and stopped by PID.

Scopes:
- `broker` is module-scoped (mosquitto starts in ~20 ms, but the shared gateway `gw` needs it for the whole
  module); `fresh_broker` is a function-scoped one for tests that kill or restart the broker.
- `gw` is a module-scoped gateway with the default config; tests isolate themselves with unique device ids.
- `gateway(**overrides)` is a function-scoped factory for gateways with a special config; each gets its own
  base topic, so retained messages never leak between tests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import math
import os
import re
import secrets
import signal
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

ROOT = Path(__file__).resolve().parents[2]
GATEHOUSE_BIN = os.environ.get("GATEHOUSE_BIN") or str(ROOT / ".build" / "debug" / "gatehouse")
GATEHOUSECTL_BIN = os.environ.get("GATEHOUSECTL_BIN") or str(ROOT / ".build" / "debug" / "gatehousectl")
MOSQUITTO = os.environ.get("MOSQUITTO_BIN", "/usr/sbin/mosquitto")

READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 15.0

# Revoked by default in every gateway started by these fixtures (connect tests use them).
REVOKED_DEVICE = "revoked-device"
REVOKED_JTI = "revoked-jti-0001"


# --------------------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------------------


def now_ms() -> int:
    return int(time.time() * 1000)


def uid(prefix: str = "dev") -> str:
    """A unique, valid device id / name."""
    return f"{prefix}-{secrets.token_hex(4)}"


_handed_out: set[int] = set()


def ephemeral_ports() -> range:
    """net.ipv4.ip_local_port_range (Linux's default where it cannot be read)."""
    try:
        low, high = (int(x) for x in open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


def free_port() -> int:
    """A loopback port nothing listens on, never the same twice in this run (a test's broker and gateway on one port
    would be a failure by chance), and outside the kernel's ephemeral range: a port from bind(0) is in it, and any
    client socket of any process could be given it as its local port before the server binds it, which then fails."""
    ephemeral = ephemeral_ports()
    below, above = max(0, ephemeral.start - 1024), max(0, 65536 - ephemeral.stop)
    while True:
        pick = secrets.randbelow(below + above)
        port = 1024 + pick if pick < below else ephemeral.stop + pick - below
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port


def wait_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.01)
    return False


def metric(g, name, **labels) -> float:
    """The value of metric `name` with exactly `labels` on `g`'s /metrics (0 when it is not there yet)."""
    text = g.http_get("/metrics")[2].decode()
    label = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{name}{{{label}}} (\S+)$" if label else rf"^{name} (\S+)$"
    m = re.search(pattern, text, re.M)
    return float(m.group(1)) if m else 0.0


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Polls `predicate` until it returns something truthy; returns that value, or None after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def closed_by_peer(sockets: list[socket.socket]) -> int:
    """How many of these client sockets the other side has closed (EOF or reset), without blocking."""
    closed = 0
    for s in sockets:
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    return closed


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "<no log>"
    return "\n".join(text.splitlines()[-lines:])


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test runner's environment without any GATEHOUSE_* variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
    env.update(extra or {})
    return env


class StrictJSONError(ValueError):
    pass


def _reject_constant(name: str):
    raise StrictJSONError(f"non-standard JSON constant {name}")


def _strict_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise StrictJSONError(f"number {text} overflows a double")
    return value


def _check_strings(value: Any) -> None:
    if isinstance(value, str):
        if any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
            raise StrictJSONError(f"lone surrogate in string {value!r}")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key)
            _check_strings(item)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item)


def strict_loads(data: bytes | str) -> Any:
    """Parses RFC 8259 JSON strictly: UTF-8, no NaN/Infinity, no double overflow, no lone surrogates."""
    if isinstance(data, (bytes, bytearray)):
        text = bytes(data).decode("utf-8")  # raises on invalid UTF-8
    else:
        text = data
    value = json.loads(text, parse_constant=_reject_constant, parse_float=_strict_float)
    _check_strings(value)
    return value


# --------------------------------------------------------------------------------------------------------------
# JWT
# --------------------------------------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_jwt(key: bytes, claims: dict, alg: str = "HS256", header_extra: dict | None = None) -> str:
    header = {"alg": alg, "typ": "JWT"}
    header.update(header_extra or {})
    signing_input = (
        b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(claims, separators=(",", ":")).encode())
    )
    digests = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
    if alg in digests:
        signature = b64url(hmac.new(key, signing_input.encode(), digests[alg]).digest())
    else:  # "none" and anything else: unsigned
        signature = ""
    return signing_input + "." + signature


def verify_hs256(token: str, key: bytes) -> dict:
    """Verifies an HS256 JWT with `key`; returns its claims (asserts on any problem)."""
    parts = token.strip().split(".")
    assert len(parts) == 3, f"not a JWT: {token!r}"
    header = json.loads(b64url_decode(parts[0]))
    assert header.get("alg") == "HS256", header
    expected = b64url(hmac.new(key, (parts[0] + "." + parts[1]).encode(), hashlib.sha256).digest())
    assert hmac.compare_digest(expected, parts[2]), "bad signature"
    return json.loads(b64url_decode(parts[1]))


# --------------------------------------------------------------------------------------------------------------
# Broker
# --------------------------------------------------------------------------------------------------------------


class Broker:
    """A mosquitto process on a loopback port, stopped by PID."""

    def __init__(self, directory: Path, port: int | None = None):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.proc: subprocess.Popen | None = None
        self.log_path = self.dir / "mosquitto.log"
        self.conf_path = self.dir / "mosquitto.conf"
        # Lines added to the config at the next start (an ACL, say).
        self.extra_config = ""

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def restart_denying(self, *topics: str) -> None:
        """Restarts the broker with an ACL that lets every client read and write everything but `topics`."""
        acl = self.dir / "acl"
        acl.write_text("topic readwrite #\n" + "".join(f"topic deny {topic}\n" for topic in topics))
        self.stop()
        # mosquitto started as root would read the ACL as its own user, who may not enter the test's directory.
        self.extra_config = f"user root\nacl_file {acl}\n"
        self.start()

    def start(self) -> "Broker":
        self.conf_path.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            # A spool replay is a burst: mosquitto's default 1000-message queue per subscriber would drop
            # QoS 1 messages on the way to a slow test observer, which is not what the tests measure.
            "max_queued_messages 0\n"
            "log_dest stderr\nlog_type all\n" + self.extra_config
        )
        log = open(self.log_path, "ab")
        try:
            for attempt in range(50):
                self.proc = subprocess.Popen(
                    [MOSQUITTO, "-c", str(self.conf_path)], stdout=log, stderr=subprocess.STDOUT
                )
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    if self.proc.poll() is not None:
                        break
                    if wait_port(self.port, 0.05):
                        return self
                # Exited (port still in use after a kill?) or never listened: retry shortly.
                self._kill()
                time.sleep(0.1)
            pytest.fail(f"mosquitto did not start on port {self.port}:\n{tail(self.log_path)}")
        finally:
            log.close()
        return self

    def _kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)

    def kill(self) -> None:
        """Simulates a broker crash."""
        self._kill()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class TcpForwarder:
    """127.0.0.1:port -> target port; `cut()` drops every connection and refuses new ones, `restore()` undoes it.

    Lets a test take the broker away from the gateway only, while the test's own MQTT client stays subscribed.
    """

    def __init__(self, target_port):
        self.target = target_port
        self.port = free_port()
        self.conns = []
        self.lock = threading.Lock()
        self.listener = None
        self.restore()

    def restore(self):
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(16)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(), which otherwise keeps the port bound
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


# --------------------------------------------------------------------------------------------------------------
# MQTT client helper
# --------------------------------------------------------------------------------------------------------------


@dataclass
class Msg:
    topic: str
    payload: bytes
    retain: bool
    qos: int
    properties: Any
    received_at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return strict_loads(self.payload)

    def prop(self, name: str) -> Any:
        return getattr(self.properties, name, None) if self.properties is not None else None

    def __repr__(self) -> str:
        shown = self.payload[:300]
        return f"Msg({self.topic!r}, {shown!r}, retain={self.retain}, qos={self.qos})"


def _matcher(spec: str | Callable[[Msg], bool]) -> Callable[[Msg], bool]:
    if callable(spec):
        return spec
    return lambda m: paho.topic_matches_sub(spec, m.topic)


class MqttClient:
    """paho-mqtt v2, MQTT 5. Received messages go to a thread-safe list; `wait_for` consumes matching ones."""

    def __init__(self, broker: Broker, client_id: str | None = None):
        self.broker = broker
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id or f"e2e-{secrets.token_hex(4)}", protocol=paho.MQTTv5
        )
        self._cond = threading.Condition()
        self._pending: list[Msg] = []
        self.all: list[Msg] = []
        self._subacks: dict[int, Any] = {}
        self._published: set[tuple[str, bytes]] = set()
        self._connected = threading.Event()
        self.connack_properties: Properties | None = None
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.connect(broker.host, broker.port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(5):
            self.client.loop_stop()
            raise AssertionError(f"cannot connect to broker on port {broker.port}")

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if not reason_code.is_failure:
            self.connack_properties = properties
            self._connected.set()

    def _on_message(self, client, userdata, message):
        msg = Msg(message.topic, bytes(message.payload), bool(message.retain), message.qos, message.properties)
        with self._cond:
            self._pending.append(msg)
            self.all.append(msg)
            self._cond.notify_all()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        with self._cond:
            self._subacks[mid] = reason_codes
            self._cond.notify_all()

    def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        options = SubscribeOptions(qos=qos, retainAsPublished=True)
        result, mid = self.client.subscribe(topic_filter, options=options)
        assert result == paho.MQTT_ERR_SUCCESS, f"subscribe failed: {result}"
        with self._cond:
            ok = self._cond.wait_for(lambda: mid in self._subacks, timeout=5)
        assert ok, f"no SUBACK for {topic_filter}"
        codes = self._subacks[mid]
        assert all(not c.is_failure for c in codes), f"subscription to {topic_filter} refused: {codes}"

    def publish(
        self,
        topic: str,
        payload: Any = b"",
        qos: int = 1,
        retain: bool = False,
        response_topic: str | None = None,
        correlation_data: bytes | None = None,
        content_type: str | None = None,
        message_expiry: int | None = None,
    ) -> None:
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload).encode()
        elif isinstance(payload, str):
            payload = payload.encode()
        props = None
        if response_topic or correlation_data or content_type or message_expiry is not None:
            props = Properties(PacketTypes.PUBLISH)
            if response_topic:
                props.ResponseTopic = response_topic
            if correlation_data:
                props.CorrelationData = correlation_data
            if content_type:
                props.ContentType = content_type
            if message_expiry is not None:
                props.MessageExpiryInterval = message_expiry
        self._published.add((topic, payload))
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        info.wait_for_publish(5)
        assert info.is_published(), f"publish to {topic} not acknowledged"

    def wait_for(self, spec: str | Callable[[Msg], bool], timeout: float = 5, consume: bool = True) -> Msg:
        """The first received (not yet consumed) message matching `spec` (topic filter or predicate)."""
        match = _matcher(spec)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i, m in enumerate(self._pending):
                    try:
                        hit = match(m)
                    except Exception:
                        hit = False
                    if hit:
                        if consume:
                            del self._pending[i]
                        return m
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [m for m in self.all][-15:]
                    raise AssertionError(f"no MQTT message matching {spec!r} within {timeout}s; last seen: {seen}")
                self._cond.wait(remaining)

    def wait_json(self, topic: str, pred: Callable[[Any], bool] | None = None, timeout: float = 5) -> tuple[Msg, Any]:
        """The first message on `topic` (filter) whose JSON payload satisfies `pred`."""

        def match(m: Msg) -> bool:
            if not paho.topic_matches_sub(topic, m.topic) or not m.payload:
                return False
            return pred is None or bool(pred(m.json()))

        m = self.wait_for(match, timeout=timeout)
        return m, m.json()

    def collect(self, spec: str | Callable[[Msg], bool], duration: float) -> list[Msg]:
        """Every matching message that arrives (or has arrived) within `duration` seconds; consumes them."""
        time.sleep(duration)
        match = _matcher(spec)
        hits: list[Msg] = []
        rest: list[Msg] = []
        with self._cond:
            for m in self._pending:  # one pass: `m not in hits` made it quadratic (minutes for 24,000 messages)
                (hits if match(m) else rest).append(m)
            self._pending = rest
        return hits

    def assert_nothing(self, spec: str | Callable[[Msg], bool], within: float = 1.0) -> None:
        hits = self.collect(spec, within)
        assert not hits, f"unexpected MQTT messages: {hits}"

    def seen(self, spec: str | Callable[[Msg], bool]) -> list[Msg]:
        match = _matcher(spec)
        with self._cond:
            return [m for m in self.all if match(m)]

    def check_all_strict_json(self) -> None:
        bad = []
        for m in list(self.all):
            if not m.payload or "/media/" in m.topic or (m.topic, m.payload) in self._published:
                continue  # raw media, cleared retained topics, and what this client published itself
            try:
                strict_loads(m.payload)
            except (ValueError, UnicodeDecodeError) as e:
                bad.append((m.topic, m.payload[:200], str(e)))
        assert not bad, f"gateway published invalid JSON: {bad}"

    def close(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()


def fetch_retained(broker: Broker, topic: str, timeout: float = 2.0) -> Msg | None:
    """The retained message currently stored for `topic` (exact), or None when there is none."""
    client = MqttClient(broker)
    try:
        client.subscribe(topic)
        try:
            return client.wait_for(lambda m: m.topic == topic and m.retain, timeout=timeout)
        except AssertionError:
            return None
    finally:
        client.close()


def fetch_retained_json(broker: Broker, topic: str, pred: Callable[[Any], bool] | None = None,
                        timeout: float = 5.0) -> Any:
    """Polls the retained message of `topic` until its JSON satisfies `pred`; returns the last value seen."""
    last: list[Any] = [None]

    def probe():
        m = fetch_retained(broker, topic, timeout=0.5)
        if m is None or not m.payload:
            return None
        last[0] = m.json()
        return pred is None or pred(last[0])

    wait_until(probe, timeout, interval=0.1)
    return last[0]


# --------------------------------------------------------------------------------------------------------------
# Device (WebSocket) helper
# --------------------------------------------------------------------------------------------------------------

_open_devices: list["Device"] = []


class Device:
    """One WebSocket device connection (websockets' sync client)."""

    def __init__(self, conn, welcome: dict | None):
        self.conn = conn
        self.welcome = welcome
        _open_devices.append(self)

    @property
    def response_headers(self):
        return self.conn.response.headers

    @property
    def subprotocol(self):
        return self.conn.subprotocol

    def send_json(self, obj: Any) -> None:
        self.conn.send(json.dumps(obj))

    def send_text(self, text: str | bytes) -> None:
        if isinstance(text, str):
            self.conn.send(text)
        else:
            self.conn.send(text, text=True)

    def send_binary(self, data: bytes) -> None:
        self.conn.send(data)

    def send_media(self, header: dict, payload: bytes) -> None:
        h = json.dumps(header).encode()
        self.conn.send(len(h).to_bytes(2, "big") + h + payload)

    def recv_json(self, timeout: float = 5) -> dict:
        try:
            frame = self.conn.recv(timeout=timeout)
        except TimeoutError:
            raise AssertionError(f"no frame from the gateway within {timeout}s") from None
        assert isinstance(frame, str), f"expected a text frame, got binary {frame[:100]!r}"
        return strict_loads(frame)

    def recv_raw(self, timeout: float = 5) -> str | bytes:
        return self.conn.recv(timeout=timeout)

    def expect(self, type_: str, timeout: float = 5, **fields) -> dict:
        frame = self.recv_json(timeout)
        assert frame.get("type") == type_, f"expected a {type_} frame, got {frame}"
        for key, value in fields.items():
            assert frame.get(key) == value, f"{type_}.{key}: expected {value!r}, got {frame}"
        return frame

    def expect_ack(self, seq: int, timeout: float = 5) -> dict:
        frame = self.recv_json(timeout)
        assert frame == {"type": "ack", "seq": seq}, f"expected ack for seq {seq}, got {frame}"
        return frame

    def expect_nack(self, seq: int, code: str, timeout: float = 5) -> dict:
        frame = self.recv_json(timeout)
        assert frame.get("type") == "nack", f"expected nack {code} for seq {seq}, got {frame}"
        assert frame.get("seq") == seq and type(frame.get("seq")) is int, f"nack seq: expected {seq}, got {frame}"
        assert frame.get("error", {}).get("code") == code, f"nack code: expected {code}, got {frame}"
        assert isinstance(frame["error"].get("message"), str), frame
        return frame

    def expect_error(self, code: str = "bad_message", timeout: float = 5) -> dict:
        frame = self.recv_json(timeout)
        assert frame.get("type") == "error", f"expected error frame {code}, got {frame}"
        assert frame.get("error", {}).get("code") == code, f"error code: expected {code}, got {frame}"
        assert isinstance(frame["error"].get("message"), str), frame
        return frame

    def expect_no_frame(self, within: float = 0.5) -> None:
        try:
            frame = self.conn.recv(timeout=within)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected frame {frame!r}")

    def expect_close(self, code: int | None = None, timeout: float = 5) -> tuple[int | None, str]:
        """Reads (and ignores) frames until the gateway closes; asserts the close code."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"connection not closed within {timeout}s (expected {code})")
            try:
                self.conn.recv(timeout=remaining)
            except TimeoutError:
                continue
            except ConnectionClosed as e:
                rcvd = e.rcvd
                got = rcvd.code if rcvd is not None else None
                reason = rcvd.reason if rcvd is not None else ""
                if code is not None:
                    assert got == code, f"close code: expected {code}, got {got} ({reason!r}); {e}"
                return got, reason

    def is_open(self) -> bool:
        try:
            self.conn.ping().wait(2)
            return True
        except Exception:
            return False

    def close(self, code: int = 1000) -> None:
        try:
            self.conn.close(code)
        except Exception:
            pass

    def drop(self, reset: bool = False) -> None:
        """Closes the TCP connection without a WebSocket close frame: FIN, or RST with `reset`."""
        sock = self.conn.socket
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()


# --------------------------------------------------------------------------------------------------------------
# Gateway
# --------------------------------------------------------------------------------------------------------------


def deep_merge(base: dict, overrides: dict) -> dict:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        elif value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(str(value))  # a double-quoted YAML scalar


def to_yaml(config: dict, indent: str = "") -> str:
    lines = []
    for key, value in config.items():
        if isinstance(value, dict):
            lines.append(f"{indent}{key}:")
            lines.append(to_yaml(value, indent + "  ").rstrip("\n"))
        else:
            lines.append(f"{indent}{key}: {_yaml_scalar(value)}")
    return "\n".join(lines) + "\n"


class Gateway:
    def __init__(
        self,
        broker: Broker,
        directory: Path,
        overrides: dict | None = None,
        env: dict | None = None,
        gw_id: str = "gw-test",
        base: str | None = None,
        revoked: str | None = None,
        port: int | None = None,
        key_text: str | None = None,
    ):
        self.broker = broker
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.gw_id = gw_id
        self.base = base or f"gh{secrets.token_hex(4)}"
        self.key_path = self.dir / "fleet.key"
        self.revoked_path = self.dir / "revoked.txt"
        self.spool_dir = self.dir / "spool"
        self.config_path = self.dir / "gatehouse.yaml"
        self.log_path = self.dir / "gatehouse.log"
        self.env = env or {}
        self.proc: subprocess.Popen | None = None
        self.returncode: int | None = None

        key_text = key_text or base64.b64encode(secrets.token_bytes(32)).decode() + "\n"
        self.key_path.write_text(key_text)
        self.key: bytes = key_text.encode()[:-1]  # one trailing newline removed
        self.revoked_path.write_text(
            revoked if revoked is not None else f"# revoked devices and token ids\n{REVOKED_DEVICE}\n{REVOKED_JTI}\n"
        )
        self.spool_dir.mkdir(exist_ok=True)
        self.config = deep_merge(
            {
                "gateway": {
                    "id": gw_id,
                    "listen": f"127.0.0.1:{self.port}",
                    "heartbeat_s": 30,
                    "health_interval_s": 1,
                    "shutdown_grace_s": 5,
                },
                "mqtt": {"url": broker.url, "base_topic": self.base, "telemetry_qos": 1},
                "auth": {"key_file": str(self.key_path), "revoked_file": str(self.revoked_path)},
                "spool": {"dir": str(self.spool_dir)},
                "limits": {"max_message_bytes": 65536, "max_media_bytes": 4194304, "max_bad_messages": 100},
                "commands": {"default_timeout_ms": 10000, "max_pending_per_device": 32},
                "log": {"level": "info"},
            },
            overrides or {},
        )
        self.config_path.write_text(to_yaml(self.config))

    # -- URLs
    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/connect"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- process
    def start(self, wait_ready: bool = True) -> "Gateway":
        if not Path(GATEHOUSE_BIN).exists():
            pytest.fail(f"gateway binary not found: {GATEHOUSE_BIN} (build it or set GATEHOUSE_BIN)")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [GATEHOUSE_BIN, "--config", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=clean_env(self.env),
            cwd=self.dir,
        )
        log.close()
        if wait_ready:
            self.wait_ready(READY_TIMEOUT_S)
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"gatehouse exited with {self.proc.returncode} before ready:\n{self.log_tail()}")
            try:
                status, _, _ = self.http_get("/readyz", timeout=1)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()  # a fixture that fails during setup gets no teardown: never leave the process behind
        pytest.fail(f"gatehouse not ready (GET /readyz != 200) within {timeout}s:\n{self.log_tail()}")

    def send_signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.returncode = self.proc.returncode
        return self.returncode

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)

    # -- HTTP
    def http_get(self, path: str, timeout: float = 5) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
        finally:
            conn.close()

    def raw_upgrade(
        self, path: str = "/v1/connect", headers: dict | None = None, token: str | None = None
    ) -> tuple[int, dict, bytes]:
        """A WebSocket upgrade request by hand; returns (status, headers, body) without upgrading further."""
        h = {
            "Host": f"127.0.0.1:{self.port}",
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": base64.b64encode(secrets.token_bytes(16)).decode(),
            "Sec-WebSocket-Version": "13",
        }
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        h.update(headers or {})
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
            for k, v in h.items():
                conn.putheader(k, v)
            conn.endheaders()
            resp = conn.getresponse()
            status = resp.status
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
            body = b"" if status == 101 else resp.read()
            return status, hdrs, body
        finally:
            conn.close()

    # -- credentials
    def token(
        self,
        device: str,
        kind: str | None = None,
        exp: int | None = None,
        nbf: int | None = None,
        jti: str | None = None,
        alg: str = "HS256",
        key: bytes | None = None,
        **extra,
    ) -> str:
        claims: dict[str, Any] = {"sub": device, "iat": int(time.time())}
        if kind is not None:
            claims["kind"] = kind
        if exp is not None:
            claims["exp"] = exp
        if nbf is not None:
            claims["nbf"] = nbf
        if jti is not None:
            claims["jti"] = jti
        claims.update(extra)
        return make_jwt(self.key if key is None else key, claims, alg)

    # -- devices
    def connect(
        self,
        token: str,
        subprotocols: list[str] | None = None,
        header: bool = True,
        compression: str | None = None,
        query_token: str | None = None,
        expect_welcome: bool = True,
    ) -> Device:
        """Opens a device connection; with `header` False the token goes in `?token=`. Checks `welcome`."""
        url = self.ws_url
        headers = {}
        if header:
            headers["Authorization"] = f"Bearer {token}"
            if query_token is not None:
                url += "?token=" + query_token
        else:
            url += "?token=" + (query_token if query_token is not None else token)
        conn = ws_connect(
            url,
            additional_headers=headers,
            subprotocols=subprotocols,
            compression=compression,
            open_timeout=5,
            ping_interval=None,
            close_timeout=2,
            max_size=None,
            proxy=None,
            legacy=True,  # a plain connection object, not a context manager (websockets >= 16)
        )
        device = Device(conn, None)
        if expect_welcome:
            welcome = device.recv_json(5)
            assert welcome.get("type") == "welcome", f"first frame is not welcome: {welcome}"
            device.welcome = welcome
        return device

    def device(self, device_id: str | None = None, kind: str | None = "sensor", **kw) -> tuple[str, Device]:
        """Connects a fresh device with a valid token; returns (id, Device)."""
        device_id = device_id or uid("dev")
        return device_id, self.connect(self.token(device_id, kind=kind), **kw)

    # -- topics
    def topic(self, device: str, suffix: str) -> str:
        return f"{self.base}/{device}/{suffix}"

    def bridge(self, suffix: str) -> str:
        return f"{self.base}/bridge/{self.gw_id}/{suffix}"


# Figures the fault-injection tests report (sent / acked / arrived / duplicates / lost), shown after the run.
FIGURES: list[str] = []


def report_figures(line: str) -> None:
    print(line)
    FIGURES.append(line)


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("fault-injection figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


# --------------------------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = Broker(tmp_path_factory.mktemp("broker")).start()
    yield b
    b.stop()


@pytest.fixture
def fresh_broker(tmp_path):
    """A broker of the test's own (for tests that kill or restart it)."""
    b = Broker(tmp_path / "fresh-broker").start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def gw(broker, tmp_path_factory):
    """The module's shared gateway with the default config."""
    g = Gateway(broker, tmp_path_factory.mktemp("gw"))
    g.start()
    yield g
    for d in list(_open_devices):
        d.close()
    g.stop()


@pytest.fixture
def gateway(broker, tmp_path):
    """Factory: gateway(**overrides) starts a gateway with config sections merged from `overrides`.

    Special keyword arguments: broker=, env=, gw_id=, base=, revoked=, port=, wait_ready= (default True),
    start= (default True), fleet_of= (another Gateway: same broker, base topic and fleet key, i.e. the same fleet).
    """
    started: list[Gateway] = []

    def make(**overrides) -> Gateway:
        fleet_of = overrides.pop("fleet_of", None)
        b = overrides.pop("broker", fleet_of.broker if fleet_of else broker)
        env = overrides.pop("env", None)
        # Unique per gateway: two gateways with one id on one broker would share an MQTT client id.
        gw_id = overrides.pop("gw_id", f"gw-{secrets.token_hex(3)}")
        base = overrides.pop("base", fleet_of.base if fleet_of else None)
        revoked = overrides.pop("revoked", None)
        port = overrides.pop("port", None)
        wait_ready = overrides.pop("wait_ready", True)
        start = overrides.pop("start", True)
        g = Gateway(b, tmp_path / f"gw{len(started)}", overrides, env=env, gw_id=gw_id, base=base,
                    revoked=revoked, port=port,
                    key_text=fleet_of.key_path.read_text() if fleet_of else None)
        started.append(g)
        if start:
            g.start(wait_ready=wait_ready)
        return g

    yield make
    for d in list(_open_devices):
        d.close()
    for g in started:
        g.stop()


@pytest.fixture
def mqtt(broker):
    client = MqttClient(broker)
    yield client
    client.close()
    client.check_all_strict_json()


@pytest.fixture
def mqtt_factory():
    """MqttClient(broker) for brokers other than the module's one; closed at teardown."""
    clients: list[MqttClient] = []

    def make(b: Broker) -> MqttClient:
        c = MqttClient(b)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()
    for c in clients:
        c.check_all_strict_json()


@pytest.fixture(autouse=True)
def _close_devices():
    """Closes every device connection a test opened (the shared gateway outlives tests)."""
    start = len(_open_devices)
    yield
    for d in _open_devices[start:]:
        d.close()
    del _open_devices[start:]


# --------------------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------------------


def run_ctl(args: list[str], timeout: float = 30, env: dict | None = None) -> subprocess.CompletedProcess:
    if not Path(GATEHOUSECTL_BIN).exists():
        pytest.fail(f"gatehousectl binary not found: {GATEHOUSECTL_BIN} (build it or set GATEHOUSECTL_BIN)")
    return subprocess.run(
        [GATEHOUSECTL_BIN, *args], capture_output=True, text=True, timeout=timeout, env=clean_env(env)
    )


def assert_ts_now(ts: Any, slack_ms: int = 10_000) -> None:
    assert type(ts) is int, f"ts must be an integer (Unix ms), got {ts!r}"
    assert abs(ts - now_ms()) <= slack_ms, f"ts {ts} is not near now ({now_ms()})"


def assert_unauthorized(status: int, body: bytes) -> None:
    assert status == 401, f"expected HTTP 401, got {status} {body[:200]!r}"
    doc = strict_loads(body)
    assert isinstance(doc, dict) and set(doc) == {"error"}, doc
    assert doc["error"].get("code") == "unauthorized", doc
    assert isinstance(doc["error"].get("message"), str), doc

