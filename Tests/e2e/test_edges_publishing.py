"""Hardening of the publish path: one in-flight window for every QoS 1 publish (message ids that wrap never ack the wrong one),
claims that must not be made when the broker did not get the message, per-device order across QoS 0 and
spooled messages, backpressure on QoS 0 telemetry the broker cannot take, and the gateway's `offline` when a stop
cannot confirm it."""

import os
import signal
import threading
import time
from typing import Callable

import pytest

from conftest import fetch_retained_json, uid, wait_until
from test_commands import assert_failure, final, request
from test_device_abuse import PeakRSS
from test_http import metric_values


def messages_out(g) -> float:
    try:
        return sum(v for k, v in metric_values(g).items() if k.startswith("gatehouse_mqtt_messages_out_total"))
    except TimeoutError:  # busy with the burst (the debug build on a small box)
        return 0


@pytest.fixture
def paused(fresh_broker):
    """SIGSTOP/SIGCONT of the test's own broker (it keeps its sockets, so the gateway stays connected)."""
    stopped = []

    def pause():
        os.kill(fresh_broker.proc.pid, signal.SIGSTOP)
        stopped.append(True)

    def resume():
        os.kill(fresh_broker.proc.pid, signal.SIGCONT)
        stopped.clear()

    yield pause, resume
    if stopped:
        resume()


def test_more_than_65535_outstanding_publishes_never_ack_the_wrong_message(gateway, fresh_broker, mqtt_factory, paused):
    """70 devices inventing 1,000 telemetry keys each make 70,000 Home Assistant discovery publishes while the
    broker does not answer: more than libmosquitto's 16-bit message ids. Every device's `ack` must come, and
    only for a message the broker has."""
    pause, resume = paused
    g = gateway(broker=fresh_broker, homeassistant={"enabled": True}, mqtt={"keepalive_s": 60})
    observer = mqtt_factory(fresh_broker)
    observer.subscribe(f"{g.base}/+/telemetry")
    devices = [g.connect(g.token(uid("many"), kind="sensor")) for _ in range(70)]
    before = messages_out(g)
    pause()
    for d in devices:
        d.send_json({"type": "telemetry", "seq": 1, "data": {f"k{i}": i for i in range(1000)}})
    # Every publish made (70 telemetry, 70,000 discovery configs) before the broker answers any of them.
    wait_until(lambda: messages_out(g) >= before + 70_070, 60, interval=0.5)
    for d in devices:
        d.expect_no_frame(0.01)  # nothing is acked while the broker does not answer
    resume()
    for d in devices:
        d.expect_ack(1, timeout=60)
    arrived = {m.topic for m in observer.collect(lambda m: m.topic.endswith("/telemetry"), 2.0)}
    assert len(arrived) == 70
    assert g.running


def test_a_snapshot_refused_during_an_outage_does_not_complete_its_command(gateway, fresh_broker, mqtt_factory):
    g = gateway(broker=fresh_broker)
    mqtt = mqtt_factory(fresh_broker)
    dev = uid("cam")
    mqtt.subscribe(f"{g.base}/{dev}/#")
    d = g.connect(g.token(dev, kind="camera"))
    request(mqtt, g, dev, "snapshot", {"id": "s1", "timeout_ms": 3000})
    d.expect("command", id="s1")
    fresh_broker.stop()
    wait_until(lambda: g.http_get("/readyz")[0] == 503, 10)
    d.send_media({"stream": "snapshot", "content_type": "image/jpeg", "id": "s1"}, b"\xff\xd8jpeg\xff\xd9")
    time.sleep(3.2)  # past the command's deadline while the broker is away
    fresh_broker.start()
    mqtt = mqtt_factory(fresh_broker)
    mqtt.subscribe(f"{g.base}/{dev}/response/#")
    # The spooled final response is `timeout`: the media never reached the broker, so no `ok` is claimed.
    assert_failure(final(mqtt, g, dev, "snapshot", "s1", timeout=15), "timeout", "timeout")


def test_qos0_never_overtakes_the_same_devices_spooled_messages(gateway, fresh_broker, mqtt_factory):
    """§3.2: per device, in order, spool replay included. A QoS 0 message sent while the spooled ones are
    still being delivered is refused (the device may resend it), never published ahead of them."""
    spooled = 3000
    g = gateway(broker=fresh_broker, mqtt={"max_inflight": 10}, limits={"max_messages_per_s": 0})
    dev = uid("order")
    d = g.connect(g.token(dev))
    fresh_broker.stop()
    wait_until(lambda: g.http_get("/readyz")[0] == 503, 10)
    for seq in range(1, spooled + 1):
        d.send_json({"type": "telemetry", "seq": seq, "data": {"n": seq}})
    for seq in range(1, spooled + 1):
        d.expect_ack(seq)
    d.send_json({"type": "telemetry", "seq": 0, "qos": 0, "data": {"n": 0}})
    d.expect_nack(0, "broker_unavailable")
    fresh_broker.start()
    observer = mqtt_factory(fresh_broker)
    # QoS 0 subscription: the broker then forwards in the order it received. At QoS 1 it may hold QoS 1
    # messages for the observer's receive window and let QoS 0 ones pass (MQTT orders per QoS only).
    observer.subscribe(f"{g.base}/{dev}/telemetry", qos=0)
    seq = spooled + 1
    seen: list[int] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and spooled not in seen:
        d.send_json({"type": "telemetry", "seq": seq, "qos": 0, "data": {"n": seq}})
        frame = d.recv_json(timeout=10)
        assert frame["seq"] == seq and frame["type"] in ("ack", "nack"), frame
        seq += 1
        seen += [m.json()["data"]["n"] for m in observer.collect(lambda m: True, 0.02)]
    seen += [m.json()["data"]["n"] for m in observer.collect(lambda m: True, 0.5)]
    assert [n for n in seen if n <= spooled] == list(range(1, spooled + 1)), "spooled messages lost or out of order"
    overtaking = [n for n in seen[: seen.index(spooled)] if n > spooled]
    assert not overtaking, f"QoS 0 messages published ahead of spooled ones: {overtaking[:5]}"


def test_qos0_never_overtakes_qos1_messages_beyond_the_brokers_receive_maximum(gateway, fresh_broker, mqtt_factory, paused):
    """§3.2 with a broker slower than the device: mosquitto lets 20 QoS 1 publishes be unanswered at once (its
    CONNACK's Receive Maximum) against the gateway's `max_inflight` of 1,000. libmosquitto holds back any
    QoS 1 publish beyond 20 but writes a QoS 0 one at once, so the window must not hand it more than 20."""
    burst = 100
    pause, resume = paused
    g = gateway(broker=fresh_broker, limits={"max_messages_per_s": 0})
    dev = uid("order")
    d = g.connect(g.token(dev))
    observer = mqtt_factory(fresh_broker)
    observer.subscribe(f"{g.base}/{dev}/telemetry", qos=0)  # QoS 0: the broker forwards in the order it read
    before = messages_out(g)
    pause()
    for seq in range(1, burst + 1):
        d.send_json({"type": "telemetry", "seq": seq, "data": {"n": seq}})
    d.send_json({"type": "telemetry", "seq": 0, "qos": 0, "data": {"n": 0}})
    wait_until(lambda: messages_out(g) >= before + burst + 1, 10, interval=0.05)
    resume()
    # A QoS 0 message is acked once handed over, so its ack may come first.
    acks = [d.recv_json(timeout=10) for _ in range(burst + 1)]
    assert sorted(a["seq"] for a in acks if a["type"] == "ack") == list(range(burst + 1)), acks
    seen = [m.json()["data"]["n"] for m in observer.collect(lambda m: True, 1.0)]
    position = seen.index(0) + 1 if 0 in seen else None
    assert seen == list(range(1, burst + 1)) + [0], f"published out of order or lost: the QoS 0 message at position {position}"


def test_a_stop_that_cannot_confirm_offline_leaves_with_the_will(gateway, fresh_broker, mqtt_factory, paused):
    """A backlog the broker does not confirm in time keeps the gateway's `offline` from being confirmed: the
    gateway then leaves with its Will (a clean DISCONNECT would suppress it)."""
    pause, resume = paused
    # A window larger than what mosquitto takes in flight (Receive Maximum 20): the rest of the backlog
    # waits in the gateway, ahead of its `offline`.
    g = gateway(broker=fresh_broker, gateway={"shutdown_grace_s": 1}, mqtt={"max_inflight": 100})
    observer = mqtt_factory(fresh_broker)
    observer.subscribe(g.bridge("state"))
    observer.wait_json(g.bridge("state"), lambda s: s["state"] == "online")
    d = g.connect(g.token(uid("backlog")))
    pause()
    for seq in range(1, 151):
        d.send_json({"type": "telemetry", "seq": seq, "data": {"n": seq}})
    assert g.stop(signal.SIGTERM) == 0
    resume()
    state = fetch_retained_json(fresh_broker, g.bridge("state"), lambda s: s["state"] == "offline", timeout=10)
    assert state["state"] == "offline", state


def queued_towards(port: int) -> int:
    """Bytes written towards local TCP `port` and not yet read by it: what its connections' senders have not
    sent yet plus what its own sockets have received and not read (/proc/net/tcp)."""
    total = 0
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        fields = line.split()
        local, remote = (int(f.split(":")[1], 16) for f in fields[1:3])
        tx, rx = (int(x, 16) for x in fields[4].split(":"))
        if remote == port:
            total += tx
        elif local == port:
            total += rx
    return total


def steady(read: Callable[[], int], pause: float = 0.3) -> int | None:
    """`read()` if it is not zero and the same again `pause` seconds later, else None."""
    first = read()
    time.sleep(pause)
    return first if first and read() == first else None


def unthrottled_device(gateway, broker, mqtt_factory, name: str, topic: str, **settings):
    """A gateway on `broker` without per-device rate limits, one device of it, and an observer of that device's
    `topic` at QoS 0 (the broker forwards in the order it read). Returns the three."""
    g = gateway(broker=broker, limits={"max_messages_per_s": 0, "max_bytes_per_s": 0}, **settings)
    dev = uid(name)
    d = g.connect(g.token(dev))
    observer = mqtt_factory(broker)
    observer.subscribe(f"{g.base}/{dev}/{topic}", qos=0)
    return g, d, observer


def send_in_background(send: Callable[[int], None], count: int) -> threading.Thread:
    """Calls `send(seq)` for seq 1 to `count` from a thread (the device's socket may fill up) and returns the thread."""
    sender = threading.Thread(target=lambda: [send(seq) for seq in range(1, count + 1)], daemon=True)
    sender.start()
    return sender


def qos0_reading(d, pad: str) -> Callable[[int], None]:
    """Sends the QoS 0 telemetry message `seq` (with `n` = `seq` and `pad`)."""
    return lambda seq: d.send_json({"type": "telemetry", "seq": seq, "qos": 0, "data": {"n": seq, "pad": pad}})


def test_a_burst_the_paused_broker_cannot_take_arrives_whole_and_in_order(gateway, fresh_broker, mqtt_factory, paused):
    """More QoS 0 telemetry (13 MB) than the sockets between the gateway and a paused broker hold: the gateway's
    writes to the broker wait for the socket (its buffered writes included), the rest waits in the gateway (up to
    8 MiB of such 16 KB messages in the MQTT client, and as much in its memory queue) and in the device's socket,
    and once the broker reads again every message is acked and arrives, whole and in order, on the same
    connection."""
    burst, pad = 800, "x" * 16_000
    pause, resume = paused
    g, d, observer = unthrottled_device(gateway, fresh_broker, mqtt_factory, "burst", "telemetry")
    pause()
    sender = send_in_background(qos0_reading(d, pad), burst)
    # The sockets towards the broker fill up and take no more: the rest waits in the gateway.
    settled = wait_until(lambda: steady(lambda: queued_towards(fresh_broker.port)), 30, interval=0.1)
    assert settled and settled < burst * len(pad) // 2, f"{settled} bytes queued in the sockets: no backpressure"
    resume()
    for seq in range(1, burst + 1):
        d.expect_ack(seq, timeout=30)  # handed to the MQTT client
    sender.join(30)
    seen: list[int] = []
    deadline = time.monotonic() + 60
    while len(seen) < burst and time.monotonic() < deadline:
        for m in observer.collect(lambda m: True, 0.2):
            body = m.json()
            assert body["data"]["pad"] == pad, f"message {body['data']['n']} arrived damaged"
            seen.append(body["data"]["n"])
    assert seen == list(range(1, burst + 1)), f"{len(seen)} of {burst} arrived, first out of place: " + str(
        next((n for i, n in enumerate(seen) if n != i + 1), None))
    assert g.running


def test_qos0_telemetry_the_paused_broker_cannot_take_stops_the_device_being_read(gateway, fresh_broker, mqtt_factory, paused):
    """libmosquitto queues QoS 0 publishes without limit, and a QoS 0 message is acked once handed to it. With the
    broker paused, the gateway takes a device's QoS 0 telemetry until its queue of unwritten ones is full (4,096),
    then holds the rest and stops reading the device (24 MB are sent: three times what that queue, the waiting queue
    and the sockets towards the paused broker held here; what the device's own socket takes does not matter): the
    acks stop. Once the broker reads again, every message is acked and arrives, in order."""
    total, pad = 24_000, "x" * 1_000
    pause, resume = paused
    g, d, observer = unthrottled_device(gateway, fresh_broker, mqtt_factory, "flood", "telemetry", mqtt={"keepalive_s": 120})
    pause()
    sender = send_in_background(qos0_reading(d, pad), total)
    acked = 0
    quiet_since = time.monotonic()
    deadline = time.monotonic() + 60
    while time.monotonic() - quiet_since < 3 and time.monotonic() < deadline:
        try:
            frame = d.recv_json(timeout=0.2)
        except AssertionError:
            continue
        assert frame == {"type": "ack", "seq": acked + 1}, frame
        acked += 1
        quiet_since = time.monotonic()
    assert 4_096 <= acked < total, f"{acked} of {total} acked while the broker was paused: no backpressure"
    resume()
    while acked < total:
        d.expect_ack(acked + 1, timeout=30)
        acked += 1
    sender.join(30)
    seen: list[int] = []
    deadline = time.monotonic() + 60
    while len(seen) < total and time.monotonic() < deadline:
        seen += [m.json()["data"]["n"] for m in observer.collect(lambda m: True, 0.2)]
    assert seen == list(range(1, total + 1)), f"{len(seen)} of {total} arrived, first out of place: " + str(
        next((n for i, n in enumerate(seen) if n != i + 1), None))
    assert g.running


def test_qos0_media_the_paused_broker_cannot_take_waits_in_the_devices_socket_not_in_memory(gateway, fresh_broker, mqtt_factory, paused):
    """Media frames are QoS 0 too, and 4,096 of them can be gigabytes: large payloads also count in bytes (8 MiB).
    With the broker paused, a camera sends 256 MiB of 256 KiB frames: the gateway holds those 8 MiB in the MQTT
    client and as much in its memory queue (16-17 MiB measured) and stops reading the camera, so the rest waits in
    the sockets, not in the gateway's memory (its resident memory grew by all of it before). Once the broker reads
    again, every frame arrives."""
    total, frame = 1_024, b"\x00" * (256 << 10)
    pause, resume = paused
    g, d, observer = unthrottled_device(gateway, fresh_broker, mqtt_factory, "camera", "media/clip", mqtt={"keepalive_s": 120})
    pause()
    peak = PeakRSS(g)
    before = peak.peak
    sent = [0]

    def send_frame(seq: int):
        d.send_media({"stream": "clip"}, frame)
        sent[0] = seq

    sender = send_in_background(send_frame, total)
    last, quiet_since, deadline = -1, time.monotonic(), time.monotonic() + 60
    while time.monotonic() - quiet_since < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
        if sent[0] != last:
            last, quiet_since = sent[0], time.monotonic()
    grown = peak.stop() - before
    assert sent[0] < total, f"all {total} frames of 256 KiB were taken while the broker was paused"
    assert grown < 64 << 20, f"the gateway's memory grew by {grown >> 20} MiB while the broker was paused"
    resume()
    sender.join(60)
    assert sent[0] == total
    arrived, deadline = 0, time.monotonic() + 60
    while arrived < total and time.monotonic() < deadline:
        arrived += len(observer.collect(lambda m: True, 0.2))
    assert arrived == total
    assert g.running
