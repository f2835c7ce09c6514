#!/usr/bin/env python3
"""Profiles the gateway during one telemetry flow: `perf record -g` (or `strace -c -f`) attached to the gateway
while N devices (examples/bench_clients.c) send M messages each, as in bench.py's flow B. Prints the flow's rate and the CPU per
message of the gateway and the broker; then read the profile with `perf report -i <OUT> --children`.

Environment: BIN (default .build/release), QOS (1), DEVICES (50), MESSAGES (2000), OUT (perf data file,
default /tmp/gatehouse.perf.data; `none` for no profiler), SUBSCRIBER=1 (a QoS 1 subscriber on the telemetry, as
in bench.py's flow), STRACE (a file: count system calls instead), COUNT=1
(count instead: allocations, through a uprobe on the C library's malloc, system calls and context switches, per message and thread,
over the whole run, the devices' connects included;
for where the allocations come from, `perf record -e probe_libc:malloc -c 97 -g -p <gateway pid>` while the
probe exists). Everything binds to 127.0.0.1 and stops by itself.
"""
import collections, os, re, subprocess, tempfile

from bench_common import Broker, Gateway, Processes, Subscriber, telemetry

QOS, DEVICES, MESSAGES = os.environ.get("QOS", "1"), os.environ.get("DEVICES", "50"), os.environ.get("MESSAGES", "2000")
OUT, STRACE, COUNT = os.environ.get("OUT", "/tmp/gatehouse.perf.data"), os.environ.get("STRACE"), os.environ.get("COUNT")
SUBSCRIBER = os.environ.get("SUBSCRIBER", "") not in ("", "0")
COUNTED = {"probe_libc:malloc": "mallocs", "raw_syscalls:sys_enter": "system calls", "context-switches": "context switches"}


def add_malloc_probe(pid):
    """A uprobe on malloc in the C library the gateway runs with (perf names it probe_libc:malloc)."""
    libc = next((line.split()[-1] for line in open(f"/proc/{pid}/maps") if re.search(r"/libc\.so\.6$", line)), None)
    if libc is None:
        raise SystemExit("COUNT: the gateway does not use the GNU C library's libc.so.6; nothing to probe")
    remove_malloc_probe()  # one left behind by an interrupted run
    subprocess.run(["perf", "probe", "-q", "-x", libc, "malloc"], check=True)


def remove_malloc_probe():
    subprocess.run(["perf", "probe", "-q", "-d", "probe_libc:malloc"], stderr=subprocess.DEVNULL)


def print_counts(path, messages):
    """perf stat --per-thread output: each event per message, by thread name (the thread id dropped)."""
    totals = collections.defaultdict(int)
    for line in open(path):
        match = re.match(r"\s*(.+)-\d+\s+([\d,]+)\s+(\S+)", line)
        if match and match[3] in COUNTED:
            totals[(match[1], match[3])] += int(match[2].replace(",", ""))
    for thread in sorted({thread for thread, _ in totals}):
        counts = ", ".join(f"{totals[(thread, event)] / messages:.2f} {name}" for event, name in COUNTED.items())
        print(f"   {thread:<20} per message: {counts}")


def main():
    try:
        profile()
    finally:
        if COUNT:
            remove_malloc_probe()


def profile():
    work = tempfile.mkdtemp(prefix="gatehouse-profile-")
    with Processes() as procs:
        broker = Broker(procs, work)
        gateway = Gateway(procs, work, broker, MQTT_MAX_INFLIGHT=100)
        profiler = None
        counts = os.path.join(work, "counts.txt")
        if COUNT:
            add_malloc_probe(gateway.pid)
            profiler = procs.start(["perf", "stat", "--per-thread", "-e", ",".join(COUNTED), "-o", counts, "-p", str(gateway.pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        elif STRACE:
            profiler = procs.start(["strace", *os.environ.get("STRACE_ARGS", "-c").split(), "-f", "-o", STRACE, "-p", str(gateway.pid)], stderr=subprocess.DEVNULL)
        elif OUT != "none":
            profiler = procs.start(["perf", "record", "-F", "1999", "-g", "-o", OUT, "-p", str(gateway.pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subscriber = Subscriber(procs, broker.port, os.path.join(work, "subscriber.txt")) if SUBSCRIBER else None
        acked, _, seconds, cpu = telemetry(procs, work, gateway, int(DEVICES), int(MESSAGES), "p", qos=int(QOS), broker=broker.pid)
        gw_cpu, broker_cpu = cpu["gateway"], cpu["broker"]
        if profiler:
            profiler.send_signal(2)  # both write their report on SIGINT
            profiler.wait(timeout=60)
        print(f"QoS {QOS}: {acked} acked in {seconds:.1f} s = {acked / seconds:.0f} msgs/s; gateway {gw_cpu / acked * 1e6:.2f} µs/msg, "
              f"broker {broker_cpu / acked * 1e6:.2f} µs/msg" + (f"; profile in {STRACE or OUT}" if profiler and not COUNT else "")
              + ("; with COUNT the CPU includes the probe's cost" if COUNT else ""))
        if COUNT:
            print_counts(counts, acked)
        if subscriber:
            got, seen = subscriber.wait(acked)
            print(f"   the subscriber: {got} arrived for {len(seen)} distinct messages")


if __name__ == "__main__":
    main()
