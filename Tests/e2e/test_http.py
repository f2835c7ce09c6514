"""PROTOCOL.md section 4: /healthz, /readyz (including broker outages), /metrics."""

import email.utils
import re
import time

from conftest import TcpForwarder, fetch_retained_json, uid, wait_until

METRIC_LINE = re.compile(r"^(gatehouse_[a-zA-Z0-9_:]*)(\{[^}]*\})? (-?[0-9.eE+-]+|NaN|\+Inf|-Inf)( -?[0-9]+)?$")


def test_healthz_200(gw):
    status, _, _ = gw.http_get("/healthz")
    assert status == 200


def test_responses_carry_date_and_server(gw):
    """The router's answers have a Date (RFC 9110 5.6.7, the current time) and name the server."""
    for path in ("/healthz", "/definitely-not-here"):
        _, headers, _ = gw.http_get(path)
        assert headers["server"] == "gatehouse", headers
        sent = email.utils.parsedate_to_datetime(headers["date"])
        assert re.fullmatch(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT", headers["date"]), headers["date"]
        assert abs(sent.timestamp() - time.time()) < 5, headers["date"]


def test_readyz_200_when_up(gw):
    status, _, _ = gw.http_get("/readyz")
    assert status == 200


def test_unknown_http_path_404(gw):
    status, _, _ = gw.http_get("/definitely-not-here")
    assert status == 404


def test_metrics_prometheus_text(gw):
    _, d = gw.device()
    d.send_json({"type": "telemetry", "seq": 1, "data": {"v": 1}})
    d.expect_ack(1)
    status, headers, body = gw.http_get("/metrics")
    assert status == 200
    assert headers.get("content-type", "").startswith("text/plain"), headers
    text = body.decode()
    names = set()
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = METRIC_LINE.match(line)
        if m:
            names.add(m.group(1))
    assert names, f"no gatehouse_ metric lines in:\n{text[:2000]}"
    assert re.search(r"^# TYPE gatehouse_\S+ (counter|gauge|histogram|summary|untyped)$", text, re.M), text[:2000]


def metric_values(g) -> dict[str, float]:
    """`name{labels}` → value, for every gatehouse_ sample on /metrics."""
    text = g.http_get("/metrics")[2].decode()
    samples = {}
    for line in text.splitlines():
        if line.startswith("gatehouse_"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    return samples


def test_metrics_count_messages_and_bytes_by_type_acks_and_nacks_by_code(gateway):
    g = gateway()
    _, d = g.device()
    for seq in (1, 2):
        d.send_json({"type": "telemetry", "seq": seq, "data": {"v": seq}})
        d.expect_ack(seq)
    d.send_json({"type": "state", "seq": 3, "data": {"on": True}})
    d.expect_ack(3)
    d.send_json({"type": "telemetry", "seq": 4, "data": "not an object"})
    d.expect_nack(4, "bad_message")
    m = metric_values(g)
    assert m['gatehouse_device_messages_in_total{type="telemetry"}'] == 2
    assert m['gatehouse_device_messages_in_total{type="state"}'] == 1
    assert m['gatehouse_device_bytes_in_total{type="telemetry"}'] > 40
    assert m['gatehouse_device_bytes_in_total{type="invalid"}'] > 0
    assert m['gatehouse_mqtt_messages_out_total{type="telemetry"}'] == 2
    assert m['gatehouse_mqtt_messages_out_total{type="state"}'] == 1
    assert m['gatehouse_mqtt_bytes_out_total{type="availability"}'] > 0
    assert m['gatehouse_mqtt_messages_out_total{type="bridge"}'] >= 1
    assert m["gatehouse_acks_total"] == 3
    assert m['gatehouse_nacks_total{code="bad_message"}'] == 1
    assert m["gatehouse_devices_connected"] == 1 and m["gatehouse_broker_connected"] == 1


def wait_status(g, path, want, timeout):
    def probe():
        try:
            return g.http_get(path, timeout=1)[0] == want
        except OSError:
            return False

    return wait_until(probe, timeout, interval=0.1)


def test_readyz_503_during_broker_outage_and_recovery(gateway, fresh_broker, mqtt_factory):
    g = gateway(broker=fresh_broker)
    dev = uid("out")
    d = g.connect(g.token(dev, kind="thermostat"))
    d.send_json({"type": "hello", "seq": 1, "model": "M-1", "firmware": "9"})
    d.expect_ack(1)
    d.send_json({"type": "state", "seq": 2, "data": {"mode": "heat"}})
    d.expect_ack(2)
    assert fetch_retained_json(fresh_broker, g.topic(dev, "availability"), lambda b: b["state"] == "online")

    fresh_broker.kill()
    assert wait_status(g, "/readyz", 503, 10), "readyz not 503 while the broker is down"
    status, _, _ = g.http_get("/healthz")
    assert status == 200, "healthz must stay 200 (the process is alive)"

    fresh_broker.start()  # same port, empty (no persistence)
    assert wait_status(g, "/readyz", 200, 20), f"readyz not back to 200 after the broker restart:\n{g.log_tail()}"

    state = fetch_retained_json(fresh_broker, g.bridge("state"), lambda b: b["state"] == "online", timeout=5)
    assert state and state["state"] == "online", f"bridge state not republished: {state}"
    av = fetch_retained_json(fresh_broker, g.topic(dev, "availability"), lambda b: b["state"] == "online", timeout=5)
    assert av and av["state"] == "online" and av["session"] == d.welcome["session"], \
        f"device availability not republished: {av}"
    meta = fetch_retained_json(fresh_broker, g.topic(dev, "meta"), timeout=5)
    assert meta and meta["model"] == "M-1" and meta["kind"] == "thermostat", f"meta not republished: {meta}"
    st = fetch_retained_json(fresh_broker, g.topic(dev, "state"), timeout=5)
    assert st and st["data"] == {"mode": "heat"}, f"state not republished: {st}"
    # Subscriptions restored: commands reach the device again.
    c = mqtt_factory(fresh_broker)
    c.subscribe(g.topic(dev, "response/#"))
    c.publish(g.topic(dev, "request/ping"), {"id": "after-outage"})
    d.expect("command", id="after-outage")
    d.send_json({"type": "response", "id": "after-outage", "status": "ok"})
    _, body = c.wait_json(g.topic(dev, "response/ping"))
    assert body["status"] == "ok"


def test_telemetry_during_outage_acked_after_reconnect_in_order(gateway, broker, mqtt):
    fwd = TcpForwarder(broker.port)
    try:
        g = gateway(mqtt={"url": f"mqtt://127.0.0.1:{fwd.port}"})
        dev = uid("spool")
        mqtt.subscribe(g.topic(dev, "telemetry"))
        d = g.connect(g.token(dev))
        d.send_json({"type": "telemetry", "seq": 0, "data": {"i": 0}})
        d.expect_ack(0)

        fwd.cut()
        assert wait_status(g, "/readyz", 503, 10), "readyz not 503 while the broker is unreachable"
        for i in range(1, 6):
            d.send_json({"type": "telemetry", "seq": i, "data": {"i": i}})
        for i in range(1, 6):
            d.expect_ack(i, timeout=5)  # acked from the spool while the broker is away

        fwd.restore()
        assert wait_status(g, "/readyz", 200, 20), f"readyz not back to 200:\n{g.log_tail()}"
        d.send_json({"type": "telemetry", "seq": 6, "data": {"i": 6}})
        d.expect_ack(6, timeout=10)
        got = []
        while set(got) != set(range(7)):
            _, body = mqtt.wait_json(g.topic(dev, "telemetry"), timeout=10)
            got.append(body["data"]["i"])
            assert body["seq"] == body["data"]["i"]
        # Duplicates are allowed (at-least-once), losses and reordering are not.
        dedup = [x for i, x in enumerate(got) if x not in got[:i]]
        assert dedup == list(range(7)), got
    finally:
        fwd.cut()
