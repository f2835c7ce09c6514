"""PROTOCOL.md section 5 (and 3.3 for media answers): commands."""

import json
import secrets
import time

import pytest

from conftest import assert_ts_now, fetch_retained, now_ms, uid, wait_until

CAPS = {
    "commands": {
        "set_setpoint": {"params": {"celsius": {"type": "number", "minimum": 5, "maximum": 35}}},
        "set_mode": {"params": {"mode": {"type": "string", "enum": ["heat", "off"]}}},
        "set_count": {"params": {"n": {"type": "integer", "minimum": 0}}},
        "set_flag": {"params": {"on": {"type": "boolean"}}},
        "configure": {"params": {"cfg": {"type": "object"}}},
        "reboot": {"params": {"delay": {"type": "integer", "required": False}}},
        "ping": {},
    },
    "telemetry": {"temperature": {"unit": "°C"}},
}


def request(mqtt, gw, dev, cmd, body=None, raw=None, **kw):
    payload = raw if raw is not None else json.dumps(body if body is not None else {})
    mqtt.publish(gw.topic(dev, f"request/{cmd}"), payload, **kw)


def response(mqtt, gw, dev, cmd, pred=None, timeout=5):
    """The next response on response/<cmd> (optionally matching pred(body))."""
    m, body = mqtt.wait_json(gw.topic(dev, f"response/{cmd}"), pred, timeout=timeout)
    assert not m.retain and m.qos == 1, m
    return body


def final(mqtt, gw, dev, cmd, cmd_id=None, timeout=5):
    return response(
        mqtt, gw, dev, cmd,
        lambda b: b.get("status") != "queued" and (cmd_id is None or b.get("id") == cmd_id),
        timeout=timeout,
    )


def assert_failure(body, status, code):
    assert body.get("status") == status, body
    assert isinstance(body.get("error"), dict), body
    assert body["error"].get("code") == code, body
    assert isinstance(body["error"].get("message"), str), body
    assert_ts_now(body.get("ts"))


def no_more_responses(mqtt, gw, dev, within=0.4):
    mqtt.assert_nothing(f"{gw.base}/{dev}/response/#", within=within)


@pytest.fixture
def online(gw, mqtt):
    """A connected device (no hello); mqtt follows its topics."""
    dev = uid("cmd")
    mqtt.subscribe(f"{gw.base}/{dev}/#")
    d = gw.connect(gw.token(dev, kind="thermostat"))
    d.id = dev
    return d


def hello(d, caps):
    d.send_json({"type": "hello", "seq": 900, "kind": "thermostat", "model": "m", "firmware": "f",
                 "capabilities": caps})
    d.expect_ack(900)


# ------------------------------------------------------------------------------------------------ round trip


def test_command_round_trip_ok_with_response_topic_and_correlation_data(gw, mqtt, online):
    reply_topic = f"replies/{uid('r')}"
    mqtt.subscribe(reply_topic)
    request(mqtt, gw, online.id, "set_setpoint", {"id": "c-81f2", "params": {"celsius": 21.5}, "timeout_ms": 4000},
            response_topic=reply_topic, correlation_data=b"\x00corr-1\xff")
    cmd = online.expect("command")
    received = now_ms()
    assert set(cmd) == {"type", "id", "name", "params", "deadline"}, cmd
    assert cmd["id"] == "c-81f2"
    assert cmd["name"] == "set_setpoint"
    assert cmd["params"] == {"celsius": 21.5}
    assert type(cmd["deadline"]) is int
    assert received - 1000 < cmd["deadline"] <= received + 4000, (received, cmd["deadline"])

    online.send_json({"type": "response", "seq": 5, "id": "c-81f2", "status": "ok", "data": {"celsius": 21.5}})
    online.expect_ack(5)
    body = final(mqtt, gw, online.id, "set_setpoint")
    assert set(body) == {"id", "status", "data", "ts"}, body
    assert body["id"] == "c-81f2" and body["status"] == "ok" and body["data"] == {"celsius": 21.5}
    assert_ts_now(body["ts"])

    m = mqtt.wait_for(reply_topic)
    assert m.json() == body
    assert m.prop("CorrelationData") == b"\x00corr-1\xff"
    no_more_responses(mqtt, gw, online.id)


def test_default_timeout_sets_deadline(gw, mqtt, online):
    request(mqtt, gw, online.id, "noop", {"id": "d1"})
    cmd = online.expect("command", id="d1", name="noop")
    received = now_ms()
    assert received + 8000 < cmd["deadline"] <= received + 10000, (received, cmd["deadline"])
    online.send_json({"type": "response", "id": "d1", "status": "ok"})
    body = final(mqtt, gw, online.id, "noop", "d1")
    assert body["status"] == "ok"
    assert "data" in body and body["data"] is None, body  # data always present for device answers
    assert "error" not in body


def test_empty_request_payload_means_empty_object_and_gateway_makes_an_id(gw, mqtt, online):
    request(mqtt, gw, online.id, "ping", raw=b"")
    cmd = online.expect("command", name="ping")
    assert isinstance(cmd["id"], str) and cmd["id"], cmd
    assert cmd.get("params", {}) == {}, cmd
    online.send_json({"type": "response", "id": cmd["id"], "status": "ok", "data": "pong"})
    body = final(mqtt, gw, online.id, "ping")
    assert body["id"] == cmd["id"] and body["data"] == "pong"


def test_generated_ids_are_unique(gw, mqtt, online):
    request(mqtt, gw, online.id, "ping", {})
    request(mqtt, gw, online.id, "ping", {})
    a = online.expect("command", name="ping")
    b = online.expect("command", name="ping")
    assert a["id"] != b["id"]


def test_device_error_is_carried(gw, mqtt, online):
    request(mqtt, gw, online.id, "calibrate", {"id": "e1", "params": {}})
    online.expect("command", id="e1")
    err = {"code": "busy", "message": "motor running"}
    online.send_json({"type": "response", "id": "e1", "status": "error", "error": err})
    body = final(mqtt, gw, online.id, "calibrate", "e1")
    assert body["status"] == "error"
    assert body["error"] == err
    assert "data" in body and body["data"] is None
    assert_ts_now(body["ts"])


def test_integer_id_echoed_as_integer(gw, mqtt, online):
    request(mqtt, gw, online.id, "ping", raw=b'{"id":42}')
    cmd = online.expect("command")
    assert cmd["id"] == 42 and type(cmd["id"]) is int, cmd
    online.send_json({"type": "response", "id": 42, "status": "ok"})
    m, body = mqtt.wait_json(gw.topic(online.id, "response/ping"))
    assert body["id"] == 42 and type(body["id"]) is int
    assert b'"id":42' in m.payload.replace(b" ", b"")


def test_negative_integer_id_echoed_as_integer(gw, mqtt, online):
    """PROTOCOL 5: an id is an integer (negative ones too) or a string of the pattern."""
    request(mqtt, gw, online.id, "ping", raw=b'{"id":-7}')
    cmd = online.expect("command")
    assert cmd["id"] == -7 and type(cmd["id"]) is int, cmd
    online.send_json({"type": "response", "id": -7, "status": "ok"})
    m, body = mqtt.wait_json(gw.topic(online.id, "response/ping"))
    assert body["id"] == -7 and body["status"] == "ok"
    assert b'"id":-7' in m.payload.replace(b" ", b"")


def test_longest_valid_string_id_accepted(gw, mqtt, online):
    cid = "A" + "b.c_d:e-" * 15 + "0123456"
    assert len(cid) == 128
    request(mqtt, gw, online.id, "ping", {"id": cid})
    online.expect("command", id=cid)
    online.send_json({"type": "response", "id": cid, "status": "ok"})
    assert final(mqtt, gw, online.id, "ping", cid)["status"] == "ok"


@pytest.mark.parametrize(
    "bad_id",
    ["a/b", "x" * 129, "", "a b", "a#", "a+b", 1.5, True, [1], {"a": 1}],
    ids=["slash", "129_chars", "empty", "space", "hash", "plus", "float", "bool", "array", "object"],
)
def test_invalid_id_rejected_bad_request(gw, mqtt, online, bad_id):
    cmd = uid("c").replace("-", "_")
    request(mqtt, gw, online.id, cmd, {"id": bad_id, "params": {}})
    body = final(mqtt, gw, online.id, cmd)
    assert_failure(body, "rejected", "bad_request")
    online.expect_no_frame(0.3)


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"[1,2]", b'"text"', b"42", b'{"params":[1]}', b'{"params":"x"}', b'{"timeout_ms":"5"}',
     b'{"timeout_ms":0}', b'{"timeout_ms":-5}', b'{"ttl_ms":-1}', b"\xff\xfe"],
    ids=["bad_json", "array", "string", "number", "params_array", "params_string", "timeout_string",
         "timeout_zero", "timeout_negative", "ttl_negative", "invalid_utf8"],
)
def test_bad_request_rejected(gw, mqtt, online, raw):
    request(mqtt, gw, online.id, "ping", raw=raw)
    body = final(mqtt, gw, online.id, "ping")
    assert_failure(body, "rejected", "bad_request")
    online.expect_no_frame(0.3)


def test_timeout_when_device_does_not_answer(gw, mqtt, online):
    t0 = now_ms()
    request(mqtt, gw, online.id, "slow", {"id": "t1", "timeout_ms": 500})
    cmd = online.expect("command", id="t1")
    assert cmd["deadline"] <= now_ms() + 500
    body = final(mqtt, gw, online.id, "slow", "t1", timeout=5)
    elapsed = now_ms() - t0
    assert_failure(body, "timeout", "timeout")
    assert 400 <= elapsed <= 3000, elapsed
    # A late answer is for a finished command: nack unknown_id, nothing published.
    online.send_json({"type": "response", "seq": 3, "id": "t1", "status": "ok"})
    online.expect_nack(3, "unknown_id")
    no_more_responses(mqtt, gw, online.id)


# ------------------------------------------------------------------------------------------------ capabilities


@pytest.mark.parametrize(
    "cmd,params,code",
    [
        ("fly", {}, "unknown_command"),
        ("set_setpoint", {"celsius": 4.99}, "bad_params"),
        ("set_setpoint", {"celsius": 35.01}, "bad_params"),
        ("set_setpoint", {"celsius": "21"}, "bad_params"),
        ("set_setpoint", {}, "bad_params"),  # required by default
        ("set_setpoint", {"celsius": 21, "fan": True}, "bad_params"),  # unknown param
        ("set_mode", {"mode": "cool"}, "bad_params"),  # enum
        ("set_count", {"n": 1.5}, "bad_params"),  # integer
        ("set_count", {"n": -1}, "bad_params"),  # minimum
        ("set_flag", {"on": "yes"}, "bad_params"),  # boolean
        ("configure", {"cfg": [1]}, "bad_params"),  # object
        ("ping", {"x": 1}, "bad_params"),  # declared without params: accepts none
    ],
    ids=["unknown_command", "below_minimum", "above_maximum", "wrong_type_number", "missing_required",
         "unknown_param", "not_in_enum", "not_integer", "integer_below_minimum", "not_boolean", "not_object",
         "param_on_paramless_command"],
)
def test_capabilities_refuse_bad_commands(gw, mqtt, online, cmd, params, code):
    hello(online, CAPS)
    request(mqtt, gw, online.id, cmd, {"id": "k1", "params": params})
    body = final(mqtt, gw, online.id, cmd, "k1")
    assert_failure(body, "rejected", code)
    online.expect_no_frame(0.3)


@pytest.mark.parametrize(
    "cmd,params",
    [
        ("set_setpoint", {"celsius": 5}),  # minimum inclusive
        ("set_setpoint", {"celsius": 35}),  # maximum inclusive
        ("set_setpoint", {"celsius": 21.5}),
        ("set_mode", {"mode": "heat"}),
        ("set_count", {"n": 3}),
        ("set_flag", {"on": False}),
        ("configure", {"cfg": {"a": [1]}}),
        ("reboot", {}),  # optional param omitted
        ("reboot", {"delay": 5}),
        ("ping", {}),
    ],
)
def test_capabilities_accept_good_commands(gw, mqtt, online, cmd, params):
    hello(online, CAPS)
    request(mqtt, gw, online.id, cmd, {"id": "g1", "params": params})
    frame = online.expect("command", id="g1", name=cmd)
    assert frame["params"] == params
    online.send_json({"type": "response", "id": "g1", "status": "ok"})
    assert final(mqtt, gw, online.id, cmd, "g1")["status"] == "ok"


def test_device_without_commands_in_capabilities_gets_anything(gw, mqtt, online):
    hello(online, {"telemetry": {"temperature": {"unit": "°C"}}})
    request(mqtt, gw, online.id, "whatever_it_is", {"id": "w1", "params": {"any": [1, {"x": None}]}})
    frame = online.expect("command", id="w1", name="whatever_it_is")
    assert frame["params"] == {"any": [1, {"x": None}]}


def test_capabilities_of_last_hello_used_while_offline(gw, mqtt):
    """An offline device's last hello still filters commands (unknown_command before offline)."""
    dev = uid("cap")
    mqtt.subscribe(f"{gw.base}/{dev}/#")
    d = gw.connect(gw.token(dev))
    hello(d, CAPS)
    d.close()
    mqtt.wait_json(gw.topic(dev, "availability"), lambda b: b["state"] == "offline")
    request(mqtt, gw, dev, "fly", {"id": "o1"})
    assert_failure(final(mqtt, gw, dev, "fly", "o1"), "rejected", "unknown_command")
    request(mqtt, gw, dev, "ping", {"id": "o2"})
    assert_failure(final(mqtt, gw, dev, "ping", "o2"), "offline", "offline")


# ------------------------------------------------------------------------------------------------ offline / queue


def test_offline_device_with_ttl_0_answers_offline(gw, mqtt):
    dev = uid("off")
    mqtt.subscribe(f"{gw.base}/{dev}/#")
    request(mqtt, gw, dev, "ping", {"id": "f1"})
    body = final(mqtt, gw, dev, "ping", "f1")
    assert_failure(body, "offline", "offline")
    assert body["id"] == "f1"
    no_more_responses(mqtt, gw, dev)


def test_offline_device_with_ttl_is_queued_then_delivered_on_connect(gw, mqtt):
    dev = uid("que")
    mqtt.subscribe(f"{gw.base}/{dev}/#")
    reply_topic = f"replies/{uid('r')}"
    mqtt.subscribe(reply_topic)
    request(mqtt, gw, dev, "set_mode", {"id": "q1", "params": {"mode": "heat"}, "ttl_ms": 30000, "timeout_ms": 5000},
            response_topic=reply_topic, correlation_data=b"q1-corr")
    interim = response(mqtt, gw, dev, "set_mode")
    assert interim["id"] == "q1" and interim["status"] == "queued", interim
    assert "error" not in interim
    m = mqtt.wait_for(reply_topic)
    assert m.json()["status"] == "queued" and m.prop("CorrelationData") == b"q1-corr"

    pm = mqtt.wait_for(lambda x: x.topic == gw.topic(dev, "pending/q1") and x.payload)
    assert pm.retain and pm.qos == 1
    pm.json()
    expiry = pm.prop("MessageExpiryInterval")
    assert expiry is not None, "pending/<id> must carry a Message Expiry Interval"
    assert 28 + 86400 <= expiry <= 30 + 86400, expiry  # the TTL plus a day of grace
    stored = fetch_retained(gw.broker, gw.topic(dev, "pending/q1"))
    assert stored is not None and stored.payload

    request(mqtt, gw, dev, "set_mode", {"id": "q2", "params": {"mode": "off"}, "ttl_ms": 30000})
    assert response(mqtt, gw, dev, "set_mode")["status"] == "queued"

    d = gw.connect(gw.token(dev))  # welcome first (checked by connect)
    c1 = d.expect("command")
    c2 = d.expect("command")
    assert (c1["id"], c1["name"], c1["params"]) == ("q1", "set_mode", {"mode": "heat"})
    assert (c2["id"], c2["params"]) == ("q2", {"mode": "off"})

    cleared = mqtt.wait_for(lambda x: x.topic == gw.topic(dev, "pending/q1") and not x.payload)
    assert cleared.retain, "pending must be cleared with an empty retained message"
    mqtt.wait_for(lambda x: x.topic == gw.topic(dev, "pending/q2") and not x.payload)
    assert fetch_retained(gw.broker, gw.topic(dev, "pending/q1"), timeout=0.5) is None

    d.send_json({"type": "response", "id": "q1", "status": "ok", "data": {"mode": "heat"}})
    body = final(mqtt, gw, dev, "set_mode", "q1")
    assert body["status"] == "ok" and body["data"] == {"mode": "heat"}
    m = mqtt.wait_for(reply_topic)
    assert m.json() == body and m.prop("CorrelationData") == b"q1-corr"


def test_queued_command_expires(gw, mqtt):
    dev = uid("exp")
    mqtt.subscribe(f"{gw.base}/{dev}/#")
    t0 = time.monotonic()
    request(mqtt, gw, dev, "ping", {"id": "x1", "ttl_ms": 1000})
    assert response(mqtt, gw, dev, "ping")["status"] == "queued"
    pm = mqtt.wait_for(lambda x: x.topic == gw.topic(dev, "pending/x1") and x.payload)
    assert pm.prop("MessageExpiryInterval") == 1 + 86400  # the TTL rounded up, plus a day of grace
    body = final(mqtt, gw, dev, "ping", "x1", timeout=6)
    assert_failure(body, "expired", "expired")
    assert time.monotonic() - t0 >= 0.9
    assert fetch_retained(gw.broker, gw.topic(dev, "pending/x1"), timeout=0.5) is None
    # It is not delivered later.
    d = gw.connect(gw.token(dev))
    d.expect_no_frame(0.5)
    no_more_responses(mqtt, gw, dev, within=0.1)


def test_queued_commands_expire_each_at_its_own_time_in_any_order(gw, mqtt):
    """One expiry timer serves every queued command, armed for the earliest: a shorter TTL queued after a longer one
    expires first, and the longer one still on time after it."""
    dev = uid("exps")
    mqtt.subscribe(f"{gw.base}/{dev}/#")
    t0 = time.monotonic()
    request(mqtt, gw, dev, "ping", {"id": "long", "ttl_ms": 2500})
    request(mqtt, gw, dev, "ping", {"id": "short", "ttl_ms": 500})
    first = final(mqtt, gw, dev, "ping", timeout=6)
    assert first["id"] == "short" and first["status"] == "expired", first
    assert time.monotonic() - t0 >= 0.4
    second = final(mqtt, gw, dev, "ping", timeout=6)
    assert second["id"] == "long" and second["status"] == "expired", second
    assert time.monotonic() - t0 >= 2.4


def test_queue_full_after_max_pending_of_all_devices(gateway, mqtt):
    """`commands.max_pending` bounds the queued commands of all devices together: requests for ever new device ids
    cannot grow every gateway's mirror (and the broker's retained store) without end."""
    g = gateway(commands={"max_pending": 2})
    devices = [uid("all") for _ in range(3)]
    for dev in devices:
        mqtt.subscribe(f"{g.base}/{dev}/#")
    for dev in devices[:2]:
        request(mqtt, g, dev, "ping", {"id": "q1", "ttl_ms": 60000})
        assert response(mqtt, g, dev, "ping", lambda b: b["id"] == "q1")["status"] == "queued"
    request(mqtt, g, devices[2], "ping", {"id": "q1", "ttl_ms": 60000})
    assert_failure(final(mqtt, g, devices[2], "ping", "q1"), "rejected", "queue_full")
    # Delivering one makes room.
    d = g.connect(g.token(devices[0]))
    assert d.expect("command")["id"] == "q1"
    wait_until(lambda: fetch_retained(g.broker, g.topic(devices[0], "pending/q1"), timeout=0.2) is None, 5)
    request(mqtt, g, devices[2], "ping", {"id": "q2", "ttl_ms": 60000})
    assert response(mqtt, g, devices[2], "ping", lambda b: b["id"] == "q2")["status"] == "queued"


def test_queue_full_after_max_pending(gateway, mqtt):
    g = gateway(commands={"max_pending_per_device": 2})
    dev = uid("full")
    mqtt.subscribe(f"{g.base}/{dev}/#")
    for i in (1, 2):
        request(mqtt, g, dev, "ping", {"id": f"p{i}", "ttl_ms": 60000})
        assert response(mqtt, g, dev, "ping", lambda b: b["id"] == f"p{i}")["status"] == "queued"
    request(mqtt, g, dev, "ping", {"id": "p3", "ttl_ms": 60000})
    assert_failure(final(mqtt, g, dev, "ping", "p3"), "rejected", "queue_full")
    assert fetch_retained(g.broker, g.topic(dev, "pending/p3"), timeout=0.5) is None
    d = g.connect(g.token(dev))
    assert [d.expect("command")["id"], d.expect("command")["id"]] == ["p1", "p2"]
    d.expect_no_frame(0.3)


def test_response_to_unknown_id_is_nacked_and_not_published(gw, mqtt, online):
    online.send_json({"type": "response", "seq": 8, "id": "never-sent", "status": "ok", "data": {}})
    online.expect_nack(8, "unknown_id")
    online.send_json({"type": "response", "id": "never-sent-2", "status": "ok"})  # no seq: silently dropped
    online.send_json({"type": "telemetry", "seq": 9, "data": {}})
    online.expect_ack(9)
    no_more_responses(mqtt, gw, online.id)


def test_second_answer_to_same_command_is_unknown_id(gw, mqtt, online):
    request(mqtt, gw, online.id, "ping", {"id": "twice"})
    online.expect("command", id="twice")
    online.send_json({"type": "response", "seq": 1, "id": "twice", "status": "ok"})
    online.expect_ack(1)
    final(mqtt, gw, online.id, "ping", "twice")
    online.send_json({"type": "response", "seq": 2, "id": "twice", "status": "ok"})
    online.expect_nack(2, "unknown_id")
    no_more_responses(mqtt, gw, online.id)


def test_set_topic_is_shorthand_for_set_command(gw, mqtt, online):
    mqtt.publish(gw.topic(online.id, "set"), {"mode": "heat", "celsius": 20})
    frame = online.expect("command", name="set")
    assert frame["params"] == {"mode": "heat", "celsius": 20}
    online.send_json({"type": "response", "id": frame["id"], "status": "ok"})
    body = final(mqtt, gw, online.id, "set")
    assert body["status"] == "ok" and body["id"] == frame["id"]


def test_media_frame_completes_pending_command(gw, mqtt, online):
    request(mqtt, gw, online.id, "snapshot", {"id": "snap-1", "timeout_ms": 5000})
    online.expect("command", id="snap-1", name="snapshot")
    image = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 100
    online.send_media({"stream": "snapshot", "content_type": "image/jpeg", "id": "snap-1"}, image)
    m = mqtt.wait_for(gw.topic(online.id, "media/snapshot"))
    assert m.payload == image, "media must be published as raw bytes"
    assert m.prop("ContentType") == "image/jpeg"
    assert m.qos == 0
    body = final(mqtt, gw, online.id, "snapshot", "snap-1")
    assert body["status"] == "ok"
    assert body["data"] == {"topic": gw.topic(online.id, "media/snapshot"), "bytes": len(image),
                            "content_type": "image/jpeg"}
    no_more_responses(mqtt, gw, online.id)


def test_two_gateways_exactly_one_offline_answer(gateway, mqtt):
    a = gateway()
    b = gateway(fleet_of=a)
    dev = uid("nobody")
    mqtt.subscribe(f"{a.base}/{dev}/#")
    request(mqtt, a, dev, "ping", {"id": "one"})
    assert_failure(final(mqtt, a, dev, "ping", "one"), "offline", "offline")
    no_more_responses(mqtt, a, dev, within=1.0)


def test_two_gateways_only_holder_delivers(gateway, mqtt):
    a = gateway()
    b = gateway(fleet_of=a)
    dev = uid("held")
    mqtt.subscribe(f"{a.base}/{dev}/#")
    d = b.connect(b.token(dev))
    mqtt.wait_json(a.topic(dev, "availability"), lambda x: x["state"] == "online")
    time.sleep(0.3)  # let gateway a see the availability
    request(mqtt, a, dev, "ping", {"id": "held-1"})
    d.expect("command", id="held-1")
    d.expect_no_frame(0.3)
    d.send_json({"type": "response", "id": "held-1", "status": "ok"})
    assert final(mqtt, a, dev, "ping", "held-1")["status"] == "ok"
    no_more_responses(mqtt, a, dev, within=0.5)


def test_pending_command_delivered_by_another_gateway(gateway, mqtt):
    a = gateway()
    b = gateway(fleet_of=a)
    dev = uid("roam")
    mqtt.subscribe(f"{a.base}/{dev}/#")
    request(mqtt, a, dev, "ping", {"id": "roam-1", "ttl_ms": 30000})
    assert response(mqtt, a, dev, "ping")["status"] == "queued"
    mqtt.wait_for(lambda x: x.topic == a.topic(dev, "pending/roam-1") and x.payload)
    a.stop()
    d = b.connect(b.token(dev))
    d.expect("command", id="roam-1", name="ping")
    d.send_json({"type": "response", "id": "roam-1", "status": "ok"})
    answer = final(mqtt, a, dev, "ping", "roam-1")
    assert answer["status"] == "ok", answer


def test_queued_copy_of_a_request_delivered_here_is_only_cleared(gateway, mqtt):
    """A request can be queued by one gateway (its shared copy came while the device was nowhere) and delivered by
    another, which handled its own copy only after the device had connected there (its network thread was behind:
    seen once in the suite, behind test_pending_command_delivered_by_another_gateway). The queued copy must neither
    reach the device again nor be answered `rejected`: one delivery, one final response. The test plays the gateway
    that queued it and publishes its retained `pending/<id>` itself, after the delivery."""
    g = gateway()
    dev = uid("twice")
    mqtt.subscribe(f"{g.base}/{dev}/#")
    d = g.connect(g.token(dev))
    mqtt.wait_json(g.topic(dev, "availability"), lambda x: x["state"] == "online")
    request(mqtt, g, dev, "ping", {"id": "twice-1"})
    d.expect("command", id="twice-1", name="ping")
    now = int(time.time() * 1000)
    queued = {"id": "twice-1", "command": "ping", "params": {}, "timeout_ms": 10000, "queued_at": now,
              "expires_at": now + 30000, "gateway": "gw-elsewhere"}
    mqtt.publish(g.topic(dev, "pending/twice-1"), json.dumps(queued), retain=True)
    mqtt.wait_for(lambda x: x.topic == g.topic(dev, "pending/twice-1") and not x.payload)
    d.expect_no_frame(0.3)
    d.send_json({"type": "response", "id": "twice-1", "status": "ok"})
    answer = final(mqtt, g, dev, "ping", "twice-1")
    assert answer["status"] == "ok", answer
    no_more_responses(mqtt, g, dev, within=0.5)


def test_queued_copy_of_a_request_answered_here_is_only_cleared(gateway, mqtt):
    """As above, with the device quicker than the queued copy: it has answered already when the copy arrives. The
    copy, queued before the delivery, is cleared; a later request with the same id, queued after it, is delivered."""
    g = gateway()
    dev = uid("late")
    mqtt.subscribe(f"{g.base}/{dev}/#")
    d = g.connect(g.token(dev))
    mqtt.wait_json(g.topic(dev, "availability"), lambda x: x["state"] == "online")
    queued_at = now_ms()
    request(mqtt, g, dev, "ping", {"id": "late-1"})
    d.expect("command", id="late-1", name="ping")
    d.send_json({"type": "response", "id": "late-1", "status": "ok"})
    assert final(mqtt, g, dev, "ping", "late-1")["status"] == "ok"

    def queue(at):
        copy = {"id": "late-1", "command": "ping", "params": {}, "timeout_ms": 10000, "queued_at": at,
                "expires_at": at + 30000, "gateway": "gw-elsewhere"}
        mqtt.publish(g.topic(dev, "pending/late-1"), json.dumps(copy), retain=True)
        mqtt.wait_for(lambda x: x.topic == g.topic(dev, "pending/late-1") and not x.payload)

    queue(queued_at - 1)
    d.expect_no_frame(0.3)
    no_more_responses(mqtt, g, dev, within=0.3)
    queue(now_ms() + 1)
    d.expect("command", id="late-1", name="ping")
    d.send_json({"type": "response", "id": "late-1", "status": "ok"})
    assert final(mqtt, g, dev, "ping", "late-1")["status"] == "ok"


def test_a_retained_pending_command_naming_another_id_than_its_topic_is_ignored(gateway, mqtt):
    """A retained `pending/<id>` must name that id: delivering, clearing and expiring go by the command's id, so
    one naming another would be delivered, its own topic never cleared, and delivered again on every reconnect.
    It is ignored, like any retained payload without the shape of a queued command; a well-formed one still goes."""
    g = gateway()
    dev = uid("pid")
    mqtt.subscribe(f"{g.base}/{dev}/#")
    now = now_ms()

    def queued(command_id):
        return json.dumps({"id": command_id, "command": "ping", "params": {}, "timeout_ms": 10000, "queued_at": now,
                           "expires_at": now + 30000, "gateway": "gw-elsewhere"})
    mqtt.publish(g.topic(dev, "pending/pid-topic"), queued("pid-other"), retain=True)
    mqtt.publish(g.topic(dev, "pending/pid-good"), queued("pid-good"), retain=True)
    mqtt.wait_for(lambda x: x.topic == g.topic(dev, "pending/pid-good") and x.payload)
    time.sleep(0.3)
    d = g.connect(g.token(dev))
    d.expect("command", id="pid-good", name="ping")
    d.expect_no_frame(0.5)
    assert fetch_retained(g.broker, g.topic(dev, "pending/pid-good"), timeout=2) is None
    d.close()


def test_default_timeout_from_config(gateway, mqtt):
    g = gateway(commands={"default_timeout_ms": 700})
    dev = uid("dflt")
    mqtt.subscribe(f"{g.base}/{dev}/#")
    d = g.connect(g.token(dev))
    t0 = time.monotonic()
    request(mqtt, g, dev, "ping", {"id": "dt"})
    cmd = d.expect("command", id="dt")
    assert cmd["deadline"] <= now_ms() + 700
    assert_failure(final(mqtt, g, dev, "ping", "dt"), "timeout", "timeout")
    assert 0.6 <= time.monotonic() - t0 <= 3


def test_a_retained_request_is_not_acted_on_again_when_a_gateway_subscribes(gateway, mqtt):
    """A request published with the retain flag was acted on when it was published; the broker sends it again to
    every new subscription, a gateway's start or reconnect, and those copies are ignored (they were delivered again
    and answered again, at every reconnect)."""
    base = f"gh{secrets.token_hex(4)}"
    dev = uid("retreq")
    mqtt.subscribe(f"{base}/{dev}/response/#")
    mqtt.publish(f"{base}/{dev}/request/reboot", json.dumps({"id": "kept"}), retain=True)
    try:
        g = gateway(base=base)
        d = g.connect(g.token(dev))
        d.expect_no_frame(within=1)
        mqtt.assert_nothing(f"{base}/{dev}/response/#", within=0.5)
        # A request published now is acted on as usual.
        request(mqtt, g, dev, "reboot", {"id": "live"})
        assert d.expect("command")["id"] == "live"
    finally:
        mqtt.publish(f"{base}/{dev}/request/reboot", b"", retain=True)
