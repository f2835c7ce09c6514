#!/usr/bin/env python3
"""Benchmark: a connect storm. N devices connect at once; gateway CPU per connection and the wall time until all
are connected, against mosquitto's own WebSocket listener taking the same MQTT-over-WebSocket connections.

Phase 1: a private mosquitto (TCP) and a fresh gateway; N devices (examples/bench_clients.c, at most 5,000 per
process, BENCH_STORM_INFLIGHT handshakes in flight per process) connect with a token (kind in the token, no hello).
Each connection costs the gateway the upgrade, the token check (HS256), the `welcome`, the retained
availability and the meta made from the token. An MQTT subscriber counts `online` availability and meta messages
at the broker: "all online" is when it has seen N of each. Phase 2 (baseline, same run): the same load generator
opens N MQTT-over-WebSocket connections to mosquitto (CONNECT/CONNACK). CPU per connection of the server, the
broker and the load generators, from /proc/<pid>/stat, from the start until the server is quiet again.
The gateway's connect rate limit (limits.max_connects_per_s) is off, and limits.max_pending_connections is above
what is in flight. Everything binds to 127.0.0.1 and stops by itself.

Environment: BIN (default .build/release), BENCH_STORM_DEVICES (default 19000; 1000 with BENCH_QUICK=1),
BENCH_STORM_INFLIGHT (default 100 per load-generator process).
"""
import tempfile, threading, time

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench_common import (CPU, Broker, ClientFleet, Gateway, Processes, cpu_line, header, per_unit, sized, wait_quiet)

N = sized("BENCH_STORM_DEVICES", 19000, 1000)
INFLIGHT = sized("BENCH_STORM_INFLIGHT", 100, 100)


class Watcher:
    """Counts retained `online` availability and meta documents arriving at the broker."""

    def __init__(self, port, n):
        self.online = self.meta = 0
        self.n, self.done, self.last = n, threading.Event(), None
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-storm-watcher")
        self.client.on_message = self.message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe([("gatehouse/+/availability", 0), ("gatehouse/+/meta", 0)])
        self.client.loop_start()
        time.sleep(0.3)

    def message(self, client, userdata, msg):
        if msg.topic.endswith("/meta"):
            self.meta += 1
        elif b'"online"' in msg.payload:
            self.online += 1
        if self.online >= self.n and self.meta >= self.n and not self.done.is_set():
            self.last = time.monotonic()
            self.done.set()

    def stop(self):
        self.client.loop_stop()
        self.client.disconnect()


def storm(procs, work, server_pid, broker_pid, mode, port, key=None, watcher=None):
    fleet = ClientFleet(procs, work, mode, port, N, inflight=INFLIGHT, prefix=f"storm-{mode}", key=key)
    fleet.ready()
    cpu = CPU(server=server_pid, broker=broker_pid if broker_pid != server_pid else None, load=fleet.pids)
    start = time.monotonic()
    connected, failed, seconds, errors = fleet.go()
    online_s = None
    if watcher:
        watcher.done.wait(120)
        online_s = (watcher.last - start) if watcher.last else None
    wait_quiet(server_pid)
    used = cpu.take()
    fleet.close()
    return dict(connected=connected, failed=failed, seconds=seconds, online_s=online_s, cpu=used, errors=errors,
                online=watcher.online if watcher else None, meta=watcher.meta if watcher else None)


def main():
    header("connect storm", f"{N} devices, {INFLIGHT} handshakes in flight per load-generator process")
    work = tempfile.mkdtemp(prefix="gatehouse-bench-storm-")
    results = {}
    with Processes() as procs:
        broker = Broker(procs, work)
        gateway = Gateway(procs, work, broker, LIMITS_MAX_CONNECTIONS=max(N, 19000), LIMITS_MAX_PENDING_CONNECTIONS=4000)
        watcher = Watcher(broker.port, N)
        try:
            results["gatehouse"] = storm(procs, work, gateway.pid, broker.pid, "gateway", gateway.http_port, gateway.key, watcher)
        finally:
            watcher.stop()
    with Processes() as procs:
        ws = Broker(procs, work, websockets=True, name="ws")
        results["mosquitto ws"] = storm(procs, work, ws.pid, ws.pid, "mqttws", ws.ws_port)

    print(f"   {'server':14} {'connected':>9} {'failed':>6} {'all connected s':>16} {'all online s':>13} {'conn/s':>8} {'server µs/conn':>15}")
    for name, r in results.items():
        online = f"{r['online_s']:.2f}" if r["online_s"] else "-"
        print(f"   {name:14} {r['connected']:>9} {r['failed']:>6} {r['seconds']:>16.2f} {online:>13} {r['connected'] / r['seconds']:>8.0f} "
              f"{per_unit(r['cpu']['server'], r['connected']):>15.1f}")
    g, m = results["gatehouse"], results["mosquitto ws"]
    print(f"   ratio gatehouse / mosquitto ws: server CPU per connection {g['cpu']['server'] / max(m['cpu']['server'], 1e-9):.2f}, "
          f"wall time {g['seconds'] / m['seconds']:.2f} (goal: gatehouse ≤ 200 µs per connection)")
    print(f"   gatehouse: {g['online']} online availability and {g['meta']} meta messages seen at the broker")
    for name, r in results.items():
        print(f"   {name:14} CPU: {cpu_line(r['cpu'], r['connected'], 'connection')}" + (f"; errors {r['errors'][:3]}" if r["errors"] else ""))


if __name__ == "__main__":
    main()
