"""Home Assistant MQTT discovery (PROTOCOL.md section 6), checked against the options Home Assistant
documents for MQTT climate, camera and sensor entities."""

import re

import pytest

from conftest import fetch_retained, uid

# Options documented by Home Assistant for these MQTT platforms (the ones the gateway uses, plus the
# common ones: availability, device, ids), https://www.home-assistant.io/integrations/{climate,camera,sensor}.mqtt/
COMMON = {"unique_id", "object_id", "name", "device", "availability", "availability_mode"}
CLIMATE = COMMON | {"current_temperature_topic", "current_temperature_template", "temperature_state_topic",
                    "temperature_state_template", "temperature_command_topic", "temperature_command_template",
                    "mode_state_topic", "mode_state_template", "mode_command_topic", "mode_command_template",
                    "modes", "temperature_unit", "min_temp", "max_temp", "temp_step", "precision",
                    "action_topic", "action_template"}
CAMERA = COMMON | {"topic"}
BUTTON = COMMON | {"command_topic", "payload_press", "icon"}
SENSOR = COMMON | {"state_topic", "value_template", "unit_of_measurement", "state_class", "device_class"}
DEVICE = {"identifiers", "name", "manufacturer", "model", "sw_version", "via_device"}
AVAILABILITY = {"topic", "value_template", "payload_available", "payload_not_available"}
OBJECT_ID = re.compile(r"^[A-Za-z0-9_-]+$")

HELLO = {"type": "hello", "seq": 1, "kind": "thermostat", "model": "T-2", "firmware": "2.4.1",
         "capabilities": {"commands": {
             "set_setpoint": {"params": {"celsius": {"type": "number", "minimum": 5, "maximum": 35}}},
             "set_mode": {"params": {"mode": {"type": "string", "enum": ["heat", "off"]}}}},
             "telemetry": {"temperature": {"unit": "°C"}}}}


@pytest.fixture
def ha(gateway):
    return gateway(homeassistant={"enabled": True})


def discovery(mqtt, topic, timeout=5):
    m = mqtt.wait_for(lambda x: x.topic == topic and x.payload, timeout=timeout)
    assert m.retain and m.qos == 1, m
    return m.json()


def check_common(config, g, dev, allowed):
    assert set(config) <= allowed, f"undocumented options: {set(config) - allowed}"
    assert OBJECT_ID.match(config["unique_id"]), config["unique_id"]
    assert config["availability_mode"] == "all"
    topics = [a["topic"] for a in config["availability"]]
    assert topics == [g.topic(dev, "availability"), g.bridge("state")], topics
    for a in config["availability"]:
        assert set(a) <= AVAILABILITY and a["value_template"] == "{{ value_json.state }}", a
    assert set(config["device"]) <= DEVICE and config["device"]["identifiers"], config["device"]


def test_thermostat_is_a_climate_entity(ha, mqtt):
    mqtt.subscribe("homeassistant/#")
    dev = uid("therm.1")
    d = ha.connect(ha.token(dev, kind="thermostat"))
    d.send_json(HELLO)
    d.expect_ack(1)
    object_id = f"{ha.gw_id}_{dev}".replace(".", "_")
    topic = f"homeassistant/climate/{object_id}/config"
    config = discovery(mqtt, topic)
    check_common(config, ha, dev, CLIMATE)
    config = mqtt.wait_for(lambda x: x.topic == topic and x.json().get("device", {}).get("model") == "T-2").json()
    assert config["unique_id"] == object_id, "every character outside [A-Za-z0-9_-] becomes _"
    assert config["current_temperature_topic"] == ha.topic(dev, "telemetry")
    assert config["temperature_command_topic"] == ha.topic(dev, "request/set_setpoint")
    assert (config["min_temp"], config["max_temp"]) == (5, 35)
    assert config["modes"] == ["heat", "off"]
    assert config["device"]["sw_version"] == "2.4.1"
    # The command template makes a request the gateway accepts.
    mqtt.publish(config["temperature_command_topic"], config["temperature_command_template"].replace("{{ value }}", "21.5"))
    command = d.expect("command")
    assert command["name"] == "set_setpoint" and command["params"] == {"celsius": 21.5}


def test_camera_is_a_camera_entity(ha, mqtt):
    mqtt.subscribe("homeassistant/camera/#")
    dev = uid("cam")
    ha.connect(ha.token(dev, kind="camera"))
    config = discovery(mqtt, f"homeassistant/camera/{ha.gw_id}_{dev}/config")
    check_common(config, ha, dev, CAMERA)
    assert config["topic"] == ha.topic(dev, "media/snapshot")


def test_camera_has_a_snapshot_button(ha, mqtt):
    mqtt.subscribe("homeassistant/button/#")
    dev = uid("cam")
    mqtt.subscribe(ha.topic(dev, "request/snapshot"))
    d = ha.connect(ha.token(dev, kind="camera"))
    config = discovery(mqtt, f"homeassistant/button/{ha.gw_id}_{dev}_snapshot/config")
    check_common(config, ha, dev, BUTTON)
    assert config["command_topic"] == ha.topic(dev, "request/snapshot")
    mqtt.publish(config["command_topic"], config["payload_press"])
    assert d.expect("command")["name"] == "snapshot"


def test_sensor_gets_one_entity_per_numeric_telemetry_key(ha, mqtt):
    mqtt.subscribe("homeassistant/sensor/#")
    dev = uid("sens")
    d = ha.connect(ha.token(dev, kind="sensor"))
    d.send_json({"type": "telemetry", "seq": 1, "data": {"humidity": 40.5, "co2": 600, "label": "kitchen", "ok": True}})
    d.expect_ack(1)
    configs = {}
    for key in ("humidity", "co2"):
        configs[key] = discovery(mqtt, f"homeassistant/sensor/{ha.gw_id}_{dev}_{key}/config")
        check_common(configs[key], ha, dev, SENSOR)
        assert configs[key]["state_topic"] == ha.topic(dev, "telemetry")
        assert key in configs[key]["value_template"]
    assert configs["humidity"]["device_class"] == "humidity"
    assert configs["co2"]["device_class"] == "carbon_dioxide"
    mqtt.assert_nothing(lambda x: x.topic.startswith(f"homeassistant/sensor/{ha.gw_id}_{dev}_label")
                        or x.topic.startswith(f"homeassistant/sensor/{ha.gw_id}_{dev}_ok"), within=0.5)


def test_disabled_by_default(gw, mqtt):
    mqtt.subscribe("homeassistant/#")
    dev = uid("noha")
    gw.connect(gw.token(dev, kind="camera"))
    mqtt.assert_nothing(lambda x: dev in x.topic, within=0.7)


def test_at_most_1000_sensors_per_device(ha, mqtt):
    """A device inventing telemetry keys gets 1,000 sensors; later keys are still published as telemetry."""
    mqtt.subscribe("homeassistant/sensor/#")
    mqtt.subscribe(ha.topic("+", "telemetry"))
    dev = uid("keys")
    d = ha.connect(ha.token(dev, kind="sensor"))
    for batch in range(4):
        d.send_json({"type": "telemetry", "seq": batch, "data": {f"k{batch}_{i}": i for i in range(300)}})
        d.expect_ack(batch)
    prefix = f"homeassistant/sensor/{ha.gw_id}_{dev}_"
    mqtt.wait_for(lambda x: x.topic == ha.topic(dev, "telemetry") and b'"k3_299"' in x.payload)
    configs = mqtt.collect(lambda x: x.topic.startswith(prefix) and x.payload, 1.0)
    assert len({m.topic for m in configs}) == 1000, len(configs)
    assert f"{prefix}k3_99/config" in {m.topic for m in configs} and f"{prefix}k3_100/config" not in {m.topic for m in configs}
    assert "Home Assistant sensors" in ha.log()


def test_camera_snapshot_is_retained_when_configured(gateway, mqtt):
    g = gateway(homeassistant={"enabled": True, "retain_snapshots": True})
    dev = uid("cam")
    topic = g.topic(dev, "media/snapshot")
    mqtt.subscribe(topic)
    d = g.connect(g.token(dev, kind="camera"))
    d.send_media({"stream": "snapshot", "content_type": "image/jpeg"}, b"\xff\xd8jpeg\xff\xd9")
    mqtt.wait_for(topic)
    m = fetch_retained(g.broker, topic)
    assert m is not None and m.payload == b"\xff\xd8jpeg\xff\xd9", m


def test_camera_snapshot_is_not_retained_by_default(ha, mqtt):
    dev = uid("cam")
    topic = ha.topic(dev, "media/snapshot")
    mqtt.subscribe(topic)
    d = ha.connect(ha.token(dev, kind="camera"))
    d.send_media({"stream": "snapshot", "content_type": "image/jpeg"}, b"\xff\xd8jpeg\xff\xd9")
    mqtt.wait_for(topic)
    assert fetch_retained(ha.broker, topic, timeout=0.5) is None


def test_a_repeated_hello_does_not_publish_the_entities_again(ha, mqtt):
    """A hello that says what the last one said announces nothing; one that changes the card announces again."""
    mqtt.subscribe("homeassistant/climate/#")
    dev = uid("hello")
    d = ha.connect(ha.token(dev, kind="thermostat"))
    topic = f"homeassistant/climate/{ha.gw_id}_{dev}/config"
    def announced(firmware):
        return lambda x: x.topic == topic and x.payload and x.json()["device"].get("sw_version") == firmware

    d.send_json(HELLO)
    d.expect_ack(1)
    mqtt.wait_for(announced("2.4.1"))  # after the connect's own announcement, from the token's kind
    for seq in range(2, 12):
        d.send_json(dict(HELLO, seq=seq))
        d.expect_ack(seq)
    mqtt.assert_nothing(announced("2.4.1"), within=0.7)
    d.send_json(dict(HELLO, seq=12, firmware="2.5.0"))
    d.expect_ack(12)
    mqtt.wait_for(announced("2.5.0"))


def test_a_telemetry_key_over_64_bytes_gets_no_sensor(ha, mqtt):
    mqtt.subscribe("homeassistant/sensor/#")
    dev = uid("long")
    d = ha.connect(ha.token(dev, kind="sensor"))
    longest, too_long = "k" * 64, "k" * 65
    d.send_json({"type": "telemetry", "seq": 1, "data": {too_long: 1, longest: 2}})
    d.expect_ack(1)
    discovery(mqtt, f"homeassistant/sensor/{ha.gw_id}_{dev}_{longest}/config")
    mqtt.assert_nothing(lambda x: x.topic == f"homeassistant/sensor/{ha.gw_id}_{dev}_{too_long}/config", within=0.5)


def test_republished_when_home_assistant_comes_online_at_once_and_once_for_a_flood(ha, mqtt):
    """Each `online` would announce every held device again: the first does at once, the next wait (10 s apart)."""
    mqtt.subscribe("homeassistant/camera/#")
    dev = uid("flood")
    ha.connect(ha.token(dev, kind="camera"))
    topic = f"homeassistant/camera/{ha.gw_id}_{dev}/config"
    discovery(mqtt, topic)
    for _ in range(50):
        mqtt.publish("homeassistant/status", "online")
    discovery(mqtt, topic)
    mqtt.assert_nothing(lambda x: x.topic == topic, within=2.0)
