"""PROTOCOL.md section 4: bridge topics and device availability."""

import time

import pytest

from conftest import assert_ts_now, fetch_retained, now_ms, uid

HEALTH_KEYS = {"ts", "gateway", "devices_connected", "messages_in_per_s", "messages_out_per_s", "spool_depth",
               "spool_bytes", "broker_connected", "uptime_s"}


def bridge_request(mqtt, gw, op, body, raw=None):
    mqtt.subscribe(gw.bridge(f"response/{op}"))
    mqtt.publish(gw.bridge(f"request/{op}"), raw if raw is not None else body)


def bridge_response(mqtt, gw, op, req_id, timeout=5):
    m, body = mqtt.wait_json(gw.bridge(f"response/{op}"), lambda b: b.get("id") == req_id, timeout=timeout)
    assert not m.retain and m.qos == 1
    assert body.get("status") in ("ok", "error"), body
    return body


def test_bridge_state_retained_online_with_ts_and_version(gw):
    m = fetch_retained(gw.broker, gw.bridge("state"))
    assert m is not None, "no retained bridge state"
    body = m.json()
    assert set(body) == {"state", "ts", "version"}, body
    assert body["state"] == "online"
    assert type(body["ts"]) is int and 0 < body["ts"] <= now_ms()
    assert isinstance(body["version"], str) and body["version"]


def test_health_every_interval_with_all_keys(gw, mqtt):
    mqtt.subscribe(gw.bridge("health"))
    first = mqtt.wait_for(gw.bridge("health"), timeout=4)
    second = mqtt.wait_for(gw.bridge("health"), timeout=4)
    third = mqtt.wait_for(gw.bridge("health"), timeout=4)
    for m in (first, second, third):
        body = m.json()
        assert set(body) == HEALTH_KEYS, body
        assert not m.retain and m.qos == 0
        assert body["gateway"] == gw.gw_id
        assert_ts_now(body["ts"])
        assert body["broker_connected"] is True
        for key in ("devices_connected", "spool_depth", "spool_bytes"):
            assert type(body[key]) is int and body[key] >= 0, (key, body)
        for key in ("messages_in_per_s", "messages_out_per_s", "uptime_s"):
            assert isinstance(body[key], (int, float)) and body[key] >= 0, (key, body)
    gap = third.received_at - first.received_at
    assert 1.2 <= gap <= 3.5, f"two health intervals of 1 s took {gap:.2f} s"


def test_health_counts_connected_devices(gw, mqtt):
    mqtt.subscribe(gw.bridge("health"))
    _, before = mqtt.wait_json(gw.bridge("health"), timeout=4)
    _, d = gw.device()
    _, after = mqtt.wait_json(gw.bridge("health"), lambda b: b["devices_connected"] > before["devices_connected"],
                              timeout=4)
    assert after["devices_connected"] == before["devices_connected"] + 1


def test_devices_request_lists_connected_devices(gw, mqtt):
    dev, d = gw.device(kind="camera")
    bridge_request(mqtt, gw, "devices", {"id": "r-1"})
    body = bridge_response(mqtt, gw, "devices", "r-1")
    assert body["status"] == "ok", body
    assert isinstance(body["data"], list), body
    rows = [r for r in body["data"] if r.get("device") == dev]
    assert len(rows) == 1, body
    row = rows[0]
    assert set(row) == {"device", "kind", "session", "connected_at", "remote"}, row
    assert row["kind"] == "camera"
    assert row["session"] == d.welcome["session"]
    assert_ts_now(row["connected_at"])
    assert isinstance(row["remote"], str) and "127.0.0.1" in row["remote"], row
    d.close()
    time.sleep(0.3)
    bridge_request(mqtt, gw, "devices", {"id": "r-2"})
    body = bridge_response(mqtt, gw, "devices", "r-2")
    assert not [r for r in body["data"] if r.get("device") == dev], "closed device still listed"


def test_bridge_request_integer_id_echoed(gw, mqtt):
    bridge_request(mqtt, gw, "devices", {"id": 7})
    body = bridge_response(mqtt, gw, "devices", 7)
    assert type(body["id"]) is int


def test_kick_closes_device_1008_and_availability_kicked(gw, mqtt):
    dev = uid("kick")
    mqtt.subscribe(gw.topic(dev, "availability"))
    d = gw.connect(gw.token(dev))
    mqtt.wait_json(gw.topic(dev, "availability"), lambda b: b["state"] == "online")
    bridge_request(mqtt, gw, "kick", {"id": "k-1", "device": dev})
    d.expect_close(1008)
    body = bridge_response(mqtt, gw, "kick", "k-1")
    assert body["status"] == "ok", body
    m, av = mqtt.wait_json(gw.topic(dev, "availability"), lambda b: b["state"] == "offline")
    assert av["reason"] == "kicked", av
    assert m.retain


def test_kick_unknown_device_is_not_found(gw, mqtt):
    bridge_request(mqtt, gw, "kick", {"id": "k-2", "device": uid("nobody")})
    body = bridge_response(mqtt, gw, "kick", "k-2")
    assert body["status"] == "error"
    assert body["error"]["code"] == "not_found", body


@pytest.mark.parametrize("raw", [b"{oops", b'{"id":"k-3"}', b'{"id":"k-3","device":5}'],
                         ids=["bad_json", "no_device", "device_not_string"])
def test_kick_bad_request(gw, mqtt, raw):
    bridge_request(mqtt, gw, "kick", None, raw=raw)
    m, body = mqtt.wait_json(gw.bridge("response/kick"))
    assert body["status"] == "error"
    assert body["error"]["code"] == "bad_request", body


def test_unknown_op_is_unknown_op(gw, mqtt):
    bridge_request(mqtt, gw, "explode", {"id": "u-1"})
    body = bridge_response(mqtt, gw, "explode", "u-1")
    assert body["status"] == "error"
    assert body["error"]["code"] == "unknown_op", body


def test_availability_online_then_offline_disconnected_on_clean_close(gw, mqtt):
    dev = uid("av")
    mqtt.subscribe(gw.topic(dev, "availability"))
    d = gw.connect(gw.token(dev))
    m, on = mqtt.wait_json(gw.topic(dev, "availability"))
    assert m.retain and m.qos == 1
    assert set(on) == {"state", "gateway", "session", "ts"}, on
    assert on["state"] == "online" and on["gateway"] == gw.gw_id
    assert on["session"] == d.welcome["session"]
    assert_ts_now(on["ts"])
    d.close(1000)
    m, off = mqtt.wait_json(gw.topic(dev, "availability"))
    assert m.retain
    assert set(off) == {"state", "gateway", "session", "ts", "reason"}, off
    assert off["state"] == "offline" and off["reason"] == "disconnected"
    assert off["gateway"] == gw.gw_id and off["session"] == on["session"]
    assert off["ts"] >= on["ts"]
    stored = fetch_retained(gw.broker, gw.topic(dev, "availability"))
    assert stored.json() == off


def test_availability_connection_lost_on_tcp_drop(gw, mqtt):
    """TCP closed (FIN) without a WebSocket close frame."""
    dev = uid("drop")
    mqtt.subscribe(gw.topic(dev, "availability"))
    d = gw.connect(gw.token(dev))
    mqtt.wait_json(gw.topic(dev, "availability"), lambda b: b["state"] == "online")
    d.drop()
    _, off = mqtt.wait_json(gw.topic(dev, "availability"), timeout=5)
    assert off["state"] == "offline" and off["reason"] == "connection_lost", off


def test_availability_connection_lost_on_tcp_reset(gw, mqtt):
    """TCP reset (RST) without a WebSocket close frame."""
    dev = uid("rst")
    mqtt.subscribe(gw.topic(dev, "availability"))
    d = gw.connect(gw.token(dev))
    mqtt.wait_json(gw.topic(dev, "availability"), lambda b: b["state"] == "online")
    d.drop(reset=True)
    _, off = mqtt.wait_json(gw.topic(dev, "availability"), timeout=5)
    assert off["state"] == "offline" and off["reason"] == "connection_lost", off


def test_reload_op_answers_ok(gw, mqtt):
    bridge_request(mqtt, gw, "reload", {"id": "rl-1"})
    body = bridge_response(mqtt, gw, "reload", "rl-1")
    assert body["status"] == "ok", body
