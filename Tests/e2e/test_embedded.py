"""The embedded broker (issue 5): without `mqtt.url` the gateway runs, supervises and stops a private mosquitto.

Each test gives the gateway its own loopback port and data directory for the embedded broker; a `Broker`
object that is never started stands for its address, so the usual MQTT clients can talk to it.
"""

import ctypes
import errno
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import GATEHOUSE_BIN, Broker, Gateway, free_port, uid, wait_until
from streams import Observer, StreamDevice
from test_faults import finish


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0): ask /proc.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


class Embedded:
    """Where a gateway's embedded broker lives: its port, directory and pid."""

    def __init__(self, directory: Path):
        self.port = free_port()
        self.dir = directory / "mosquitto"
        self.address = Broker(directory / "unused", port=self.port)  # never started: only its address is used

    @property
    def overrides(self) -> dict:
        return {"mqtt": {"url": None, "embedded_port": self.port, "embedded_dir": str(self.dir)}}

    def pid(self) -> int:
        return int((self.dir / "mosquitto.pid").read_text())


@pytest.fixture
def embedded(gateway, tmp_path):
    """Factory: (gateway, Embedded) for a gateway running its own broker."""

    def make(**overrides) -> tuple[Gateway, Embedded]:
        e = Embedded(tmp_path / uid("emb"))
        merged = dict(e.overrides)
        merged["mqtt"] = {**merged["mqtt"], **overrides.pop("mqtt", {})}
        return gateway(broker=e.address, **merged, **overrides), e

    return make


def nodelay_of_connections(pid: int, port: int) -> list[bool]:
    """TCP_NODELAY of every connection process `pid` accepted on local `port`, read from its own sockets (copies of
    them taken with pidfd_getfd, which needs root as the tests run)."""
    libc = ctypes.CDLL(None, use_errno=True)
    sys_pidfd_open, sys_pidfd_getfd = 434, 438  # x86_64 and aarch64 alike
    inodes = set()
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":  # ESTABLISHED
            inodes.add(fields[9])
    pidfd = libc.syscall(sys_pidfd_open, pid, 0)
    assert pidfd >= 0, os.strerror(ctypes.get_errno())
    found = []
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            if os.readlink(f"/proc/{pid}/fd/{fd}").removeprefix("socket:[").removesuffix("]") not in inodes:
                continue
            copy = libc.syscall(sys_pidfd_getfd, pidfd, int(fd), 0)
            if copy < 0 and ctypes.get_errno() == errno.EPERM:
                pytest.skip("taking a copy of another process's socket needs ptrace rights (root, as CI runs)")
            assert copy >= 0, os.strerror(ctypes.get_errno())
            with socket.socket(fileno=copy) as s:
                found.append(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0)
    finally:
        os.close(pidfd)
    return found


def test_without_mqtt_url_the_gateway_runs_its_own_broker(embedded, mqtt_factory):
    g, e = embedded(mqtt={"max_inflight": 300})
    conf = (e.dir / "mosquitto.conf").read_text()
    assert f"listener {e.port} 127.0.0.1" in conf, conf
    assert "persistence true" in conf and f"persistence_location {e.dir}/" in conf, conf
    assert pid_alive(e.pid())
    client = mqtt_factory(e.address)
    # Its Receive Maximum is the gateway's window, not mosquitto's default of 20 (which would hold the gateway,
    # every device on one connection, to 20 unanswered messages).
    assert client.connack_properties.ReceiveMaximum == 300
    client.subscribe(f"{g.base}/#")
    device_id, dev = g.device(kind="sensor")
    dev.send_json({"type": "telemetry", "seq": 1, "data": {"t": 21.5}})
    dev.expect_ack(1)
    _, body = client.wait_json(g.topic(device_id, "telemetry"))
    assert body["data"] == {"t": 21.5}
    # Its output is in the gateway's log.
    assert "mosquitto: " in g.log()
    # Nagle's algorithm is off on its connections (the gateway's, the observer's): with mosquitto's default, what
    # it sends while its previous message to a client is unacknowledged waits for that client's delayed ACK.
    assert nodelay_of_connections(e.pid(), e.port) == [True, True]


def current_pid(e: Embedded) -> int | None:
    try:
        return e.pid()
    except (OSError, ValueError):  # between two runs of mosquitto, or while the gateway writes the file
        return None


def save_broker(e: Embedded) -> None:
    """Makes the embedded mosquitto write its database now (SIGUSR1) and waits until it has. A persistent session
    comes through a crash of the broker only once saved: without this, whether the observer's session (and so
    everything published while it reconnects) survives the kill would depend on mosquitto's 5 s autosave."""
    db = e.dir / "mosquitto.db"
    before = db.stat().st_mtime_ns if db.exists() else 0
    os.kill(e.pid(), signal.SIGUSR1)
    assert wait_until(lambda: db.exists() and db.stat().st_mtime_ns != before, 5), "mosquitto did not save its database"


def durable_observer(g: Gateway, e: Embedded) -> Observer:
    """An observer with a persistent session and a QoS 1 subscription, saved in the broker before any traffic:
    what the gateway publishes while the observer reconnects after a broker crash waits for it in the broker."""
    observer = Observer(e.address, g.base, session_expiry_s=3600)
    save_broker(e)
    return observer


def kill_broker(g: Gateway, e: Embedded) -> None:
    """SIGKILL to the embedded mosquitto (it saves nothing); returns once the gateway has started a new one."""
    first = e.pid()
    os.kill(first, signal.SIGKILL)
    assert wait_until(lambda: current_pid(e) not in (None, first) and pid_alive(current_pid(e)), 10), g.log_tail()


def broker_connected(g: Gateway) -> bool:
    try:
        return json.loads(g.http_get("/api/status", timeout=1)[2])["gateway"]["broker_connected"] is True
    except (OSError, ValueError):
        return False


def test_embedded_broker_killed_is_restarted_and_nothing_acked_is_lost(embedded):
    g, e = embedded()
    observer = durable_observer(g, e)
    devices = [StreamDevice(g, uid("emb"), rate=40) for _ in range(5)]
    for d in devices:
        d.start()
    time.sleep(2)
    subscriptions = observer.subscriptions
    kill_broker(g, e)
    assert observer.wait_subscribed(after=subscriptions), "observer did not resubscribe"
    assert wait_until(lambda: g.http_get("/readyz")[0] == 200, 20), g.log_tail()
    time.sleep(2)
    finish("embedded broker SIGKILL, restarted by the gateway", devices, observer, order=False)  # see below
    assert "the embedded mosquitto exited" in g.log()
    observer.close()


def test_embedded_broker_killed_again_while_the_gateway_replays_loses_nothing_acked(embedded):
    """The case issue 11 measured: the embedded mosquitto acknowledges (PUBACK) before it saves, so killing it while
    the gateway replays its spool after an earlier kill lost hundreds of acked messages. The gateway keeps what
    that broker acknowledged for two of its save intervals and publishes it again after losing it."""
    g, e = embedded()
    observer = durable_observer(g, e)
    devices = [StreamDevice(g, uid("emb"), rate=40) for _ in range(10)]
    for d in devices:
        d.start()
    time.sleep(2)
    kill_broker(g, e)  # the gateway spools until it is connected again, then replays
    assert wait_until(lambda: broker_connected(g), 20), g.log_tail()
    kill_broker(g, e)  # while that replay runs, and before this mosquitto ever saved
    assert wait_until(lambda: g.http_get("/readyz")[0] == 200, 30), g.log_tail()
    time.sleep(2)
    # Order is reported, not required: after a crash of the broker, libmosquitto sends the publishes that were
    # awaiting a PUBACK again before the gateway's replay of what that broker lost (README, reliability).
    finish("embedded broker SIGKILL while the gateway replays after an earlier SIGKILL", devices, observer, order=False)
    observer.close()


def test_sigterm_stops_the_embedded_broker_after_the_goodbyes_and_its_data_persists(embedded, mqtt_factory):
    g, e = embedded()
    device_id, dev = g.device(kind="sensor")
    client = mqtt_factory(e.address)
    # A command for an offline device is kept as a retained pending message: it must survive the restart.
    offline = uid("off")
    client.subscribe(f"{g.base}/{offline}/response/#")
    client.publish(f"{g.base}/{offline}/request/reboot", json.dumps({"id": "c-1", "ttl_ms": 600000}))
    client.wait_json(f"{g.base}/{offline}/response/reboot", lambda b: b["status"] == "queued")
    pid = e.pid()
    assert g.stop() == 0
    assert not pid_alive(pid), "mosquitto must stop with the gateway"
    assert not (e.dir / "mosquitto.pid").exists()
    assert list(e.dir.glob("mosquitto.db")), "mosquitto saved its database at exit"

    g.start()
    assert e.pid() != pid
    watcher = mqtt_factory(e.address)
    watcher.subscribe(f"{g.base}/#")
    # The gateway's `offline` for the device (sent before the broker stopped) and the pending command survived.
    _, availability = watcher.wait_json(g.topic(device_id, "availability"))
    assert availability["state"] == "offline" and availability["reason"] == "gateway_shutdown", availability
    msg = watcher.wait_for(f"{g.base}/{offline}/pending/c-1")
    assert msg.retain and json.loads(msg.payload)["id"] == "c-1"


def test_a_broker_left_running_by_a_killed_gateway_is_replaced(embedded):
    g, e = embedded()
    orphan = e.pid()
    g.stop(signal.SIGKILL)
    assert pid_alive(orphan), "the broker is in its own process group and survives the gateway's SIGKILL"
    g.start()
    assert not pid_alive(orphan)
    assert e.pid() != orphan and pid_alive(e.pid())
    assert "left running by a previous gateway" in g.log()


def test_a_second_gateway_on_the_same_embedded_dir_is_refused_and_leaves_the_first_alone(embedded, gateway):
    g, e = embedded()
    pid = e.pid()
    second = gateway(broker=e.address, start=False, **e.overrides)
    second.start(wait_ready=False)
    assert second.proc.wait(20) == 1
    assert f"mqtt.embedded_dir: {e.dir} is in use by another running gatehouse" in second.log(), second.log()
    assert pid_alive(pid) and e.pid() == pid
    assert g.http_get("/readyz")[0] == 200


def test_embedded_port_in_use_is_a_clear_startup_error(embedded):
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    port = free_port()
    holder.bind(("127.0.0.1", port))
    holder.listen()
    try:
        g, e = embedded(start=False, mqtt={"embedded_port": port})
        g.start(wait_ready=False)
        assert g.proc.wait(20) == 1
        log = g.log()
        assert f"mqtt.embedded_port: 127.0.0.1:{port} is already in use" in log, log
    finally:
        holder.close()


def check_config(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    path = tmp_path / "gatehouse.yaml"
    key = tmp_path / "fleet.key"
    key.write_text("c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0\n")
    path.write_text(text.replace("KEY", str(key)))
    return subprocess.run([GATEHOUSE_BIN, "--check-config", str(path)], capture_output=True, text=True, timeout=20)


def test_check_config_refuses_embedded_together_with_a_url(tmp_path):
    result = check_config(tmp_path, "mqtt: {url: 'mqtt://10.0.0.1:1883', embedded: true}\nauth: {key_file: KEY}\n")
    assert result.returncode == 2
    assert "mqtt.embedded: true runs a private broker" in result.stderr, result.stderr


def test_check_config_names_a_missing_mosquitto_binary(tmp_path):
    result = check_config(tmp_path, "mqtt: {embedded_binary: /nonexistent/mosquitto}\nauth: {key_file: KEY}\n")
    assert result.returncode == 2
    assert "mqtt.embedded: no mosquitto executable at /nonexistent/mosquitto" in result.stderr, result.stderr
