#!/usr/bin/env python3
"""Load generator for the benchmark suite: many idle WebSocket clients in one process (asyncio, raw sockets).

One process opens `--count` connections (the suite runs several, at most 5,000 each, under the 20,000 open
files a process may have) to either
- `--mode gateway`: Gatehouse's `/v1/connect` with a device token (HS256 from `--key-file`, `kind` in the
  token so the gateway publishes meta without a `hello`); connected = the `welcome` frame arrived;
- `--mode mqttws`: mosquitto's WebSocket listener (subprotocol `mqtt`), an MQTT 3.1.1 CONNECT (clean session,
  keepalive 0); connected = CONNACK accepted.
Both answer pings with pongs and otherwise stay idle. `--respond` makes gateway devices answer every `command`
frame with `{"type":"response","status":"ok"}` (the round-trip benchmark's device).

Protocol on stdio, one JSON line each: prints {"event":"ready"} once tokens are minted, waits for a line `go`
on stdin, connects (at most `--inflight` handshakes at a time), prints {"event":"connected",...}; then holds
the connections until stdin closes (or `--max-seconds` pass) and exits. Why not gatehouse-sim: its devices
send `hello` and random events and keep per-device tasks and timers, and the same client here speaks both
ends of the comparison (gateway and mosquitto's WebSocket listener) with the same code and cost.
"""
import argparse, asyncio, base64, hashlib, hmac, json, os, struct, sys, time

MASK = b"\0\0\0\0"  # a client frame must be masked; the key's value does not matter here


def frame(opcode, payload):
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack(">H", n)
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + struct.pack(">Q", n)
    return head + MASK + payload


def mqtt_connect(client_id):
    cid = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x00" + struct.pack(">H", len(cid)) + cid
    length, n = bytearray(), len(body)
    while True:
        byte, n = n % 128, n // 128
        length.append(byte | (0x80 if n else 0))
        if not n:
            break
    return b"\x10" + bytes(length) + body


def token(key, claims):
    b64 = lambda data: base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64(json.dumps(claims).encode())
    return head + "." + b64(hmac.new(key, head.encode(), hashlib.sha256).digest())


class Client(asyncio.Protocol):
    def __init__(self, gen, request, client_id):
        self.gen, self.request, self.client_id = gen, request, client_id
        self.buf = bytearray()
        self.upgraded = self.opened = False
        self.done = asyncio.get_running_loop().create_future()
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_result(False)
        elif self.opened:
            self.gen.lost += 1

    def data_received(self, data):
        self.buf += data
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end])
            del self.buf[:end + 4]
            if not head.startswith(b"HTTP/1.1 101"):
                self.fail(head.split(b"\r\n", 1)[0].decode(errors="replace"))
                return
            self.upgraded = True
            if self.gen.mode == "mqttws":
                self.transport.write(frame(2, mqtt_connect(self.client_id)))
        while len(self.buf) >= 2:
            b0, b1 = self.buf[0], self.buf[1]
            n, off = b1 & 0x7F, 2
            if n == 126:
                if len(self.buf) < 4:
                    return
                n, off = struct.unpack_from(">H", self.buf, 2)[0], 4
            elif n == 127:
                if len(self.buf) < 10:
                    return
                n, off = struct.unpack_from(">Q", self.buf, 2)[0], 10
            if len(self.buf) < off + n:
                return
            payload = bytes(self.buf[off:off + n])
            del self.buf[:off + n]
            self.handle(b0 & 0x0F, payload)

    def handle(self, opcode, payload):
        if opcode == 9:  # ping: pong with the same payload
            self.transport.write(frame(10, payload))
        elif opcode == 8:
            self.transport.close()
        elif not self.opened:
            ok = (opcode == 1 and b'"welcome"' in payload) if self.gen.mode == "gateway" else (payload[:1] == b"\x20" and payload[3:4] == b"\x00")
            if ok:
                self.opened = True
                self.done.set_result(True)
            else:
                self.fail(payload[:80].decode(errors="replace"))
        elif opcode == 1 and self.gen.respond:
            message = json.loads(payload)
            if message.get("type") == "command":
                self.transport.write(frame(1, json.dumps({"type": "response", "id": message["id"], "status": "ok",
                                                          "data": {"echo": message.get("params", {})}}).encode()))

    def fail(self, why):
        self.gen.errors.append(why)
        if not self.done.done():
            self.done.set_result(False)
        self.transport.close()


class Generator:
    def __init__(self, args):
        self.args, self.mode, self.respond = args, args.mode, args.respond
        self.errors, self.lost = [], 0
        key = open(args.key_file, "rb").read().rstrip(b"\n") if args.key_file else b""
        self.requests = []
        for i in range(args.start, args.start + args.count):
            client_id = f"{args.prefix}-{i}"
            lines = [f"GET {args.path} HTTP/1.1", f"Host: 127.0.0.1:{args.port}", "Upgrade: websocket", "Connection: Upgrade",
                     "Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16)).decode(), "Sec-WebSocket-Version: 13"]
            if self.mode == "gateway":
                lines.append("Authorization: Bearer " + token(key, {"sub": client_id, "kind": args.kind}))
            else:
                lines.append("Sec-WebSocket-Protocol: mqtt")
            self.requests.append((("\r\n".join(lines) + "\r\n\r\n").encode(), client_id))

    async def open_one(self, request, client_id, gate):
        loop = asyncio.get_running_loop()
        async with gate:
            for attempt in range(3):
                try:
                    _, client = await loop.create_connection(lambda: Client(self, request, client_id), "127.0.0.1", self.args.port)
                except OSError as error:
                    self.errors.append(str(error))
                    await asyncio.sleep(0.2)
                    continue
                if await client.done:
                    return client
                await asyncio.sleep(0.2)
        return None

    async def run(self):
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        emit({"event": "ready", "pid": os.getpid()})
        if (await reader.readline()).strip() != b"go":
            return
        start = time.monotonic()
        gate = asyncio.Semaphore(self.args.inflight)
        clients = await asyncio.gather(*(self.open_one(r, c, gate) for r, c in self.requests))
        opened = [c for c in clients if c]
        emit({"event": "connected", "connected": len(opened), "failed": len(clients) - len(opened),
              "seconds": round(time.monotonic() - start, 3), "errors": self.errors[:3]})
        try:
            await asyncio.wait_for(reader.read(), self.args.max_seconds)
        except asyncio.TimeoutError:
            pass
        lost = self.lost
        for client in opened:
            client.transport.close()
        await asyncio.sleep(0.2)
        emit({"event": "closed", "lost_while_idle": lost})


def emit(event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["gateway", "mqttws"], required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default=None)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--start", type=int, default=1)
    parser.add_argument("--prefix", default="idle")
    parser.add_argument("--kind", default="sensor")
    parser.add_argument("--key-file")
    parser.add_argument("--inflight", type=int, default=100, help="handshakes in progress at a time")
    parser.add_argument("--respond", action="store_true", help="answer command frames (gateway mode)")
    parser.add_argument("--max-seconds", type=float, default=600, help="stop by itself after this long")
    args = parser.parse_args()
    args.path = args.path or ("/v1/connect" if args.mode == "gateway" else "/mqtt")
    asyncio.run(Generator(args).run())


if __name__ == "__main__":
    main()
