#!/usr/bin/env python3
"""A Gatehouse device in plain Python: the wire protocol without the Swift library.

It mints its own HS256 device token from the fleet key file (standard library only), connects to
the gateway's WebSocket endpoint, sends `hello`, then telemetry with `seq` so every message is
acknowledged, answers `set_interval` and `ping` commands, applies the desired `interval_s` it is sent
(`desired` frames) and reports it as state, and reconnects with backoff, resending whatever was not
acknowledged. Needs the `websockets` package (version 13 or later).

    python3 device.py --key-file /etc/gatehouse/fleet.key --device py-sensor-1
"""

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import random
import signal
import sys
import time

import websockets
from websockets.asyncio.client import connect

SUBPROTOCOL = "gatehouse.v1"
# Close codes after which reconnecting is pointless (PROTOCOL 3.4): replaced, token expired, policy.
FINAL_CLOSE_CODES = {4000, 4001, 1008}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mint_token(key_file: str, device: str, kind: str | None, lifetime_s: int | None) -> str:
    """An HS256 JWT signed with the fleet key: the file's content minus one trailing newline."""
    with open(key_file, "rb") as f:
        key = f.read()
    if key.endswith(b"\n"):
        key = key[:-1]
    now = int(time.time())
    claims = {"sub": device, "iat": now}
    if kind:
        claims["kind"] = kind
    if lifetime_s:
        claims["exp"] = now + lifetime_s
    header = {"alg": "HS256", "typ": "JWT"}
    signing_input = b64url(json.dumps(header, separators=(",", ":")).encode()) + "." + b64url(
        json.dumps(claims, separators=(",", ":")).encode()
    )
    signature = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature)


def encode(message: dict) -> str:
    # allow_nan=False: NaN/Infinity are not JSON, and the gateway refuses them as malformed.
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class Device:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.interval = args.interval
        self.next_seq = 1
        # seq -> encoded text, kept until ack/nack; resent in order after a reconnect.
        self.unacked: dict[int, str] = {}
        self.written: set[int] = set()  # seqs written at least once, to count resends
        self.window = asyncio.Semaphore(args.window)
        self.sent = self.acked = self.nacked = self.resent = 0
        self.temperature = random.uniform(19, 23)
        self.humidity = random.uniform(35, 55)
        self.ws = None

    def log(self, *parts):
        print(f"[{self.args.device}]", *parts, file=sys.stderr, flush=True)

    async def send_acknowledged(self, message: dict):
        """Gives the message a seq and writes it if connected; otherwise it waits for the next connection."""
        await self.window.acquire()
        seq = self.next_seq
        self.next_seq += 1
        text = encode({**message, "seq": seq})
        self.unacked[seq] = text
        if self.ws is not None:
            try:
                await self.ws.send(text)
                self.written.add(seq)
                self.sent += 1
            except websockets.ConnectionClosed:
                pass  # stays in unacked and goes out again after the reconnect

    def answered(self, seq: int, ok: bool, error: dict | None = None):
        if self.unacked.pop(seq, None) is None:
            return
        self.written.discard(seq)
        self.window.release()
        if ok:
            self.acked += 1
        else:
            self.nacked += 1
            self.log("nack", seq, error)

    async def handle_command(self, command: dict):
        name, params = command.get("name"), command.get("params") or {}
        response = {"type": "response", "id": command["id"]}
        if name == "set_interval":
            seconds = params.get("seconds")
            if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and 1 <= seconds <= 3600:
                self.interval = float(seconds)
                response.update(status="ok", data={"interval_s": seconds})
            else:
                response.update(status="error", error={"code": "bad_params", "message": "seconds must be 1..3600"})
        elif name == "ping":
            response.update(status="ok", data={"pong": int(time.time() * 1000)})
        else:
            response.update(status="error", error={"code": "unknown_command", "message": f"unknown command {name}"})
        await self.send_acknowledged(response)

    async def apply_desired(self, message: dict):
        """A `desired` frame carries what of the desired state is still pending; apply it and report the result."""
        seconds = (message.get("data") or {}).get("interval_s")
        if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and 1 <= seconds <= 3600:
            self.interval = float(seconds)
            self.log(f"desired version {message.get('version')}: interval_s {seconds}")
            await self.send_acknowledged({"type": "state", "data": {"interval_s": seconds}})

    async def read(self, ws):
        # Reading continuously also lets the library answer the gateway's pings.
        async for raw in ws:
            if isinstance(raw, bytes):
                continue
            message = json.loads(raw)
            kind = message.get("type")
            if kind == "ack":
                self.answered(message["seq"], True)
            elif kind == "nack":
                self.answered(message["seq"], False, message.get("error"))
            elif kind == "command":
                asyncio.create_task(self.handle_command(message))
            elif kind == "desired":
                asyncio.create_task(self.apply_desired(message))
            elif kind == "error":
                self.log("gateway error:", message.get("error"))

    async def telemetry(self):
        count = 0
        while self.args.count == 0 or count < self.args.count:
            self.temperature = min(35, max(5, self.temperature + random.uniform(-0.1, 0.1)))
            self.humidity = min(95, max(10, self.humidity + random.uniform(-0.5, 0.5)))
            await self.send_acknowledged({
                "type": "telemetry",
                "ts": int(time.time() * 1000),
                "data": {"temperature": round(self.temperature, 2), "humidity": round(self.humidity, 1)},
            })
            count += 1
            await asyncio.sleep(self.interval)
        # Wait for the last acknowledgements before finishing.
        while self.unacked:
            await asyncio.sleep(0.05)

    async def session(self, url: str, headers: dict) -> tuple[bool, int | None]:
        """One connection. Returns (budget done, close code)."""
        async with connect(
            url,
            additional_headers=headers,
            subprotocols=[SUBPROTOCOL],
            max_size=4 * 1024 * 1024 + 65536,
            ping_interval=None,  # the gateway pings us; we answer while reading
            compression="deflate" if self.args.compression else None,
        ) as ws:
            welcome = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
            if welcome.get("type") != "welcome":
                raise RuntimeError(f"expected welcome, got {welcome!r}")
            self.log(f"connected to gateway {welcome['gateway']} session {welcome['session']}")
            # Write what is unacknowledged (left over, or queued while offline), in seq order, before
            # anything new; repeat until nothing was added meanwhile, then switch to live sending.
            done_now: set[int] = set()
            while pending := [seq for seq in sorted(self.unacked) if seq not in done_now]:
                for seq in pending:
                    text = self.unacked.get(seq)
                    if text is None:
                        continue
                    await ws.send(text)
                    done_now.add(seq)
                    if seq in self.written:
                        self.resent += 1
                    else:
                        self.written.add(seq)
                        self.sent += 1
            self.ws = ws
            try:
                await self.send_acknowledged({
                    "type": "hello",
                    "kind": self.args.kind,
                    "model": "python-device",
                    "firmware": "1.0.0",
                    "capabilities": {
                        "commands": {
                            "set_interval": {"params": {"seconds": {"type": "number", "minimum": 1, "maximum": 3600}}},
                            "ping": {"params": {}},
                        },
                        "state": {"interval_s": {"type": "number", "minimum": 1, "maximum": 3600}},
                        "telemetry": {"temperature": {"unit": "°C"}, "humidity": {"unit": "%"}},
                    },
                })
                reader = asyncio.create_task(self.read(ws))
                producer = asyncio.create_task(self.telemetry())
                done, _ = await asyncio.wait({reader, producer}, return_when=asyncio.FIRST_COMPLETED)
                if producer in done:
                    producer.result()
                    reader.cancel()
                    return True, None
                producer.cancel()
                reader.result()  # raises ConnectionClosedError on an abnormal close
                return False, ws.close_code
            finally:
                self.ws = None

    async def run(self):
        token = mint_token(self.args.key_file, self.args.device, self.args.kind, self.args.token_lifetime)
        url, headers = self.args.url, {}
        if self.args.token_in_query:
            url += ("&" if "?" in url else "?") + "token=" + token
        else:
            headers["Authorization"] = "Bearer " + token
        attempt = 0
        while True:
            try:
                finished, code = await self.session(url, headers)
                if finished:
                    return 0
            except websockets.ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else 1006
            except websockets.InvalidStatus as refused:
                code = None
                self.log(f"upgrade refused: HTTP {refused.response.status_code} {refused.response.body!r}")
            except (OSError, asyncio.TimeoutError, websockets.InvalidHandshake, RuntimeError) as error:
                code = None
                self.log("connection failed:", error)
            if code is not None and code not in FINAL_CLOSE_CODES:
                attempt = 0  # the connection worked; start the backoff over
            if code in FINAL_CLOSE_CODES:
                self.log(f"closed with {code}; not reconnecting")
                return 1
            # Full jitter: a random wait up to an exponentially growing cap (0.5 s .. 30 s).
            delay = random.uniform(0.5, min(30.0, 0.5 * 2**attempt))
            attempt += 1
            self.log(f"disconnected (code {code}); reconnecting in {delay:.1f} s")
            await asyncio.sleep(delay)


def main() -> int:
    parser = argparse.ArgumentParser(description="A Gatehouse device in plain Python.")
    parser.add_argument("--url", default="ws://127.0.0.1:8080/v1/connect")
    parser.add_argument("--key-file", required=True, help="fleet key file (the gateway's auth.key_file)")
    parser.add_argument("--device", default="py-sensor-1", help="device id (the token's sub)")
    parser.add_argument("--kind", default="sensor")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between telemetry messages")
    parser.add_argument("--count", type=int, default=0, help="telemetry messages to send, then exit (0 = forever)")
    parser.add_argument("--window", type=int, default=64, help="unacknowledged messages in flight")
    parser.add_argument("--token-lifetime", type=int, default=3600, help="token exp in seconds (0 = none)")
    parser.add_argument("--token-in-query", action="store_true", help="send ?token= instead of the Authorization header")
    parser.add_argument("--compression", action="store_true", help="offer permessage-deflate")
    args = parser.parse_args()

    device = Device(args)

    async def run() -> int:
        task = asyncio.create_task(device.run())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            return await task
        except asyncio.CancelledError:
            return 0

    status = asyncio.run(run())
    print(json.dumps({"sent": device.sent, "acked": device.acked, "nacked": device.nacked, "resent": device.resent}))
    return status


if __name__ == "__main__":
    sys.exit(main())
