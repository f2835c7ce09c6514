"""Limits (issue 4): per-device message and byte rates, new connections per second, the handshake
timeout against slowloris clients; each answered clearly to the device and counted in /metrics."""

import socket
import time

from conftest import closed_by_peer, metric, uid, wait_until


def test_message_rate_limit_nacks_rate_limited(gateway):
    g = gateway(limits={"max_messages_per_s": 20})
    _, d = g.device()
    for seq in range(100):  # burst allowance is two seconds' worth (40)
        d.send_json({"type": "telemetry", "seq": seq, "data": {"n": seq}})
    answers = [d.recv_json() for _ in range(100)]
    acked = [a["seq"] for a in answers if a["type"] == "ack"]
    limited = [a for a in answers if a["type"] == "nack"]
    assert 35 <= len(acked) <= 50, f"{len(acked)} acked of a 40-message burst allowance"
    assert limited and all(a["error"]["code"] == "rate_limited" for a in limited), limited[:3]
    assert metric(g, "gatehouse_limit_hits_total", limit="rate") >= len(limited)
    time.sleep(1.1)  # refilled: accepted again
    d.send_json({"type": "telemetry", "seq": 1000, "data": {}})
    d.expect_ack(1000)


def test_byte_rate_limit_and_error_without_seq(gateway):
    g = gateway(limits={"max_bytes_per_s": "16KiB"})
    _, d = g.device()
    blob = "x" * 4000
    for seq in range(12):  # 48 KB against a 32 KiB burst
        d.send_json({"type": "telemetry", "seq": seq, "data": {"b": blob}})
    answers = [d.recv_json() for _ in range(12)]
    assert any(a["type"] == "nack" and a["error"]["code"] == "rate_limited" for a in answers), answers
    d.send_json({"type": "telemetry", "data": {"b": blob}})  # no seq: an error frame says why
    d.expect_error("rate_limited")


def test_each_refused_upgrade_is_decided_and_counted_once(gateway):
    """A refusal the hand-read upgrade decides is answered by the HTTP pipeline without deciding it again: one
    limit hit and one refusal counted per refused attempt."""
    g = gateway(limits={"max_connects_per_device_per_min": 2})
    token = g.token(uid("counted"))
    statuses = [g.raw_upgrade(token=token)[0] for _ in range(5)]
    refused = statuses.count(429)
    assert statuses[0] == 101 and refused >= 3 and set(statuses) == {101, 429}, statuses
    assert metric(g, "gatehouse_limit_hits_total", limit="connects_per_device") == refused
    assert metric(g, "gatehouse_connections_refused_total", status="429") == refused


def test_connection_rate_limit_answers_429(gateway):
    g = gateway(limits={"max_connects_per_s": 5})
    statuses = [g.raw_upgrade(token=g.token(uid("burst")))[0:2] for _ in range(30)]
    codes = [s for s, _ in statuses]
    assert codes.count(101) >= 8 and 429 in codes, codes
    headers = next(h for s, h in statuses if s == 429)
    assert headers.get("retry-after") == "1", headers
    assert metric(g, "gatehouse_limit_hits_total", limit="connects_per_s") >= 1


def test_slowloris_handshakes_are_dropped_and_real_devices_still_connect(gateway):
    g = gateway(limits={"handshake_timeout_s": 2})
    held = []
    for _ in range(1000):
        s = socket.create_connection(("127.0.0.1", g.port))
        s.sendall(b"GET /v1/connect HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
        held.append(s)
    try:
        _, d = g.device()  # a real device gets through meanwhile
        d.send_json({"type": "telemetry", "seq": 1, "data": {}})
        d.expect_ack(1)

        def all_closed():
            return closed_by_peer(held) == len(held)

        assert wait_until(all_closed, 10, interval=0.5), "half-open handshakes not dropped after the timeout"
        # Dropped at the timeout, or earlier as the oldest beyond limits.max_pending_connections (512).
        dropped = (metric(g, "gatehouse_limit_hits_total", limit="handshake_timeout")
                   + metric(g, "gatehouse_limit_hits_total", limit="pending_connections"))
        assert dropped >= 1000, dropped
    finally:
        for s in held:
            s.close()


def test_a_device_that_ignores_rate_limiting_is_closed_1008(gateway):
    g = gateway(limits={"max_messages_per_s": 5, "max_bad_messages": 20})
    _, d = g.device()
    for seq in range(200):
        try:
            d.send_json({"type": "telemetry", "seq": seq, "data": {}})
        except Exception:
            break
    d.expect_close(1008, timeout=10)


def test_a_message_larger_than_the_byte_burst_still_passes_when_the_bucket_is_full(gateway):
    g = gateway(limits={"max_bytes_per_s": "16KiB", "max_message_bytes": "64KiB"})
    _, d = g.device()
    d.send_json({"type": "telemetry", "seq": 1, "data": {"b": "x" * 50000}})  # > the 32 KiB burst
    d.expect_ack(1)
