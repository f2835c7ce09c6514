#!/usr/bin/env python3
"""`make bench`: telemetry through the gateway vs. straight into mosquitto, same run, same broker.

Flow A (baseline, the floor): N `mosquitto_pub -l` clients (libmosquitto over TCP) publish M messages each to a
private mosquitto, at QoS 1 and at QoS 0: the broker's CPU per message.
Flow B: N devices (examples/bench_clients.c, raw WebSocket) send M telemetry messages each with `seq`, at most
BENCH_WINDOW unanswered; the gateway publishes each at QoS 1 and acks it after the broker's PUBACK. A subscriber
counts what reaches the broker (duplicates), and /proc/<gateway>/io tells what the gateway wrote to disk (nothing,
with a healthy broker: the spool is only for a broker that cannot be reached).
Flow B0: the same at QoS 0 (acked once handed to libmosquitto).
Flow C (spool): the broker is stopped and the same devices send again: every message is acked from the gateway's
disk spool (group commit); then the broker is started again and the spool drains into it.
Prints messages/s and CPU microseconds per message of the gateway, the broker and the load generator (from /proc),
and the ratios the goals are stated in: gateway ÷ broker on the baseline flow of the same QoS.
Everything binds to loopback and stops by itself.

Environment: BIN (default .build/release), BENCH_DEVICES (50), BENCH_MESSAGES (2000), BENCH_WINDOW (64),
BENCH_INFLIGHT (the gateway's mqtt.max_inflight, 100).
"""
import json, os, subprocess, tempfile, time

from bench_common import CPU, Broker, Gateway, Processes, Subscriber, disk_writes, header, per_unit, telemetry

DEVICES = int(os.environ.get("BENCH_DEVICES", "50"))
MESSAGES = int(os.environ.get("BENCH_MESSAGES", "2000"))
# The gateway's in-flight window (mqtt.max_inflight): small enough that the devices keep it full.
INFLIGHT = os.environ.get("BENCH_INFLIGHT", "100")
PAYLOAD = json.dumps({"ts": 1, "seq": 1, "data": {"temperature": 21.5, "setpoint": 21.0, "heating": True, "mode": "auto"}})


def direct_flow(broker, qos):
    """Flow A: mosquitto_pub clients straight into the broker. Returns (seconds, broker CPU seconds)."""
    lines = (PAYLOAD + "\n").encode() * MESSAGES
    cpu, start = CPU(broker=broker.pid), time.monotonic()
    pubs = [subprocess.Popen(["mosquitto_pub", "-p", str(broker.port), "-q", str(qos), "-t", f"bench/direct{qos}-{i}/telemetry", "-l"],
                             stdin=subprocess.PIPE) for i in range(DEVICES)]
    for p in pubs:
        p.stdin.write(lines)
        p.stdin.close()
    for p in pubs:
        p.wait()
    return time.monotonic() - start, cpu.take()["broker"]


def main():
    total = DEVICES * MESSAGES
    header("telemetry", f"{DEVICES} devices x {MESSAGES} messages = {total} per flow, window {os.environ.get('BENCH_WINDOW', '64')}, "
           f"gateway max_inflight {INFLIGHT}")
    work = tempfile.mkdtemp(prefix="gatehouse-bench-")
    with Processes() as procs:
        broker = Broker(procs, work)
        gateway = Gateway(procs, work, broker, MQTT_MAX_INFLIGHT=INFLIGHT)
        direct_s, direct_cpu = direct_flow(broker, 1)
        direct0_s, direct0_cpu = direct_flow(broker, 0)

        subscriber = Subscriber(procs, broker.port, f"{work}/q1.txt")
        disk0 = disk_writes(gateway.pid)
        acked, nacked, q1_s, q1_cpu = telemetry(procs, work, gateway, DEVICES, MESSAGES, "q1", qos=1, broker=broker.pid)
        arrived, seen = subscriber.wait(total)
        unique = len(seen)
        disk = disk_writes(gateway.pid) - disk0

        acked0, nacked0, q0_s, q0_cpu = telemetry(procs, work, gateway, DEVICES, MESSAGES, "q0", qos=0, broker=broker.pid)

        broker.stop()
        deadline = time.monotonic() + 15
        while gateway.metric("gatehouse_broker_connected") > 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        spooled, spool_nacked, spool_s, spool_cpu = telemetry(procs, work, gateway, DEVICES, MESSAGES, "sp", qos=1)
        depth = gateway.metric("gatehouse_spool_entries")
        broker.start()
        drain_cpu, start = CPU(gateway=gateway.pid, broker=broker.pid), time.monotonic()
        while gateway.metric("gatehouse_spool_entries") > 0 and time.monotonic() - start < 300:
            time.sleep(0.05)
        drain_s, drained_cpu = time.monotonic() - start, drain_cpu.take()

    floor1, floor0 = per_unit(direct_cpu, total), per_unit(direct0_cpu, total)
    gw1, gw0 = per_unit(q1_cpu["gateway"], acked), per_unit(q0_cpu["gateway"], acked0)
    print(f"   {'flow':44} {'msgs/s':>8} {'broker µs/msg':>14} {'gateway µs/msg':>15} {'load µs/msg':>12}")
    rows = [("mosquitto_pub -> mosquitto, QoS 1 (floor)", total / direct_s, floor1, None, None),
            ("device -> gatehouse -> mosquitto, QoS 1", acked / q1_s, per_unit(q1_cpu["broker"], acked), gw1, per_unit(q1_cpu["load"], acked)),
            ("mosquitto_pub -> mosquitto, QoS 0 (floor)", total / direct0_s, floor0, None, None),
            ("device -> gatehouse -> mosquitto, QoS 0", acked0 / q0_s, per_unit(q0_cpu["broker"], acked0), gw0, per_unit(q0_cpu["load"], acked0)),
            ("device -> gatehouse -> spool (broker down)", spooled / spool_s, None, per_unit(spool_cpu["gateway"], spooled), per_unit(spool_cpu["load"], spooled)),
            ("spool -> mosquitto (drain, incl. reconnect)", depth / drain_s, per_unit(drained_cpu["broker"], depth), per_unit(drained_cpu["gateway"], depth), None)]
    dash = lambda v: "-" if v is None else f"{v:.1f}"
    for label, rate, broker_us, gateway_us, load_us in rows:
        print(f"   {label:44} {rate:>8.0f} {dash(broker_us):>14} {dash(gateway_us):>15} {dash(load_us):>12}")
    print(f"   gateway ÷ floor: QoS 1 {gw1 / floor1:.2f} (goal ≤ 1.0), QoS 0 {gw0 / floor0:.2f} (goal ≤ 0.5); QoS 1 ÷ QoS 0 {gw1 / gw0:.2f}")
    print(f"   QoS 1: acked {acked}, nacked {nacked}; {arrived} arrived at the broker for {unique} distinct messages "
          f"({arrived - unique} duplicates, {total - unique} missing); gateway disk writes {disk} bytes")
    print(f"   QoS 0: acked {acked0}, nacked {nacked0}")
    print(f"   broker down: acked {spooled} from the spool, nacked {spool_nacked}; {depth:.0f} spooled entries drained in {drain_s:.1f} s "
          f"(includes the gateway's reconnect backoff)")


if __name__ == "__main__":
    main()
