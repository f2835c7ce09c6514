#!/usr/bin/env python3
"""Benchmark: the spool. Devices send QoS 1 while the broker is stopped (acked from the gateway's disk spool), then
the broker starts and the spool drains into it; a subscriber checks that nothing is lost or duplicated.

Phase 1 (baseline, same run): D devices (examples/bench_clients.c, window 64) send M telemetry messages each
through the gateway to a healthy broker: messages/s, CPU per message of gateway, broker and load generator.
Phase 2 (spool write): the broker is stopped; the same number of messages is acked from the spool: write rate,
CPU per message, bytes on disk (the spool directory's files, and what /proc/<gateway>/io says was written).
Phase 3 (drain): the broker starts again (same port, empty), a subscriber (mosquitto_sub, QoS 1) connects at
once, and the spool drains: drain rate (from the first message the subscriber sees, and from the broker's
start, which includes the gateway's reconnect backoff), CPU per message. Lost = telemetry messages (D × M) the
subscriber never saw; duplicates = copies beyond the first, both by (topic, seq). Everything binds to 127.0.0.1 and stops by
itself.

Environment: BIN (default .build/release), BENCH_SPOOL_DEVICES (default 50; 10 with BENCH_QUICK=1),
BENCH_SPOOL_MESSAGES (per device, default 1000; 200 with BENCH_QUICK=1).
"""
import os, tempfile, time

from bench_common import CPU, Broker, Gateway, Processes, Subscriber, cpu_line, disk_writes, header, sized, telemetry

DEVICES = sized("BENCH_SPOOL_DEVICES", 50, 10)
MESSAGES = sized("BENCH_SPOOL_MESSAGES", 1000, 200)


def dir_bytes(path):
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


def main():
    total = DEVICES * MESSAGES
    header("spool write and drain", f"{DEVICES} devices x {MESSAGES} QoS 1 messages = {total} per phase")
    work = tempfile.mkdtemp(prefix="gatehouse-bench-spool-")
    with Processes() as procs:
        broker = Broker(procs, work)
        gateway = Gateway(procs, work, broker)

        sub = Subscriber(procs, broker.port, f"{work}/direct.txt")
        direct_acked, direct_nacked, direct_s, direct_cpu = telemetry(procs, work, gateway, DEVICES, MESSAGES, "direct", broker=broker.pid)
        direct_arrived, direct_seen = sub.wait(direct_acked)

        broker.stop()
        deadline = time.monotonic() + 15
        while gateway.metric("gatehouse_broker_connected") > 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        disk0, files0 = disk_writes(gateway.pid), dir_bytes(gateway.spool_dir)
        spooled_acked, spooled_nacked, spool_s, spool_cpu = telemetry(procs, work, gateway, DEVICES, MESSAGES, "spool")
        entries, spool_metric_bytes = gateway.metric("gatehouse_spool_entries"), gateway.metric("gatehouse_spool_bytes")
        disk, files = disk_writes(gateway.pid) - disk0, dir_bytes(gateway.spool_dir) - files0

        broker.start()
        started = time.monotonic()
        sub = Subscriber(procs, broker.port, f"{work}/drain.txt")
        drain_cpu = CPU(gateway=gateway.pid, broker=broker.pid, subscriber=sub.proc.pid)
        first = None
        while time.monotonic() - started < 300:
            if first is None and sub.lines() > 0:
                first = time.monotonic()
            if gateway.metric("gatehouse_spool_entries") == 0:
                break
            time.sleep(0.05)
        drained_at = time.monotonic()
        drain_used = drain_cpu.take()
        arrived, seen = sub.wait(total)
        first = first or drained_at

    lost, duplicates = max(0, total - len(seen)), arrived - len(seen)
    print(f"   {'flow':36} {'msgs':>7} {'msgs/s':>8} {'gateway µs/msg':>15}")
    print(f"   {'device -> gatehouse -> broker (base)':36} {direct_acked:>7} {direct_acked / direct_s:>8.0f} "
          f"{direct_cpu['gateway'] / max(direct_acked, 1) * 1e6:>15.1f}")
    print(f"   {'device -> gatehouse -> spool':36} {spooled_acked:>7} {spooled_acked / spool_s:>8.0f} "
          f"{spool_cpu['gateway'] / max(spooled_acked, 1) * 1e6:>15.1f}")
    print(f"   {'spool -> broker (drain)':36} {int(entries):>7} {entries / max(drained_at - first, 1e-3):>8.0f} "
          f"{drain_used['gateway'] / max(entries, 1) * 1e6:>15.1f}")
    print(f"   ratio spool write / direct: rate {spooled_acked / spool_s / (direct_acked / direct_s):.2f}, gateway CPU per message "
          f"{(spool_cpu['gateway'] / max(spooled_acked, 1)) / max(direct_cpu['gateway'] / max(direct_acked, 1), 1e-12):.2f}")
    print(f"   spool on disk: {files / max(entries, 1):.0f} bytes per message in the spool's files ({files / 1048576:.1f} MiB for "
          f"{entries:.0f} entries; gatehouse_spool_bytes {spool_metric_bytes / 1048576:.1f} MiB), written to storage "
          f"{disk / 1048576:.1f} MiB (/proc/<gateway>/io)")
    print(f"   drain: {drained_at - started:.1f} s from the broker's start ({drained_at - first:.1f} s from the first message at the subscriber)")
    print(f"   baseline: acked {direct_acked} (nacked {direct_nacked}), at the subscriber {len(direct_seen)} distinct, "
          f"{direct_arrived - len(direct_seen)} duplicates, {max(0, total - len(direct_seen))} missing")
    print(f"   spooled: acked {spooled_acked} (nacked {spooled_nacked}); after the drain the subscriber saw "
          f"{len(seen)} distinct: lost {lost}, duplicates {duplicates}")
    print(f"   base  CPU: {cpu_line(direct_cpu, direct_acked, 'message')}")
    print(f"   spool CPU: {cpu_line(spool_cpu, spooled_acked, 'message')}")
    print(f"   drain CPU: {cpu_line(drain_used, entries, 'message')}")


if __name__ == "__main__":
    main()
