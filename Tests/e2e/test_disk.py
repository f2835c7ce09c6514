"""A full disk (issue 11, class 10): the spool is needed only while the broker is unreachable, so a disk that takes
no writes must neither stop the gateway from starting nor from serving through the broker. While the broker is
unreachable and the spool cannot be written, messages that must be safe are refused with `broker_unavailable`
(PROTOCOL.md §3.1: neither published nor spooled); once there is room again, the spool takes them again.

The disk is a 64 KiB tmpfs mounted for the test (root only), filled with a file.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import TcpForwarder, uid, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")


class SmallDisk:
    def __init__(self, path: Path):
        self.path = path
        self.filler = path / "filler"

    def fill(self) -> None:
        """Writes until the file system refuses (ENOSPC)."""
        with open(self.filler, "ab", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small-disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,nr_inodes=64,mode=0700", "tmpfs", str(mount)], check=True)
    try:
        yield SmallDisk(mount)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def link(broker):
    fwd = TcpForwarder(broker.port)
    yield fwd
    fwd.cut()


def spool_status(g) -> dict:
    return json.loads(g.http_get("/api/status")[2])["spool"]


def readyz(g):
    try:
        return g.http_get("/readyz", timeout=1)[0]
    except OSError:
        return None


def test_a_full_disk_at_start_leaves_the_gateway_serving_and_nacks_only_what_it_cannot_keep(small_disk, link, gateway, mqtt):
    spool_dir = small_disk.path / "spool"
    spool_dir.mkdir()
    small_disk.fill()
    g = gateway(mqtt={"url": f"mqtt://127.0.0.1:{link.port}"}, spool={"dir": str(spool_dir)})  # waits for /readyz 200
    status = spool_status(g)
    assert status["available"] is False and "cannot be written" in status["problem"], status
    assert "gatehouse_spool_available 0" in g.http_get("/metrics")[2].decode()
    assert "the spool cannot be written" in g.log()

    device_id, dev = g.device(kind="sensor")
    topic = g.topic(device_id, "telemetry")
    mqtt.subscribe(topic)
    dev.send_json({"type": "telemetry", "seq": 1, "data": {"n": 1}})
    dev.expect_ack(1)  # safe in the broker
    assert mqtt.wait_json(topic)[1]["data"] == {"n": 1}

    link.cut()
    assert wait_until(lambda: readyz(g) == 503, 10)
    dev.send_json({"type": "telemetry", "seq": 2, "data": {"n": 2}})
    dev.expect_nack(2, "broker_unavailable")

    small_disk.free()  # tried every 2 s
    assert wait_until(lambda: spool_status(g)["available"], 10), spool_status(g)
    assert spool_status(g)["problem"] is None
    dev.send_json({"type": "telemetry", "seq": 3, "data": {"n": 3}})
    dev.expect_ack(3)  # spooled
    link.restore()
    assert mqtt.wait_json(topic, timeout=20)[1]["data"] == {"n": 3}
    assert g.running


def test_a_disk_that_fills_during_an_outage_refuses_cleanly_and_the_spool_comes_back(small_disk, link, gateway, mqtt):
    spool_dir = small_disk.path / "spool"
    spool_dir.mkdir()
    g = gateway(mqtt={"url": f"mqtt://127.0.0.1:{link.port}"}, spool={"dir": str(spool_dir), "max_bytes": "1MiB"})
    assert spool_status(g)["available"] is True
    device_id, dev = g.device(kind="sensor")
    topic = g.topic(device_id, "telemetry")
    mqtt.subscribe(topic)
    link.cut()
    assert wait_until(lambda: readyz(g) == 503, 10)

    # 1 KB messages until the 64 KiB disk is full: acked while they fit, then refused (never a crash, never an
    # ack for what is not on disk).
    acked, nacked = [], []
    for seq in range(200):
        dev.send_json({"type": "telemetry", "seq": seq, "data": {"n": seq, "pad": "x" * 1000}})
        frame = dev.recv_json(5)
        assert frame["seq"] == seq and frame["type"] in ("ack", "nack"), frame
        if frame["type"] == "ack":
            assert not nacked, f"acked {seq} after a refusal while the disk is still full"
            acked.append(seq)
        else:
            assert frame["error"]["code"] == "broker_unavailable", frame
            nacked.append(seq)
            if len(nacked) >= 5:
                break
    assert acked and len(nacked) == 5, (acked, nacked)
    assert spool_status(g)["available"] is False and g.running

    # The broker is back: what was acked is published, the spool's files are deleted, and it takes writes again.
    link.restore()
    arrived = lambda: {m.json()["seq"] for m in mqtt.seen(topic)}
    assert wait_until(lambda: set(acked) <= arrived(), 20), sorted(set(acked) - arrived())
    assert wait_until(lambda: spool_status(g)["available"], 10), spool_status(g)
    assert not arrived() & set(nacked), "a refused message was published"


def test_a_spool_that_cannot_even_be_opened_is_off_and_opens_once_there_is_room(small_disk, link, gateway):
    # No inode left on the disk: the spool cannot create its segment file, so it is off (not read-only).
    spool_dir = small_disk.path / "spool"
    spool_dir.mkdir()
    made = 0
    try:
        while True:
            (small_disk.path / f"inode-{made}").touch()
            made += 1
    except OSError:
        pass
    # No grace at the stop: the test ends with the broker away, and nothing waits for it.
    g = gateway(mqtt={"url": f"mqtt://127.0.0.1:{link.port}"}, spool={"dir": str(spool_dir)}, gateway={"shutdown_grace_s": 0})
    status = spool_status(g)
    assert status["available"] is False and "could not be opened" in status["problem"], status
    assert "the spool is off" in g.log()
    device_id, dev = g.device(kind="sensor")
    link.cut()
    assert wait_until(lambda: readyz(g) == 503, 10)
    dev.send_json({"type": "event", "name": "e", "seq": 1, "data": {}})
    dev.expect_nack(1, "broker_unavailable")
    for index in range(made):
        (small_disk.path / f"inode-{index}").unlink()
    assert wait_until(lambda: spool_status(g)["available"], 10), spool_status(g)  # tried every 5 s
    dev.send_json({"type": "event", "name": "e", "seq": 2, "data": {}})
    dev.expect_ack(2)


def test_a_second_gateway_on_the_same_spool_is_refused_and_leaves_the_first_alone(gateway):
    """Two processes on one spool would recover, cut and delete each other's segments: the second does not start."""
    first = gateway()
    second = gateway(start=False, spool={"dir": str(first.spool_dir)})
    second.start(wait_ready=False)
    assert second.proc.wait(20) == 1
    assert f"{first.spool_dir} is in use by another running gatehouse" in second.log(), second.log()
    d = first.connect(first.token(uid("spool")))
    d.send_json({"type": "telemetry", "seq": 1, "data": {"t": 1}})
    d.expect_ack(1)
    assert first.http_get("/readyz")[0] == 200
