"""Streams of QoS 1 telemetry from many simulated devices, and the per-device accounting that proves nothing
acked was lost: used by the fault-injection tests and by `make soak`.

A `StreamDevice` behaves as PROTOCOL.md asks of a device: it numbers its messages with `seq`, keeps the
unacknowledged ones, and after any reconnect resends them in order. An `Observer` records every telemetry
message that reaches the broker. `account()` then checks, per device, that every acked seq arrived at least
once and that first arrivals are in seq order, and counts duplicates.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect


class StreamDevice(threading.Thread):
    """One device sending telemetry at `rate` messages/s with at most `window` unacked, until `stop()`."""

    def __init__(self, gateway, device_id: str, rate: float = 50, window: int = 200):
        super().__init__(daemon=True)
        self.gateway = gateway
        self.device_id = device_id
        self.rate = rate
        self.window = window
        self.unacked: OrderedDict[int, str] = OrderedDict()
        self.acked: set[int] = set()
        self.nacked: dict[int, str] = {}
        self.acked_while: dict[str, int] = {}  # label -> acks received while that label was set (e.g. "outage")
        self.phase = ""
        self.sent = 0
        self.connects = 0
        self.close_codes: list[int | None] = []
        self._stopping = threading.Event()
        self._done = threading.Event()
        self._drain_deadline = 0.0
        self.url_override: str | None = None
        self.conn = None

    def stop(self, drain_s: float = 30) -> None:
        """Stops sending new messages; keeps reconnecting and waiting for acks up to `drain_s`."""
        self._drain_deadline = time.monotonic() + drain_s
        self._stopping.set()

    def join_drained(self) -> None:
        self._done.wait(max(1.0, self._drain_deadline - time.monotonic() + 5))

    def drop(self) -> None:
        """Cuts the connection without a close frame (like a device losing its network); it reconnects."""
        conn = self.conn
        if conn is not None:
            try:
                conn.socket.shutdown(2)
            except OSError:
                pass

    def _connect(self):
        token = self.gateway.token(self.device_id, kind="sensor")
        conn = ws_connect(
            self.url_override or self.gateway.ws_url,
            additional_headers={"Authorization": f"Bearer {token}"},
            open_timeout=3, ping_interval=None, close_timeout=1, max_size=None, proxy=None, legacy=True,
        )
        welcome = json.loads(conn.recv(timeout=5))
        assert welcome["type"] == "welcome", welcome
        self.connects += 1
        return conn

    def _finished(self) -> bool:
        return self._stopping.is_set() and (not self.unacked or time.monotonic() > self._drain_deadline)

    def run(self) -> None:
        next_seq = 0
        interval = 1.0 / self.rate
        next_send = time.monotonic()
        while not self._finished():
            try:
                conn = self.conn = self._connect()
            except Exception:
                time.sleep(0.2)
                continue
            try:
                for text in list(self.unacked.values()):  # resend in order after a reconnect
                    conn.send(text)
                while not self._finished():
                    now = time.monotonic()
                    if not self._stopping.is_set() and len(self.unacked) < self.window and now >= next_send:
                        text = json.dumps({"type": "telemetry", "seq": next_seq, "qos": 1, "data": {"n": next_seq}})
                        self.unacked[next_seq] = text
                        conn.send(text)
                        self.sent += 1
                        next_seq += 1
                        next_send = max(next_send + interval, now - 1)
                        continue
                    try:
                        frame = json.loads(conn.recv(timeout=0.02))
                    except TimeoutError:
                        continue
                    if frame.get("type") == "ack":
                        seq = frame["seq"]
                        if self.unacked.pop(seq, None) is not None:
                            self.acked.add(seq)
                            if self.phase:
                                self.acked_while[self.phase] = self.acked_while.get(self.phase, 0) + 1
                    elif frame.get("type") == "nack":
                        self.nacked[frame["seq"]] = frame["error"]["code"]
                        self.unacked.pop(frame["seq"], None)
            except ConnectionClosed as e:
                self.close_codes.append(e.rcvd.code if e.rcvd else None)
                time.sleep(0.1)
            except OSError:
                time.sleep(0.1)
            finally:
                try:
                    conn.close()
                except Exception:
                    pass
        self._done.set()


class Observer:
    """Subscribes to every device's telemetry under `base`; resubscribes after broker restarts.

    With `session_expiry_s` it has a persistent MQTT 5 session (clean start off, QoS 1 subscription): what the
    broker takes while the observer is away is queued for it, as for a durable consumer. Then only the broker's
    saved database brings the session through a broker crash (see `test_embedded.save_broker`).
    """

    def __init__(self, broker, base: str, session_expiry_s: int = 0):
        self.topic = f"{base}/+/telemetry"
        self.arrivals: dict[str, list[int]] = {}
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"obs-{secrets.token_hex(4)}", protocol=paho.MQTTv5)
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *a: self.connected.clear()
        self.client.on_message = self._on_message
        self.subscriptions = 0  # SUBACKs received: one per (re)connect
        self.client.on_subscribe = self._on_subscribe
        if session_expiry_s:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = session_expiry_s
            self.client.connect(broker.host, broker.port, keepalive=10, clean_start=False, properties=properties)
        else:
            self.client.connect(broker.host, broker.port, keepalive=10)
        self.client.loop_start()
        assert self.wait_subscribed(0), "observer could not subscribe"

    def _on_subscribe(self, *args):
        with self.lock:
            self.subscriptions += 1

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if not reason_code.is_failure:
            client.subscribe(self.topic, options=SubscribeOptions(qos=1))
            self.connected.set()

    def _on_message(self, client, userdata, message):
        device = message.topic.split("/")[-2]
        seq = json.loads(message.payload)["seq"]
        with self.lock:
            self.arrivals.setdefault(device, []).append(seq)

    def wait_quiet(self, quiet_s: float, timeout: float) -> bool:
        """Waits until nothing has arrived for `quiet_s` (the broker has delivered all it had)."""
        deadline = time.monotonic() + timeout
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            with self.lock:
                count = sum(len(seqs) for seqs in self.arrivals.values())
            if count != last:
                last, since = count, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return True
            time.sleep(0.05)
        return False

    def wait_subscribed(self, after: int, timeout: float = 20) -> bool:
        """Waits until the observer has subscribed more than `after` times (e.g. again after a broker restart)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.subscriptions > after:
                    return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class Figures:
    devices: int = 0
    sent: int = 0
    acked: int = 0
    nacked: int = 0
    arrived: int = 0
    duplicates: int = 0
    lost: int = 0
    out_of_order: int = 0

    def __str__(self) -> str:
        return (f"devices={self.devices} sent={self.sent} acked={self.acked} nacked={self.nacked} "
                f"arrived={self.arrived} duplicates={self.duplicates} lost={self.lost} out_of_order={self.out_of_order}")


def account(devices: list[StreamDevice], observer: Observer, settle_s: float = 10) -> tuple[Figures, list[str]]:
    """Waits (up to `settle_s`) until every acked seq has arrived, then counts; returns figures and problems."""

    def missing() -> int:
        with observer.lock:
            return sum(len(d.acked - set(observer.arrivals.get(d.device_id, []))) for d in devices)

    deadline = time.monotonic() + settle_s
    while missing() and time.monotonic() < deadline:
        time.sleep(0.2)
    figures = Figures(devices=len(devices))
    problems = []
    with observer.lock:
        for d in devices:
            arrivals = observer.arrivals.get(d.device_id, [])
            seen = set(arrivals)
            first_index: dict[int, int] = {}
            for i, seq in enumerate(arrivals):
                first_index.setdefault(seq, i)
            order = [seq for seq in sorted(d.acked) if seq in first_index]
            inversions = sum(1 for a, b in zip(order, order[1:]) if first_index[a] > first_index[b])
            lost = sorted(d.acked - seen)
            figures.sent += d.sent
            figures.acked += len(d.acked)
            figures.nacked += len(d.nacked)
            figures.arrived += len(d.acked & seen)
            figures.duplicates += len(arrivals) - len(seen)
            figures.lost += len(lost)
            figures.out_of_order += inversions
            if lost:
                problems.append(f"{d.device_id}: {len(lost)} acked seqs never arrived, e.g. {lost[:10]}")
            if inversions:
                problems.append(f"{d.device_id}: {inversions} acked seqs first arrived out of order")
    return figures, problems
