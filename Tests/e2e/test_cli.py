"""gatehousectl against a live gateway and broker."""

import json
import subprocess
import threading
import time

from conftest import (GATEHOUSECTL_BIN, clean_env, deep_merge, fetch_retained_json, free_port, run_ctl, to_yaml, uid,
                      verify_hs256)


def broker_flags(gw):
    return ["--url", gw.broker.url, "--base-topic", gw.base]


def test_token_issue_output_verifies(gw):
    dev = uid("ctl")
    r = run_ctl(["token", "issue", dev, "--key-file", str(gw.key_path), "--kind", "sensor", "--jti", "t-1"])
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    claims = verify_hs256(token, gw.key)
    assert claims["sub"] == dev and claims["kind"] == "sensor" and claims["jti"] == "t-1"
    assert claims["exp"] > time.time() + 86400
    d = gw.connect(token)
    assert d.welcome["device"] == dev


def test_token_issue_json(gw):
    dev = uid("ctl")
    r = run_ctl(["token", "issue", dev, "--key-file", str(gw.key_path), "--expires", "never", "--json"])
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["device"] == dev and out["expires"] is None
    assert "exp" not in verify_hs256(out["token"], gw.key)


def test_token_issue_refuses_invalid_device_id(gw):
    r = run_ctl(["token", "issue", "a/b", "--key-file", str(gw.key_path)])
    assert r.returncode != 0


def test_devices_json_lists_connected_device_online(gw):
    dev, d = gw.device(kind="camera")
    r = run_ctl(["devices", "--json", *broker_flags(gw)])
    assert r.returncode == 0, r.stderr
    rows = [row for row in json.loads(r.stdout) if row["device"] == dev]
    assert len(rows) == 1, r.stdout
    assert rows[0]["state"] == "online"
    assert rows[0]["gateway"] == gw.gw_id
    assert rows[0]["session"] == d.welcome["session"]


def answer_one_command(device, result):
    try:
        frame = device.expect("command", timeout=10)
        result["frame"] = frame
        device.send_json({"type": "response", "id": frame["id"], "status": "ok", "data": {"applied": True}})
    except Exception as e:  # reported by the test
        result["error"] = e


def test_send_gets_ok_from_answering_device(gw):
    dev, d = gw.device()
    result = {}
    t = threading.Thread(target=answer_one_command, args=(d, result), daemon=True)
    t.start()
    r = run_ctl(["send", dev, "set_setpoint", "celsius=21.5", "mode=heat", "--timeout", "5s", *broker_flags(gw)])
    t.join(5)
    assert "error" not in result, result
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert r.stdout.startswith("ok"), r.stdout
    assert result["frame"]["name"] == "set_setpoint"
    assert result["frame"]["params"] == {"celsius": 21.5, "mode": "heat"}


def test_send_to_offline_device_exits_nonzero(gw):
    r = run_ctl(["send", uid("gone"), "ping", *broker_flags(gw)])
    assert r.returncode != 0
    assert "offline" in r.stdout + r.stderr


def test_watch_prints_telemetry_line(gw):
    dev, d = gw.device()
    proc = subprocess.Popen(
        [GATEHOUSECTL_BIN, "watch", dev, "--count", "1", "--json", *broker_flags(gw)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env(),
    )
    try:
        deadline = time.monotonic() + 15
        seq = 0
        while proc.poll() is None and time.monotonic() < deadline:
            seq += 1
            d.send_json({"type": "telemetry", "seq": seq, "data": {"temperature": 20.5}})
            d.expect_ack(seq)
            time.sleep(0.3)
        out, err = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    assert lines[0]["device"] == dev and lines[0]["kind"] == "telemetry", lines
    assert lines[0]["payload"]["data"] == {"temperature": 20.5}


def test_kick_closes_device(gw):
    dev, d = gw.device()
    r = run_ctl(["kick", dev, *broker_flags(gw)])
    assert r.returncode == 0, (r.stdout, r.stderr)
    d.expect_close(1008)


def test_kick_offline_device_exits_nonzero(gw):
    r = run_ctl(["kick", uid("nobody"), *broker_flags(gw)])
    assert r.returncode != 0


def test_gateways_json(gw):
    r = run_ctl(["gateways", "--json", "--wait", "3s", *broker_flags(gw)])
    assert r.returncode == 0, r.stderr
    rows = [row for row in json.loads(r.stdout) if row["gateway"] == gw.gw_id]
    assert len(rows) == 1, r.stdout
    assert rows[0]["state"] == "online"
    assert isinstance(rows[0]["health"], dict) and rows[0]["health"]["gateway"] == gw.gw_id


def test_unreachable_broker_exits_nonzero_with_message():
    r = run_ctl(["devices", "--url", f"mqtt://127.0.0.1:{free_port()}", "--base-topic", "x"], timeout=30)
    assert r.returncode != 0
    assert "cannot reach broker" in r.stderr, r.stderr


def test_config_file_gives_broker_base_topic_and_key(gw):
    """--config alone: the broker, base topic and fleet key as the gateway reads them."""
    dev, _ = gw.device()
    r = run_ctl(["devices", "--json", "--config", str(gw.config_path)])
    assert r.returncode == 0, r.stderr
    assert any(row["device"] == dev for row in json.loads(r.stdout)), r.stdout
    r = run_ctl(["token", "issue", uid("ctl"), "--config", str(gw.config_path)])
    assert r.returncode == 0, r.stderr
    verify_hs256(r.stdout.strip(), gw.key)


def test_config_refused_by_the_gateway_is_refused_with_every_key(gw, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(to_yaml(deep_merge(gw.config, {"mqtt": {"password": "x", "base_topic": "a/#"}})))
    r = run_ctl(["devices", "--config", str(path)])
    assert r.returncode == 2
    assert "mqtt.password: unknown key" in r.stderr and "mqtt.base_topic" in r.stderr, r.stderr


def test_base_topic_flag_is_validated_like_the_config_key():
    r = run_ctl(["devices", "--url", f"mqtt://127.0.0.1:{free_port()}", "--base-topic", "a/+"])
    assert r.returncode == 2
    assert "must be a topic without + #" in r.stderr, r.stderr


def test_one_version_for_gatehousectl_and_the_bridge_state(gw):
    r = run_ctl(["--version"])
    assert r.returncode == 0, r.stderr
    state = fetch_retained_json(gw.broker, gw.bridge("state"), lambda s: s["state"] == "online")
    assert state["version"] == r.stdout.strip(), (state, r.stdout)
