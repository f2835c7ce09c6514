"""PROTOCOL.md sections 3.2 and 4: device messages and what they publish."""

import json

import pytest

from conftest import assert_ts_now, fetch_retained, now_ms, uid

U64_MAX = 2**64 - 1


@pytest.fixture
def dev(gw, mqtt):
    """A connected sensor device whose topics the `mqtt` client follows."""
    device_id = uid("msg")
    mqtt.subscribe(f"{gw.base}/{device_id}/#")
    d = gw.connect(gw.token(device_id, kind="sensor"))
    d.id = device_id
    return d


# ---------------------------------------------------------------------------------------------------- hello / meta


def test_hello_publishes_retained_meta_with_every_key(gw, mqtt, dev):
    caps = {"commands": {"reboot": {"params": {}}}, "telemetry": {"temperature": {"unit": "°C"}}}
    dev.send_json({"type": "hello", "seq": 1, "kind": "thermostat", "model": "T-1000", "firmware": "1.2.3",
                   "capabilities": caps})
    dev.expect_ack(1)
    m, meta = mqtt.wait_json(gw.topic(dev.id, "meta"), lambda b: b.get("model") is not None)
    assert m.retain, "meta must be retained"
    assert m.qos == 1
    assert set(meta) == {"ts", "kind", "model", "firmware", "capabilities"}, meta
    assert meta["kind"] == "thermostat"
    assert meta["model"] == "T-1000"
    assert meta["firmware"] == "1.2.3"
    assert meta["capabilities"] == caps
    assert_ts_now(meta["ts"])
    stored = fetch_retained(gw.broker, gw.topic(dev.id, "meta"))
    assert stored is not None and stored.json()["model"] == "T-1000"


def test_meta_kind_from_token_when_hello_has_none_and_unknown_keys_null(gw, mqtt, dev):
    dev.send_json({"type": "hello", "seq": 2})
    dev.expect_ack(2)
    _, meta = mqtt.wait_json(gw.topic(dev.id, "meta"))
    assert set(meta) == {"ts", "kind", "model", "firmware", "capabilities"}, meta
    assert meta["kind"] == "sensor"  # from the token
    assert meta["model"] is None
    assert meta["firmware"] is None
    assert meta["capabilities"] is None


# ---------------------------------------------------------------------------------------------------- telemetry


def test_telemetry_payload_with_ts_seq_data_and_ack(gw, mqtt, dev):
    dev.send_json({"type": "telemetry", "seq": 10, "ts": 1700000000123, "data": {"temperature": 21.5}})
    dev.expect_ack(10)
    m, body = mqtt.wait_json(gw.topic(dev.id, "telemetry"))
    assert body == {"ts": 1700000000123, "seq": 10, "data": {"temperature": 21.5}}
    assert not m.retain, "telemetry is not retained"
    assert m.qos == 1  # configured telemetry_qos


def test_telemetry_without_ts_gets_gateway_time(gw, mqtt, dev):
    before = now_ms()
    dev.send_json({"type": "telemetry", "seq": 1, "data": {"v": 1}})
    dev.expect_ack(1)
    after = now_ms()
    _, body = mqtt.wait_json(gw.topic(dev.id, "telemetry"))
    assert type(body["ts"]) is int
    assert before - 50 <= body["ts"] <= after + 50, (before, body["ts"], after)


def test_telemetry_without_seq_has_no_seq_and_no_ack(gw, mqtt, dev):
    dev.send_json({"type": "telemetry", "data": {"v": 2}})
    _, body = mqtt.wait_json(gw.topic(dev.id, "telemetry"))
    assert "seq" not in body, body
    assert set(body) == {"ts", "data"}
    assert body["data"] == {"v": 2}
    dev.expect_no_frame(0.3)


def test_telemetry_qos0_override(gw, mqtt, dev):
    dev.send_json({"type": "telemetry", "seq": 3, "qos": 0, "data": {"v": 3}})
    dev.expect_ack(3)
    m, body = mqtt.wait_json(gw.topic(dev.id, "telemetry"))
    assert m.qos == 0
    assert body["data"] == {"v": 3}


def test_telemetry_qos_config_zero(gateway, mqtt):
    g = gateway(mqtt={"telemetry_qos": 0})
    dev = uid("q0")
    mqtt.subscribe(g.topic(dev, "telemetry"))
    d = g.connect(g.token(dev))
    d.send_json({"type": "telemetry", "seq": 1, "data": {"v": 1}})
    d.expect_ack(1)
    m = mqtt.wait_for(g.topic(dev, "telemetry"))
    assert m.qos == 0
    d.send_json({"type": "telemetry", "seq": 2, "qos": 1, "data": {"v": 1}})
    d.expect_ack(2)
    m = mqtt.wait_for(g.topic(dev, "telemetry"))
    assert m.qos == 1


def test_seq_zero_and_max_acked_exactly(gw, mqtt, dev):
    dev.send_json({"type": "telemetry", "seq": 0, "data": {"v": 0}})
    dev.expect_ack(0)
    dev.send_text('{"type":"telemetry","seq":18446744073709551615,"data":{"v":1}}')
    raw = dev.recv_raw()
    assert isinstance(raw, str)
    assert "18446744073709551615" in raw, raw
    dev_frame = json.loads(raw)
    assert dev_frame == {"type": "ack", "seq": U64_MAX}
    mqtt.wait_json(gw.topic(dev.id, "telemetry"), lambda b: b["data"] == {"v": 0})
    m, body = mqtt.wait_json(gw.topic(dev.id, "telemetry"), lambda b: b["data"] == {"v": 1})
    assert body["seq"] == U64_MAX
    assert b"18446744073709551615" in m.payload


def test_messages_published_in_order(gw, mqtt, dev):
    for i in range(30):
        dev.send_json({"type": "telemetry", "seq": i, "data": {"i": i}})
    for i in range(30):
        dev.expect_ack(i)
    got = []
    for _ in range(30):
        _, body = mqtt.wait_json(gw.topic(dev.id, "telemetry"))
        got.append(body["data"]["i"])
    assert got == list(range(30))


def test_order_kept_across_message_types(gw, mqtt, dev):
    kinds = ["telemetry", "event", "state", "telemetry", "state", "event", "telemetry"]
    for i, kind in enumerate(kinds):
        msg = {"type": kind, "seq": i, "data": {"i": i}}
        if kind == "event":
            msg["name"] = "tick"
        dev.send_json(msg)
    for i in range(len(kinds)):
        dev.expect_ack(i)
    got = []
    for _ in kinds:
        m = mqtt.wait_for(lambda x: x.topic.split("/")[-1] in ("telemetry", "state", "tick"))
        got.append(m.json()["data"]["i"])
    assert got == list(range(len(kinds))), got


# ---------------------------------------------------------------------------------------------------- state


def test_state_retained_with_version_and_merge_patch(gw, mqtt, dev):
    dev.send_json({"type": "state", "seq": 1, "data": {"mode": "heat", "nested": {"x": 1, "y": 2}, "gone": 5}})
    dev.expect_ack(1)
    m1, s1 = mqtt.wait_json(gw.topic(dev.id, "state"))
    assert m1.retain and m1.qos == 1
    assert set(s1) == {"ts", "version", "data"}, s1
    assert s1["data"] == {"mode": "heat", "nested": {"x": 1, "y": 2}, "gone": 5}
    assert type(s1["version"]) is int
    assert_ts_now(s1["ts"])

    dev.send_json({"type": "state", "seq": 2, "data": {"nested": {"y": None, "z": 3}, "gone": None, "new": [1]}})
    dev.expect_ack(2)
    _, s2 = mqtt.wait_json(gw.topic(dev.id, "state"))
    assert s2["data"] == {"mode": "heat", "nested": {"x": 1, "z": 3}, "new": [1]}
    assert s2["version"] == s1["version"] + 1

    stored = fetch_retained(gw.broker, gw.topic(dev.id, "state"))
    assert stored is not None and stored.json() == s2


def test_state_carried_over_reconnect(gw, mqtt, dev):
    dev.send_json({"type": "state", "seq": 1, "data": {"a": 1, "b": {"c": 2}}})
    dev.expect_ack(1)
    _, s1 = mqtt.wait_json(gw.topic(dev.id, "state"))
    dev.close()
    d2 = gw.connect(gw.token(dev.id, kind="sensor"))
    d2.send_json({"type": "state", "seq": 2, "data": {"b": {"d": 3}}})
    d2.expect_ack(2)
    _, s2 = mqtt.wait_json(gw.topic(dev.id, "state"))
    assert s2["data"] == {"a": 1, "b": {"c": 2, "d": 3}}
    assert s2["version"] == s1["version"] + 1


def test_state_carried_over_gateway_restart(gateway, mqtt):
    g = gateway()
    dev = uid("st")
    mqtt.subscribe(g.topic(dev, "state"))
    d = g.connect(g.token(dev))
    d.send_json({"type": "state", "seq": 1, "data": {"a": 1}})
    d.expect_ack(1)
    _, s1 = mqtt.wait_json(g.topic(dev, "state"))
    d.close()
    g.stop()
    g.start()
    d = g.connect(g.token(dev))
    d.send_json({"type": "state", "seq": 2, "data": {"b": 2}})
    d.expect_ack(2)
    _, s2 = mqtt.wait_json(g.topic(dev, "state"), lambda b: b["version"] != s1["version"])
    assert s2["data"] == {"a": 1, "b": 2}
    assert s2["version"] == s1["version"] + 1


# ---------------------------------------------------------------------------------------------------- events


def test_event_published_to_event_name(gw, mqtt, dev):
    dev.send_json({"type": "event", "seq": 4, "name": "door_open-1", "data": {"by": "me"}})
    dev.expect_ack(4)
    m, body = mqtt.wait_json(gw.topic(dev.id, "event/door_open-1"))
    assert set(body) == {"ts", "data"}, body
    assert body["data"] == {"by": "me"}
    assert_ts_now(body["ts"])
    assert not m.retain and m.qos == 1


@pytest.mark.parametrize("name", ["a/b", "a+b", "#", "with space", "", "x" * 65, "é"])
def test_bad_event_name_is_bad_message(gw, mqtt, dev, name):
    dev.send_json({"type": "event", "seq": 6, "name": name, "data": {}})
    dev.expect_nack(6, "bad_message")
    dev.send_json({"type": "event", "name": name, "data": {}})
    dev.expect_error("bad_message")
    mqtt.assert_nothing(f"{gw.base}/{dev.id}/event/#", within=0.3)


def test_event_without_name_is_bad_message(gw, dev):
    dev.send_json({"type": "event", "seq": 7, "data": {}})
    dev.expect_nack(7, "bad_message")


# ---------------------------------------------------------------------------------------------------- malformed

# (raw text, readable seq or None). With a readable seq the answer must be a nack for it; without one, an
# error frame. Where the text is not strict JSON at all, either is accepted (a strict parser cannot read seq).
MALFORMED_NO_SEQ = [
    ("not_json", "this is not json"),
    ("truncated", '{"type":"telemetry","data":{'),
    ("array", '[{"type":"telemetry","data":{}}]'),
    ("string", '"telemetry"'),
    ("number", "42"),
    ("null", "null"),
    ("unknown_type", '{"type":"bogus","data":{}}'),
    ("type_not_string", '{"type":5,"data":{}}'),
    ("missing_type", '{"data":{}}'),
    ("missing_data", '{"type":"telemetry"}'),
    ("data_not_object", '{"type":"telemetry","data":[1,2]}'),
    ("data_string", '{"type":"state","data":"x"}'),
    ("seq_negative", '{"type":"telemetry","seq":-1,"data":{}}'),
    ("seq_fraction", '{"type":"telemetry","seq":1.5,"data":{}}'),
    ("seq_string", '{"type":"telemetry","seq":"3","data":{}}'),
    ("seq_2_pow_64", '{"type":"telemetry","seq":18446744073709551616,"data":{}}'),
    ("seq_null", '{"type":"telemetry","seq":null,"data":{}}'),
    ("qos_2", '{"type":"telemetry","data":{},"qos":2}'),
    ("ts_string", '{"type":"telemetry","data":{},"ts":"now"}'),
]

MALFORMED_WITH_SEQ = [
    ("unknown_type", '{"type":"bogus","seq":11,"data":{}}', 11),
    ("missing_data", '{"type":"telemetry","seq":12}', 12),
    ("data_not_object", '{"type":"telemetry","seq":13,"data":5}', 13),
    ("state_data_null", '{"type":"state","seq":14,"data":null}', 14),
    ("qos_2", '{"type":"telemetry","seq":15,"data":{},"qos":2}', 15),
    ("response_without_id", '{"type":"response","seq":16,"status":"ok"}', 16),
    ("response_bad_status", '{"type":"response","seq":17,"id":"x1","status":"maybe"}', 17),
    ("hello_capabilities_not_object", '{"type":"hello","seq":18,"capabilities":"all"}', 18),
    ("hello_kind_not_string", '{"type":"hello","seq":19,"kind":5}', 19),
    ("event_data_not_object", '{"type":"event","seq":20,"name":"x","data":5}', 20),
    ("telemetry_ts_fraction", '{"type":"telemetry","seq":30,"data":{},"ts":1.5}', 30),
]

# Values with no strict JSON form.
MALFORMED_VALUES = [
    ("nan", '{"type":"telemetry","seq":21,"data":{"v":NaN}}', 21),
    ("infinity", '{"type":"telemetry","seq":22,"data":{"v":Infinity}}', 22),
    ("neg_infinity", '{"type":"telemetry","seq":23,"data":{"v":-Infinity}}', 23),
    ("overflow_1e999", '{"type":"telemetry","seq":24,"data":{"v":1e999}}', 24),
    ("lone_surrogate", '{"type":"telemetry","seq":25,"data":{"v":"\\ud800"}}', 25),
    ("lone_low_surrogate_key", '{"type":"telemetry","seq":26,"data":{"\\udc00":1}}', 26),
    ("state_nan", '{"type":"state","seq":27,"data":{"v":NaN}}', 27),
    ("event_overflow", '{"type":"event","seq":28,"name":"x","data":{"v":-1e400}}', 28),
]


def _after_malformed_still_open(gw, mqtt, dev):
    dev.send_json({"type": "telemetry", "seq": 99, "data": {"ok": True}})
    dev.expect_ack(99)
    # Messages are published in order: anything the bad message caused would come before this one.
    _, body = mqtt.wait_json(gw.topic(dev.id, "telemetry"))
    assert body["data"] == {"ok": True}, f"a malformed message was published: {body}"
    mqtt.assert_nothing(lambda m: m.topic == gw.topic(dev.id, "state") or m.topic.startswith(gw.topic(dev.id, "event/")),
                        within=0.2)


@pytest.mark.parametrize("name,text", MALFORMED_NO_SEQ, ids=[c[0] for c in MALFORMED_NO_SEQ])
def test_malformed_without_seq_gets_error_frame(gw, mqtt, dev, name, text):
    dev.send_text(text)
    dev.expect_error("bad_message")
    _after_malformed_still_open(gw, mqtt, dev)


@pytest.mark.parametrize("name,text,seq", MALFORMED_WITH_SEQ, ids=[c[0] for c in MALFORMED_WITH_SEQ])
def test_malformed_with_readable_seq_gets_nack(gw, mqtt, dev, name, text, seq):
    dev.send_text(text)
    dev.expect_nack(seq, "bad_message")
    _after_malformed_still_open(gw, mqtt, dev)


@pytest.mark.parametrize("name,text,seq", MALFORMED_VALUES, ids=[c[0] for c in MALFORMED_VALUES])
def test_values_without_strict_json_form_are_malformed(gw, mqtt, dev, name, text, seq):
    dev.send_text(text)
    frame = dev.recv_json()
    if frame.get("type") == "nack":
        assert frame.get("seq") == seq and frame["error"]["code"] == "bad_message", frame
    else:
        assert frame.get("type") == "error" and frame["error"]["code"] == "bad_message", frame
    _after_malformed_still_open(gw, mqtt, dev)


def test_valid_surrogate_pair_is_accepted(gw, mqtt, dev):
    dev.send_text('{"type":"telemetry","seq":1,"data":{"emoji":"\\ud83d\\ude00"}}')
    dev.expect_ack(1)
    _, body = mqtt.wait_json(gw.topic(dev.id, "telemetry"))
    assert body["data"]["emoji"] == "\U0001F600"


def test_large_valid_numbers_pass_through(gw, mqtt, dev):
    dev.send_text('{"type":"telemetry","seq":1,"data":{"big":1e308,"neg":-1.5e-300,"int":12345678901234}}')
    dev.expect_ack(1)
    _, body = mqtt.wait_json(gw.topic(dev.id, "telemetry"))
    assert body["data"] == {"big": 1e308, "neg": -1.5e-300, "int": 12345678901234}


def test_binary_frame_with_unreadable_header_is_bad_message(gw, dev):
    dev.send_binary(b"\x00")  # shorter than the 2-byte length
    dev.expect_error("bad_message")
    dev.send_binary(b"\x00\x10{}")  # header length beyond the frame
    dev.expect_error("bad_message")
    dev.send_binary(b"\x00\x03abc" + b"payload")  # header not JSON
    dev.expect_error("bad_message")
    dev.send_binary(b"\x00\x02{}" + b"payload")  # no stream
    dev.expect_error("bad_message")
    dev.send_media({"stream": "a/b"}, b"payload")  # stream must follow the event-name pattern
    dev.expect_error("bad_message")
    dev.send_media({"stream": "s", "content_type": 5}, b"payload")  # content_type not a string
    dev.expect_error("bad_message")
    dev.send_json({"type": "telemetry", "seq": 1, "data": {}})
    dev.expect_ack(1)


def test_media_published_raw_with_content_type(gw, mqtt, dev):
    payload = bytes(range(256)) * 40
    dev.send_media({"stream": "snapshot", "content_type": "image/jpeg"}, payload)
    m = mqtt.wait_for(gw.topic(dev.id, "media/snapshot"))
    assert m.payload == payload
    assert m.qos == 0 and not m.retain
    assert m.prop("ContentType") == "image/jpeg"


def test_media_default_content_type(gw, mqtt, dev):
    dev.send_media({"stream": "clip"}, b"\x01\x02\x03")
    m = mqtt.wait_for(gw.topic(dev.id, "media/clip"))
    assert m.payload == b"\x01\x02\x03"
    assert m.prop("ContentType") == "application/octet-stream"


def test_state_carried_over_move_to_another_gateway(gateway, mqtt):
    a = gateway()
    b = gateway(fleet_of=a)
    dev = uid("mv")
    mqtt.subscribe(a.topic(dev, "state"))
    d = a.connect(a.token(dev))
    d.send_json({"type": "state", "seq": 1, "data": {"a": 1, "n": {"x": 1}}})
    d.expect_ack(1)
    _, s1 = mqtt.wait_json(a.topic(dev, "state"))
    d.close()
    d = b.connect(b.token(dev))
    d.send_json({"type": "state", "seq": 2, "data": {"n": {"y": 2}}})
    d.expect_ack(2)
    _, s2 = mqtt.wait_json(a.topic(dev, "state"))
    assert s2["data"] == {"a": 1, "n": {"x": 1, "y": 2}}
    assert s2["version"] == s1["version"] + 1
