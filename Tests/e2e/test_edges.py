"""Hardening (PROTOCOL.md §2–§5 as sharpened): values that must not trap, requests answered exactly once
around disconnects and stops, id reuse, Response Topic restrictions, retained-only mirrors, and the
reported state's size cap. Each test provokes the fault from outside and checks the promise."""

import itertools
import json
import signal
import time

import pytest

from conftest import TcpForwarder, fetch_retained, fetch_retained_json, uid, wait_until
from test_commands import assert_failure, final, no_more_responses, request, response

INT64_MAX = 2**63 - 1


def alive(g):
    assert g.running, g.log_tail()
    status, _, _ = g.http_get("/readyz")
    assert status == 200, g.log_tail()


# ---------------------------------------------------------------------------------------- arithmetic (class 1)


@pytest.mark.parametrize("fields", [
    {"ttl_ms": 100000 * 86_400_000},  # an operator's `--ttl 100000d`
    {"ttl_ms": INT64_MAX},
    {"ttl_ms": 2_592_000_001},
    {"timeout_ms": INT64_MAX},
    {"timeout_ms": 86_400_001},
    {"ttl_ms": -1},
    {"timeout_ms": 0},
])
def test_out_of_range_timeout_and_ttl_are_bad_requests(gw, mqtt, fields):
    dev = uid("big")
    mqtt.subscribe(f"{gw.base}/{dev}/#")
    request(mqtt, gw, dev, "ping", {"id": "b1", **fields})
    assert_failure(final(mqtt, gw, dev, "ping", "b1"), "rejected", "bad_request")
    assert fetch_retained(gw.broker, gw.topic(dev, "pending/b1"), timeout=0.3) is None
    alive(gw)


def test_largest_ttl_and_timeout_are_accepted(gw, mqtt):
    dev = uid("max")
    mqtt.subscribe(f"{gw.base}/{dev}/#")
    request(mqtt, gw, dev, "ping", {"id": "m1", "ttl_ms": 2_592_000_000, "timeout_ms": 86_400_000})
    assert response(mqtt, gw, dev, "ping")["status"] == "queued"
    pm = mqtt.wait_for(lambda m: m.topic == gw.topic(dev, "pending/m1") and m.payload)
    assert pm.prop("MessageExpiryInterval") == 2_592_000 + 86_400
    d = gw.connect(gw.token(dev))
    cmd = d.expect("command", id="m1")
    d.send_json({"type": "response", "id": cmd["id"], "status": "ok"})
    assert final(mqtt, gw, dev, "ping", "m1")["status"] == "ok"


PLANTED = [
    ("pending/x1", {"id": "x1", "command": "ping", "params": {}, "timeout_ms": INT64_MAX, "queued_at": 0,
                    "expires_at": INT64_MAX, "gateway": "gw-x"}),
    ("pending/x2", {"id": "x2", "command": "ping", "params": {}, "timeout_ms": 1000, "queued_at": -INT64_MAX,
                    "expires_at": INT64_MAX, "gateway": "gw-x"}),
    ("pending/x3", {"id": "x3", "command": "ping", "params": {}, "timeout_ms": 1000, "queued_at": 0,
                    "expires_at": -INT64_MAX, "gateway": "gw-x"}),
    ("availability", {"state": "offline", "gateway": "gw-x", "session": INT64_MAX, "ts": 0, "reason": "disconnected"}),
    ("state", {"ts": 0, "version": INT64_MAX, "data": {"a": 1}}),
]


def test_extreme_retained_values_crash_no_gateway_at_start_or_later(gateway, mqtt):
    """Any MQTT client can plant these; every gateway of the fleet reads them at every start."""
    dev, base = uid("plant"), uid("gh")
    for suffix, body in PLANTED:
        mqtt.publish(f"{base}/{dev}/{suffix}", body, retain=True)
    g = gateway(base=base)
    alive(g)
    mqtt.subscribe(f"{g.base}/{dev}/#")
    d = g.connect(g.token(dev))  # session after INT64_MAX, state version after INT64_MAX
    d.send_json({"type": "state", "seq": 1, "data": {"b": 2}})
    while (frame := d.recv_json()) != {"type": "ack", "seq": 1}:
        assert frame["type"] == "command" and frame["id"] in ("x2", "x3"), frame  # the planted, sane ones
    _, state = mqtt.wait_json(g.topic(dev, "state"), lambda s: s["data"].get("b") == 2)
    assert state["version"] == INT64_MAX and state["data"] == {"a": 1, "b": 2}
    d.close()
    for suffix, _ in PLANTED:  # planted while running, too
        mqtt.publish(f"{base}/{dev}/{suffix}", b"", retain=True)
    for suffix, body in PLANTED:
        mqtt.publish(f"{base}/{dev}/{suffix}", body, retain=True)
    d = g.connect(g.token(dev))
    alive(g)
    d.close()
    for suffix, _ in PLANTED:
        mqtt.publish(f"{base}/{dev}/{suffix}", b"", retain=True)


# ------------------------------------------------------------------------- one final response (class 9)


@pytest.fixture
def online(gw, mqtt):
    dev = uid("edge")
    mqtt.subscribe(f"{gw.base}/{dev}/#")
    d = gw.connect(gw.token(dev))
    d.id = dev
    return d


def test_connection_ending_before_the_answer_is_offline_at_once(gw, mqtt, online):
    request(mqtt, gw, online.id, "reboot", {"id": "r1", "timeout_ms": 60000})
    online.expect("command", id="r1")
    online.drop()
    body = final(mqtt, gw, online.id, "reboot", "r1", timeout=5)
    assert_failure(body, "offline", "offline")
    no_more_responses(mqtt, gw, online.id)


def test_a_replaced_connection_answers_its_open_commands_offline(gw, mqtt, online):
    request(mqtt, gw, online.id, "reboot", {"id": "r2", "timeout_ms": 60000})
    online.expect("command", id="r2")
    newer = gw.connect(gw.token(online.id))
    online.expect_close(4000)
    assert_failure(final(mqtt, gw, online.id, "reboot", "r2"), "offline", "offline")
    newer.send_json({"type": "response", "seq": 3, "id": "r2", "status": "ok"})
    newer.expect_nack(3, "unknown_id")
    no_more_responses(mqtt, gw, online.id)


def test_gateway_stop_answers_open_commands_offline(gateway, mqtt):
    g = gateway()
    dev = uid("stop")
    mqtt.subscribe(f"{g.base}/{dev}/#")
    d = g.connect(g.token(dev))
    request(mqtt, g, dev, "reboot", {"id": "s1", "timeout_ms": 60000})
    d.expect("command", id="s1")
    assert g.stop(signal.SIGTERM) == 0
    assert_failure(final(mqtt, g, dev, "reboot", "s1"), "offline", "offline")


@pytest.mark.parametrize("first", [{"ttl_ms": 60000}, {"timeout_ms": 60000}])
def test_reusing_an_open_or_queued_id_is_rejected(gw, mqtt, first):
    dev = uid("reuse")
    mqtt.subscribe(f"{gw.base}/{dev}/#")
    d = gw.connect(gw.token(dev)) if "timeout_ms" in first else None
    request(mqtt, gw, dev, "ping", {"id": "same", **first})
    if d:
        d.expect("command", id="same")
    else:
        assert response(mqtt, gw, dev, "ping")["status"] == "queued"
    request(mqtt, gw, dev, "other", {"id": "same", "params": {"x": 1}, "ttl_ms": 60000})
    assert_failure(final(mqtt, gw, dev, "other", "same"), "rejected", "bad_request")
    if not d:  # the first request is still queued, unchanged
        stored = fetch_retained_json(gw.broker, gw.topic(dev, "pending/same"))
        assert stored["command"] == "ping", stored
        d = gw.connect(gw.token(dev))
        assert d.expect("command", id="same")["name"] == "ping"
    d.send_json({"type": "response", "id": "same", "status": "ok"})
    assert final(mqtt, gw, dev, "ping", "same")["status"] == "ok"


# ------------------------------------------------------------------------------- confused deputy (class 4)


@pytest.mark.parametrize("suffix", ["state", "meta", "availability", "pending/p1", "desired", "response/x"])
def test_a_response_topic_the_contract_gives_to_gateways_gets_nothing(gw, mqtt, online, suffix):
    forbidden = gw.topic(online.id, suffix)
    request(mqtt, gw, online.id, "ping", {"id": "f1"}, response_topic=forbidden, correlation_data=b"c")
    online.expect("command", id="f1")
    online.send_json({"type": "response", "id": "f1", "status": "ok"})
    assert final(mqtt, gw, online.id, "ping", "f1")["status"] == "ok"
    mqtt.assert_nothing(lambda m: m.topic == forbidden and b"\"f1\"" in m.payload, within=0.3)


@pytest.mark.parametrize("topic", ["replies/+/x", "replies/#", "$SYS/x"])
def test_a_wildcard_or_dollar_response_topic_gets_nothing(gw, mqtt, online, topic):
    request(mqtt, gw, online.id, "ping", {"id": "w1"}, response_topic=topic)
    online.expect("command", id="w1")
    online.send_json({"type": "response", "id": "w1", "status": "ok"})
    assert final(mqtt, gw, online.id, "ping", "w1")["status"] == "ok"


def test_a_bridge_request_cannot_write_another_gateways_state(gw, mqtt):
    victim = gw.bridge("state").replace(f"/{gw.gw_id}/", "/gw-victim/")
    mqtt.publish(victim, {"state": "online", "ts": 1, "version": "1"}, retain=True)
    mqtt.subscribe(gw.bridge("response/devices"))
    mqtt.publish(gw.bridge("request/devices"), {"id": "q"}, response_topic=victim)
    mqtt.wait_for(gw.bridge("response/devices"))
    assert json.loads(fetch_retained(gw.broker, victim).payload)["state"] == "online"
    mqtt.publish(victim, b"", retain=True)


# --------------------------------------------------------------------------- retained-only mirrors (class 4)


def test_plain_publishes_on_mirrored_topics_change_nothing(gw, mqtt, online):
    online.send_json({"type": "state", "seq": 1, "data": {"a": 1}})
    online.expect_ack(1)
    mqtt.wait_json(gw.topic(online.id, "state"), lambda s: s["version"] == 1)
    # Not retained: a newer session elsewhere, a cleared state. Neither counts.
    mqtt.publish(gw.topic(online.id, "availability"),
                 {"state": "online", "gateway": "gw-other", "session": 2**53, "ts": 1}, retain=False)
    mqtt.publish(gw.topic(online.id, "state"), b"", retain=False)
    # Retained but not what the contract describes there: changes nothing either.
    mqtt.publish(gw.topic(online.id, "state"), b"not json", retain=True)
    barrier(gw, mqtt)
    online.send_json({"type": "state", "seq": 2, "data": {"b": 2}})
    online.expect_ack(2)
    _, state = mqtt.wait_json(gw.topic(online.id, "state"), lambda s: s["version"] == 2)
    assert state["data"] == {"a": 1, "b": 2}
    assert online.is_open()


def test_an_empty_retained_state_clears_it(gw, mqtt, online):
    online.send_json({"type": "state", "seq": 1, "data": {"a": 1}})
    online.expect_ack(1)
    mqtt.wait_json(gw.topic(online.id, "state"), lambda s: s["version"] == 1)
    mqtt.publish(gw.topic(online.id, "state"), b"", retain=True)
    barrier(gw, mqtt)
    online.send_json({"type": "state", "seq": 2, "data": {"b": 2}})
    online.expect_ack(2)
    _, state = mqtt.wait_json(gw.topic(online.id, "state"), lambda s: s["data"] == {"b": 2})
    assert state["version"] == 1


def barrier(g, mqtt):
    """Returns once the gateway has handled what `mqtt` published before: the broker hands one client's
    messages to the gateway's one connection in order, and the gateway routes them one after another."""
    mqtt.subscribe(g.bridge("response/devices"))
    marker = uid("barrier")
    mqtt.publish(g.bridge("request/devices"), {"id": marker})
    mqtt.wait_json(g.bridge("response/devices"), lambda b: b.get("id") == marker)


# ------------------------------------------------------------------------------ reported state cap (class 6)


def test_state_beyond_max_state_bytes_is_a_bad_message_and_changes_nothing(gateway, mqtt):
    g = gateway(limits={"max_state_bytes": 1024})
    dev = uid("cap")
    mqtt.subscribe(f"{g.base}/{dev}/#")
    d = g.connect(g.token(dev))
    d.send_json({"type": "state", "seq": 1, "data": {"a": "x" * 600}})
    d.expect_ack(1)
    d.send_json({"type": "state", "seq": 2, "data": {"b": "y" * 600}})
    d.expect_nack(2, "bad_message")
    d.send_json({"type": "state", "data": {"b": "y" * 600}})
    d.expect_error("bad_message")
    d.send_json({"type": "state", "seq": 3, "data": {"a": None, "b": "y" * 600}})  # a removal makes room
    d.expect_ack(3)
    _, state = mqtt.wait_json(g.topic(dev, "state"), lambda s: "b" in s["data"])
    assert state["version"] == 2 and set(state["data"]) == {"b"}


def test_removing_many_keys_is_not_quadratic(gw, mqtt, online):
    keys = {f"k{i}": i for i in range(3000)}
    online.send_json({"type": "state", "seq": 1, "data": keys})
    online.expect_ack(1)
    online.send_json({"type": "state", "seq": 2, "data": {k: None for k in keys}})
    online.expect_ack(2, timeout=3)
    _, state = mqtt.wait_json(gw.topic(online.id, "state"), lambda s: s["version"] == 2)
    assert state["data"] == {}


def test_an_answer_the_full_spool_refuses_leaves_its_command_open_for_the_resend(gateway, broker, mqtt):
    """The device's `response` cannot be made safe (broker away, spool full): it gets `nack` `spool_full`,
    and the command stays open, so the resend after the broker is back ends it with exactly one `ok`."""
    fwd = TcpForwarder(broker.port)
    try:
        g = gateway(mqtt={"url": f"mqtt://127.0.0.1:{fwd.port}"}, spool={"max_bytes": "64KiB"})
        dev = uid("refill")
        mqtt.subscribe(f"{g.base}/{dev}/response/#")
        d = g.connect(g.token(dev))
        request(mqtt, g, dev, "reboot", {"id": "r9", "timeout_ms": 60000})
        d.expect("command", id="r9")
        fwd.cut()
        wait_until(lambda: g.http_get("/readyz")[0] == 503, 10)
        seq = 0
        for fill in (1000, 100, 0):  # fill the spool to the last few bytes
            while True:
                seq += 1
                d.send_json({"type": "telemetry", "seq": seq, "data": {"fill": "x" * fill}})
                if d.recv_json(10)["type"] == "nack":
                    break
        answer = {"type": "response", "id": "r9", "status": "ok", "data": {"log": "y" * 500}}
        d.send_json({**answer, "seq": 9000})
        d.expect_nack(9000, "spool_full")
        fwd.restore()
        wait_until(lambda: g.http_get("/readyz")[0] == 200, 40)
        # The replay of the full spool may still be running: the spool stays full until it has drained, and
        # the device retries as `spool_full` tells it to.
        deadline = time.monotonic() + 30
        for seq in itertools.count(9001):
            d.send_json({**answer, "seq": seq})
            frame = d.recv_json(20)
            if frame["type"] == "ack":
                break
            assert (frame["type"], frame["seq"], frame["error"]["code"]) == ("nack", seq, "spool_full"), frame
            assert time.monotonic() < deadline, "the spool never drained after the broker came back"
            time.sleep(0.2)
        assert final(mqtt, g, dev, "reboot", "r9", timeout=20)["status"] == "ok"
        no_more_responses(mqtt, g, dev, within=0.5)
    finally:
        fwd.cut()
