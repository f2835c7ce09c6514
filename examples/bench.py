#!/usr/bin/env python3
"""`make bench`: telemetry throughput through the gateway vs. straight into mosquitto, same run.

Flow A (baseline): N `mosquitto_pub -l` clients publish M QoS 1 messages each to a private mosquitto.
Flow B (gateway):  N simulated devices (gatehouse-sim, --rate 0) send M telemetry messages each over
WebSocket; the gateway publishes each at QoS 1 and acks it after the broker's PUBACK. A subscriber
counts what reaches the broker (duplicates), and /proc/<gateway>/io tells what the gateway wrote to disk
(nothing, with a healthy broker: the spool is only for a broker that cannot be reached).
Flow B0: the same at QoS 0, against mosquitto_pub -q 0.
Flow C (spool):   the broker is stopped and the same devices send again: every message is acked from the
gateway's disk spool (group commit); then the broker is started again and the spool drains into it.
Prints messages/s, and CPU microseconds per message of the gateway and of the broker (from /proc).
Everything binds to loopback and stops by itself.
"""
import json, os, subprocess, tempfile, time, urllib.request

from bench_common import BIN, cpu_seconds, disk_writes, free_port, run_telemetry, wait_port, wait_ready

DEVICES = int(os.environ.get("BENCH_DEVICES", "50"))
MESSAGES = int(os.environ.get("BENCH_MESSAGES", "2000"))
# The gateway's in-flight window (mqtt.max_inflight): small enough that the devices keep it full.
INFLIGHT = os.environ.get("BENCH_INFLIGHT", "100")


def spool_entries(http_port):
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5).read().decode()
    for line in metrics.splitlines():
        if line.startswith("gatehouse_spool_entries "):
            return float(line.split()[1])
    return 0.0


class Counter:
    """mosquitto_sub on a topic filter: counts (topic, seq) pairs to find duplicates."""

    def __init__(self, port, topic):
        self.proc = subprocess.Popen(["mosquitto_sub", "-p", str(port), "-q", "1", "-v", "-t", topic],
                                     stdout=subprocess.PIPE, text=True)
        time.sleep(0.3)

    def stop(self, expected, timeout=30):
        import threading
        seen, lines = set(), 0
        done = threading.Event()

        def read():
            nonlocal lines
            for line in self.proc.stdout:
                topic, _, body = line.partition(" ")
                try:
                    seq = json.loads(body).get("seq")
                except ValueError:
                    continue
                lines += 1
                seen.add((topic, seq))
                if len(seen) >= expected:
                    done.set()
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        done.wait(timeout)
        time.sleep(0.5)  # late duplicates
        self.proc.terminate()
        reader.join(5)
        return lines, len(seen)


def main():
    work = tempfile.mkdtemp(prefix="gatehouse-bench-")
    mqtt_port, http_port = free_port(), free_port()
    with open(f"{work}/m.conf", "w") as f:
        f.write(f"listener {mqtt_port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 1000000\n")
    start_broker = lambda: subprocess.Popen(["mosquitto", "-c", f"{work}/m.conf"], stderr=subprocess.DEVNULL)
    broker = start_broker()
    wait_port(mqtt_port)
    with open(f"{work}/key", "w") as f:
        f.write(os.urandom(24).hex() + "\n")
    env = dict(os.environ, GATEHOUSE_MQTT_URL=f"mqtt://127.0.0.1:{mqtt_port}", GATEHOUSE_AUTH_KEY_FILE=f"{work}/key",
               GATEHOUSE_GATEWAY_LISTEN=f"127.0.0.1:{http_port}", GATEHOUSE_SPOOL_DIR=f"{work}/spool", GATEHOUSE_LOG_LEVEL="warning", GATEHOUSE_MQTT_MAX_INFLIGHT=INFLIGHT,
               # Devices here send as fast as acks allow: per-device rate limits off.
               GATEHOUSE_LIMITS_MAX_MESSAGES_PER_S="0", GATEHOUSE_LIMITS_MAX_BYTES_PER_S="0", GATEHOUSE_LIMITS_MAX_CONNECTS_PER_S="0")
    gateway = subprocess.Popen([f"{BIN}/gatehouse", "--config", "examples/demo.yaml"], env=env, stderr=open(f"{work}/gw.log", "w"))
    procs = [gateway, broker]  # the broker is replaced in flow C
    try:
        wait_ready(http_port)
        sim_url = f"ws://127.0.0.1:{http_port}/v1/connect"
        total = DEVICES * MESSAGES
        payload = json.dumps({"ts": 1, "seq": 1, "data": {"temperature": 21.5, "setpoint": 21.0, "heating": True, "mode": "auto"}})

        # Flows A and A0: mosquitto_pub clients straight into the broker, at QoS 1 and at QoS 0.
        lines = (payload + "\n").encode() * MESSAGES

        def direct_flow(qos):
            broker_cpu0, start = cpu_seconds(broker.pid), time.monotonic()
            pubs = [subprocess.Popen(["mosquitto_pub", "-p", str(mqtt_port), "-q", str(qos), "-t", f"bench/direct{qos}-{i}/telemetry", "-l"],
                                     stdin=subprocess.PIPE) for i in range(DEVICES)]
            for p in pubs:
                p.stdin.write(lines)
                p.stdin.close()
            for p in pubs:
                p.wait()
            return time.monotonic() - start, cpu_seconds(broker.pid) - broker_cpu0

        direct_s, direct_broker_cpu = direct_flow(1)
        direct0_s, direct0_broker_cpu = direct_flow(0)

        # Flow B: devices through the gateway, QoS 1.
        counter = Counter(mqtt_port, "gatehouse/+/telemetry")
        gw_io0 = disk_writes(gateway.pid)
        gw_cpu0, broker_cpu0, start = cpu_seconds(gateway.pid), cpu_seconds(broker.pid), time.monotonic()
        summary = run_telemetry(sim_url, f"{work}/key", DEVICES, MESSAGES, "q1")
        gw_s = time.monotonic() - start
        gw_cpu, gw_broker_cpu = cpu_seconds(gateway.pid) - gw_cpu0, cpu_seconds(broker.pid) - broker_cpu0
        acked = summary["acked"]
        arrived, unique = counter.stop(total)
        gw_disk = disk_writes(gateway.pid) - gw_io0
        while spool_entries(http_port) > 0:  # nothing, unless the broker was lost
            time.sleep(0.05)

        # Flow B0: the same at QoS 0 (acked once handed to libmosquitto).
        gw_cpu0, start = cpu_seconds(gateway.pid), time.monotonic()
        summary0 = run_telemetry(sim_url, f"{work}/key", DEVICES, MESSAGES, "q0", qos=0)
        gw0_s, gw0_cpu = time.monotonic() - start, cpu_seconds(gateway.pid) - gw_cpu0

        # Flow C: broker down, acked from the spool; then the broker returns and the spool drains.
        broker.terminate()
        broker.wait(timeout=20)
        time.sleep(1)
        gw_cpu0, start = cpu_seconds(gateway.pid), time.monotonic()
        spooled_summary = run_telemetry(sim_url, f"{work}/key", DEVICES, MESSAGES, "sp")
        spool_s, spool_cpu = time.monotonic() - start, cpu_seconds(gateway.pid) - gw_cpu0
        spooled = spooled_summary["acked"]
        depth = spool_entries(http_port)
        broker = procs[1] = start_broker()
        wait_port(mqtt_port)
        gw_cpu0, start = cpu_seconds(gateway.pid), time.monotonic()
        while spool_entries(http_port) > 0 and time.monotonic() - start < 300:
            time.sleep(0.05)
        drain_s, drain_cpu = time.monotonic() - start, cpu_seconds(gateway.pid) - gw_cpu0

        print(f"devices {DEVICES} x messages {MESSAGES} = {total} QoS 1 telemetry messages, 2 cores, loopback")
        print(f"{'flow':34} {'msgs/s':>10} {'broker µs/msg':>14} {'gateway µs/msg':>15}")
        print(f"{'mosquitto_pub -> mosquitto':34} {total / direct_s:>10.0f} {direct_broker_cpu / total * 1e6:>14.1f} {'-':>15}")
        print(f"{'device -> gatehouse -> mosquitto':34} {acked / gw_s:>10.0f} {gw_broker_cpu / acked * 1e6:>14.1f} {gw_cpu / acked * 1e6:>15.1f}")
        print(f"{'mosquitto_pub -q 0 -> mosquitto':34} {total / direct0_s:>10.0f} {direct0_broker_cpu / total * 1e6:>14.1f} {'-':>15}")
        print(f"{'device -> gatehouse, QoS 0':34} {summary0['acked'] / gw0_s:>10.0f} {'-':>14} {gw0_cpu / max(summary0['acked'], 1) * 1e6:>15.1f}")
        print(f"{'device -> gatehouse -> spool (broker down)':34} {spooled / spool_s:>10.0f} {'-':>14} {spool_cpu / max(spooled, 1) * 1e6:>15.1f}")
        print(f"{'spool -> mosquitto (drain)':34} {depth / drain_s:>10.0f} {'-':>14} {drain_cpu / max(depth, 1) * 1e6:>15.1f}")
        print(f"ratio gateway/direct throughput: {(acked / gw_s) / (total / direct_s):.2f}; acked {acked} of {summary['sent']} sent, nacked {summary['nacked']}")
        print(f"QoS 1, broker healthy: {arrived} arrived at the broker for {unique} distinct messages "
              f"({arrived - unique} duplicates, {total - unique} missing); gateway disk writes {gw_disk} bytes")
        print(f"gateway CPU per message: QoS 1 {gw_cpu / acked * 1e6:.1f} µs, QoS 0 {gw0_cpu / max(summary0['acked'], 1) * 1e6:.1f} µs "
              f"(ratio {gw_cpu / acked / max(gw0_cpu / max(summary0['acked'], 1), 1e-9):.2f})")
        print(f"broker down: acked {spooled} of {spooled_summary['sent']} from the spool, nacked {spooled_summary['nacked']}; "
              f"{depth:.0f} spooled entries drained in {drain_s:.1f} s (includes the gateway's reconnect backoff)")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=20)


if __name__ == "__main__":
    main()
