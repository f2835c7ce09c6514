#!/usr/bin/env python3
"""Profiles the gateway during one telemetry flow: `perf record -g` (or `strace -c -f`) attached to the gateway
while N devices (examples/bench_clients.c) send M messages each, as in bench.py's flow B. Prints the flow's rate and the CPU per
message of the gateway and the broker; then read the profile with `perf report -i <OUT> --children`.

Environment: BIN (default .build/release), QOS (1), DEVICES (50), MESSAGES (2000), OUT (perf data file,
default /tmp/gatehouse.perf.data; `none` for no profiler), STRACE (a file: count system calls instead).
Everything binds to 127.0.0.1 and stops by itself.
"""
import os, subprocess, tempfile

from bench_common import Broker, Gateway, Processes, telemetry

QOS, DEVICES, MESSAGES = os.environ.get("QOS", "1"), os.environ.get("DEVICES", "50"), os.environ.get("MESSAGES", "2000")
OUT, STRACE = os.environ.get("OUT", "/tmp/gatehouse.perf.data"), os.environ.get("STRACE")


def main():
    work = tempfile.mkdtemp(prefix="gatehouse-profile-")
    with Processes() as procs:
        broker = Broker(procs, work)
        gateway = Gateway(procs, work, broker, MQTT_MAX_INFLIGHT=100)
        profiler = None
        if STRACE:
            profiler = procs.start(["strace", "-c", "-f", "-o", STRACE, "-p", str(gateway.pid)], stderr=subprocess.DEVNULL)
        elif OUT != "none":
            profiler = procs.start(["perf", "record", "-F", "1999", "-g", "-o", OUT, "-p", str(gateway.pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        acked, _, seconds, cpu = telemetry(procs, work, gateway, int(DEVICES), int(MESSAGES), "p", qos=int(QOS), broker=broker.pid)
        gw_cpu, broker_cpu = cpu["gateway"], cpu["broker"]
        if profiler:
            profiler.send_signal(2)  # both write their report on SIGINT
            profiler.wait(timeout=60)
        print(f"QoS {QOS}: {acked} acked in {seconds:.1f} s = {acked / seconds:.0f} msgs/s; gateway {gw_cpu / acked * 1e6:.1f} µs/msg, "
              f"broker {broker_cpu / acked * 1e6:.1f} µs/msg" + (f"; profile in {STRACE or OUT}" if profiler else ""))


if __name__ == "__main__":
    main()
