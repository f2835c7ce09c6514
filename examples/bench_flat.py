#!/usr/bin/env python3
"""Benchmark: is the cost per message flat in the number of connected devices? The same QoS 1 telemetry flow
(examples/bench_clients.c, `BENCH_FLAT_DEVICES` devices × `BENCH_FLAT_MESSAGES` messages, window 64) runs against one
gateway `BENCH_FLAT_ROUNDS` times with only its own devices connected, then as often with N idle devices connected beside
them (examples/bench_clients.c, as in bench_idle.py). Gateway CPU per message of each phase (the median round; one round
alone swung the ratio by 0.3 on a noisy host) and their ratio (goal: within 1.2×), and the gateway's RSS per idle device.
Everything binds to 127.0.0.1 and stops by itself.

Environment: BIN (default .build/release), BENCH_FLAT_IDLE (idle devices, default 18950; 950 with BENCH_QUICK=1),
BENCH_FLAT_DEVICES (50), BENCH_FLAT_MESSAGES (2000; 200 with BENCH_QUICK=1), BENCH_FLAT_ROUNDS (3; 1 with BENCH_QUICK=1; an odd number: with an even one the upper of the two middle rounds counts).
"""
import tempfile

from bench_common import Broker, ClientFleet, Gateway, Processes, header, rss_kib, sized, telemetry, wait_quiet

IDLE = sized("BENCH_FLAT_IDLE", 18950, 950)
DEVICES = sized("BENCH_FLAT_DEVICES", 50, 50)
MESSAGES = sized("BENCH_FLAT_MESSAGES", 2000, 200)
ROUNDS = max(1, sized("BENCH_FLAT_ROUNDS", 3, 1))  # odd, for a true median


def flow(procs, work, gateway, prefix):
    """One QoS 1 flow; returns (acked, seconds, gateway CPU µs per message)."""
    acked, _, seconds, cpu = telemetry(procs, work, gateway, DEVICES, MESSAGES, prefix)
    return acked, seconds, cpu["gateway"] / max(acked, 1) * 1e6


def median_flow(procs, work, gateway, prefix):
    """`ROUNDS` flows (new devices each time); returns the round with the median CPU per message, and every round's."""
    rounds = sorted((flow(procs, work, gateway, f"{prefix}{i}") for i in range(ROUNDS)), key=lambda run: run[2])
    return rounds[len(rounds) // 2], [run[2] for run in rounds]


def main():
    header("flat cost", f"{DEVICES} devices x {MESSAGES} QoS 1 messages, alone and beside {IDLE} idle devices")
    work = tempfile.mkdtemp(prefix="gatehouse-bench-flat-")
    with Processes() as procs:
        broker = Broker(procs, work)
        gateway = Gateway(procs, work, broker, LIMITS_MAX_CONNECTIONS=IDLE + DEVICES + 100, LIMITS_MAX_PENDING_CONNECTIONS=1000)
        alone, alone_rounds = median_flow(procs, work, gateway, "flat-a")
        rss0 = rss_kib(gateway.pid)
        fleet = ClientFleet(procs, work, "gateway", gateway.http_port, IDLE, key=gateway.key, prefix="flat-idle")
        fleet.ready()
        connected, failed, _, errors = fleet.go()
        wait_quiet(gateway.pid)
        rss1 = rss_kib(gateway.pid)
        beside, beside_rounds = median_flow(procs, work, gateway, "flat-b")
        lost = fleet.close()
    print(f"   {'connected devices':>20} {'acked':>8} {'msgs/s':>8} {'gateway µs/msg':>15}   every round, µs/msg")
    for label, (acked, seconds, per_message), rounds in (
        (f"{DEVICES}", alone, alone_rounds), (f"{DEVICES} + {connected} idle", beside, beside_rounds)
    ):
        print(f"   {label:>20} {acked:>8} {acked / seconds:>8.0f} {per_message:>15.1f}   {', '.join(f'{r:.1f}' for r in rounds)}")
    print(f"   ratio of gateway CPU per message, {DEVICES + connected} vs {DEVICES} devices: {beside[2] / alone[2]:.2f} (goal: within 1.2)")
    print(f"   idle devices: {connected} connected, {failed} failed{', ' + errors[0] if errors else ''}; {lost} lost while the flow ran; "
          f"gateway RSS {(rss1 - rss0) / max(connected, 1):.2f} KiB per idle device")


if __name__ == "__main__":
    main()
