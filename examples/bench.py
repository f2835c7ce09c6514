#!/usr/bin/env python3
"""`make bench`: telemetry through the gateway vs. straight into mosquitto, same run, same broker.

Flow A (baseline, the floor): N `mosquitto_pub -l` clients (libmosquitto over TCP) publish M messages each to a
private mosquitto, at QoS 1 and at QoS 0: the broker's CPU per message.
Flow A' (a second reference): the same N clients as flow B, with the same window, speaking MQTT over TCP to the
broker themselves (examples/bench_clients.c in its mqtt mode): what the broker spends on the devices' own messages
when there is no gateway in front of them.
Flow B: N devices (examples/bench_clients.c, raw WebSocket) send M telemetry messages each with `seq`, at most
BENCH_WINDOW unanswered; the gateway publishes each at QoS 1 and acks it after the broker's PUBACK. A subscriber
counts what reaches the broker (duplicates), and /proc/<gateway>/io tells what the gateway wrote to disk (nothing,
with a healthy broker: the spool is only for a broker that cannot be reached).
Flow B0: the same at QoS 0 (acked once handed to libmosquitto).
Flow C (spool): the broker is stopped and the same devices send again: every message is acked from the gateway's
disk spool (group commit); then the broker is started again and the spool drains into it.
Flows A, A' and B (and those at QoS 0) run in turns, BENCH_ROUNDS times each: one round of each in a row, so that the host's
noise (two runs of one flow here differ by up to ~20 %) reaches the floor and the gateway alike.
Prints messages/s and CPU microseconds per message of the gateway, the broker and the load generator (from /proc) of
each flow's median round (by the CPU per message that counts: the broker's for a floor, the gateway's otherwise) and
that figure of every round, and the ratios the goals are stated in: the gateway's median ÷ the floor's median, of the
same QoS. Everything binds to loopback and stops by itself.

Environment: BIN (default .build/release), BENCH_DEVICES (50), BENCH_MESSAGES (2000), BENCH_MESSAGES_QOS0 (the QoS 0
flows' count, 4 × BENCH_MESSAGES: a QoS 0 message costs a quarter of the CPU, and 100,000 of them took 0.2-0.4 s of it, a
few dozen of /proc's 10 ms ticks, so a round's figure moved by a tenth on rounding alone), BENCH_WINDOW (64),
BENCH_INFLIGHT (the gateway's mqtt.max_inflight, 100), BENCH_ROUNDS (3; 1 with BENCH_QUICK=1; odd, for a true median).
"""
import json, os, subprocess, tempfile, time

from bench_common import (CPU, Broker, Gateway, Processes, Subscriber, direct_telemetry, disk_writes, header, per_unit, sized,
                          telemetry, wait_quiet)

DEVICES = int(os.environ.get("BENCH_DEVICES", "50"))
MESSAGES = int(os.environ.get("BENCH_MESSAGES", "2000"))
MESSAGES0 = int(os.environ.get("BENCH_MESSAGES_QOS0", str(4 * MESSAGES)))
# The gateway's in-flight window (mqtt.max_inflight): small enough that the devices keep it full.
INFLIGHT = os.environ.get("BENCH_INFLIGHT", "100")
ROUNDS = max(1, sized("BENCH_ROUNDS", 3, 1))
PAYLOAD = json.dumps({"ts": 1, "seq": 1, "data": {"temperature": 21.5, "setpoint": 21.0, "heating": True, "mode": "auto"}})


def direct_flow(broker, qos, messages):
    """Flow A: mosquitto_pub clients straight into the broker. Returns (seconds, broker CPU seconds)."""
    lines = (PAYLOAD + "\n").encode() * messages
    cpu, start = CPU(broker=broker.pid), time.monotonic()
    pubs = [subprocess.Popen(["mosquitto_pub", "-p", str(broker.port), "-q", str(qos), "-t", f"bench/direct{qos}-{i}/telemetry", "-l"],
                             stdin=subprocess.PIPE) for i in range(DEVICES)]
    for p in pubs:
        p.stdin.write(lines)
        p.stdin.close()
    for p in pubs:
        p.wait()
    seconds = time.monotonic() - start
    wait_quiet(broker.pid)  # what the broker had yet to read when the last client left counts too
    return seconds, cpu.take()["broker"]


class Flow:
    """One flow's rounds: per round messages/s and CPU µs per message of the broker, the gateway and the generator."""

    def __init__(self, label, key):
        self.label, self.key, self.rounds = label, key, []

    def add(self, messages, seconds, broker=None, gateway=None, load=None):
        us = lambda cpu: None if cpu is None else per_unit(cpu, messages)
        self.rounds.append(dict(rate=messages / seconds, broker=us(broker), gateway=us(gateway), load=us(load)))

    @property
    def median(self):
        """The round whose figure `key` is the median."""
        return sorted(self.rounds, key=lambda r: r[self.key])[len(self.rounds) // 2]

    def every_round(self):
        return ", ".join(f"{r[self.key]:.1f}" for r in self.rounds)


def main():
    total, total0 = DEVICES * MESSAGES, DEVICES * MESSAGES0
    header("telemetry", f"{DEVICES} devices x {MESSAGES} messages = {total} per QoS 1 flow, x {MESSAGES0} = {total0} per QoS 0 flow, "
           f"window {os.environ.get('BENCH_WINDOW', '64')}, "
           f"gateway max_inflight {INFLIGHT}, {ROUNDS} rounds of each flow in turns")
    work = tempfile.mkdtemp(prefix="gatehouse-bench-")
    floor1, gateway1 = Flow("mosquitto_pub -> mosquitto, QoS 1 (floor)", "broker"), Flow("device -> gatehouse -> mosquitto, QoS 1", "gateway")
    floor0, gateway0 = Flow("mosquitto_pub -> mosquitto, QoS 0 (floor)", "broker"), Flow("device -> gatehouse -> mosquitto, QoS 0", "gateway")
    direct1, direct0 = Flow("the devices' MQTT -> mosquitto, QoS 1", "broker"), Flow("the devices' MQTT -> mosquitto, QoS 0", "broker")
    acked = nacked = arrived = unique = disk = acked0 = nacked0 = 0
    with Processes() as procs:
        broker = Broker(procs, work)
        gateway = Gateway(procs, work, broker, MQTT_MAX_INFLIGHT=INFLIGHT)
        for turn in range(ROUNDS):
            floor1.add(total, *direct_flow(broker, 1, MESSAGES))
            ok, seconds, cpu = direct_telemetry(procs, work, broker, DEVICES, MESSAGES, f"m1r{turn}", qos=1)
            direct1.add(ok, seconds, cpu["broker"], load=cpu["load"])
            subscriber = Subscriber(procs, broker.port, f"{work}/q1-{turn}.txt")
            disk0 = disk_writes(gateway.pid)
            ok, refused, seconds, cpu = telemetry(procs, work, gateway, DEVICES, MESSAGES, f"q1r{turn}", qos=1, broker=broker.pid)
            gateway1.add(ok, seconds, cpu["broker"], cpu["gateway"], cpu["load"])
            got, seen = subscriber.wait(total)
            acked, nacked, arrived, unique = acked + ok, nacked + refused, arrived + got, unique + len(seen)
            disk += disk_writes(gateway.pid) - disk0

            floor0.add(total0, *direct_flow(broker, 0, MESSAGES0))
            ok, seconds, cpu = direct_telemetry(procs, work, broker, DEVICES, MESSAGES0, f"m0r{turn}", qos=0)
            direct0.add(ok, seconds, cpu["broker"], load=cpu["load"])
            ok, refused, seconds, cpu = telemetry(procs, work, gateway, DEVICES, MESSAGES0, f"q0r{turn}", qos=0, broker=broker.pid)
            gateway0.add(ok, seconds, cpu["broker"], cpu["gateway"], cpu["load"])
            acked0, nacked0 = acked0 + ok, nacked0 + refused

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

    spool_flow, drain_flow = Flow("device -> gatehouse -> spool (broker down)", "gateway"), Flow("spool -> mosquitto (drain, incl. reconnect)", "gateway")
    spool_flow.add(spooled, spool_s, gateway=spool_cpu["gateway"], load=spool_cpu["load"])
    drain_flow.add(depth, drain_s, broker=drained_cpu["broker"], gateway=drained_cpu["gateway"])
    print(f"   {'flow (median round)':44} {'msgs/s':>8} {'broker µs/msg':>14} {'gateway µs/msg':>15} {'load µs/msg':>12}   every round")
    dash = lambda v: "-" if v is None else f"{v:.1f}"
    for flow in (floor1, direct1, gateway1, floor0, direct0, gateway0, spool_flow, drain_flow):
        r = flow.median
        rounds = flow.every_round() if len(flow.rounds) > 1 else ""
        print(f"   {flow.label:44} {r['rate']:>8.0f} {dash(r['broker']):>14} {dash(r['gateway']):>15} {dash(r['load']):>12}   {rounds}")
    gw1, gw0 = gateway1.median["gateway"], gateway0.median["gateway"]
    print(f"   gateway ÷ floor (medians): QoS 1 {gw1 / floor1.median['broker']:.2f} (goal ≤ 1.0), "
          f"QoS 0 {gw0 / floor0.median['broker']:.2f} (goal ≤ 0.5); QoS 1 ÷ QoS 0 {gw1 / gw0:.2f}")
    if ROUNDS > 1:
        print("   every round's ratio: QoS 1 " + ", ".join(f"{g['gateway'] / f['broker']:.2f}" for g, f in zip(gateway1.rounds, floor1.rounds))
              + "; QoS 0 " + ", ".join(f"{g['gateway'] / f['broker']:.2f}" for g, f in zip(gateway0.rounds, floor0.rounds)))
    ratio = lambda gateway, broker: f"{gateway / broker:.2f}" if broker else "- (too little broker CPU to measure)"
    print(f"   gateway ÷ the broker's CPU for the devices' own MQTT (medians, no gateway in front): "
          f"QoS 1 {ratio(gw1, direct1.median['broker'])}, QoS 0 {ratio(gw0, direct0.median['broker'])}")
    print(f"   QoS 1 ({ROUNDS} rounds): acked {acked}, nacked {nacked}; {arrived} arrived at the broker for {unique} distinct messages "
          f"({arrived - unique} duplicates, {total * ROUNDS - unique} missing); gateway disk writes {disk} bytes")
    print(f"   QoS 0 ({ROUNDS} rounds): acked {acked0}, nacked {nacked0}")
    print(f"   broker down: acked {spooled} from the spool, nacked {spool_nacked}; {depth:.0f} spooled entries drained in {drain_s:.1f} s "
          f"(includes the gateway's reconnect backoff)")


if __name__ == "__main__":
    main()
