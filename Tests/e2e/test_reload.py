"""Reload without dropping devices (issue 5): SIGHUP and the `reload` bridge request re-read the config file.
`log.level`, `limits.*` and `homeassistant.*` take effect at once; other changed keys are named in the log as
needing a restart; a config with problems is not applied. Devices stay connected throughout."""

import json
import signal

from conftest import to_yaml, uid, wait_until
from test_bridge import bridge_request, bridge_response


def rewrite(g, section: str, values: dict) -> None:
    g.config[section] = {**g.config.get(section, {}), **values}
    g.config_path.write_text(to_yaml(g.config))


def test_sighup_applies_limits_to_connected_devices(gateway):
    g = gateway()
    device_id, dev = g.device()
    rewrite(g, "limits", {"max_messages_per_s": 1})
    g.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "applied: limits.max_messages_per_s" in g.log(), 5), g.log_tail()
    # The same connection now gets the new rate (burst of two seconds' worth = 2 messages).
    codes = []
    for seq in range(1, 11):
        dev.send_json({"type": "telemetry", "seq": seq, "data": {"n": seq}})
        frame = dev.recv_json()
        codes.append(frame["type"] if frame["type"] == "ack" else frame["error"]["code"])
    assert codes[:2] == ["ack", "ack"] and "rate_limited" in codes, codes
    assert dev.is_open()


def test_sighup_changes_the_log_level(gateway):
    g = gateway()
    _, dev = g.device()
    dev.send_text("not json")
    dev.expect_error()
    assert " debug " not in g.log()
    rewrite(g, "log", {"level": "debug"})
    g.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "applied: log.level" in g.log(), 5), g.log_tail()
    dev.send_text("not json")  # bad messages are logged at debug level
    dev.expect_error()
    assert wait_until(lambda: " debug gatehouse: device=" in g.log() and "bad message" in g.log(), 5), g.log_tail()
    assert dev.is_open()


def test_sighup_turns_home_assistant_discovery_on_and_moves_its_prefix(gateway, mqtt):
    g = gateway()
    prefix, moved = uid("ha"), uid("hb")
    mqtt.subscribe(f"{prefix}/#")
    mqtt.subscribe(f"{moved}/#")
    device_id, dev = g.device(kind="camera")
    rewrite(g, "homeassistant", {"enabled": True, "prefix": prefix})
    g.send_signal(signal.SIGHUP)
    m = mqtt.wait_for(lambda x: x.topic.startswith(f"{prefix}/camera/") and x.payload)
    assert m.retain and json.loads(m.payload)["topic"] == g.topic(device_id, "media/snapshot")
    rewrite(g, "homeassistant", {"prefix": moved})
    g.send_signal(signal.SIGHUP)
    # The entity is withdrawn under the old prefix (empty retained config) and announced under the new one.
    gone = mqtt.wait_for(lambda x: x.topic == m.topic and not x.payload)
    assert gone.retain
    assert mqtt.wait_for(lambda x: x.topic.startswith(f"{moved}/camera/") and x.payload).retain
    assert dev.is_open()


def test_keys_that_need_a_restart_are_named_and_a_bad_config_is_not_applied(gateway, mqtt):
    g = gateway()
    _, dev = g.device()
    rewrite(g, "gateway", {"heartbeat_s": 45})
    rewrite(g, "limits", {"max_connections": 500})
    g.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "only applied at the next restart: gateway.heartbeat_s" in g.log(), 5), g.log_tail()
    assert "applied: limits.max_connections" in g.log()
    rewrite(g, "limits", {"max_messages_per_s": "lots"})
    bridge_request(mqtt, g, "reload", {"id": "rl-bad"})
    body = bridge_response(mqtt, g, "reload", "rl-bad")
    assert body["status"] == "ok"
    assert body["data"]["config_problems"] == ["limits.max_messages_per_s: must be an integer"], body
    assert body["data"]["applied"] == []
    assert "not applied, the running config stays" in g.log()
    # The running limits are untouched: messages still pass.
    for seq in range(1, 6):
        dev.send_json({"type": "telemetry", "seq": seq, "data": {"n": seq}})
        dev.expect_ack(seq)
    assert g.http_get("/readyz")[0] == 200


def test_reload_request_reports_what_it_applied(gateway, mqtt):
    g = gateway()
    rewrite(g, "limits", {"max_bytes_per_s": "1MiB"})
    bridge_request(mqtt, g, "reload", {"id": "rl-2"})
    body = bridge_response(mqtt, g, "reload", "rl-2")
    assert body["status"] == "ok"
    data = body["data"]
    assert data["applied"] == ["limits.max_bytes_per_s"] and data["restart_needed"] == [], data
    assert data["revoked_list_changed"] is False and data["tls_reloaded"] is False and data["config_problems"] == []
