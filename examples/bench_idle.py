#!/usr/bin/env python3
"""Benchmark: N idle connected devices; the gateway's memory per device vs. mosquitto's own WebSocket listener.

Phase 1: a private mosquitto (TCP) and the gateway; N devices (examples/bench_clients.c, epoll and raw
sockets, at most 5,000 per process) connect with a token (kind in the token, no hello) and stay idle, answering pings.
Gateway RSS per device = (RSS once all are connected and the gateway is quiet − RSS before) / N.
Phase 2 (baseline, same run): mosquitto with its WebSocket listener (libwebsockets, Debian's build) holds the same
number of idle MQTT-over-WebSocket connections from the same load generator; its RSS per connection likewise.
Also: the wall time until all were connected, CPU per connection of every process (gateway, broker, load
generators), and the CPU of 10 idle seconds. Everything binds to 127.0.0.1 and stops by itself.

With BENCH_IDLE_TLS=1 both servers take wss:// (a self-signed P-256 certificate; TLS 1.3 with OpenSSL on the
client side): the gateway through NIOSSL, mosquitto's WebSocket listener through libwebsockets.

Environment: BIN (default .build/release), BENCH_IDLE_DEVICES (default 19000; 1000 with BENCH_QUICK=1),
BENCH_IDLE_SECONDS (idle window, default 10), BENCH_IDLE_TLS (0).
"""
import os, tempfile, time

from bench_common import (CPU, Broker, ClientFleet, Gateway, Processes, cpu_line, header, rss_kib, self_signed, sized, wait_quiet)

N = sized("BENCH_IDLE_DEVICES", 19000, 1000)
IDLE_S = float(sized("BENCH_IDLE_SECONDS", 10, 3))
TLS = os.environ.get("BENCH_IDLE_TLS", "0") not in ("", "0")


def hold(procs, work, target_pid, broker_pid, mode, port, key=None, prefix="idle"):
    """Connects N clients, returns figures; the connections are closed again before it returns."""
    wait_quiet(target_pid)
    rss0, broker_rss0 = rss_kib(target_pid), rss_kib(broker_pid)
    fleet = ClientFleet(procs, work, mode, port, N, key=key, prefix=prefix)
    fleet.ready()
    cpu = CPU(server=target_pid, broker=broker_pid if broker_pid != target_pid else None, load=fleet.pids)
    connected, failed, seconds, errors = fleet.go()
    wait_quiet(target_pid)
    connect_cpu = cpu.take()
    rss1, broker_rss1 = rss_kib(target_pid), rss_kib(broker_pid)
    idle = CPU(server=target_pid, broker=broker_pid if broker_pid != target_pid else None)
    time.sleep(IDLE_S)
    idle_cpu = idle.take()
    lost = fleet.close()
    return dict(connected=connected, failed=failed, seconds=seconds, errors=errors, rss0=rss0, rss1=rss1,
                broker_rss=broker_rss1 - broker_rss0, connect_cpu=connect_cpu, idle_cpu=idle_cpu, lost=lost)


def main():
    header("idle connections", f"{N} devices, idle window {IDLE_S:.0f} s" + (", wss://" if TLS else ""))
    work = tempfile.mkdtemp(prefix="gatehouse-bench-idle-")
    tls, suffix = (self_signed(work), "-tls") if TLS else (None, "")
    results = {}
    with Processes() as procs:
        broker = Broker(procs, work)
        gateway = Gateway(procs, work, broker, tls=tls, LIMITS_MAX_CONNECTIONS=max(N, 19000), LIMITS_MAX_PENDING_CONNECTIONS=1000)
        results["gatehouse"] = hold(procs, work, gateway.pid, broker.pid, "gateway" + suffix, gateway.http_port, gateway.key)
        procs.stop(gateway.proc)
        broker.stop()
    with Processes() as procs:
        ws = Broker(procs, work, websockets=True, name="ws", tls=tls)
        results["mosquitto ws"] = hold(procs, work, ws.pid, ws.pid, "mqttws" + suffix, ws.ws_port)

    print(f"   {'server':14} {'connected':>9} {'failed':>6} {'wall s':>7} {'RSS before MiB':>15} {'RSS after MiB':>14} {'KiB/conn':>9}")
    for name, r in results.items():
        print(f"   {name:14} {r['connected']:>9} {r['failed']:>6} {r['seconds']:>7.1f} {r['rss0'] / 1024:>15.1f} {r['rss1'] / 1024:>14.1f} "
              f"{(r['rss1'] - r['rss0']) / max(r['connected'], 1):>9.2f}")
    g, m = results["gatehouse"], results["mosquitto ws"]
    per = lambda r: (r["rss1"] - r["rss0"]) / max(r["connected"], 1)
    print(f"   ratio gatehouse / mosquitto ws, RSS per connection: {per(g) / max(per(m), 1e-9):.2f} "
          f"(goal: gatehouse ≤ 6 KiB per device); broker RSS for the gateway's devices: {g['broker_rss'] / max(g['connected'], 1):.2f} KiB each")
    for name, r in results.items():
        print(f"   {name:14} connect CPU: {cpu_line(r['connect_cpu'], r['connected'], 'connection')}")
        print(f"   {name:14} idle CPU over {IDLE_S:.0f} s: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in r["idle_cpu"].items())
              + f"; connections lost while idle {r['lost']}" + (f"; errors {r['errors']}" if r["errors"] else ""))


if __name__ == "__main__":
    main()
