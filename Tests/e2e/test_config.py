"""Config file validation and environment overrides (`gatehouse --check-config FILE`, GATEHOUSE_<SECTION>_<KEY>)."""

import subprocess

from conftest import GATEHOUSE_BIN, clean_env, deep_merge, fetch_retained_json, free_port, to_yaml


def run_gatehouse(args, env=None, timeout=20):
    return subprocess.run([GATEHOUSE_BIN, *args], capture_output=True, text=True, timeout=timeout,
                          env=clean_env(env))


def bad_config(g):
    return deep_merge(g.config, {
        "gateway": {"listen": "not-an-address", "colour": "blue"},
        "mqtt": {"telemetry_qos": 3},
        "auth": {"key_file": str(g.dir / "missing" / "fleet.key")},
    })


def test_check_config_good_file_exits_0(gateway):
    g = gateway(start=False)
    r = run_gatehouse(["--check-config", str(g.config_path)])
    assert r.returncode == 0, (r.stdout, r.stderr)


def test_check_config_reports_every_problem_with_its_key(gateway):
    g = gateway(start=False)
    g.config_path.write_text(to_yaml(bad_config(g)))
    r = run_gatehouse(["--check-config", str(g.config_path)])
    assert r.returncode != 0
    for key in ("gateway.listen", "mqtt.telemetry_qos", "gateway.colour", "auth.key_file"):
        assert key in r.stderr, f"{key} not reported on stderr:\n{r.stderr}"


def test_gateway_refuses_to_start_with_bad_config(gateway):
    g = gateway(start=False)
    g.config_path.write_text(to_yaml(bad_config(g)))
    r = run_gatehouse(["--config", str(g.config_path)])
    assert r.returncode != 0
    assert "mqtt.telemetry_qos" in r.stderr


def test_check_config_unreadable_file(tmp_path):
    r = run_gatehouse(["--check-config", str(tmp_path / "nope.yaml")])
    assert r.returncode != 0
    assert r.stderr.strip()


def test_check_config_not_yaml_mapping(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("- just\n- a list\n")
    r = run_gatehouse(["--check-config", str(path)])
    assert r.returncode != 0


def test_env_mqtt_url_overrides_file(gateway, broker):
    dead = f"mqtt://127.0.0.1:{free_port()}"
    g = gateway(mqtt={"url": dead}, env={"GATEHOUSE_MQTT_URL": broker.url})
    # Ready means connected to the broker named by the environment, not by the file.
    state = fetch_retained_json(broker, g.bridge("state"), lambda b: b["state"] == "online")
    assert state and state["state"] == "online"


def test_env_override_checked_by_check_config(gateway):
    g = gateway(start=False)
    r = run_gatehouse(["--check-config", str(g.config_path)], env={"GATEHOUSE_MQTT_TELEMETRY_QOS": "7"})
    assert r.returncode != 0
    assert "mqtt.telemetry_qos" in r.stderr


def test_check_config_refuses_bad_gateway_id_and_base_topic(gateway):
    g = gateway(start=False)
    g.config_path.write_text(to_yaml(deep_merge(g.config, {"gateway": {"id": "gw/1"}, "mqtt": {"base_topic": "a/#"}})))
    r = run_gatehouse(["--check-config", str(g.config_path)])
    assert r.returncode != 0
    assert "gateway.id" in r.stderr and "mqtt.base_topic" in r.stderr, r.stderr


def test_spool_keys_are_validated(gateway):
    g = gateway(start=False)
    g.config_path.write_text(to_yaml(deep_merge(g.config, {"spool": {"max_bytes": "lots", "max_age": "3 weeks", "when_full": "panic"}})))
    r = run_gatehouse(["--check-config", str(g.config_path)])
    assert r.returncode != 0
    for key in ("spool.max_bytes", "spool.max_age", "spool.when_full"):
        assert key in r.stderr, f"{key} not reported on stderr:\n{r.stderr}"
    g.config_path.write_text(to_yaml(deep_merge(g.config, {"spool": {"max_bytes": "64MiB", "max_age": "7d", "when_full": "drop_oldest"}})))
    assert run_gatehouse(["--check-config", str(g.config_path)]).returncode == 0


def test_unusable_spool_dir_stops_the_gateway_with_one_clear_line(gateway):
    g = gateway(start=False)
    blocker = g.dir / "not-a-dir"
    blocker.write_text("")
    g.config_path.write_text(to_yaml(deep_merge(g.config, {"spool": {"dir": str(blocker / "spool")}})))
    r = run_gatehouse(["--config", str(g.config_path)])
    assert r.returncode != 0
    lines = [line for line in r.stderr.splitlines() if "spool.dir" in line]
    assert lines and "Not a directory" in lines[0] and str(blocker) in lines[0], r.stderr


def test_port_in_use_exits_1_with_one_clear_line(gateway):
    import socket
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        g = gateway(start=False, gateway={"listen": f"127.0.0.1:{port}"})
        r = run_gatehouse(["--config", str(g.config_path)], timeout=30)
        assert r.returncode == 1, r.stderr
        line = [l for l in r.stderr.splitlines() if "gateway.listen" in l]
        assert line and f"127.0.0.1:{port}" in line[0] and "already in use" in line[0], r.stderr
    finally:
        holder.close()


def test_unreachable_broker_is_said_once_and_the_gateway_keeps_serving(gateway):
    g = gateway(mqtt={"url": "mqtt://127.0.0.1:1"}, wait_ready=False)
    import time
    time.sleep(1.5)
    assert g.running
    assert g.http_get("/healthz")[0] == 200 and g.http_get("/readyz")[0] == 503
    lines = [l for l in g.log().splitlines() if "broker unreachable" in l]
    assert lines and "127.0.0.1:1" in lines[0] and "Connection refused" in lines[0], g.log_tail()


def test_tls_keys_are_checked_and_nested_typos_reported(gateway, tmp_path):
    g = gateway(start=False)
    config = deep_merge(g.config, {
        "gateway": {"tls": {"cert_file": str(tmp_path / "missing.pem"), "key_fle": "x"}},
        "mqtt": {"tls": {"ca_file": str(tmp_path / "missing-ca.pem")}},
    })
    g.config_path.write_text(to_yaml(config))
    r = run_gatehouse(["--check-config", str(g.config_path)])
    assert r.returncode != 0
    for key in ("gateway.tls.cert_file", "gateway.tls.key_fle: unknown key", "mqtt.tls.ca_file"):
        assert key in r.stderr, f"{key} not reported:\n{r.stderr}"
