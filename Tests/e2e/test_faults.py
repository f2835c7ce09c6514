"""Fault injection (issue 3): nothing a device got an `ack` for is lost, whatever happens in between.

Each test streams QoS 1 telemetry from simulated devices (see streams.py), injects one fault, and then checks
per device that every acked seq reached MQTT at least once, with first arrivals in seq order; it prints the
figures (sent / acked / arrived / duplicates / lost). The gateway's link to the broker goes through a TCP
forwarder, so the test's own observer can be subscribed again before the gateway reconnects.
"""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import MqttClient, TcpForwarder, metric, report_figures, uid, wait_until
from streams import Observer, StreamDevice, account
from test_commands import request

DEVICES = 20
RATE = 40  # messages per second per device


@pytest.fixture
def link(broker):
    fwd = TcpForwarder(broker.port)
    yield fwd
    fwd.cut()


def start_stream(g, count=DEVICES, rate=RATE):
    devices = [StreamDevice(g, uid("flt"), rate=rate) for _ in range(count)]
    for d in devices:
        d.start()
    return devices


def finish(name, devices, observer, drain_s=30, order=True):
    """Checks every acked message arrived, and (with `order`) first arrivals in order per device."""
    for d in devices:
        d.stop(drain_s)
    for d in devices:
        d.join_drained()
    figures, problems = account(devices, observer, settle_s=15)
    report_figures(f"[{name}] {figures}")
    if not order:
        problems = [p for p in problems if "out of order" not in p]
    assert not problems, "\n".join(problems[:20])
    assert figures.acked > 0
    return figures


def set_phase(devices, phase):
    for d in devices:
        d.phase = phase


def readyz(g):
    try:
        return g.http_get("/readyz", timeout=1)[0]
    except OSError:
        return None


def test_broker_sigkill_mid_stream_restarted_after_10s(gateway, fresh_broker):
    fwd = TcpForwarder(fresh_broker.port)
    try:
        g = gateway(broker=fresh_broker, mqtt={"url": f"mqtt://127.0.0.1:{fwd.port}"})
        observer = Observer(fresh_broker, g.base)
        devices = start_stream(g)
        time.sleep(3)
        set_phase(devices, "outage")
        subscriptions = observer.subscriptions
        fwd.cut()
        # What the broker acknowledged before the cut is the broker's to deliver: the observer drains it before the
        # broker is killed. The broker runs without persistence, so killing it while its queue towards the (Python,
        # sometimes a second behind) observer is full would lose messages in the broker, which no gateway can
        # prevent. With the link cut nothing new reaches the broker, so the observer goes quiet once drained.
        assert observer.wait_quiet(quiet_s=1.0, timeout=15), "the observer kept receiving after the link was cut"
        fresh_broker.kill()
        assert wait_until(lambda: readyz(g) == 503, 10), "readyz must be 503 while the broker is down"
        time.sleep(10)
        fresh_broker.start()
        assert observer.wait_subscribed(after=subscriptions), "observer did not resubscribe"
        set_phase(devices, "")
        fwd.restore()
        assert wait_until(lambda: readyz(g) == 200, 40), f"gateway did not reconnect:\n{g.log_tail()}"
        time.sleep(3)
        finish("broker SIGKILL, back after 10 s", devices, observer)
        assert sum(d.acked_while.get("outage", 0) for d in devices) > 0, "nothing was acked (spooled) during the outage"
        assert all(d.connects == 1 for d in devices), "devices must stay connected through a broker outage"
        observer.close()
    finally:
        fwd.cut()


def test_gateway_sigkill_mid_stream_with_spooled_messages(gateway, broker, link):
    g = gateway(mqtt={"url": f"mqtt://127.0.0.1:{link.port}"})
    observer = Observer(broker, g.base)
    devices = start_stream(g)
    time.sleep(2)
    link.cut()  # the broker goes away: messages are acked from the spool...
    set_phase(devices, "outage")
    time.sleep(3)
    g.stop(sig=signal.SIGKILL)  # ...and the gateway crashes with them on disk
    set_phase(devices, "")
    link.restore()
    time.sleep(1)
    g.start()
    time.sleep(3)
    finish("gateway SIGKILL with a spool, restarted", devices, observer)
    assert sum(d.acked_while.get("outage", 0) for d in devices) > 0
    assert all(d.connects >= 2 for d in devices), "devices should have reconnected to the restarted gateway"
    assert "spool holds" in g.log(), "the restarted gateway should report the spooled entries it found"
    observer.close()


@pytest.mark.parametrize("broker_up", [True, False], ids=["broker-up", "broker-down"])
def test_sigterm_mid_stream(gateway, broker, link, broker_up):
    g = gateway(mqtt={"url": f"mqtt://127.0.0.1:{link.port}"}, gateway={"shutdown_grace_s": 3})
    observer = Observer(broker, g.base)
    devices = start_stream(g)
    time.sleep(2)
    if not broker_up:
        link.cut()
        time.sleep(2)
    started = time.monotonic()
    code = g.stop(sig=signal.SIGTERM)
    took = time.monotonic() - started
    assert code == 0, f"SIGTERM exit code {code}:\n{g.log_tail()}"
    assert took < 3 + 5, f"shutdown took {took:.1f}s with shutdown_grace_s 3"
    assert wait_until(lambda: all(1001 in d.close_codes for d in devices), 5), \
        f"devices not closed with 1001: {[d.close_codes for d in devices]}"
    if not broker_up:
        link.restore()
    g.start()
    time.sleep(2)
    finish(f"SIGTERM, broker {'up' if broker_up else 'down'}", devices, observer)
    observer.close()


def test_spool_full_nacks_and_keeps_what_it_acked(gateway, broker, link):
    g = gateway(mqtt={"url": f"mqtt://127.0.0.1:{link.port}"}, spool={"max_bytes": "64KiB"})
    observer = Observer(broker, g.base)
    dev = uid("full")
    d = g.connect(g.token(dev))
    link.cut()
    assert wait_until(lambda: readyz(g) == 503, 10)
    filler = "x" * 1000
    for seq in range(120):
        d.send_json({"type": "telemetry", "seq": seq, "data": {"fill": filler}})
    acked, nacked = [], []
    for _ in range(120):
        frame = d.recv_json(10)
        if frame["type"] == "ack":
            acked.append(frame["seq"])
        else:
            assert frame["type"] == "nack" and frame["error"]["code"] == "spool_full", frame
            nacked.append(frame["seq"])
    assert acked and nacked, f"acked {len(acked)}, nacked {len(nacked)}: 64 KiB should hold some of 120 KB"
    assert acked == list(range(len(acked))), "the spool fills up in order"
    metrics = g.http_get("/metrics")[2].decode()
    assert 'gatehouse_nacks_total{code="spool_full"}' in metrics
    assert re.search(r"^gatehouse_broker_connected 0(\.0)?$", metrics, re.M), metrics
    entries = re.search(r"^gatehouse_spool_entries (\S+)$", metrics, re.M)
    assert entries and float(entries.group(1)) >= len(acked), metrics
    assert re.search(r"^gatehouse_spool_bytes [1-9]", metrics, re.M), metrics
    link.restore()
    assert wait_until(lambda: readyz(g) == 200, 40)
    assert wait_until(lambda: set(acked) <= set(observer.arrivals.get(dev, [])), 15), \
        f"acked but not arrived: {sorted(set(acked) - set(observer.arrivals.get(dev, [])))}"
    arrivals = observer.arrivals[dev]
    assert [s for i, s in enumerate(arrivals) if s not in arrivals[:i]][:len(acked)] == acked
    # Room again once drained.
    d.send_json({"type": "telemetry", "seq": 1000, "data": {"fill": filler}})
    d.expect_ack(1000, timeout=10)
    report_figures(f"[spool full] sent=120 acked={len(acked)} nacked={len(nacked)} arrived={len(acked)} lost=0")
    observer.close()


def test_spooled_messages_the_broker_refuses_for_good_are_dropped_and_counted(gateway, fresh_broker):
    """Acked from the spool during an outage, then refused by the broker when it is back (larger than its
    `message_size_limit`): dropped (logged and counted), while the other messages arrive."""
    g = gateway(broker=fresh_broker)
    big, small = uid("big"), uid("small")
    sockets = {dev: g.connect(g.token(dev)) for dev in (big, small)}
    fresh_broker.stop()
    assert wait_until(lambda: readyz(g) == 503, 10)
    for seq in range(5):
        sockets[big].send_json({"type": "telemetry", "seq": seq, "data": {"fill": "x" * 2000}})
        sockets[small].send_json({"type": "telemetry", "seq": seq, "data": {"n": seq}})
    for d in sockets.values():
        for seq in range(5):
            d.expect_ack(seq, timeout=10)  # on disk
    fresh_broker.extra_config = "message_size_limit 1000\n"
    fresh_broker.start()
    observer = Observer(fresh_broker, g.base)
    refused = lambda: metric(g, "gatehouse_spool_dropped_total", reason="refused")
    assert wait_until(lambda: refused() == 5 and metric(g, "gatehouse_spool_entries") == 0, 40), \
        (refused(), metric(g, "gatehouse_spool_entries"))
    sockets[small].send_json({"type": "telemetry", "seq": 5, "data": {"n": 5}})
    sockets[small].expect_ack(5, timeout=10)
    assert wait_until(lambda: 5 in observer.arrivals.get(small, []), 10)
    assert big not in observer.arrivals
    assert metric(g, "gatehouse_spool_replay_holds_total") == 0  # too large is for good: nothing held
    assert "dropping it" in g.log_path.read_text()
    observer.close()


def test_messages_the_broker_denies_do_not_keep_the_link_down(gateway, fresh_broker):
    """mosquitto 2.0.11 with `max_queued_messages 0` (the tests' broker) closes the connection of a client whose
    publish its ACL denies, and when more packets follow
    the refusal is often lost with the connection (the gateway has then acked the message from its spool). Each
    denied message costs the link one reconnect: the gateway does not send it again first thing on every
    connection (it did, and the link stayed down). Sent alone and closed on three times in a row, a spooled
    message is dropped as refused; one whose refusal arrives is dropped (or nacked) at once."""
    g = gateway(broker=fresh_broker)
    denied, allowed = uid("denied"), uid("allowed")
    sockets = {dev: g.connect(g.token(dev)) for dev in (denied, allowed)}
    fresh_broker.restart_denying(f"{g.base}/{denied}/telemetry")
    assert wait_until(lambda: readyz(g) == 200, 15)
    observer = Observer(fresh_broker, g.base)
    # The denied device's messages among the other's: the broker closes with their publishes unread.
    for seq in range(20):
        if seq < 5:
            sockets[denied].send_json({"type": "telemetry", "seq": seq, "data": {"n": seq}})
        sockets[allowed].send_json({"type": "telemetry", "seq": seq, "data": {"n": seq}})
    answers = [sockets[denied].recv_json(timeout=30) for _ in range(5)]
    assert all(a["type"] == "ack" or a["error"]["code"] == "broker_rejected" for a in answers), answers
    for seq in range(20):
        sockets[allowed].expect_ack(seq, timeout=30)
    refused = lambda: metric(g, "gatehouse_spool_dropped_total", reason="refused")
    acked = sum(a["type"] == "ack" for a in answers)
    assert wait_until(lambda: metric(g, "gatehouse_spool_entries") == 0 and refused() >= acked, 60), \
        (metric(g, "gatehouse_spool_entries"), refused(), answers)
    assert wait_until(lambda: readyz(g) == 200, 15)
    connects = metric(g, "gatehouse_broker_connects_total")
    time.sleep(3)
    assert metric(g, "gatehouse_broker_connects_total") == connects, "the link still goes down"
    assert wait_until(lambda: set(observer.arrivals.get(allowed, [])) == set(range(20)), 15), observer.arrivals.get(allowed)
    assert denied not in observer.arrivals
    observer.close()


def test_a_device_answer_the_broker_refuses_leaves_the_response_topic_one_answer(gateway, fresh_broker):
    """The broker's ACL refuses the gateway's publishes to one device's `response/...`: the device's answer gets
    `nack` `broker_rejected` and its command stays open for a resend, so nothing goes to the request's Response
    Topic yet. The deadline then ends the command, and its `timeout` is the one answer there. (The refused answer's
    copy used to go at once: the requester had `ok`, then `timeout`.)"""
    g = gateway(broker=fresh_broker)
    dev = uid("refused")
    d = g.connect(g.token(dev))
    fresh_broker.restart_denying(f"{g.base}/{dev}/response/#")
    assert wait_until(lambda: readyz(g) == 200, 15)
    requester = MqttClient(fresh_broker)
    try:
        reply = f"replies/{uid('r')}"
        requester.subscribe(reply)
        request(requester, g, dev, "reboot", {"id": "r1", "timeout_ms": 2000}, response_topic=reply, correlation_data=b"c1")
        d.expect("command", id="r1")
        d.send_json({"type": "response", "seq": 1, "id": "r1", "status": "ok"})
        d.expect_nack(1, "broker_rejected")
        answer = requester.wait_for(reply, timeout=10)
        assert answer.json()["status"] == "timeout", answer.json()
        assert answer.prop("CorrelationData") == b"c1"
        requester.assert_nothing(reply, within=1)
    finally:
        requester.close()


def test_truncated_and_corrupt_spool_keeps_good_entries(gateway, broker, link):
    g = gateway(mqtt={"url": f"mqtt://127.0.0.1:{link.port}"})
    observer = Observer(broker, g.base)
    dev = uid("torn")
    d = g.connect(g.token(dev))
    link.cut()
    assert wait_until(lambda: readyz(g) == 503, 10)
    for seq in range(50):
        d.send_json({"type": "telemetry", "seq": seq, "data": {"n": seq}})
    for seq in range(50):
        d.expect_ack(seq, timeout=10)
    g.stop(sig=signal.SIGKILL)
    segments = sorted(p for p in Path(g.spool_dir).glob("segment-*.log") if p.stat().st_size > 0)
    assert segments, f"no spool segment in {g.spool_dir}: {os.listdir(g.spool_dir)}"
    path = segments[-1]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a flipped bit in the middle...
    path.write_bytes(bytes(data[:-7]))  # ...and a torn last record, as after a power cut
    link.restore()
    g.start()
    assert "spool segment damaged" in g.log(), g.log_tail()
    assert wait_until(lambda: len(set(observer.arrivals.get(dev, []))) >= 48, 15), observer.arrivals.get(dev)
    time.sleep(1)
    arrivals = observer.arrivals[dev]
    lost = sorted(set(range(50)) - set(arrivals))
    assert len(lost) <= 2 and 49 in lost, f"only the damaged entries may be lost: {lost}"
    assert arrivals == sorted(arrivals), "the good entries arrive in order"
    report_figures(f"[damaged spool] acked=50 arrived={50 - len(lost)} lost_to_damage={len(lost)} ({lost})")
    observer.close()


# -- Queued commands live in the broker: they survive a gateway crash, and their expiry is still answered.


def queue_command(mqtt, g, dev, cmd_id, ttl_ms):
    mqtt.publish(g.topic(dev, "request/ping"), {"id": cmd_id, "ttl_ms": ttl_ms})
    _, body = mqtt.wait_json(g.topic(dev, "response/ping"), lambda b: b["id"] == cmd_id)
    assert body["status"] == "queued", body


def test_queued_commands_survive_a_gateway_crash_in_order(gateway, mqtt):
    g = gateway()
    dev = uid("pend")
    mqtt.subscribe(f"{g.base}/{dev}/#")
    for cmd_id in ("c1", "c2", "c3"):
        queue_command(mqtt, g, dev, cmd_id, 60000)
    g.stop(sig=signal.SIGKILL)
    g.start()
    d = g.connect(g.token(dev))
    assert [d.expect("command")["id"] for _ in range(3)] == ["c1", "c2", "c3"]


def test_expiry_is_answered_on_time_after_a_gateway_restart(gateway, mqtt):
    g = gateway()
    dev = uid("pexp")
    mqtt.subscribe(f"{g.base}/{dev}/#")
    queued_at = time.monotonic()
    queue_command(mqtt, g, dev, "e1", 5000)
    g.stop(sig=signal.SIGKILL)
    g.start()
    _, body = mqtt.wait_json(g.topic(dev, "response/ping"), lambda b: b["status"] != "queued", timeout=10)
    waited = time.monotonic() - queued_at
    assert body["status"] == "expired" and body["id"] == "e1", body
    assert 4.5 <= waited <= 7, f"expired after {waited:.1f}s for a 5 s TTL"


def test_expiry_is_answered_by_another_gateway_when_the_queuing_one_is_gone(gateway, mqtt):
    a = gateway()
    b = gateway(fleet_of=a)
    dev = uid("ptake")
    mqtt.subscribe(f"{a.base}/{dev}/#")
    queued_at = time.monotonic()
    queue_command(mqtt, a, dev, "t1", 4000)
    m = mqtt.wait_for(lambda x: x.topic == a.topic(dev, "pending/t1") and x.payload)
    queuer = a if m.json()["gateway"] == a.gw_id else b
    queuer.stop(sig=signal.SIGKILL)
    _, body = mqtt.wait_json(a.topic(dev, "response/ping"), lambda b: b["status"] != "queued", timeout=10)
    waited = time.monotonic() - queued_at
    assert body["status"] == "expired", body
    assert 3.5 <= waited <= 6, f"expired after {waited:.1f}s for a 4 s TTL"
    assert not mqtt.collect(lambda x: x.topic == a.topic(dev, "response/ping"), 1.0), "exactly one expired response"


def unix_sockets(pid: int) -> int:
    """How many UNIX sockets the process holds (its /proc/<pid>/fd against /proc/net/unix)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    with open("/proc/net/unix") as table:
        next(table)  # the header; the inode is the seventh column
        return sum(1 for line in table if line.split()[6] in inodes)


def test_the_broker_client_holds_no_socket_pair_across_reconnects(gateway, link):
    """libmosquitto would write a byte to a socket pair for every publish, to wake a loop of its own that the gateway
    does not run: once the pair is full, a failing system call per message. The client goes without one, also in
    the fresh session every connection starts with (the first connection's, and the reconnect's)."""
    g = gateway(mqtt={"url": f"mqtt://127.0.0.1:{link.port}"})
    assert unix_sockets(g.proc.pid) == 0
    link.cut()
    assert wait_until(lambda: readyz(g) == 503, 10), "readyz must be 503 while the broker is away"
    link.restore()
    assert wait_until(lambda: readyz(g) == 200, 40), f"gateway did not reconnect:\n{g.log_tail()}"
    assert unix_sockets(g.proc.pid) == 0


def _cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_out_of_descriptors_the_gateway_pauses_accepting_and_recovers(gateway):
    """A gateway at its descriptor limit cannot accept: it pauses (no spinning), serves the devices it has, and
    accepts again once descriptors are free."""
    g = gateway()
    pid = g.proc.pid
    held = [g.connect(g.token(uid("held"))) for _ in range(3)]
    in_use = len(os.listdir(f"/proc/{pid}/fd"))
    subprocess.run(["prlimit", f"--pid={pid}", f"--nofile={in_use + 3}:{in_use + 3}"], check=True)
    extra, refused = [], 0
    for _ in range(5):
        try:
            extra.append(g.connect(g.token(uid("extra"))))
        except Exception:  # the handshake waits in the backlog, unanswered
            refused += 1
    assert refused > 0 and len(extra) <= 3, (len(extra), refused)
    before = _cpu_seconds(pid)
    time.sleep(2)
    spent = _cpu_seconds(pid) - before
    assert spent < 0.5, f"{spent:.2f} s of CPU in 2 s while out of descriptors: accepting spins"
    held[0].send_json({"type": "telemetry", "seq": 1, "data": {"t": 1}})
    held[0].expect_ack(1)
    for d in held[1:] + extra:
        d.close()
    deadline = time.monotonic() + 10
    while True:
        try:
            g.connect(g.token(uid("after")))
            break
        except Exception:
            assert time.monotonic() < deadline, "no connection accepted after descriptors were freed"
    assert g.proc.poll() is None
