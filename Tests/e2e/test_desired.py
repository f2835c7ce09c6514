"""PROTOCOL.md section 7: desired state (desired/set, the retained desired and delta documents, the answer,
the device's desired frame, versions, restarts, several gateways, Home Assistant)."""

import json
import os
import secrets
import subprocess
import sys

import pytest

from conftest import GATEHOUSE_BIN, MqttClient, assert_ts_now, fetch_retained, fetch_retained_json, now_ms, run_ctl, uid, wait_until

SIM_BIN = os.environ.get("GATEHOUSE_SIM_BIN") or os.path.join(os.path.dirname(GATEHOUSE_BIN), "gatehouse-sim")

THERMOSTAT_STATE = {"setpoint": {"type": "number", "minimum": 5, "maximum": 35},
                    "mode": {"type": "string", "enum": ["heat", "off"]},
                    "cfg": {"type": "object"}}


def patch(mqtt, g, dev, body, **kw):
    payload = body if isinstance(body, (str, bytes)) else json.dumps(body)
    mqtt.publish(g.topic(dev, "desired/set"), payload, **kw)


def answer(mqtt, g, dev, timeout=5):
    m, body = mqtt.wait_json(g.topic(dev, "response/desired"), timeout=timeout)
    assert not m.retain and m.qos == 1, m
    assert_ts_now(body.get("ts"))
    return body


def assert_ok(body, version, id_=None):
    assert body["status"] == "ok" and body["data"] == {"version": version}, body
    assert "error" not in body, body
    if id_ is not None:
        assert body["id"] == id_, body


def assert_rejected(body, code, id_=None):
    assert body["status"] == "rejected", body
    assert body["error"]["code"] == code and isinstance(body["error"]["message"], str), body
    if id_ is not None:
        assert body["id"] == id_, body


def document(mqtt, g, dev, topic="desired", pred=None):
    m, body = mqtt.wait_json(g.topic(dev, topic), pred)
    assert m.qos == 1, m
    return body


def set_ok(mqtt, g, dev, data, version=None):
    """Applies a patch and returns the new version (the document is consumed too)."""
    body = {"data": data}
    if version is not None:
        body["version"] = version
    patch(mqtt, g, dev, body)
    result = answer(mqtt, g, dev)
    assert result["status"] == "ok", result
    document(mqtt, g, dev, "desired", lambda d: d["version"] == result["data"]["version"])
    return result["data"]["version"]


def hello(d, state_caps=None, seq=1):
    caps = {"state": state_caps} if state_caps is not None else None
    d.send_json({"type": "hello", "seq": seq, "kind": "thermostat", "model": "T", "firmware": "1",
                 "capabilities": caps})
    d.expect_ack(seq)


def report(d, data, seq):
    d.send_json({"type": "state", "seq": seq, "data": data})
    d.expect_ack(seq)


def test_a_patch_the_broker_refuses_reaches_neither_the_device_nor_the_delta(gateway, fresh_broker):
    """The broker's ACL refuses the gateway's `desired` document for one device: the patch is answered `rejected`
    and undone, and nothing of it went anywhere else: no `desired` frame to the device, no `delta`. (Both went at
    once, before the broker had answered.)"""
    g = gateway(broker=fresh_broker)
    dev = uid("refusedpatch")
    d = g.connect(g.token(dev))
    fresh_broker.restart_denying(f"{g.base}/{dev}/desired")
    assert wait_until(lambda: g.http_get("/readyz")[0] == 200, 15)
    requester = MqttClient(fresh_broker)
    try:
        requester.subscribe(f"{g.base}/{dev}/#")
        patch(requester, g, dev, {"id": "p1", "data": {"mode": "heat"}})
        assert_rejected(answer(requester, g, dev), "bad_request", "p1")
        d.expect_no_frame(within=1)
        requester.assert_nothing(g.topic(dev, "delta"), within=0.5)
    finally:
        requester.close()


@pytest.fixture
def follow(gw, mqtt):
    """A fresh device id whose topics `mqtt` follows."""
    dev = uid("des")
    mqtt.subscribe(f"{gw.base}/{dev}/#")
    return dev


# -- versions, merge, answer ------------------------------------------------------------------------------------


def test_first_patch_makes_version_1_and_the_answer_follows_the_document(gw, mqtt, follow):
    dev = follow
    patch(mqtt, gw, dev, {"id": "p-1", "data": {"setpoint": 21.5}})
    assert_ok(answer(mqtt, gw, dev), 1, "p-1")
    desired = [m for m in mqtt.all if m.topic == gw.topic(dev, "desired")]
    responses = [m for m in mqtt.all if m.topic == gw.topic(dev, "response/desired")]
    assert desired and mqtt.all.index(desired[0]) < mqtt.all.index(responses[0]), "the document comes before the answer"
    doc = desired[0].json()
    assert set(doc) == {"ts", "version", "data"} and doc["version"] == 1 and doc["data"] == {"setpoint": 21.5}, doc
    assert_ts_now(doc["ts"])
    delta = document(mqtt, gw, dev, "delta")
    assert set(delta) == {"ts", "version", "state_version", "data"}, delta
    assert (delta["version"], delta["state_version"], delta["data"]) == (1, 0, {"setpoint": 21.5}), delta
    retained = fetch_retained_json(gw.broker, gw.topic(dev, "desired"))
    assert retained["version"] == 1 and retained["data"] == {"setpoint": 21.5}


def test_every_accepted_patch_raises_the_version_by_one_even_without_change(gw, mqtt, follow):
    dev = follow
    assert set_ok(mqtt, gw, dev, {"a": 1}) == 1
    assert set_ok(mqtt, gw, dev, {"a": 1}) == 2
    assert set_ok(mqtt, gw, dev, {}) == 3


def test_patch_merges_as_rfc7386(gw, mqtt, follow):
    dev = follow
    set_ok(mqtt, gw, dev, {"a": {"x": 1, "y": 2}, "b": 1, "c": [1, 2]})
    patch(mqtt, gw, dev, {"data": {"a": {"y": None, "z": {"deep": True}}, "b": None, "c": [3]}})
    assert_ok(answer(mqtt, gw, dev), 2)
    doc = document(mqtt, gw, dev, "desired", lambda d: d["version"] == 2)
    assert doc["data"] == {"a": {"x": 1, "z": {"deep": True}}, "c": [3]}, doc


def test_null_id_and_version_count_as_absent(gw, mqtt, follow):
    dev = follow
    patch(mqtt, gw, dev, {"id": None, "version": None, "data": {"k": 1}})
    body = answer(mqtt, gw, dev)
    assert_ok(body, 1)
    assert isinstance(body["id"], str) and body["id"], "a fresh id made by the gateway"
    patch(mqtt, gw, dev, {"id": 42, "data": {"k": 2}})
    assert_ok(answer(mqtt, gw, dev), 2, 42)


@pytest.mark.parametrize("payload, echoed", [
    ("not json", None),
    ("[1,2]", None),
    ("", None),
    ('{"id":"b-1"}', "b-1"),
    ('{"id":"b-2","data":5}', "b-2"),
    ('{"id":"b-3","data":[]}', "b-3"),
    ('{"id":"b-4","data":{},"version":-1}', "b-4"),
    ('{"id":"b-5","data":{},"version":1.5}', "b-5"),
    ('{"id":"b-6","data":{},"version":"1"}', "b-6"),
    ('{"id":"no spaces","data":{}}', None),
    ('{"id":{"x":1},"data":{}}', None),
])
def test_bad_request(gw, mqtt, follow, payload, echoed):
    dev = follow
    patch(mqtt, gw, dev, payload)
    body = answer(mqtt, gw, dev)
    assert_rejected(body, "bad_request", echoed)
    mqtt.assert_nothing(gw.topic(dev, "desired"), within=0.2)
    assert set_ok(mqtt, gw, dev, {"k": 1}) == 1, "a rejected patch changes nothing"


def test_version_conflict(gw, mqtt, follow):
    dev = follow
    patch(mqtt, gw, dev, {"id": "v-0", "data": {"a": 1}, "version": 0})
    assert_ok(answer(mqtt, gw, dev), 1, "v-0")
    for wrong in (0, 2, 99999999999999999999):
        patch(mqtt, gw, dev, {"id": "v-x", "data": {"a": 2}, "version": wrong})
        assert_rejected(answer(mqtt, gw, dev), "version_conflict", "v-x")
    patch(mqtt, gw, dev, {"data": {"a": 3}, "version": 1})
    assert_ok(answer(mqtt, gw, dev), 2)
    assert fetch_retained_json(gw.broker, gw.topic(dev, "desired"), lambda d: d["version"] == 2)["data"] == {"a": 3}


def test_bad_params_against_capabilities_state(gw, mqtt, follow):
    dev = follow
    d = gw.connect(gw.token(dev, kind="thermostat"))
    hello(d, THERMOSTAT_STATE)
    for data in ({"setpoint": 40}, {"setpoint": 4.9}, {"setpoint": "21"}, {"mode": "cool"}, {"fan": 1},
                 {"setpoint": 21, "fan": 1}, {"cfg": 3}):
        patch(mqtt, gw, dev, {"id": "bp", "data": data})
        assert_rejected(answer(mqtt, gw, dev), "bad_params", "bp")
    mqtt.assert_nothing(gw.topic(dev, "desired"), within=0.2)
    d.expect_no_frame(0.1)
    # null is always allowed (declared or not); in-range values and enum members pass.
    assert set_ok(mqtt, gw, dev, {"setpoint": 35, "mode": "off", "fan": None, "cfg": {"any": [1]}}) == 1


def test_device_without_state_capabilities_accepts_any_key(gw, mqtt, follow):
    dev = follow
    d = gw.connect(gw.token(dev, kind="sensor"))
    d.send_json({"type": "hello", "seq": 1, "kind": "sensor", "capabilities": {"commands": {"ping": {}}}})
    d.expect_ack(1)
    assert set_ok(mqtt, gw, dev, {"anything": {"goes": True}}) == 1


def test_too_big(gateway, mqtt):
    g = gateway(limits={"max_desired_bytes": 64})
    dev = uid("big")
    mqtt.subscribe(f"{g.base}/{dev}/#")
    patch(mqtt, g, dev, {"id": "t-1", "data": {"s": "x" * 60}})
    assert_rejected(answer(mqtt, g, dev), "too_big", "t-1")
    assert set_ok(mqtt, g, dev, {"s": "x" * 40}) == 1  # {"s":"xxx…"} is 48 bytes
    patch(mqtt, g, dev, {"data": {"t": "y" * 10}})
    assert_rejected(answer(mqtt, g, dev), "too_big")
    # Removing keys always shrinks the document.
    assert set_ok(mqtt, g, dev, {"s": None, "t": "y" * 10}) == 2


def test_answer_goes_to_the_response_topic_with_correlation_data(gw, mqtt, follow):
    dev = follow
    reply = f"e2e-replies/{secrets.token_hex(4)}"
    mqtt.subscribe(reply)
    patch(mqtt, gw, dev, {"id": "rt-1", "data": {"a": 1}}, response_topic=reply, correlation_data=b"\x01corr")
    assert_ok(answer(mqtt, gw, dev), 1, "rt-1")
    m, body = mqtt.wait_json(reply)
    assert body["id"] == "rt-1" and body["status"] == "ok" and m.prop("CorrelationData") == b"\x01corr", m
    # A Response Topic the contract gives to devices or gateways gets nothing; response/desired still does.
    other = uid("victim")
    forbidden = [f"{gw.base}/{other}/state", f"{gw.base}/bridge/{gw.gw_id}/state", f"{gw.base}/{other}/desired"]
    for topic in forbidden:
        mqtt.subscribe(topic)
        patch(mqtt, gw, dev, {"id": "rt-2", "data": {"a": 2}}, response_topic=topic)
        assert answer(mqtt, gw, dev)["id"] == "rt-2"
    mqtt.assert_nothing(lambda m: m.topic in forbidden and b"rt-2" in m.payload, within=0.3)


def test_request_desired_is_not_a_command(gw, mqtt, follow):
    dev = follow
    d = gw.connect(gw.token(dev))
    mqtt.publish(gw.topic(dev, "request/desired"), json.dumps({"id": "r-1", "params": {}}))
    assert_rejected(answer(mqtt, gw, dev), "bad_request", "r-1")
    d.expect_no_frame(0.2)
    d.close()
    wait_until(lambda: fetch_retained_json(gw.broker, gw.topic(dev, "availability"))["state"] == "offline", 5)
    mqtt.publish(gw.topic(dev, "request/desired"), json.dumps({"id": "r-2", "ttl_ms": 60000}))
    assert_rejected(answer(mqtt, gw, dev), "bad_request", "r-2")
    mqtt.assert_nothing(gw.topic(dev, "response/desired"), within=0.3)


# -- delta ------------------------------------------------------------------------------------------------------


def test_delta_compares_numbers_by_value_and_objects_key_by_key(gw, mqtt, follow):
    dev = follow
    d = gw.connect(gw.token(dev, kind="thermostat"))
    report(d, {"setpoint": 21, "cfg": {"a": 1, "b": [1, 2], "n": {"x": 1}}, "extra": 5}, 1)
    document(mqtt, gw, dev, "state")
    mqtt.assert_nothing(gw.topic(dev, "delta"), within=0.2)  # no desired document: no delta
    patch(mqtt, gw, dev, {"data": {"setpoint": 21.0, "cfg": {"b": [1, 2.0], "a": 1e0, "n": {"x": 1}, "c": 3},
                                   "mode": "heat"}})
    assert_ok(answer(mqtt, gw, dev), 1)
    delta = document(mqtt, gw, dev, "delta")
    assert delta["data"] == {"cfg": {"c": 3}, "mode": "heat"}, delta
    assert (delta["version"], delta["state_version"]) == (1, 1), delta
    assert d.expect("desired", version=1)["data"] == {"cfg": {"c": 3}, "mode": "heat"}
    # A state update that changes the delta publishes it (no frame to the device: it sent the state).
    report(d, {"mode": "heat"}, 2)
    delta = document(mqtt, gw, dev, "delta")
    assert (delta["data"], delta["state_version"]) == ({"cfg": {"c": 3}}, 2), delta
    # One that does not change it publishes nothing.
    report(d, {"extra": 6}, 3)
    mqtt.assert_nothing(gw.topic(dev, "delta"), within=0.3)
    report(d, {"cfg": {"c": 3.0}}, 4)
    delta = document(mqtt, gw, dev, "delta")
    assert (delta["data"], delta["version"], delta["state_version"]) == ({}, 1, 4), delta
    d.expect_no_frame(0.1)


def test_an_emptied_retained_state_refreshes_the_delta(gw, mqtt, follow):
    """PROTOCOL 7: the delta follows every reported-state update, also one no device message made."""
    dev = follow
    d = gw.connect(gw.token(dev, kind="thermostat"))
    report(d, {"mode": "heat"}, 1)
    document(mqtt, gw, dev, "state")
    patch(mqtt, gw, dev, {"data": {"mode": "heat"}})
    assert_ok(answer(mqtt, gw, dev), 1)
    assert document(mqtt, gw, dev, "delta")["data"] == {}
    d.close()
    mqtt.publish(gw.topic(dev, "state"), b"", retain=True)  # someone empties the reported state
    delta = document(mqtt, gw, dev, "delta", lambda b: b["data"] != {})
    assert (delta["data"], delta["version"], delta["state_version"]) == ({"mode": "heat"}, 1, 0), delta


def test_arrays_compare_element_by_element(gw, mqtt, follow):
    dev = follow
    d = gw.connect(gw.token(dev))
    report(d, {"list": [1, 2, 3]}, 1)
    document(mqtt, gw, dev, "state")
    set_ok(mqtt, gw, dev, {"list": [1, 2]})
    assert document(mqtt, gw, dev, "delta")["data"] == {"list": [1, 2]}
    set_ok(mqtt, gw, dev, {"list": [1.0, 2, 3]})
    assert document(mqtt, gw, dev, "delta")["data"] == {}


def test_desired_frame_after_every_patch_while_connected_even_when_empty(gw, mqtt, follow):
    dev = follow
    d = gw.connect(gw.token(dev, kind="thermostat"))
    report(d, {"setpoint": 20}, 1)
    set_ok(mqtt, gw, dev, {"setpoint": 20})
    assert d.expect("desired") == {"type": "desired", "version": 1, "data": {}}
    set_ok(mqtt, gw, dev, {"setpoint": 22.5})
    assert d.expect("desired") == {"type": "desired", "version": 2, "data": {"setpoint": 22.5}}
    set_ok(mqtt, gw, dev, {"setpoint": None})
    assert d.expect("desired") == {"type": "desired", "version": 3, "data": {}}


def test_frame_after_welcome_before_queued_commands(gw, mqtt, follow):
    dev = follow
    token = gw.token(dev, kind="thermostat")
    d = gw.connect(token)
    report(d, {"setpoint": 19}, 1)
    d.close()
    wait_until(lambda: (fetch_retained_json(gw.broker, gw.topic(dev, "availability")) or {}).get("state") == "offline", 5)
    set_ok(mqtt, gw, dev, {"setpoint": 23, "mode": "heat"})
    delta = document(mqtt, gw, dev, "delta")
    assert delta["data"] == {"setpoint": 23, "mode": "heat"} and delta["state_version"] == 1, delta
    mqtt.publish(gw.topic(dev, "request/boost"), json.dumps({"id": "q-1", "ttl_ms": 60000}))
    mqtt.wait_json(gw.topic(dev, "response/boost"), lambda b: b["status"] == "queued")
    d = gw.connect(token)
    assert d.expect("desired") == {"type": "desired", "version": 1, "data": {"setpoint": 23, "mode": "heat"}}
    assert d.expect("command")["id"] == "q-1"
    # The device applies it and reports: the delta empties; reconnecting then sends no desired frame.
    report(d, {"setpoint": 23.0, "mode": "heat"}, 2)
    assert document(mqtt, gw, dev, "delta", lambda b: b["state_version"] == 2)["data"] == {}
    d.close()
    d = gw.connect(token)
    d.expect_no_frame(0.3)


def test_status_api_shows_desired_and_delta(gw, mqtt, follow):
    dev = follow
    d = gw.connect(gw.token(dev))
    report(d, {"setpoint": 18}, 1)
    before = now_ms()
    set_ok(mqtt, gw, dev, {"setpoint": 21})
    document(mqtt, gw, dev, "delta")

    def row():
        status, _, body = gw.http_get("/api/status")
        assert status == 200
        rows = [r for r in json.loads(body)["devices"] if r["device"] == dev]
        return rows[0] if rows and rows[0]["desired_version"] == 1 else None

    r = wait_until(row, 5)
    assert r["delta"] == {"setpoint": 21} and r["reported"] == {"setpoint": 18}, r
    assert before - 1000 <= r["delta_pending_since"] <= now_ms(), r
    assert d.expect("desired")["data"] == {"setpoint": 21}
    report(d, {"setpoint": 21}, 2)
    r = wait_until(lambda: (lambda x: x if x and x["delta"] == {} else None)(row()), 5)
    assert r["delta_pending_since"] is None and r["reported"] == {"setpoint": 21}, r


# -- versions and clearing --------------------------------------------------------------------------------------


def test_lower_retained_version_is_ignored_and_empty_retained_clears(gw, mqtt, follow):
    dev = follow
    set_ok(mqtt, gw, dev, {"a": 1})
    set_ok(mqtt, gw, dev, {"b": 2})
    mqtt.publish(gw.topic(dev, "desired"), json.dumps({"ts": now_ms(), "version": 1, "data": {"x": 9}}), retain=True)
    mqtt.wait_for(lambda m: m.topic == gw.topic(dev, "desired") and b'"x"' in m.payload)
    assert set_ok(mqtt, gw, dev, {"c": 3}) == 3
    doc = fetch_retained_json(gw.broker, gw.topic(dev, "desired"), lambda x: x["version"] == 3)
    assert doc["data"] == {"a": 1, "b": 2, "c": 3}, doc
    # Clearing: the applier clears delta too, and the next patch starts again at version 1.
    mqtt.publish(gw.topic(dev, "desired"), b"", retain=True)
    mqtt.wait_for(lambda m: m.topic == gw.topic(dev, "delta") and m.payload == b"")
    patch(mqtt, gw, dev, {"data": {"z": 1}})
    assert_ok(answer(mqtt, gw, dev), 1)
    assert document(mqtt, gw, dev, "desired", lambda x: x["version"] == 1)["data"] == {"z": 1}


def test_payload_that_is_not_a_desired_document_changes_nothing(gw, mqtt, follow):
    dev = follow
    set_ok(mqtt, gw, dev, {"a": 1})
    for junk in (b"not json", b'{"version":"7","data":{}}', b'{"version":7}', b'[]'):
        mqtt.publish(gw.topic(dev, "desired"), junk, retain=True)
    mqtt.wait_for(lambda m: m.topic == gw.topic(dev, "desired") and m.payload == b"[]")
    # Without the retain flag a well-formed document counts for nothing either (§4: retained topics only).
    mqtt.publish(gw.topic(dev, "desired"), json.dumps({"ts": now_ms(), "version": 50, "data": {"x": 1}}))
    mqtt.publish(gw.topic(dev, "desired"), b"")
    mqtt.wait_for(lambda m: m.topic == gw.topic(dev, "desired") and m.payload == b"")
    assert set_ok(mqtt, gw, dev, {"b": 2}) == 2
    assert fetch_retained_json(gw.broker, gw.topic(dev, "desired"), lambda x: x["version"] == 2)["data"] == {"a": 1, "b": 2}


def test_desired_survives_a_gateway_restart(gateway, mqtt):
    g1 = gateway(gw_id="gw-r")
    dev = uid("rs")
    mqtt.subscribe(f"{g1.base}/{dev}/#")
    set_ok(mqtt, g1, dev, {"setpoint": 20})
    # A patch published with the retain flag is applied once, not again at every gateway start.
    mqtt.publish(g1.topic(dev, "desired/set"), json.dumps({"data": {"mode": "heat"}}), retain=True)
    assert_ok(answer(mqtt, g1, dev), 2)
    g1.stop()
    g2 = gateway(fleet_of=g1, gw_id="gw-r")
    assert set_ok(mqtt, g2, dev, {"setpoint": 21}) == 3
    d = g2.connect(g2.token(dev, kind="thermostat"))
    assert d.expect("desired") == {"type": "desired", "version": 3, "data": {"setpoint": 21, "mode": "heat"}}


def test_a_delta_left_without_its_document_is_withdrawn_at_start(gateway, mqtt):
    """The document was cleared while no gateway ran: the retained delta left behind is withdrawn (a device without a
    document has no delta), not kept and counted for ever."""
    g = gateway(start=False)
    dev = uid("orphan")
    mqtt.publish(g.topic(dev, "delta"), json.dumps({"ts": now_ms(), "version": 3, "state_version": 1,
                                                    "data": {"setpoint": 21}}), retain=True)
    mqtt.subscribe(g.topic(dev, "delta"))
    mqtt.wait_for(lambda m: m.topic == g.topic(dev, "delta") and m.payload)
    g.start()
    mqtt.wait_for(lambda m: m.topic == g.topic(dev, "delta") and not m.payload, timeout=10)
    assert fetch_retained(g.broker, g.topic(dev, "delta")) is None


def test_two_gateways_exactly_one_applies(gateway, mqtt):
    suffix = secrets.token_hex(3)
    ga = gateway(gw_id=f"gw-a-{suffix}")
    gb = gateway(gw_id=f"gw-b-{suffix}", fleet_of=ga)
    dev = uid("two")
    mqtt.subscribe(f"{ga.base}/{dev}/#")
    # Nobody holds the device: the online gateway with the smallest id applies each patch, once.
    wait_until(lambda: fetch_retained_json(ga.broker, gb.bridge("state"), timeout=0.5), 5)
    for n in range(1, 4):
        assert set_ok(mqtt, ga, dev, {"n": n}) == n
    mqtt.assert_nothing(lambda m: m.topic.endswith(("/response/desired", "/desired")), within=0.3)
    # Held by gb: gb applies and tells the device; still one answer and one document per patch.
    d = gb.connect(gb.token(dev))
    assert d.expect("desired") == {"type": "desired", "version": 3, "data": {"n": 3}}
    assert set_ok(mqtt, ga, dev, {"n": 4}) == 4
    assert d.expect("desired") == {"type": "desired", "version": 4, "data": {"n": 4}}
    mqtt.assert_nothing(lambda m: m.topic.endswith(("/response/desired", "/desired")), within=0.3)
    # The device moves to ga (gb's session is replaced): ga knows the document from the broker.
    report(d, {"n": 4}, 1)
    d2 = ga.connect(ga.token(dev))
    d2.expect_no_frame(0.2)
    assert set_ok(mqtt, ga, dev, {"n": 5}) == 5
    assert d2.expect("desired") == {"type": "desired", "version": 5, "data": {"n": 5}}


# -- Home Assistant ---------------------------------------------------------------------------------------------


def test_home_assistant_climate_writes_desired_state(gateway, mqtt):
    g = gateway(homeassistant={"enabled": True})
    mqtt.subscribe("homeassistant/#")
    dev = uid("hat")
    mqtt.subscribe(f"{g.base}/{dev}/#")
    d = g.connect(g.token(dev, kind="thermostat"))
    hello(d, {"setpoint": {"type": "number", "minimum": 7, "maximum": 30}, "mode": {"type": "string", "enum": ["heat", "off"]}})
    topic = f"homeassistant/climate/{g.gw_id}_{dev}/config".replace(".", "_")
    config = mqtt.wait_for(lambda m: m.topic == topic and m.payload and m.json()["temperature_command_topic"].endswith("desired/set")).json()
    assert config["temperature_command_topic"] == g.topic(dev, "desired/set")
    assert config["mode_command_topic"] == g.topic(dev, "desired/set")
    assert config["temperature_state_topic"] == g.topic(dev, "state")
    assert config["mode_state_topic"] == g.topic(dev, "state")
    assert (config["min_temp"], config["max_temp"]) == (7, 30) and config["modes"] == ["heat", "off"]
    assert config["action_topic"] == g.topic(dev, "telemetry")
    assert config["temp_step"] == 0.1 and config["precision"] == 0.1
    assert config["device"]["via_device"] == f"gatehouse_gateway_{g.gw_id}"
    # Home Assistant renders the templates and publishes: the patches are accepted.
    patch(mqtt, g, dev, config["temperature_command_template"].replace("{{ value }}", "21.5"))
    assert_ok(answer(mqtt, g, dev), 1)
    patch(mqtt, g, dev, config["mode_command_template"].replace("{{ value }}", "off"))
    assert_ok(answer(mqtt, g, dev), 2)
    assert d.expect("desired")["data"] == {"setpoint": 21.5}
    assert d.expect("desired")["data"] == {"setpoint": 21.5, "mode": "off"}
    # A hello that changes the capabilities publishes discovery again.
    hello(d, {"setpoint": {"type": "number", "minimum": 10, "maximum": 25},
              "mode": {"type": "string", "enum": ["heat", "eco", "off"]}}, seq=2)
    config = mqtt.wait_for(lambda m: m.topic == topic and m.payload and m.json().get("max_temp") == 25).json()
    assert config["min_temp"] == 10
    assert config["modes"] == ["heat", "off"], "a mode Home Assistant does not know would make it refuse the entity"
    # The gateway is announced as a device of its own, so via_device links.
    gateway_config = mqtt.wait_for(lambda m: m.topic == f"homeassistant/binary_sensor/{g.gw_id}_gateway/config".replace(".", "_")).json()
    assert gateway_config["device"]["identifiers"] == [f"gatehouse_gateway_{g.gw_id}"]
    assert gateway_config["state_topic"] == g.bridge("state") and gateway_config["device_class"] == "connectivity"


# -- gatehousectl and the simulator ----------------------------------------------------------------------------


def ctl_flags(g):
    return ["--url", g.broker.url, "--base-topic", g.base]


def test_ctl_desired_show_and_devices(gw, mqtt, follow):
    dev = follow
    d = gw.connect(gw.token(dev, kind="thermostat"))
    report(d, {"setpoint": 19, "mode": "heat"}, 1)
    r = run_ctl(["desired", dev, "setpoint=21.5", "mode=heat", "--if-version", "0", *ctl_flags(gw)])
    assert r.returncode == 0 and r.stdout.strip() == "ok version 1", (r.stdout, r.stderr)
    r = run_ctl(["desired", dev, "setpoint=22", "--if-version", "0", *ctl_flags(gw)])
    assert r.returncode == 1 and r.stdout.startswith("rejected version_conflict"), (r.stdout, r.stderr)
    r = run_ctl(["desired", dev, "--remove", "mode", "--json", *ctl_flags(gw)])
    assert r.returncode == 0 and json.loads(r.stdout)["data"] == {"version": 2}, (r.stdout, r.stderr)
    fetch_retained_json(gw.broker, gw.topic(dev, "delta"), lambda x: x["version"] == 2)
    r = run_ctl(["show", dev, "--json", *ctl_flags(gw)])
    shown = json.loads(r.stdout)
    assert shown["desired"]["data"] == {"setpoint": 21.5} and shown["delta"]["data"] == {"setpoint": 21.5}, shown
    r = run_ctl(["show", dev, *ctl_flags(gw)])
    assert "desired version 2, reported version 1, 1 pending" in r.stdout, r.stdout
    assert any(line.split()[:4] == ["setpoint", "21.5", "19", "pending"] for line in r.stdout.splitlines()), r.stdout
    r = run_ctl(["devices", "--json", *ctl_flags(gw)])
    row = [x for x in json.loads(r.stdout) if x["device"] == dev][0]
    assert row["delta_pending"] is True and row["desired_version"] == 2, row


def test_simulated_thermostat_applies_a_setpoint_set_while_it_slept(gw, mqtt):
    prefix = uid("sim")
    dev = f"{prefix}-thermo-1"
    mqtt.subscribe(f"{gw.base}/{dev}/#")
    sim = subprocess.Popen(
        [SIM_BIN, "--url", gw.ws_url, "--key-file", str(gw.key_path), "--thermostats", "1", "--cameras", "0",
         "--sensors", "0", "--rate", "2", "--prefix", prefix, "--sleep", "2", "--awake", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        mqtt.wait_json(gw.topic(dev, "availability"), lambda a: a["state"] == "offline", timeout=10)
        set_ok(mqtt, gw, dev, {"setpoint": 27.5, "mode": "heat"})
        assert document(mqtt, gw, dev, "delta")["data"] != {}, "the device sleeps: the setpoint is pending"
        mqtt.wait_json(gw.topic(dev, "availability"), lambda a: a["state"] == "online", timeout=10)
        state = mqtt.wait_json(gw.topic(dev, "state"), lambda s: s["data"].get("setpoint") == 27.5, timeout=10)[1]
        assert state["data"]["mode"] == "heat", state
        document(mqtt, gw, dev, "delta", lambda x: x["data"] == {})
    finally:
        sim.terminate()
        sim.wait(10)


def test_python_device_example_applies_desired_interval(gw, mqtt, follow):
    dev = follow
    set_ok(mqtt, gw, dev, {"interval_s": 1.5})
    script = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python-device", "device.py")
    proc = subprocess.Popen([sys.executable, script, "--url", gw.ws_url, "--key-file", str(gw.key_path), "--device", dev],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        mqtt.wait_json(gw.topic(dev, "state"), lambda s: s["data"].get("interval_s") == 1.5, timeout=10)
        document(mqtt, gw, dev, "delta", lambda x: x["data"] == {})
    finally:
        proc.terminate()
        proc.wait(10)


def test_metrics_count_patches_by_outcome_and_devices_with_delta(gateway, mqtt):
    g = gateway()
    dev = uid("met")
    mqtt.subscribe(f"{g.base}/{dev}/#")
    set_ok(mqtt, g, dev, {"a": 1})
    document(mqtt, g, dev, "delta")
    patch(mqtt, g, dev, {"data": {}, "version": 7})
    assert_rejected(answer(mqtt, g, dev), "version_conflict")
    patch(mqtt, g, dev, "[]")
    assert_rejected(answer(mqtt, g, dev), "bad_request")

    def samples():
        text = g.http_get("/metrics")[2].decode()
        return {k: float(v) for k, _, v in (line.rpartition(" ") for line in text.splitlines() if line.startswith("gatehouse_desired"))}

    s = wait_until(lambda: (lambda x: x if x.get("gatehouse_desired_devices_with_delta") == 1 else None)(samples()), 5)
    assert s is not None, samples()
    assert s['gatehouse_desired_patches_total{outcome="ok"}'] == 1, s
    assert s['gatehouse_desired_patches_total{outcome="version_conflict"}'] == 1, s
    assert s['gatehouse_desired_patches_total{outcome="bad_request"}'] == 1, s
