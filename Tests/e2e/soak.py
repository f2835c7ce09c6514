#!/usr/bin/env python3
"""Soak test (`make soak`, not in CI): simulated devices stream QoS 1 telemetry for a given time while devices
drop their connections at random and the broker is killed and restarted; reports lost messages (must be 0),
duplicates, and the gateway's memory over time (must not grow).

    python3 Tests/e2e/soak.py --minutes 10 --devices 50 --rate 10

Uses the same real parts as the e2e suite: a mosquitto on a free loopback port, the gatehouse binary
(GATEHOUSE_BIN, default .build/debug/gatehouse), and the accounting of streams.py.
"""

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import Broker, Gateway, TcpForwarder, uid  # noqa: E402
from streams import Observer, StreamDevice, account  # noqa: E402


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--rate", type=float, default=10, help="messages per second per device")
    parser.add_argument("--broker-restart-every", type=float, default=60, help="seconds between broker kills")
    parser.add_argument("--drops-per-minute", type=float, default=30, help="random device disconnects")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="gatehouse-soak-"))
    broker = Broker(work / "broker").start()
    link = TcpForwarder(broker.port)
    gateway = Gateway(broker, work / "gw", {"mqtt": {"url": f"mqtt://127.0.0.1:{link.port}"}, "log": {"level": "notice"}})
    gateway.start()
    observer = Observer(broker, gateway.base)
    devices = [StreamDevice(gateway, uid("soak"), rate=args.rate) for _ in range(args.devices)]
    for d in devices:
        d.start()
    print(f"soak: {args.devices} devices × {args.rate}/s for {args.minutes} min; work dir {work}", flush=True)

    start = time.monotonic()
    end = start + args.minutes * 60
    next_restart = start + args.broker_restart_every
    samples: list[tuple[float, float]] = []
    next_sample = start
    restarts = drops = 0
    try:
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_sample:
                samples.append((now - start, rss_mib(gateway.proc.pid)))
                print(f"  t={now - start:6.0f}s rss={samples[-1][1]:7.1f} MiB "
                      f"acked={sum(len(d.acked) for d in devices)}", flush=True)
                next_sample += 10
            if now >= next_restart:
                subscriptions = observer.subscriptions
                link.cut()
                broker.kill()
                time.sleep(random.uniform(2, 10))
                broker.start()
                observer.wait_subscribed(after=subscriptions)
                link.restore()
                restarts += 1
                next_restart = time.monotonic() + args.broker_restart_every
            if random.random() < args.drops_per_minute / 60 / 10:
                random.choice(devices).drop()
                drops += 1
            time.sleep(0.1)
        for d in devices:
            d.stop(60)
        for d in devices:
            d.join_drained()
        figures, problems = account(devices, observer, settle_s=60)
    finally:
        gateway.stop()
        link.cut()
        observer.close()
        broker.stop()

    print(f"\nsoak result: {figures} broker_restarts={restarts} device_drops={drops}")
    for problem in problems[:20]:
        print("  " + problem)
    warm = [rss for t, rss in samples if t >= 60] or [rss for _, rss in samples]
    third = max(1, len(warm) // 3)
    first, last = statistics.median(warm[:third]), statistics.median(warm[-third:])
    grew = last > first * 1.1 and last - first > 3
    print(f"gateway RSS: first third {first:.1f} MiB, last third {last:.1f} MiB, max {max(warm):.1f} MiB"
          f" -> {'GREW' if grew else 'flat'}")
    return 1 if figures.lost or problems or grew else 0


if __name__ == "__main__":
    sys.exit(main())
