"""PROTOCOL.md sections 1-3: identities, credentials and the WebSocket endpoint."""

import base64
import hashlib
import json
import secrets
import socket
import time

import pytest
from websockets.exceptions import InvalidStatus

from conftest import (
    REVOKED_DEVICE,
    REVOKED_JTI,
    assert_unauthorized,
    make_jwt,
    uid,
)


def test_header_token_connects(gw):
    dev = uid("hdr")
    d = gw.connect(gw.token(dev), header=True)
    assert d.welcome["device"] == dev


def test_query_token_connects(gw):
    dev = uid("qry")
    d = gw.connect(gw.token(dev), header=False)
    assert d.welcome["device"] == dev


def test_header_wins_over_bad_query_token(gw):
    dev = uid("hwin")
    d = gw.connect(gw.token(dev), header=True, query_token="not.a.token")
    assert d.welcome["device"] == dev


def test_header_wins_bad_header_with_good_query_is_401(gw):
    dev = uid("hwin")
    good = gw.token(dev)
    bad = gw.token(dev, key=b"wrong-key")
    status, _, body = gw.raw_upgrade(f"/v1/connect?token={good}", token=bad)
    assert_unauthorized(status, body)


def test_device_id_comes_from_token_sub(gw):
    dev = uid("sub")
    d = gw.connect(gw.token(dev))
    assert d.welcome["device"] == dev


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "malformed",
        "empty_bearer",
        "bad_signature",
        "expired",
        "expired_exactly_now",
        "nbf_in_future",
        "alg_none",
        "alg_hs384",
        "revoked_device",
        "revoked_jti",
        "sub_with_slash",
        "sub_bridge",
        "sub_wildcard",
        "sub_too_long",
        "sub_missing",
        "sub_not_string",
    ],
)
def test_bad_token_is_401_with_json_body(gw, case):
    dev = uid("bad")
    now = int(time.time())
    headers = {}
    token = None
    if case == "missing":
        pass
    elif case == "malformed":
        token = "abc.def"
    elif case == "empty_bearer":
        headers = {"Authorization": "Bearer "}
    elif case == "bad_signature":
        token = gw.token(dev, key=b"some-other-key")
    elif case == "expired":
        token = gw.token(dev, exp=now - 1)
    elif case == "expired_exactly_now":
        # No leeway: expired when now >= exp. exp = now (seconds) is already expired.
        token = gw.token(dev, exp=now)
    elif case == "nbf_in_future":
        token = gw.token(dev, nbf=now + 60)
    elif case == "alg_none":
        token = gw.token(dev, alg="none")
    elif case == "alg_hs384":
        token = gw.token(dev, alg="HS384")
    elif case == "revoked_device":
        token = gw.token(REVOKED_DEVICE)
    elif case == "revoked_jti":
        token = gw.token(dev, jti=REVOKED_JTI)
    elif case == "sub_with_slash":
        token = gw.token("a/b")
    elif case == "sub_bridge":
        token = gw.token("bridge")
    elif case == "sub_wildcard":
        token = gw.token("dev+1")
    elif case == "sub_too_long":
        token = gw.token("d" * 65)
    elif case == "sub_missing":
        token = make_jwt(gw.key, {"iat": now})
    elif case == "sub_not_string":
        token = make_jwt(gw.key, {"sub": 42, "iat": now})
    status, _, body = gw.raw_upgrade("/v1/connect", headers=headers, token=token)
    assert_unauthorized(status, body)


def test_bad_query_token_is_401(gw):
    bad = gw.token(uid("q"), key=b"nope")
    status, _, body = gw.raw_upgrade(f"/v1/connect?token={bad}")
    assert_unauthorized(status, body)


def test_websockets_client_sees_401(gw):
    with pytest.raises(InvalidStatus) as info:
        gw.connect(gw.token(uid("x"), exp=int(time.time()) - 1))
    assert info.value.response.status_code == 401


def test_longest_valid_device_id_accepted(gw):
    dev = "D" + "a._-9" * 12 + "xyz"  # 64 characters
    assert len(dev) == 64
    d = gw.connect(gw.token(dev))
    assert d.welcome["device"] == dev


def test_nbf_in_past_and_exp_in_future_accepted(gw):
    now = int(time.time())
    dev = uid("nbf")
    d = gw.connect(gw.token(dev, nbf=now - 5, exp=now + 600, jti=uid("jti")))
    assert d.welcome["device"] == dev


@pytest.mark.parametrize("path", ["/", "/v1", "/v1/connect/x", "/v2/connect", "/connect"])
def test_other_path_is_404(gw, path):
    status, _, _ = gw.raw_upgrade(path, token=gw.token(uid("p")))
    assert status == 404


def test_subprotocol_offered_without_gatehouse_v1_is_400(gw):
    status, _, body = gw.raw_upgrade(
        "/v1/connect", headers={"Sec-WebSocket-Protocol": "mqtt, chat"}, token=gw.token(uid("sp"))
    )
    assert status == 400, (status, body)


def test_subprotocol_gatehouse_v1_selected(gw):
    d = gw.connect(gw.token(uid("sp")), subprotocols=["chat", "gatehouse.v1"])
    assert d.subprotocol == "gatehouse.v1"
    assert d.response_headers.get("Sec-WebSocket-Protocol") == "gatehouse.v1"


def test_no_subprotocol_offered_accepted(gw):
    d = gw.connect(gw.token(uid("sp")))
    assert d.subprotocol is None
    assert "Sec-WebSocket-Protocol" not in d.response_headers


def test_welcome_is_first_with_all_fields(gw):
    dev = uid("wel")
    d = gw.connect(gw.token(dev))
    w = d.welcome
    assert set(w) == {"type", "device", "gateway", "session", "heartbeat_s", "max_message_bytes"}, w
    assert w["type"] == "welcome"
    assert w["device"] == dev
    assert w["gateway"] == gw.gw_id
    assert type(w["session"]) is int and w["session"] > 0
    assert w["heartbeat_s"] == 30
    assert w["max_message_bytes"] == 65536


def test_session_increases_across_reconnects(gw):
    dev = uid("ses")
    sessions = []
    for _ in range(3):
        d = gw.connect(gw.token(dev))
        sessions.append(d.welcome["session"])
        d.close()
    assert sessions[0] < sessions[1] < sessions[2], sessions


def test_session_increases_across_gateway_restart(gateway):
    g = gateway()
    dev = uid("ses")
    d = g.connect(g.token(dev))
    first = d.welcome["session"]
    d.close()
    g.stop()
    g.start()
    d = g.connect(g.token(dev))
    assert d.welcome["session"] > first


def test_permessage_deflate_negotiated_when_offered(gw):
    d = gw.connect(gw.token(uid("zip")), compression="deflate")
    ext = d.response_headers.get("Sec-WebSocket-Extensions", "")
    assert "permessage-deflate" in ext, f"Sec-WebSocket-Extensions: {ext!r}"
    # And compressed frames work both ways.
    d.send_json({"type": "telemetry", "seq": 1, "data": {"blob": "x" * 2000}})
    d.expect_ack(1)


def test_device_id_from_token_not_from_messages(gw, mqtt):
    """A device writing another id in its messages still only publishes under its own id."""
    dev = uid("own")
    other = uid("other")
    mqtt.subscribe(f"{gw.base}/#")
    d = gw.connect(gw.token(dev))
    d.send_json({"type": "telemetry", "seq": 1, "device": other, "data": {"v": 1}})
    frame = d.recv_json()
    assert frame.get("type") in ("ack", "nack"), frame
    time.sleep(0.3)
    assert not mqtt.seen(lambda m: f"/{other}/" in m.topic)


@pytest.mark.parametrize("extra_header", ["", "Content-Length: 0\r\n"], ids=["fast-path", "nio-upgrader"])
def test_message_sent_with_the_upgrade_request_is_answered(gw, extra_header):
    """A device may send its first frames in the same write as its upgrade request, without waiting for the 101:
    the 101 (with the right Sec-WebSocket-Accept) comes first, then the welcome, then the messages' acks; a frame
    that arrives in pieces is read once whole. A request the gateway's own upgrade leaves to NIO's (here, one with a
    Content-Length) is served the same."""
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    request = (
        f"GET /v1/connect HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {gw.token(uid('eager'))}\r\n"
        f"{extra_header}\r\n"
    ).encode()
    def masked(message):
        payload, mask = json.dumps(message).encode(), secrets.token_bytes(4)
        length = bytes([0x80 | len(payload)]) if len(payload) < 126 else bytes([0x80 | 126]) + len(payload).to_bytes(2, "big")
        return bytes([0x81]) + length + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))

    frames = masked({"type": "telemetry", "seq": 7, "data": {"v": 1}}) + masked({"type": "telemetry", "seq": 8, "data": {"pad": "x" * 300}})
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(request + frames)
        received = b""

        def take(n):
            nonlocal received
            while len(received) < n:
                chunk = s.recv(4096)
                assert chunk, f"closed after {received!r}"
                received += chunk
            out, received = received[:n], received[n:]
            return out

        while b"\r\n\r\n" not in received:
            chunk = s.recv(4096)
            assert chunk, f"closed during the handshake after {received!r}"
            received += chunk
        head, received = received.split(b"\r\n\r\n", 1)
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        assert head.startswith(b"HTTP/1.1 101 "), head
        assert f"Sec-WebSocket-Accept: {accept}".encode() in head.split(b"\r\n"), head

        def text():
            b0, b1 = take(2)
            assert b0 == 0x81 and b1 & 0x80 == 0, (b0, b1)
            length = b1 if b1 < 126 else int.from_bytes(take(2), "big")
            return json.loads(take(length))

        assert text()["type"] == "welcome"
        assert text() == {"type": "ack", "seq": 7}
        assert text() == {"type": "ack", "seq": 8}
        # A frame that arrives in pieces (its header split too) is read once whole.
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        split = masked({"type": "telemetry", "seq": 9, "data": {"pad": "y" * 200}})
        for piece in (split[:1], split[1:3], split[3:100], split[100:]):
            s.sendall(piece)
            time.sleep(0.05)
        assert text() == {"type": "ack", "seq": 9}
