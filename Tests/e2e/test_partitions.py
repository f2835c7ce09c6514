"""Issue 11, classes 2 and 3: a gateway restarted while the broker is unreachable, and a gateway cut off from
the broker while its device moves to another gateway of the fleet (PROTOCOL.md §4, §5). Real mosquitto, real
gateways, the broker link of one gateway cut with a TcpForwarder."""

import json
import time

import pytest

from conftest import TcpForwarder, fetch_retained_json, uid, wait_until

CAPS = {"commands": {"ping": {}}}


@pytest.fixture
def link(broker):
    fwd = TcpForwarder(broker.port)
    yield fwd
    fwd.cut()


def readyz(g):
    try:
        return g.http_get("/readyz", timeout=1)[0]
    except OSError:
        return None


def wait_cut_off(g):
    """The gateway noticed the cut: its outbox spools from now on."""
    assert wait_until(lambda: readyz(g) == 503, 10), "the gateway did not notice the broker was gone"


def state(d, seq, data):
    d.send_json({"type": "state", "seq": seq, "data": data})
    d.expect_ack(seq)


def retained(g, suffix, pred, timeout=10):
    return fetch_retained_json(g.broker, g.topic(g.dev, suffix), pred, timeout=timeout)


def test_restart_during_broker_outage_keeps_state_capabilities_and_queued_commands(gateway, mqtt, link):
    g = gateway(mqtt={"url": f"mqtt://127.0.0.1:{link.port}"})
    dev, queued_for = uid("rst"), uid("rstq")
    g.dev = dev
    mqtt.subscribe(f"{g.base}/{dev}/#")
    mqtt.subscribe(f"{g.base}/{queued_for}/#")
    d = g.connect(g.token(dev, kind="thermostat"))
    first_session = d.welcome["session"]
    d.send_json({"type": "hello", "seq": 1, "kind": "thermostat", "capabilities": CAPS})
    d.expect_ack(1)
    state(d, 2, {"a": 1})
    state(d, 3, {"b": 2})
    mqtt.wait_json(g.topic(dev, "state"), lambda b: b["version"] == 2)
    mqtt.publish(g.topic(queued_for, "request/ping"), {"id": "rq1", "ttl_ms": 60000})
    mqtt.wait_for(lambda m: m.topic == g.topic(queued_for, "pending/rq1") and m.payload)
    mqtt.publish(g.topic(queued_for, "desired/set"), {"data": {"mode": "heat"}})
    mqtt.wait_json(g.topic(queued_for, "response/desired"), lambda b: b["status"] == "ok")
    d.close()
    mqtt.wait_json(g.topic(dev, "availability"), lambda b: b["state"] == "offline")

    link.cut()
    wait_cut_off(g)
    g.stop()
    g.start(wait_ready=False)
    assert wait_until(lambda: readyz(g) == 503, 20), g.log_tail()

    # Admitted before the broker is back: sessions, versions and the queue continue from the local copy.
    d = g.connect(g.token(dev, kind="thermostat"))
    assert d.welcome["session"] > first_session
    state(d, 1, {"c": 3})
    q = g.connect(g.token(queued_for))
    # Right after welcome, before its queued commands (PROTOCOL 7): the desired state kept in the local copy too.
    assert q.recv_json() == {"type": "desired", "version": 1, "data": {"mode": "heat"}}
    cmd = q.expect("command", id="rq1", name="ping")
    q.send_json({"type": "response", "seq": 1, "id": cmd["id"], "status": "ok"})
    q.expect_ack(1)

    link.restore()
    g.wait_ready()
    # Version 3 with every acked patch, never version 1 or a rollback to 2.
    body = retained(g, "state", lambda b: b["version"] >= 3)
    assert body["version"] == 3 and body["data"] == {"a": 1, "b": 2, "c": 3}, body
    assert retained(g, "meta", lambda b: True)["capabilities"] == CAPS
    assert wait_until(lambda: fetch_retained_json(g.broker, g.topic(queued_for, "pending/rq1"), timeout=0.3) is None, 10), \
        "the command delivered from the local copy was not cleared on the broker"
    _, final = mqtt.wait_json(g.topic(queued_for, "response/ping"), lambda b: b["status"] != "queued", timeout=10)
    assert final["status"] == "ok" and final["id"] == "rq1", final
    assert not mqtt.collect(lambda m: m.topic == g.topic(queued_for, "response/ping") and m.json()["status"] != "queued", 1.0), \
        "one final response"
    q.expect_no_frame(0.5)  # not delivered a second time
    states = [m.json()["version"] for m in mqtt.seen(lambda m: m.topic == g.topic(dev, "state"))]
    assert states == sorted(states), f"state versions went back: {states}"


def test_partition_while_the_device_moves_to_another_gateway(gateway, mqtt, link):
    a = gateway(mqtt={"url": f"mqtt://127.0.0.1:{link.port}"})
    b = gateway(fleet_of=a)
    dev = uid("part")
    a.dev = b.dev = dev
    mqtt.subscribe(f"{a.base}/{dev}/#")
    d = a.connect(a.token(dev))
    state(d, 1, {"x": 1, "y": 1})
    mqtt.wait_json(a.topic(dev, "state"), lambda s: s["version"] == 1)
    mqtt.publish(a.topic(dev, "desired/set"), {"data": {"x": 2}})
    assert d.expect("desired")["data"] == {"x": 2}
    retained(a, "delta", lambda s: s["data"] == {"x": 2})

    link.cut()
    wait_cut_off(a)
    state(d, 2, {"x": 2})  # acked from a's spool
    d.drop()  # a's `offline` for this session cannot reach the broker now
    a_bridge = f"{a.base}/bridge/{a.gw_id}/state"
    assert fetch_retained_json(b.broker, a_bridge, lambda s: s["state"] == "offline", timeout=10)["state"] == "offline"
    d = b.connect(b.token(dev))
    moved_session = d.welcome["session"]
    assert d.expect("desired")["data"] == {"x": 2}  # b knows the device's reported x as 1
    state(d, 1, {"y": 3})
    mqtt.wait_json(a.topic(dev, "state"), lambda s: s["data"].get("y") == 3)

    link.restore()
    a.wait_ready()
    # b holds the device with the higher session: a never writes its availability over b's.
    body = retained(b, "availability", lambda s: s["gateway"] == b.gw_id and s["session"] == moved_session)
    assert body["state"] == "online", body
    # Both lines kept, above both versions; a's spooled version 2 was not replayed over b's.
    merged = retained(b, "state", lambda s: s["version"] >= 3)
    assert merged["data"] == {"x": 2, "y": 3}, merged
    # The merge is a reported-state update: the delta follows it (x is as desired now), not the next report.
    retained(b, "delta", lambda s: s["data"] == {} and s["state_version"] >= merged["version"])
    state(d, 2, {"z": 4})  # b continues from the merged document
    after = retained(b, "state", lambda s: s["data"].get("z") == 4)
    assert after["version"] == merged["version"] + 1 and after["data"] == {"x": 2, "y": 3, "z": 4}, after
    avail = fetch_retained_json(b.broker, b.topic(dev, "availability"))
    assert avail["gateway"] == b.gw_id and avail["state"] == "online", avail

    # Every request gets exactly one final response, from the holder.
    for i in range(8):
        mqtt.publish(a.topic(dev, "request/ping"), {"id": f"p{i}"})
        cmd = d.expect("command", id=f"p{i}")
        d.send_json({"type": "response", "id": cmd["id"], "status": "ok"})
    responses = mqtt.collect(lambda m: m.topic == a.topic(dev, "response/ping"), 2.0)
    statuses = {}
    for m in responses:
        statuses.setdefault(m.json()["id"], []).append(m.json()["status"])
    assert statuses == {f"p{i}": ["ok"] for i in range(8)}, statuses
    versions = [m.json()["version"] for m in mqtt.seen(lambda m: m.topic == a.topic(dev, "state"))]
    assert max(versions) == after["version"]


def test_queued_command_expiring_during_a_partition_is_answered_once(gateway, mqtt, link):
    a = gateway(mqtt={"url": f"mqtt://127.0.0.1:{link.port}"})
    dev = uid("pexp")
    mqtt.subscribe(f"{a.base}/{dev}/#")
    mqtt.publish(a.topic(dev, "request/ping"), {"id": "e1", "ttl_ms": 3000})
    pending = mqtt.wait_for(lambda m: m.topic == a.topic(dev, "pending/e1") and m.payload)
    assert pending.json()["gateway"] == a.gw_id  # the only gateway yet: it answers the expiry while online
    b = gateway(fleet_of=a)
    link.cut()
    wait_cut_off(a)
    # a is offline for the fleet: b answers when the TTL ends; a, cut off, must not answer as well.
    _, body = mqtt.wait_json(a.topic(dev, "response/ping"), lambda r: r["status"] != "queued", timeout=10)
    assert body["status"] == "expired" and body["id"] == "e1", body
    link.restore()
    a.wait_ready()
    finals = mqtt.collect(lambda m: m.topic == a.topic(dev, "response/ping") and m.json()["status"] != "queued", 1.5)
    assert not finals, f"answered more than once: {[m.json() for m in finals]}"
    assert fetch_retained_json(a.broker, a.topic(dev, "pending/e1"), timeout=0.3) is None


def test_expiry_falling_due_while_the_only_gateway_is_cut_off_is_answered_when_it_is_back(gateway, mqtt, link):
    a = gateway(mqtt={"url": f"mqtt://127.0.0.1:{link.port}"})
    dev = uid("pexp1")
    mqtt.subscribe(f"{a.base}/{dev}/#")
    mqtt.publish(a.topic(dev, "request/ping"), {"id": "e2", "ttl_ms": 1000})
    mqtt.wait_for(lambda m: m.topic == a.topic(dev, "pending/e2") and m.payload)
    link.cut()
    wait_cut_off(a)
    time.sleep(1.5)  # the TTL ends while a is cut off (what is measured is the answer after the link is back)
    link.restore()
    a.wait_ready()
    _, body = mqtt.wait_json(a.topic(dev, "response/ping"), lambda r: r["status"] != "queued", timeout=10)
    assert body["status"] == "expired" and body["id"] == "e2", body
    finals = mqtt.collect(lambda m: m.topic == a.topic(dev, "response/ping") and m.json()["status"] != "queued", 1.0)
    assert not finals, f"answered more than once: {[m.json() for m in finals]}"


def test_a_desired_document_cleared_and_made_again_while_a_gateway_was_cut_off_is_the_one_it_builds_on(gateway, mqtt, link):
    """§7: the retained `desired` is the truth. While a is cut off the document is cleared (an empty retained
    message) and made again by patches b applies (versions restart at 1). Back, a takes the broker's copy, the lower
    version too: a patch it applies for the device it now holds builds on that, not on its old version 3, which
    would have brought back the cleared keys above the versions made since."""
    a = gateway(mqtt={"url": f"mqtt://127.0.0.1:{link.port}"})
    b = gateway(fleet_of=a)
    dev = uid("dclr")
    mqtt.subscribe(f"{a.base}/{dev}/#")

    def patch(data):
        mqtt.publish(a.topic(dev, "desired/set"), {"data": data})
        _, answer = mqtt.wait_json(a.topic(dev, "response/desired"))
        assert answer["status"] == "ok", answer
        return answer["data"]["version"]

    for n in range(1, 4):
        assert patch({f"old{n}": n}) == n
    link.cut()
    wait_cut_off(a)
    a_bridge = f"{a.base}/bridge/{a.gw_id}/state"
    assert fetch_retained_json(b.broker, a_bridge, lambda s: s["state"] == "offline", timeout=10)["state"] == "offline"
    mqtt.publish(a.topic(dev, "desired"), b"", retain=True)
    assert patch({"new": 1}) == 1  # b applies: a is offline
    assert patch({"new": 2}) == 2

    link.restore()
    a.wait_ready()
    d = a.connect(a.token(dev))
    assert d.expect("desired") == {"type": "desired", "version": 2, "data": {"new": 2}}
    assert patch({"z": 1}) == 3
    body = fetch_retained_json(a.broker, a.topic(dev, "desired"), lambda x: x["version"] == 3)
    assert body["data"] == {"new": 2, "z": 1}, body
    assert d.expect("desired") == {"type": "desired", "version": 3, "data": {"new": 2, "z": 1}}
