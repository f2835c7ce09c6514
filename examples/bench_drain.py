#!/usr/bin/env python3
"""Benchmark: the spool's drain alone. D devices (examples/bench_clients.c) send M QoS 1 messages each while the
broker is stopped (acked from the spool); then the broker starts, and the drain is timed from the gateway's
reconnect (`gatehouse_broker_connected`) to an empty spool, without the reconnect's random backoff and without a
subscriber (the broker at its own pace, as in bench.py's drain; bench_spool.py has a subscriber and checks for
losses). Prints the entries, the reconnect's wait, the drain's rate and the CPU per entry of gateway and broker (the
broker's since its start).

Environment: BIN (default .build/release), BENCH_DRAIN_DEVICES (50), BENCH_DRAIN_MESSAGES (per device, 2000),
BENCH_BROKER_NODELAY=1 (the broker with `set_tcp_nodelay true`). Everything binds to 127.0.0.1 and stops by itself.
"""
import os, tempfile, time

from bench_common import CPU, Broker, Gateway, Processes, telemetry

DEVICES = int(os.environ.get("BENCH_DRAIN_DEVICES", "50"))
MESSAGES = int(os.environ.get("BENCH_DRAIN_MESSAGES", "2000"))


def wait_for(condition, seconds, step):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(step)


def main():
    work = tempfile.mkdtemp(prefix="gatehouse-bench-drain-")
    with Processes() as procs:
        broker = Broker(procs, work)
        gateway = Gateway(procs, work, broker, MQTT_MAX_INFLIGHT=100)
        telemetry(procs, work, gateway, DEVICES, 200, "warm", qos=1)
        broker.stop()
        wait_for(lambda: gateway.metric("gatehouse_broker_connected") == 0, 15, 0.05)
        telemetry(procs, work, gateway, DEVICES, MESSAGES, "spool", qos=1)
        entries = gateway.metric("gatehouse_spool_entries")
        # The CPU from before the start (the idle wait costs next to nothing); the rate from the reconnect, of the
        # entries left then (the gateway may have reconnected while the broker was still starting).
        cpu = CPU(gateway=gateway.pid)
        broker.start()
        started = time.monotonic()
        wait_for(lambda: gateway.metric("gatehouse_broker_connected") >= 1, 60, 0.005)
        connected, left = time.monotonic(), gateway.metric("gatehouse_spool_entries")
        wait_for(lambda: gateway.metric("gatehouse_spool_entries") == 0, 300, 0.02)
        drained, used, broker_used = time.monotonic(), cpu.take(), CPU.read(broker.pid)
    print(f"spool drain: {entries:.0f} entries; reconnect after {connected - started:.2f} s; {left:.0f} left then, drained in "
          f"{drained - connected:.2f} s = {left / (drained - connected):.0f} msgs/s; gateway {used['gateway'] / entries * 1e6:.1f} µs, broker {broker_used / entries * 1e6:.1f} µs "
          "per entry (the broker's since its start)")


if __name__ == "__main__":
    main()
