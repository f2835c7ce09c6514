"""PROTOCOL.md §8: live view. Viewer tokens, the WebSocket and MJPEG endpoints and their refusals (in order),
the lease (start on the first viewer, stop `live.idle_s` after the last), fps caps, status messages, the newest
frame for a new viewer, newest-frame-wins for a slow viewer, `live.max_viewers`, `live.publish_mqtt`."""

from __future__ import annotations

import http.client
import json
import socket
import time

import pytest
from websockets.sync.client import connect as ws_connect

from conftest import Device, Gateway, assert_unauthorized, fetch_retained_json, report_figures, run_ctl, strict_loads, uid, wait_until
from test_bridge import bridge_request, bridge_response
from test_device_abuse import PINGS, MiB, PeakRSS, RawDevice, rss_bytes

IDLE_S = 1


@pytest.fixture(scope="module")
def lgw(broker, tmp_path_factory):
    """A gateway with a short idle time, so that lease tests take a second, not ten."""
    g = Gateway(broker, tmp_path_factory.mktemp("live"), {"live": {"idle_s": IDLE_S}})
    g.start()
    yield g
    g.stop()


# -- helpers ---------------------------------------------------------------------------------------------------


def viewer_token(g: Gateway, devices: list | None = None, sub: str = "viewer-1", **extra) -> str:
    claims = {"scope": "view", **extra}
    if devices is not None:
        claims["devices"] = devices
    return g.token(sub, **claims)


def camera(g: Gateway, device: str | None = None, max_fps=None, live=True) -> tuple[str, Device]:
    """A camera connected and known as live-capable (its hello is acknowledged)."""
    device = device or uid("cam")
    _, d = g.device(device, kind="camera")
    capabilities = {}
    if live:
        capabilities["live"] = {} if max_fps is None else {"max_fps": max_fps}
    d.send_json({"type": "hello", "seq": 1, "kind": "camera", "model": "t", "firmware": "1", "capabilities": capabilities})
    d.expect_ack(1)
    return device, d


def send_frame(d: Device, payload: bytes, stream: str = "live") -> None:
    d.send_media({"stream": stream, "content_type": "image/jpeg"}, payload)


def watch(g: Gateway, device: str, token: str | None, query: str = "", header: bool = True, sock=None) -> Device:
    url = f"ws://127.0.0.1:{g.port}/v1/live/{device}"
    headers = {}
    params = [query] if query else []
    if token is not None:
        if header:
            headers["Authorization"] = f"Bearer {token}"
        else:
            params.append(f"token={token}")
    if params:
        url += "?" + "&".join(params)
    conn = ws_connect(url, additional_headers=headers, open_timeout=5, ping_interval=None, close_timeout=2,
                      max_size=None, proxy=None, sock=sock, legacy=True)
    return Device(conn, None)


def expect_status(v: Device, state: str, timeout: float = 5) -> None:
    frame = v.recv_json(timeout)
    assert frame == {"type": "status", "state": state}, frame


def expect_frame(v: Device, payload: bytes, timeout: float = 5) -> None:
    got = v.recv_raw(timeout)
    assert isinstance(got, bytes), f"expected a binary frame, got {got!r}"
    assert got == payload, f"frame of {len(got)} bytes differs from the {len(payload)} sent"


def expect_live(d: Device, action: str, fps=None, timeout: float = 5) -> dict:
    frame = d.recv_json(timeout)
    assert frame.get("type") == "live" and frame.get("action") == action, frame
    if fps is not None:
        assert frame.get("fps") == fps, frame
    return frame


def upgrade_status(g: Gateway, path: str, token: str | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    status, _, body = g.raw_upgrade(path, headers=headers, token=token)
    return status, body


def get_status(g: Gateway, path: str, token: str | None = None) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", g.port, timeout=5)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        resp = conn.getresponse()
        headers = {k.lower(): v for k, v in resp.getheaders()}
        body = resp.read() if resp.status != 200 else b""
        return resp.status, headers, body
    finally:
        conn.close()


class MJPEGReader:
    """An MJPEG stream read by hand: the response head, then parts (`--frame`, headers, Content-Length bytes)."""

    def __init__(self, g: Gateway, path: str, token: str):
        self.sock = socket.create_connection(("127.0.0.1", g.port), timeout=5)
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
        self.file = self.sock.makefile("rb")
        status = self.file.readline().decode()
        assert " 200 " in status, status
        self.headers = {}
        while (line := self.file.readline().decode().strip()):
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self.chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        self.buffer = b""

    def _fill(self) -> None:
        """Appends the next piece of the body (one chunk, when chunked) to the buffer."""
        if self.chunked:
            size = int(self.file.readline().strip(), 16)
            assert size > 0, "the stream ended"
            self.buffer += self.file.read(size)
            assert self.file.readline() == b"\r\n"
        else:
            chunk = self.file.read1(65536)
            assert chunk, "the stream ended"
            self.buffer += chunk

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._fill()
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self._fill()
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def part(self) -> tuple[dict, bytes]:
        line = self._line()
        while line == b"":
            line = self._line()
        assert line == b"--frame", line
        headers = {}
        while (line := self._line()):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        body = self._read(int(headers["content-length"]))
        return headers, body

    def close(self) -> None:
        self.file.close()  # the socket's file descriptor stays open while its file object does
        self.sock.close()


def metric(g: Gateway, name: str) -> float:
    for line in g.http_get("/metrics")[2].decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rpartition(" ")[2])
    return 0.0


# -- tokens (§2) -----------------------------------------------------------------------------------------------


def test_viewer_token_cannot_connect_as_device(lgw):
    status, body = upgrade_status(lgw, "/v1/connect", token=viewer_token(lgw, sub=uid("v")))
    assert_unauthorized(status, body)


def test_explicit_device_scope_is_a_device_token(lgw):
    device = uid("dev")
    d = lgw.connect(lgw.token(device, scope="device"))
    assert d.welcome["device"] == device


def test_device_token_cannot_view(lgw):
    device, _ = camera(lgw)
    for token in (lgw.token(device), lgw.token(device, scope="device"), lgw.token("someone")):
        assert_unauthorized(*upgrade_status(lgw, f"/v1/live/{device}", token=token))
        status, _, body = get_status(lgw, f"/v1/live/{device}.mjpeg", token=token)
        assert_unauthorized(status, body)


@pytest.mark.parametrize("claims", [{"scope": "admin"}, {"scope": 1}, {"scope": "view", "devices": "cam"},
                                    {"scope": "view", "devices": [1]}, {"scope": "view", "devices": None}])
def test_bad_scope_or_devices_claim_is_an_invalid_token(lgw, claims):
    device, _ = camera(lgw)
    token = lgw.token("viewer-x", **claims)
    assert_unauthorized(*upgrade_status(lgw, f"/v1/live/{device}", token=token))
    assert_unauthorized(*upgrade_status(lgw, "/v1/connect", token=token))


# -- refusals, in order ----------------------------------------------------------------------------------------


def test_refusals_in_order(lgw):
    cam, _ = camera(lgw)
    plain, _ = camera(lgw, live=False)
    never = uid("never")
    good = viewer_token(lgw)
    # 1. a malformed id is 404 even without a token
    for path in ("/v1/live/bad%20id", "/v1/live/bridge", "/v1/live/", "/v1/live/a/b", "/v1/live/-x"):
        assert upgrade_status(lgw, path)[0] == 404, path
        assert get_status(lgw, path + ".mjpeg")[0] == 404 or path.endswith("/"), path
    # 2. the token: missing, bad, expired, revoked
    assert_unauthorized(*upgrade_status(lgw, f"/v1/live/{never}"))
    assert_unauthorized(*upgrade_status(lgw, f"/v1/live/{never}", token="not.a.jwt"))
    assert_unauthorized(*upgrade_status(lgw, f"/v1/live/{never}", token=viewer_token(lgw, exp=int(time.time()) - 1)))
    assert_unauthorized(*upgrade_status(lgw, f"/v1/live/{never}", token=viewer_token(lgw, sub="revoked-device")))
    assert_unauthorized(*upgrade_status(lgw, f"/v1/live/{never}", token=viewer_token(lgw, jti="revoked-jti-0001")))
    # 3. devices: before the camera is looked at (an unknown device is 403 too), case-sensitive, [] lists none
    assert upgrade_status(lgw, f"/v1/live/{never}", token=viewer_token(lgw, devices=["other"]))[0] == 403
    assert upgrade_status(lgw, f"/v1/live/{cam}", token=viewer_token(lgw, devices=[cam.upper()]))[0] == 403
    assert upgrade_status(lgw, f"/v1/live/{cam}", token=viewer_token(lgw, devices=[]))[0] == 403
    assert get_status(lgw, f"/v1/live/{cam}.mjpeg", token=viewer_token(lgw, devices=[]))[0] == 403
    # 4. the camera: never seen, or no capabilities.live
    assert upgrade_status(lgw, f"/v1/live/{never}", token=good)[0] == 404
    assert upgrade_status(lgw, f"/v1/live/{plain}", token=good)[0] == 404
    assert get_status(lgw, f"/v1/live/{plain}.mjpeg", token=good)[0] == 404
    # and the listed camera is accepted
    v = watch(lgw, cam, viewer_token(lgw, devices=[cam, "other"]))
    expect_status(v, "waiting")


def test_refusal_bodies_are_json(lgw):
    status, body = upgrade_status(lgw, f"/v1/live/{uid('never')}", token=viewer_token(lgw))
    assert status == 404
    assert strict_loads(body)["error"]["code"] == "not_found"


def test_header_token_wins_over_query(lgw):
    cam, _ = camera(lgw)
    v = watch(lgw, cam, viewer_token(lgw), query="token=garbage")
    expect_status(v, "waiting")
    status, body = upgrade_status(lgw, f"/v1/live/{cam}?token={viewer_token(lgw)}", token="garbage")
    assert_unauthorized(status, body)
    q = watch(lgw, cam, viewer_token(lgw), header=False)
    expect_status(q, "waiting")


def test_max_viewers_503_counts_websocket_and_mjpeg(gateway):
    g = gateway(live={"max_viewers": 2})
    cam, _ = camera(g)
    token = viewer_token(g)
    first = watch(g, cam, token)
    expect_status(first, "waiting")
    mjpeg = MJPEGReader(g, f"/v1/live/{cam}.mjpeg", token)
    status, headers, body = g.raw_upgrade(f"/v1/live/{cam}", token=token)
    assert status == 503, (status, body)
    assert strict_loads(body)["error"]["code"] == "unavailable"
    assert get_status(g, f"/v1/live/{cam}.mjpeg", token=token)[0] == 503
    # the capacity check comes last: a bad token is still 401 when full
    assert_unauthorized(*upgrade_status(g, f"/v1/live/{cam}", token="bad"))
    mjpeg.close()
    wait_until(lambda: g.raw_upgrade(f"/v1/live/{uid('x')}", token=token)[0] == 404, 5)
    second = wait_until(lambda: _try_watch(g, cam, token), 5)
    expect_status(second, "waiting")


def _try_watch(g, cam, token):
    try:
        return watch(g, cam, token)
    except Exception:
        return None


# -- the WebSocket stream --------------------------------------------------------------------------------------


def test_viewer_gets_status_then_frames_and_camera_gets_start(lgw):
    cam, d = camera(lgw)
    v = watch(lgw, cam, viewer_token(lgw))
    expect_status(v, "waiting")
    expect_live(d, "start", fps=5)
    send_frame(d, b"\xff\xd8frame-1\xff\xd9")
    expect_status(v, "streaming")
    expect_frame(v, b"\xff\xd8frame-1\xff\xd9")
    send_frame(d, b"\xff\xd8frame-2\xff\xd9")
    expect_frame(v, b"\xff\xd8frame-2\xff\xd9")  # "streaming" is sent once per streaming period, not per frame
    big = bytes(range(256)) * 400
    send_frame(d, big)
    expect_frame(v, big)


def test_offline_camera_starts_when_it_connects_and_viewer_stays_open(lgw):
    cam, d = camera(lgw)
    d.close()
    wait_until(lambda: fetch_retained_json(lgw.broker, lgw.topic(cam, "availability"),
                                           lambda a: a["state"] == "offline"), 5)
    v = watch(lgw, cam, viewer_token(lgw))
    expect_status(v, "offline")
    # no new hello: the start comes right after welcome
    d2 = lgw.connect(lgw.token(cam, kind="camera"))
    expect_live(d2, "start", fps=5)
    expect_status(v, "waiting")
    send_frame(d2, b"one")
    expect_status(v, "streaming")
    expect_frame(v, b"one")
    d2.drop()
    expect_status(v, "offline")
    assert v.is_open()
    d3 = lgw.connect(lgw.token(cam, kind="camera"))
    expect_live(d3, "start", fps=5)
    expect_status(v, "waiting")
    send_frame(d3, b"two")
    expect_status(v, "streaming")
    expect_frame(v, b"two")


def test_snapshots_are_not_forwarded(lgw):
    cam, d = camera(lgw)
    v = watch(lgw, cam, viewer_token(lgw))
    expect_status(v, "waiting")
    expect_live(d, "start")
    send_frame(d, b"snap", stream="snapshot")
    v.expect_no_frame(0.5)
    send_frame(d, b"live")
    expect_status(v, "streaming")
    expect_frame(v, b"live")


def test_new_viewer_gets_newest_frame_only_if_under_a_second_old(lgw):
    cam, d = camera(lgw)
    token = viewer_token(lgw)
    first = watch(lgw, cam, token)
    expect_status(first, "waiting")
    expect_live(d, "start")
    send_frame(d, b"recent")
    expect_status(first, "streaming")
    expect_frame(first, b"recent")
    second = watch(lgw, cam, token)
    expect_status(second, "streaming")
    expect_frame(second, b"recent")
    time.sleep(1.1)
    third = watch(lgw, cam, token)
    expect_status(third, "streaming")
    third.expect_no_frame(0.5)


def test_mjpeg_suffix_with_upgrade_is_the_websocket_of_that_id(lgw):
    cam, d = camera(lgw, device=f"{uid('cam')}.mjpeg")
    v = watch(lgw, cam, viewer_token(lgw))
    expect_status(v, "waiting")
    expect_live(d, "start")
    send_frame(d, b"dotted")
    expect_status(v, "streaming")
    expect_frame(v, b"dotted")


# -- fps -------------------------------------------------------------------------------------------------------


def test_fps_is_the_smallest_of_viewer_camera_and_gateway_and_only_rises(lgw):
    cam, d = camera(lgw, max_fps=8)
    token = viewer_token(lgw)
    a = watch(lgw, cam, token, query="fps=2")
    expect_live(d, "start", fps=2)
    b = watch(lgw, cam, token, query="fps=3")
    expect_live(d, "start", fps=3)
    c = watch(lgw, cam, token, query="fps=1")  # lower: changes nothing
    d2 = watch(lgw, cam, token, query="fps=50")  # capped by max_fps 8
    expect_live(d, "start", fps=8)
    for v in (a, b, c, d2):
        expect_status(v, "waiting")
    d.expect_no_frame(0.3)


def test_gateway_max_fps_caps_and_bad_fps_means_5(lgw):
    cam, d = camera(lgw)
    token = viewer_token(lgw)
    for query in ("fps=0", "fps=-3", "fps=abc", "fps="):
        watch(lgw, cam, token, query=query)
    expect_live(d, "start", fps=5)
    d.expect_no_frame(0.3)
    watch(lgw, cam, token, query="fps=30")
    expect_live(d, "start", fps=10)


# -- the lease -------------------------------------------------------------------------------------------------


def test_stop_idle_s_after_the_last_viewer_and_not_before(lgw):
    cam, d = camera(lgw)
    token = viewer_token(lgw)
    a = watch(lgw, cam, token)
    b = watch(lgw, cam, token)
    expect_live(d, "start", fps=5)
    a.close()
    d.expect_no_frame(IDLE_S + 0.3)  # one viewer left: no stop
    b.close()
    left = time.monotonic()
    expect_live(d, "stop", timeout=IDLE_S + 3)
    assert time.monotonic() - left >= IDLE_S - 0.2
    # a new lease starts again, at the default rate
    c = watch(lgw, cam, token)
    expect_live(d, "start", fps=5)
    expect_status(c, "waiting")


def test_viewer_returning_within_idle_keeps_the_lease(lgw):
    cam, d = camera(lgw)
    token = viewer_token(lgw)
    a = watch(lgw, cam, token, query="fps=7")
    expect_live(d, "start", fps=7)
    a.close()
    time.sleep(IDLE_S / 2)
    b = watch(lgw, cam, token, query="fps=2")  # lower: the lease keeps 7, nothing is sent
    expect_status(b, "waiting")
    d.expect_no_frame(IDLE_S + 0.5)


def test_start_and_stop_are_not_commands(lgw, mqtt):
    cam, d = camera(lgw)
    mqtt.subscribe(lgw.topic(cam, "#"))
    v = watch(lgw, cam, viewer_token(lgw))
    expect_live(d, "start")
    v.close()
    expect_live(d, "stop", timeout=IDLE_S + 3)
    assert not mqtt.seen(lambda m: "/request/" in m.topic or "/response/" in m.topic)


# -- MQTT ------------------------------------------------------------------------------------------------------


def test_live_frames_not_on_mqtt_by_default(lgw, mqtt):
    cam, d = camera(lgw)
    mqtt.subscribe(lgw.topic(cam, "media/#"))
    v = watch(lgw, cam, viewer_token(lgw))
    expect_status(v, "waiting")
    expect_live(d, "start")
    send_frame(d, b"private")
    expect_status(v, "streaming")
    expect_frame(v, b"private")
    send_frame(d, b"snap", stream="snapshot")
    mqtt.wait_for(lgw.topic(cam, "media/snapshot"))
    assert not mqtt.seen(lgw.topic(cam, "media/live"))


def test_publish_mqtt_true_publishes_live_frames(gateway, mqtt):
    g = gateway(live={"publish_mqtt": True})
    cam, d = camera(g)
    mqtt.subscribe(g.topic(cam, "media/#"))
    v = watch(g, cam, viewer_token(g))
    expect_status(v, "waiting")
    expect_live(d, "start")
    send_frame(d, b"public")
    msg = mqtt.wait_for(g.topic(cam, "media/live"))
    assert msg.payload == b"public"
    assert msg.qos == 0
    expect_status(v, "streaming")
    expect_frame(v, b"public")


# -- MJPEG -----------------------------------------------------------------------------------------------------


def test_mjpeg_stream(lgw):
    cam, d = camera(lgw)
    reader = MJPEGReader(lgw, f"/v1/live/{cam}.mjpeg?fps=3", viewer_token(lgw))
    try:
        assert reader.headers["content-type"] == "multipart/x-mixed-replace; boundary=frame"
        expect_live(d, "start", fps=3)
        for payload in (b"\xff\xd8a\xff\xd9", b"\xff\xd8" + b"b" * 70000 + b"\xff\xd9"):
            send_frame(d, payload)
            headers, body = reader.part()
            assert headers["content-type"] == "image/jpeg"
            assert int(headers["content-length"]) == len(payload)
            assert body == payload
    finally:
        reader.close()
    expect_live(d, "stop", timeout=IDLE_S + 3)


def test_mjpeg_on_a_kept_alive_connection(lgw):
    cam, d = camera(lgw)
    conn = socket.create_connection(("127.0.0.1", lgw.port), timeout=5)
    try:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = conn.recv(4096)
        assert b" 200 " in first
        conn.sendall(f"GET /v1/live/{cam}.mjpeg?token={viewer_token(lgw)} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        expect_live(d, "start")
        send_frame(d, b"kept-alive")
        data = b""
        deadline = time.monotonic() + 5
        while b"kept-alive" not in data and time.monotonic() < deadline:
            data += conn.recv(65536)
        assert b"multipart/x-mixed-replace; boundary=frame" in data and b"kept-alive" in data, data
    finally:
        conn.close()


# -- backpressure ----------------------------------------------------------------------------------------------


def test_slow_viewer_gets_newest_frame_and_does_not_hold_back_others(gateway):
    g = gateway(limits={"max_bytes_per_s": "1GiB", "max_messages_per_s": 100000})
    cam, d = camera(g)
    token = viewer_token(g)
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", g.port))
    slow = watch(g, cam, token, sock=raw)
    fast = watch(g, cam, token)
    expect_status(slow, "waiting")
    expect_status(fast, "waiting")
    expect_live(d, "start")
    count, size = 150, 64 * 1024
    frames = [i.to_bytes(4, "big") + bytes([i % 251]) * size for i in range(count)]
    send_frame(d, frames[0])
    expect_status(fast, "streaming")
    expect_frame(fast, frames[0])
    for f in frames[1:]:
        send_frame(d, f)
        expect_frame(fast, f)  # the fast viewer gets every frame, in step with the camera
    # the slow viewer now reads: fewer frames than sent, in order, ending with the newest one
    expect_status(slow, "streaming")
    got = []
    while not got or got[-1] != frames[-1]:
        frame = slow.recv_raw(10)
        assert isinstance(frame, bytes)
        got.append(frame)
    numbers = [int.from_bytes(f[:4], "big") for f in got]
    assert numbers == sorted(numbers), numbers
    assert len(got) < count, f"the slow viewer got all {count} frames: nothing was dropped"
    assert metric(g, "gatehouse_live_frames_dropped_total") > 0
    slow.expect_no_frame(0.3)


def test_metrics(lgw):
    cam, d = camera(lgw)
    before = metric(lgw, "gatehouse_live_frames_sent_total")
    v = watch(lgw, cam, viewer_token(lgw))
    expect_status(v, "waiting")
    expect_live(d, "start")
    send_frame(d, b"m")
    expect_status(v, "streaming")
    expect_frame(v, b"m")
    assert metric(lgw, "gatehouse_live_viewers") >= 1
    assert metric(lgw, "gatehouse_live_frames_in_total") >= 1
    wait_until(lambda: metric(lgw, "gatehouse_live_frames_sent_total") > before, 5)


# -- another gateway of the fleet ------------------------------------------------------------------------------


def test_gateway_not_holding_the_camera_knows_it_from_retained_meta(gateway):
    holder = gateway()
    cam, d = camera(holder)
    other = gateway(fleet_of=holder)
    v = wait_until(lambda: _try_watch(other, cam, viewer_token(other)), 5)
    expect_status(v, "offline")
    d.expect_no_frame(0.3)


# -- gatehousectl ----------------------------------------------------------------------------------------------


def test_ctl_issues_viewer_token_with_live_urls(lgw):
    cam, d = camera(lgw)
    result = run_ctl(["token", "issue", "alice", "--scope", "view", "--devices", cam, "--expires", "1h",
                      "--key-file", str(lgw.key_path), "--url", lgw.http_url, "--json"])
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["scope"] == "view" and doc["devices"] == [cam]
    assert 3500 <= doc["expires"] - time.time() <= 3700
    urls = doc["live"][cam]
    assert urls["mjpeg"] == f"{lgw.http_url}/v1/live/{cam}.mjpeg?token={doc['token']}"
    conn = ws_connect(urls["websocket"], open_timeout=5, ping_interval=None, proxy=None, legacy=True)
    v = Device(conn, None)
    expect_status(v, "waiting")
    expect_live(d, "start")
    # not a device credential, and limited to the listed camera
    assert_unauthorized(*upgrade_status(lgw, "/v1/connect", token=doc["token"]))
    assert upgrade_status(lgw, f"/v1/live/{uid('other')}", token=doc["token"])[0] == 403
    text = run_ctl(["token", "issue", "alice", "--scope", "view", "--devices", cam, "--key-file", str(lgw.key_path),
                    "--url", lgw.http_url])
    assert text.returncode == 0 and text.stdout.count("\n") == 1, text.stdout  # only the token on stdout
    assert f"/v1/live/{cam}.mjpeg?token=" in text.stderr and f"ws://127.0.0.1:{lgw.port}/v1/live/{cam}?token=" in text.stderr


# -- a viewer that does not read ----------------------------------------------------------------------------------


def test_a_viewer_that_pings_and_never_reads_costs_one_waiting_pong(gateway):
    """Viewers are read whatever they send (pings too); one that pings without reading gets one pong at a time,
    the newest ping's, not a pong per ping piling up in the gateway's memory."""
    g = gateway()
    cam, _ = camera(g)
    raw = RawDevice(g, rcvbuf=4096, path=f"/v1/live/{cam}", token=viewer_token(g))
    before = rss_bytes(g)
    peak = PeakRSS(g)
    sent, ended = raw.flood(PINGS, seconds=5)
    grown = peak.stop() - before
    raw.close()
    report_figures(f"viewer ping flood, never read: {sent / MiB:.0f} MiB of pings sent, gateway RSS +{grown / MiB:.1f} MiB")
    assert sent > 4 * MiB, f"only {sent / MiB:.0f} MiB of pings went in 5 s: too few to tell"
    assert grown < 4 * MiB, f"gateway RSS grew by {grown / MiB:.0f} MiB for {sent / MiB:.0f} MiB of pings"
    assert wait_until(lambda: _try_watch(g, cam, viewer_token(g)), 5)


def test_a_revoked_viewer_that_does_not_read_is_closed_and_frees_its_slot(gateway):
    """The close frame cannot leave while a frame to a viewer that reads nothing is in flight: the connection
    is ended anyway (DeviceSession's 10 s), so the viewer keeps neither its `max_viewers` slot nor the camera."""
    g = gateway(live={"max_viewers": 1}, limits={"max_bytes_per_s": "1GiB"})
    cam, d = camera(g)
    raw = RawDevice(g, rcvbuf=4096, path=f"/v1/live/{cam}", token=viewer_token(g, sub="mallory", jti="mallory-1"))
    expect_live(d, "start")
    for i in range(4):
        send_frame(d, bytes([i]) * (1 << 20))  # the first never leaves; the newest waits
    assert _try_watch(g, cam, viewer_token(g)) is None  # the one slot is taken
    with open(g.revoked_path, "a") as f:
        f.write("mallory-1\n")
    assert wait_until(lambda: _try_watch(g, cam, viewer_token(g)), 15), "the revoked viewer still holds the slot"
    raw.close()


# -- a viewer's credential ends while it watches -----------------------------------------------------------------


def test_revoked_viewer_is_closed_1008(gateway):
    g = gateway()
    cam, _ = camera(g)
    v = watch(g, cam, viewer_token(g, sub="eve", jti="eve-token-1"))
    expect_status(v, "waiting")
    with open(g.revoked_path, "a") as f:
        f.write("eve-token-1\n")
    v.expect_close(1008, timeout=5)


def test_expired_viewer_is_closed_4001(lgw):
    cam, _ = camera(lgw)
    v = watch(lgw, cam, viewer_token(lgw, exp=int(time.time()) + 2))
    expect_status(v, "waiting")
    v.expect_close(4001, timeout=5)


def test_a_retained_meta_of_another_shape_changes_nothing(lgw, mqtt):
    """PROTOCOL §4: a read-back topic's payload that is not what the table describes changes nothing. A stray `{}`
    on a camera's meta used to wipe its capabilities: its viewers got 404."""
    cam, d = camera(lgw)
    d.close()
    for planted in ({}, {"foo": 1}, {"ts": 1, "kind": "camera"}):
        mqtt.publish(lgw.topic(cam, "meta"), planted, retain=True)
    bridge_request(mqtt, lgw, "devices", {"id": "after-the-planted-meta"})
    bridge_response(mqtt, lgw, "devices", "after-the-planted-meta")  # routed after them, on the same thread
    v = watch(lgw, cam, viewer_token(lgw))
    expect_status(v, "offline")
    mqtt.publish(lgw.topic(cam, "meta"), b"", retain=True)


def test_an_ended_mjpeg_stream_closes_its_multipart_body_and_its_chunked_response(lgw):
    cam, d = camera(lgw)
    conn = socket.create_connection(("127.0.0.1", lgw.port), timeout=10)
    try:
        token = viewer_token(lgw, exp=int(time.time()) + 2)
        conn.sendall(f"GET /v1/live/{cam}.mjpeg?token={token} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        expect_live(d, "start")
        send_frame(d, b"last-frame")
        data = b""
        while chunk := conn.recv(65536):  # the gateway ends the stream at the token's exp, then closes
            data += chunk
        assert b"transfer-encoding: chunked" in data.lower() and b"last-frame" in data, data
        assert data.endswith(b"--frame--\r\n\r\n0\r\n\r\n"), data[-80:]
    finally:
        conn.close()


def test_status_feed_pushes_reports_and_shows_live_cameras(lgw):
    cam, _ = camera(lgw, max_fps=12)
    conn = ws_connect(f"ws://127.0.0.1:{lgw.port}/api/status/ws", open_timeout=5, ping_interval=None, proxy=None,
                      max_size=None, legacy=True)
    feed = Device(conn, None)
    first = feed.recv_json(5)
    second = feed.recv_json(5)
    assert second["ts"] > first["ts"]
    row = next(d for d in second["devices"] if d["device"] == cam)
    assert row["live"] == {"viewers": 0, "fps": None, "max_fps": 12}
    v = watch(lgw, cam, viewer_token(lgw), query="fps=4")
    expect_status(v, "waiting")
    report = wait_until(lambda: next(d for d in feed.recv_json(5)["devices"] if d["device"] == cam)["live"]["viewers"] == 1, 5)
    assert report
