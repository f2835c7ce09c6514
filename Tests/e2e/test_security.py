"""Security (issue 4): key rotation with several fleet keys, topic isolation, and a token for one
device never acting as another."""

import base64
import json
import secrets
import subprocess

import pytest

from conftest import GATEHOUSECTL_BIN, make_jwt, uid


def new_key(path):
    text = base64.b64encode(secrets.token_bytes(32)).decode() + "\n"
    path.write_text(text)
    return text.encode()[:-1]


@pytest.fixture
def rotating(gateway, tmp_path):
    """A gateway with its unnamed key plus keys `2026-a` and `2026-b` (auth.key_files)."""
    keys = {kid: new_key(tmp_path / f"{kid}.key") for kid in ("2026-a", "2026-b")}
    g = gateway(auth={"key_files": {kid: str(tmp_path / f"{kid}.key") for kid in keys}})
    return g, keys


def upgrade_status(g, token):
    return g.raw_upgrade(token=token)[0]


def test_several_fleet_keys_are_valid_at_once(rotating):
    g, keys = rotating
    dev = uid("rot")
    assert upgrade_status(g, g.token(dev)) == 101, "the unnamed key still works for tokens without kid"
    for kid, key in keys.items():
        token = make_jwt(key, {"sub": dev}, header_extra={"kid": kid})
        assert upgrade_status(g, token) == 101, f"key {kid}"


def test_kid_must_match_the_signing_key(rotating):
    g, keys = rotating
    dev = uid("rot")
    assert upgrade_status(g, make_jwt(keys["2026-a"], {"sub": dev}, header_extra={"kid": "2026-b"})) == 401
    assert upgrade_status(g, make_jwt(keys["2026-a"], {"sub": dev}, header_extra={"kid": "retired"})) == 401
    assert upgrade_status(g, make_jwt(secrets.token_bytes(32), {"sub": dev})) == 401


def test_cli_issues_with_a_chosen_key_from_the_config(rotating):
    g, keys = rotating
    dev = uid("cli")
    out = subprocess.run([GATEHOUSECTL_BIN, "token", "issue", dev, "--kid", "2026-b", "--config", str(g.config_path)],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["kid"] == "2026-b"
    assert upgrade_status(g, token) == 101
    inspect = subprocess.run([GATEHOUSECTL_BIN, "token", "inspect", token, "--config", str(g.config_path), "--json"],
                             capture_output=True, text=True, timeout=20)
    assert inspect.returncode == 0 and json.loads(inspect.stdout)["valid"] is True, inspect.stdout + inspect.stderr


def test_unreadable_key_file_is_named_by_check_config(gateway, tmp_path):
    g = gateway(start=False, auth={"key_files": {"gone": str(tmp_path / "gone.key")}})
    from test_config import run_gatehouse
    r = run_gatehouse(["--check-config", str(g.config_path)])
    assert r.returncode != 0 and "auth.key_files.gone" in r.stderr, r.stderr


# -- Topic isolation: whatever a device sends, the gateway publishes only under <base>/<its id>/.

# `bridge` is refused as a device id (section 1); as an event or stream name it matches the protocol's
# pattern and stays under the device's own topic, so it is not in this list.
HOSTILE_NAMES = ["a/b", "+", "#", "a+", "x#", "nul\u0000", "", "x" * 65, "../up", " sp", "a.b"]


def test_publishes_stay_under_the_devices_own_topic(gw, mqtt):
    mqtt.subscribe(f"{gw.base}/#")
    mqtt.subscribe("#")
    dev, d = gw.device()
    seq = 0
    for name in HOSTILE_NAMES:
        seq += 1
        d.send_json({"type": "event", "seq": seq, "name": name, "data": {}})
        d.expect_nack(seq, "bad_message")
    for name in HOSTILE_NAMES:
        header = json.dumps({"stream": name, "content_type": "image/jpeg"}).encode()
        d.send_binary(len(header).to_bytes(2, "big") + header + b"\xff\xd8")
        d.expect_error("bad_message")
    # Fields that look like routing information are data, never topics.
    seq += 1
    d.send_json({"type": "telemetry", "seq": seq, "data": {"device": "victim", "topic": "x/#"}, "device": "victim"})
    frame = d.recv_json()
    assert frame["type"] in ("ack", "nack"), frame
    d.send_json({"type": "event", "seq": seq + 1, "name": "ok", "data": {}})
    d.expect_ack(seq + 1)
    foreign = [m for m in mqtt.collect(lambda m: True, 1.0)
               if m.topic.startswith(f"{gw.base}/") and not m.topic.startswith(f"{gw.base}/{dev}/")
               and not m.topic.startswith(f"{gw.base}/bridge/")]
    assert not foreign, f"published outside {gw.base}/{dev}/: {foreign}"
    outside = [m for m in mqtt.seen(lambda m: dev in m.topic and not m.topic.startswith(f"{gw.base}/"))]
    assert not outside, f"published outside {gw.base}/: {outside}"


def test_a_device_never_receives_another_devices_commands(gw, mqtt):
    a, da = gw.device()
    b, db = gw.device()
    mqtt.subscribe(f"{gw.base}/{a}/response/#")
    mqtt.publish(f"{gw.base}/{a}/request/ping", {"id": "for-a"})
    assert da.expect("command")["id"] == "for-a"
    db.expect_no_frame(0.5)
    # b answering a's command id is an unknown id for b, and nothing is published for a.
    db.send_json({"type": "response", "seq": 1, "id": "for-a", "status": "ok"})
    db.expect_nack(1, "unknown_id")
    da.send_json({"type": "response", "id": "for-a", "status": "ok"})
    _, body = mqtt.wait_json(f"{gw.base}/{a}/response/ping")
    assert body["id"] == "for-a" and body["status"] == "ok"


def test_a_token_for_one_device_cannot_act_as_another(gw, mqtt):
    victim = uid("victim")
    mqtt.subscribe(f"{gw.base}/{victim}/#")
    attacker = gw.connect(gw.token(uid("attacker")), query_token=gw.token(victim))  # header wins
    attacker.send_json({"type": "telemetry", "seq": 1, "data": {"as": "victim"}, "device": victim})
    attacker.expect_ack(1)
    mqtt.assert_nothing(f"{gw.base}/{victim}/#", within=0.5)
    assert upgrade_status(gw, make_jwt(gw.key, {"sub": f"{victim}/../x"})) == 401
    assert upgrade_status(gw, make_jwt(gw.key, {"sub": "bridge"})) == 401


def test_a_token_expiring_in_the_far_future_is_fine(gw):
    dev = uid("far")
    d = gw.connect(make_jwt(gw.key, {"sub": dev, "exp": 2 ** 63 - 1}))
    d.send_json({"type": "telemetry", "seq": 1, "data": {}})
    d.expect_ack(1)
    assert gw.running
