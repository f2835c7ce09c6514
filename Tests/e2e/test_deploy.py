"""deploy/ (issue 5): install.sh into a DESTDIR produces the expected tree, is idempotent, and its systemd
unit passes `systemd-analyze verify`; the gateway speaks systemd's notify protocol (READY, WATCHDOG, STOPPING)."""

import hashlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

from conftest import GATEHOUSE_BIN, ROOT

BIN_DIR = str(Path(GATEHOUSE_BIN).parent)


def install(destdir, prefix="/usr/local"):
    env = dict(os.environ, DESTDIR=str(destdir), PREFIX=prefix, BIN_DIR=BIN_DIR)
    r = subprocess.run([str(ROOT / "deploy" / "install.sh")], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def acl_grants_write(part, topic):
    """Whether one user's part of a mosquitto ACL lets it publish `topic` (`topic write`/`readwrite` lines, with
    mosquitto's `+` and `#`)."""
    def matches(pattern, levels):
        for i, p in enumerate(pattern):
            if p == "#":
                return True
            if i >= len(levels) or (p != "+" and p != levels[i]):
                return False
        return len(pattern) == len(levels)
    for line in part.splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "topic" and words[1] in ("write", "readwrite"):
            if matches(words[2].split("/"), topic.split("/")):
                return True
    return False


def test_install_into_destdir_builds_the_tree_and_is_idempotent(tmp_path):
    root = tmp_path / "root"
    install(root)
    for binary in ("gatehouse", "gatehousectl", "gatehouse-sim"):
        assert os.access(root / "usr/local/bin" / binary, os.X_OK), binary
    etc = root / "etc/gatehouse"
    assert mode(etc) == 0o750
    assert mode(etc / "fleet.key") == 0o600 and len((etc / "fleet.key").read_text().strip()) >= 40
    assert mode(etc / "mqtt.password") == 0o600 and mode(etc / "control.password") == 0o600
    config = (etc / "gatehouse.yaml").read_text()
    assert "password_file: /etc/gatehouse/mqtt.password" in config and "username: gatehouse" in config
    assert (root / "var/lib/gatehouse").is_dir()
    unit = (root / "etc/systemd/system/gatehouse.service").read_text()
    for line in ("Type=notify", "User=gatehouse", "StateDirectory=gatehouse", "ProtectSystem=strict",
                 "NoNewPrivileges=yes", "PrivateTmp=yes", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
                 "Restart=on-failure", "WatchdogSec=", "KillMode=mixed", "ExecStart=/usr/local/bin/gatehouse --config /etc/gatehouse/gatehouse.yaml"):
        assert line in unit, line
    broker_conf = (root / "etc/mosquitto/conf.d/gatehouse.conf").read_text().splitlines()
    for line in ("listener 1883 127.0.0.1", "set_tcp_nodelay true", "max_inflight_messages 1000"):
        assert line in broker_conf, line
    acl = (root / "etc/mosquitto/gatehouse.acl").read_text()
    gateway_part, control_part = acl.split("\nuser control\n")
    gateway_writes = [line for line in gateway_part.splitlines() if line.startswith("topic write") or line.startswith("topic readwrite gatehouse")]
    assert gateway_writes and not [w for w in gateway_writes if "/request" in w or w.endswith("/set") or w.endswith("/#") and "gatehouse/#" in w], \
        f"the gateway user may not publish commands: {gateway_writes}"
    assert "topic write gatehouse/+/request/#" in control_part and "topic write gatehouse/+/set" in control_part
    # Every topic the gateway publishes (a denied publish is refused; with `max_queued_messages 0` mosquitto 2.0.11 also disconnects the client), and every
    # control topic operators publish.
    gateway_topics = ["telemetry", "state", "meta", "availability", "event/x", "media/x", "response/x", "pending/x",
                      "desired", "delta"]
    for topic in [f"gatehouse/dev1/{level}" for level in gateway_topics] + [
            "gatehouse/bridge/gw1/state", "gatehouse/bridge/gw1/health", "gatehouse/bridge/gw1/response/x",
            "homeassistant/sensor/dev1/config", "gatehouse/ctl/abc/reply"]:
        assert acl_grants_write(gateway_part, topic), f"the gateway user may not publish {topic}"
    for topic in ("gatehouse/dev1/request/reboot", "gatehouse/dev1/set", "gatehouse/dev1/desired/set",
                  "gatehouse/bridge/gw1/request/x"):
        assert acl_grants_write(control_part, topic), f"the control user may not publish {topic}"
    if shutil.which("mosquitto_passwd"):
        users = [line.split(":")[0] for line in (root / "etc/mosquitto/gatehouse.passwd").read_text().splitlines()]
        assert users == ["gatehouse", "control"], users

    before = {p: digest(etc / p) for p in ("fleet.key", "mqtt.password", "gatehouse.yaml")}
    install(root)  # again: keys, passwords and config are kept
    assert before == {p: digest(etc / p) for p in before}

    env = dict(os.environ, DESTDIR=str(root))
    subprocess.run([str(ROOT / "deploy" / "uninstall.sh")], env=env, check=True, capture_output=True)
    assert not (root / "usr/local/bin/gatehouse").exists() and (etc / "fleet.key").exists()


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    prefix = tmp_path / "opt"  # a real path, so verify finds the ExecStart binary
    staging = tmp_path / "stage"
    install(staging, prefix=str(prefix))
    unit = staging / "etc/systemd/system/gatehouse.service"
    (prefix / "bin").mkdir(parents=True)
    shutil.copy(staging / str(prefix).lstrip("/") / "bin/gatehouse", prefix / "bin/gatehouse")
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [line for line in (r.stdout + r.stderr).splitlines()
                if "gatehouse.service" in line and "mosquitto.service" not in line]
    # verify exits 0 even for unknown keys or bad values: any line about our unit is a failure.
    assert r.returncode == 0 and not problems, r.stdout + r.stderr


def test_sd_notify_ready_watchdog_and_stopping(gateway, tmp_path):
    path = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    listener.settimeout(0.2)
    g = gateway(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
    seen = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (b"READY=1" in seen and seen.count(b"WATCHDOG=1") >= 3):
        try:
            seen.append(listener.recv(256))
        except socket.timeout:
            pass
    assert b"READY=1" in seen and seen.count(b"WATCHDOG=1") >= 3, seen
    g.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and b"STOPPING=1" not in seen:
        try:
            seen.append(listener.recv(256))
        except socket.timeout:
            pass
    assert b"STOPPING=1" in seen, seen
    listener.close()
