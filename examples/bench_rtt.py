#!/usr/bin/env python3
"""Benchmark: command round trip, idle and under background telemetry, against mosquitto alone.

Gateway (phase 1): an MQTT 5 requester (examples/bench_rtt.c, libmosquitto) publishes `gatehouse/rtt-1/request/ping` (QoS 1,
{"id","params","timeout_ms"}, PROTOCOL.md §5) and waits for the answer on `gatehouse/rtt-1/response/ping`; the
device (examples/bench_clients.c, --respond) answers each `command` frame at once. One request at a time.
Run idle, then while 50 devices (examples/bench_clients.c, paced) send ~BENCH_RTT_RATE telemetry messages/s (QoS 1,
window 64 each) through the gateway.
Baseline (phase 2, same run): the same requester against mosquitto alone, where an MQTT client (the same C program,
in its own process) echoes each request to the response topic at QoS 1; loaded by mosquitto_pub -l -q 1 publishers
fed at the same total rate. Both brokers run with `set_tcp_nodelay true`, and the C clients set TCP_NODELAY (as the
gateway's own MQTT connection does): with mosquitto's default, Nagle and delayed ACKs add ~40 ms per hop. The
requester and the echo were paho (Python) until this was written in C: they cost 400-850 µs of CPU per command
each, as much as the servers measured, on the same two cores. Prints p50/p99/max in ms, ratios, and CPU per command of every process (server, broker, device or
echo, requester, background load). Everything binds to 127.0.0.1 and stops by itself.

Environment: BIN (default .build/release), BENCH_RTT_REQUESTS (per phase, default 2000; 300 with BENCH_QUICK=1),
BENCH_RTT_RATE (background messages/s, default 5000), BENCH_PHASE_LOCKED=1 (every background sender sends in the same
millisecond, a burst of 50 messages every 10 ms, as before 2026-12-05; by default they take turns through the period).
"""
import json, os, subprocess, tempfile, threading, time

from bench_common import (CPU, Broker, ClientFleet, Gateway, Processes, c_binary, cpu_line, header, percentile, sized)

REQUESTS = sized("BENCH_RTT_REQUESTS", 2000, 300)
RATE = sized("BENCH_RTT_RATE", 5000, 5000)
BG_CLIENTS = 50  # background devices (or publishers), RATE / BG_CLIENTS messages/s each
PHASE_LOCKED = bool(os.environ.get("BENCH_PHASE_LOCKED"))  # all background senders in the same millisecond


def rtt_binary():
    return c_binary("bench_rtt", ["-lmosquitto"])


class Requester:
    """examples/bench_rtt.c in request mode: sends one request at a time and times each answer."""

    def __init__(self, procs, port, base, device):
        self.process = procs.start([rtt_binary(), "request", str(port), f"{base}/{device}/request/ping",
                                    f"{base}/{device}/response/ping"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError("the requester did not start")

    @property
    def pid(self):
        return self.process.pid

    def run(self, n):
        self.process.stdin.write(f"{n}\n")
        self.process.stdin.flush()
        return [float(t) for t in self.process.stdout.readline().split()]

    def stop(self):
        self.process.stdin.close()
        self.process.wait(timeout=10)


class Feeder:
    """BG_CLIENTS `mosquitto_pub -l -q 1` publishers fed RATE lines/s in all (the baseline's background load)."""

    def __init__(self, procs, port):
        self.pubs = [procs.start(["mosquitto_pub", "-p", str(port), "-q", "1", "-t", f"bench/bg-{i}/telemetry", "-l"], stdin=subprocess.PIPE)
                     for i in range(BG_CLIENTS)]
        self.stopped = threading.Event()
        self.sent = 0
        threading.Thread(target=self.feed, daemon=True).start()

    def feed(self):
        line = json.dumps({"ts": 1, "data": {"temperature": 21.5, "humidity": 40, "co2": 600}}).encode() + b"\n"
        tick, next_at = 0.001, time.monotonic()
        per_tick = RATE * tick / BG_CLIENTS
        # Publisher j starts j/N of its period late, as the gateway's devices do (examples/bench_clients.c).
        carry = [0.0 if PHASE_LOCKED else 1 - j / BG_CLIENTS for j in range(BG_CLIENTS)]
        while not self.stopped.is_set():
            for j, pub in enumerate(self.pubs):
                carry[j] += per_tick
                k = int(carry[j])
                if k:
                    carry[j] -= k
                    pub.stdin.write(line * k)
                    pub.stdin.flush()
                    self.sent += k
            next_at += tick
            time.sleep(max(0, next_at - time.monotonic()))

    @property
    def pids(self):
        return [p.pid for p in self.pubs]

    def stop(self):
        self.stopped.set()
        time.sleep(0.05)
        for pub in self.pubs:
            pub.stdin.close()


def measure(requester, pids, background_count):
    cpu = CPU(**pids)
    sent0, start = background_count(), time.monotonic()
    times = requester.run(REQUESTS)
    seconds = time.monotonic() - start
    return dict(times=times, cpu=cpu.take(), rate=(background_count() - sent0) / seconds)


def gateway_phase(procs, work):
    broker = Broker(procs, work, nodelay=True)
    gateway = Gateway(procs, work, broker)
    device = ClientFleet(procs, work, "gateway", gateway.http_port, 1, prefix="rtt", key=gateway.key, respond=True)
    device.ready()
    device.go()
    requester = Requester(procs, broker.port, "gatehouse", "rtt-1")
    messages_in = lambda: gateway.metric("gatehouse_device_messages_in_total", 'type="telemetry"')
    pids = dict(gateway=gateway.pid, broker=broker.pid, device=device.pids, requester=requester.pid)
    requester.run(50)  # warm-up
    idle = measure(requester, pids, messages_in)
    background = ClientFleet(procs, work, "gateway", gateway.http_port, BG_CLIENTS, prefix="bg", key=gateway.key,
                             messages=10**9, window=64, qos=1, rate=RATE / BG_CLIENTS)
    background.ready()
    background.go()
    background.start()
    time.sleep(3)  # the devices reach their rate
    loaded = measure(requester, dict(pids, load=background.pids), messages_in)
    background.close()
    requester.stop()
    device.close()
    return idle, loaded


def baseline_phase(procs, work):
    broker = Broker(procs, work, name="base", nodelay=True)
    echoer = procs.start([rtt_binary(), "echo", str(broker.port), "bench/+/request/+"], stdin=subprocess.PIPE)
    time.sleep(0.5)
    requester = Requester(procs, broker.port, "bench", "echo-1")
    pids = dict(broker=broker.pid, echo=echoer.pid, requester=requester.pid)
    requester.run(50)
    feeder = None
    idle = measure(requester, pids, lambda: 0)
    feeder = Feeder(procs, broker.port)
    time.sleep(3)
    loaded = measure(requester, dict(pids, load=feeder.pids), lambda: feeder.sent)
    feeder.stop()
    requester.stop()
    echoer.stdin.close()
    return idle, loaded


def main():
    header("command round trip", f"{REQUESTS} requests per phase, one at a time; loaded: ~{RATE} telemetry msg/s (QoS 1) from {BG_CLIENTS} clients")
    work = tempfile.mkdtemp(prefix="gatehouse-bench-rtt-")
    with Processes() as procs:
        g_idle, g_loaded = gateway_phase(procs, work)
    with Processes() as procs:
        b_idle, b_loaded = baseline_phase(procs, work)
    rows = [("gatehouse, idle", g_idle), ("mosquitto + echo, idle", b_idle),
            ("gatehouse, loaded", g_loaded), ("mosquitto + echo, loaded", b_loaded)]
    print(f"   {'flow':26} {'bg msg/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}")
    for name, r in rows:
        print(f"   {name:26} {r['rate']:>9.0f} {percentile(r['times'], 50):>7.3f} {percentile(r['times'], 99):>7.3f} {max(r['times']):>7.3f}")
    for label, g, b in (("idle", g_idle, b_idle), ("loaded", g_loaded, b_loaded)):
        print(f"   ratio gatehouse / mosquitto alone, {label}: p50 {percentile(g['times'], 50) / percentile(b['times'], 50):.2f}, "
              f"p99 {percentile(g['times'], 99) / percentile(b['times'], 99):.2f}")
    print("   (goal: gatehouse p99 ≤ 1 ms under 5,000 msg/s)")
    for name, r in rows:
        print(f"   {name:26} CPU: {cpu_line(r['cpu'], REQUESTS, 'command')}")


if __name__ == "__main__":
    main()
