"""The status page (issue 5): `GET /` is one self-contained HTML document, and `GET /api/status` is the data it
polls: gateway health, spool state and the devices held, with their traffic. `make check-ui` renders the page
in headless Chromium; here the API is checked field by field against a live gateway."""

import re
import time

from conftest import assert_ts_now, strict_loads, wait_until


def status(g) -> dict:
    code, headers, body = g.http_get("/api/status")
    assert code == 200 and headers["content-type"].startswith("application/json"), (code, headers)
    assert headers.get("cache-control") == "no-store"
    return strict_loads(body)


def test_page_is_self_contained_html_that_polls_the_api(gw):
    code, headers, body = gw.http_get("/")
    assert code == 200 and headers["content-type"].startswith("text/html"), (code, headers)
    page = body.decode()
    assert page.lstrip().lower().startswith("<!doctype html>")
    assert "api/status" in page
    # No external assets: nothing is fetched from anywhere but the gateway itself.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page, re.I), "external asset referenced"
    assert "@import" not in page and "url(http" not in page
    for element in ("gateway-id", "devices", "spool-entries", "banner", "updated"):
        assert f'id="{element}"' in page, element


def test_api_reports_gateway_spool_and_devices(gw):
    report = status(gw)
    assert set(report) == {"ts", "gateway", "spool", "devices"}
    assert_ts_now(report["ts"])
    gateway = report["gateway"]
    assert set(gateway) == {"id", "version", "uptime_s", "ready", "listening", "broker_connected", "broker",
                            "embedded_broker", "devices_connected", "messages_in_per_s", "messages_out_per_s"}
    assert gateway["id"] == gw.gw_id and gateway["ready"] is True and gateway["listening"] is True
    assert gateway["broker_connected"] is True and gateway["broker"] == gw.broker.url
    assert gateway["embedded_broker"] is None  # this gateway uses the test's broker
    assert isinstance(gateway["uptime_s"], int) and gateway["uptime_s"] >= 0
    spool = report["spool"]
    assert set(spool) == {"entries", "bytes", "oldest_age_s", "max_bytes", "dropped", "expired", "available", "problem"}
    assert spool["available"] is True and spool["problem"] is None
    assert spool["max_bytes"] == 256 * 1024 * 1024 and spool["entries"] >= 0


def test_api_lists_a_device_with_its_traffic(gw):
    device_id, dev = gw.device(kind="thermostat")
    before = next(d for d in status(gw)["devices"] if d["device"] == device_id)
    assert before["messages_in"] == 0 and before["last_seen"] == before["connected_at"]
    for seq in range(1, 21):
        dev.send_json({"type": "telemetry", "seq": seq, "data": {"t": seq}})
        dev.expect_ack(seq)
        time.sleep(0.05)
    time.sleep(1.1)  # rates are averaged over at least a second between readings
    report = status(gw)
    row = next(d for d in report["devices"] if d["device"] == device_id)
    assert set(row) == {"device", "kind", "session", "connected_at", "last_seen", "remote", "messages_in", "messages_per_s",
                        "desired_version", "delta", "delta_pending_since", "reported", "telemetry", "live"}
    assert (row["desired_version"], row["delta"], row["delta_pending_since"], row["reported"]) == (None, None, None, None)
    assert row["telemetry"]["data"] == {"t": 20} and isinstance(row["telemetry"]["ts"], int), row
    assert row["live"] is None  # not a live-capable camera
    assert row["kind"] == "thermostat" and row["session"] == dev.welcome["session"]
    assert row["messages_in"] == 20
    assert row["last_seen"] > row["connected_at"]
    assert 0 < row["messages_per_s"] < 50, row
    assert row["remote"].startswith("127.0.0.1:")
    assert report["gateway"]["devices_connected"] == len(report["devices"])
    assert [d["device"] for d in report["devices"]] == sorted(d["device"] for d in report["devices"])
    dev.close()
    assert wait_until(lambda: all(d["device"] != device_id for d in status(gw)["devices"]), 5)


def test_api_shows_the_spool_filling_during_a_broker_outage(gateway, fresh_broker):
    g = gateway(broker=fresh_broker)
    device_id, dev = g.device()
    fresh_broker.kill()
    assert wait_until(lambda: status(g)["gateway"]["broker_connected"] is False, 10)
    for seq in range(1, 11):
        dev.send_json({"type": "telemetry", "seq": seq, "data": {"n": seq}})
        dev.expect_ack(seq)
    report = status(g)
    assert report["gateway"]["ready"] is False
    assert report["spool"]["entries"] >= 10 and report["spool"]["bytes"] > 0, report["spool"]
    fresh_broker.start()
    assert wait_until(lambda: status(g)["spool"]["entries"] == 0, 30), status(g)["spool"]
