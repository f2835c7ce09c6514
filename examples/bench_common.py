"""What the benchmarks share: free loopback ports and a process's CPU time and memory from /proc."""

import os, socket, time, urllib.request

TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """User + system CPU time of a process, from /proc/<pid>/stat."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def wait_ready(http_port, scheme="http"):
    """Waits (up to about 10 s) until the gateway's /readyz answers 200 (https: the certificate is not checked)."""
    import ssl
    unverified = ssl._create_unverified_context() if scheme == "https" else None
    for _ in range(100):
        try:
            if urllib.request.urlopen(f"{scheme}://127.0.0.1:{http_port}/readyz", timeout=1, context=unverified).status == 200:
                return
        except OSError:
            time.sleep(0.1)


# --- Shared by the benchmark suite (bench_idle, bench_storm, bench_rtt, bench_spool) -------------------------------

import base64, hashlib, hmac, json, subprocess

BIN = os.environ.get("BIN", ".build/release")
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
# Every private broker's max_inflight_messages, when set (mosquitto's default, 20, otherwise).
BROKER_INFLIGHT = os.environ.get("BENCH_BROKER_INFLIGHT", "")
# Every private broker with `set_tcp_nodelay true` (as deploy/ and the embedded broker set it), when 1.
BROKER_NODELAY = os.environ.get("BENCH_BROKER_NODELAY", "") not in ("", "0")
HERE = os.path.dirname(os.path.abspath(__file__))
DEMO_CONFIG = os.path.join(HERE, "demo.yaml")


def sized(name, default, quick):
    """An integer size from the environment variable `name`, else `quick` under BENCH_QUICK=1, else `default`."""
    return int(os.environ.get(name, quick if QUICK else default))


def rss_kib(pid):
    """Resident memory of a process in KiB (VmRSS from /proc/<pid>/status)."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def disk_writes(pid):
    """Bytes the process caused to be written to storage (/proc/<pid>/io; the gateway's logs go to a pipe)."""
    for line in open(f"/proc/{pid}/io"):
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def wait_port(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def token(key, claims):
    """An HS256 device token signed with the fleet key (the key file's bytes without the trailing newline)."""
    b64 = lambda data: base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64(json.dumps(claims).encode())
    return head + "." + b64(hmac.new(key, head.encode(), hashlib.sha256).digest())


def percentile(values, p):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered) + 0.5)) - 1))]


class Processes:
    """Every child a benchmark starts, stopped by PID (SIGTERM, then SIGKILL) when the `with` block ends."""

    def __init__(self):
        self.procs = []

    def __enter__(self):
        return self

    def start(self, args, **kwargs):
        proc = subprocess.Popen(args, **kwargs)
        self.procs.append(proc)
        return proc

    def stop(self, proc, timeout=20):
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __exit__(self, *exc):
        for proc in reversed(self.procs):
            self.stop(proc)


class Broker:
    """A private mosquitto on loopback: a TCP listener, and with `websockets` also its WebSocket listener.

    Debian's mosquitto 2.0.11 is built with libwebsockets 4.1.6, which binds a WebSocket listener to an interface
    name (`lo`) but not to an address, and which only starts beside a plain listener: hence `listener PORT lo`
    with `socket_domain ipv4` (127.0.0.1 only) next to the TCP one."""

    def __init__(self, procs, work, websockets=False, name="m", nodelay=None, tls=None):
        self.procs, self.port = procs, free_port()
        self.ws_port = free_port() if websockets else None
        self.conf = f"{work}/{name}.conf"
        with open(self.conf, "w") as f:
            f.write(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 1000000\n")
            # mosquitto's default (false) lets Nagle hold a reply behind an unacked PUBACK for ~40 ms
            if nodelay if nodelay is not None else BROKER_NODELAY:
                f.write("set_tcp_nodelay true\n")
            # Its Receive Maximum (20 by default) for MQTT 5 clients: the gateway's, not mosquitto_pub's (3.1.1).
            if BROKER_INFLIGHT:
                f.write(f"max_inflight_messages {BROKER_INFLIGHT}\n")
            if websockets:
                f.write(f"listener {self.ws_port} lo\nprotocol websockets\nsocket_domain ipv4\nallow_anonymous true\n")
                if tls:  # (certificate, key) for the WebSocket listener: wss://
                    f.write(f"certfile {tls[0]}\nkeyfile {tls[1]}\n")
        self.proc = None
        self.start()

    def start(self):
        self.proc = self.procs.start(["mosquitto", "-c", self.conf], stderr=subprocess.DEVNULL)
        wait_port(self.port)
        if self.ws_port:
            wait_port(self.ws_port)
        return self

    def stop(self):
        self.procs.stop(self.proc)

    @property
    def pid(self):
        return self.proc.pid


class Gateway:
    """The gateway under test (`BIN`/gatehouse with examples/demo.yaml) on loopback against `broker`.

    Per-device rate limits and the gateway's connect rate are off (benchmarks send and connect as fast as they can);
    `settings` adds GATEHOUSE_* variables. With `tls` (certificate, key) devices connect with wss://."""

    def __init__(self, procs, work, broker, tls=None, **settings):
        self.http_port = free_port()
        self.key = os.urandom(24).hex().encode()
        self.key_file = f"{work}/key"
        with open(self.key_file, "wb") as f:
            f.write(self.key + b"\n")
        self.spool_dir = f"{work}/spool"
        env = dict(os.environ, GATEHOUSE_MQTT_URL=f"mqtt://127.0.0.1:{broker.port}", GATEHOUSE_AUTH_KEY_FILE=self.key_file,
                   GATEHOUSE_GATEWAY_LISTEN=f"127.0.0.1:{self.http_port}", GATEHOUSE_SPOOL_DIR=self.spool_dir,
                   GATEHOUSE_LOG_LEVEL="warning", GATEHOUSE_LIMITS_MAX_MESSAGES_PER_S="0", GATEHOUSE_LIMITS_MAX_BYTES_PER_S="0",
                   GATEHOUSE_LIMITS_MAX_CONNECTS_PER_S="0")
        if tls:
            settings.update(GATEWAY_TLS_CERT_FILE=tls[0], GATEWAY_TLS_KEY_FILE=tls[1])
        env.update({f"GATEHOUSE_{k.upper()}": str(v) for k, v in settings.items()})
        self.proc = procs.start([f"{BIN}/gatehouse", "--config", DEMO_CONFIG], env=env, stderr=open(f"{work}/gw.log", "w"))
        wait_ready(self.http_port, "https" if tls else "http")
        self.url = f"{'wss' if tls else 'ws'}://127.0.0.1:{self.http_port}/v1/connect"

    @property
    def pid(self):
        return self.proc.pid

    def metric(self, name, label=""):
        """The sum of a metric's samples from /metrics (those whose labels contain `label`, e.g. 'type="telemetry"')."""
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=30).read().decode()
        return sum(float(line.split()[-1]) for line in text.splitlines()
                   if line.startswith((name + " ", name + "{")) and label in line)


class CPU:
    """CPU seconds of named processes over a phase: `cpu = CPU(gateway=pid, ...)`, then `cpu.take()` → deltas."""

    def __init__(self, **pids):
        self.pids = {name: pid for name, pid in pids.items() if pid}
        self.start = {name: self.read(pid) for name, pid in self.pids.items()}

    @staticmethod
    def read(pid):
        pids = pid if isinstance(pid, (list, tuple)) else [pid]
        return sum(cpu_seconds(p) for p in pids)

    def take(self):
        return {name: self.read(pid) - self.start[name] for name, pid in self.pids.items()}


def per_unit(seconds, units):
    """CPU seconds per unit, in µs."""
    return seconds / max(units, 1) * 1e6


def cpu_line(cpu, units, unit="unit"):
    """`gateway 412.0 µs, broker 30.1 µs, load 120.3 µs per unit` for a CPU.take() result."""
    return ", ".join(f"{name} {per_unit(s, units):.1f} µs" for name, s in cpu.items()) + f" per {unit}"


def machine():
    """One line describing the box the figures come from (cores, memory, kernel, mosquitto, load)."""
    mem = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal:")) // 1024
    mosq = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True).stdout.splitlines()[0]
    return (f"{os.cpu_count()} cores, {mem} MiB, Linux {os.uname().release}, {mosq}, "
            f"load average {os.getloadavg()[0]:.2f}, BIN={BIN}")


def c_binary(name, libraries):
    """examples/NAME.c compiled once (cc -O2) into the temp directory, keyed by its source."""
    import tempfile
    source = os.path.join(HERE, f"{name}.c")
    digest = hashlib.sha256(open(source, "rb").read()).hexdigest()[:12]
    path = os.path.join(tempfile.gettempdir(), f"gatehouse-{name.replace('_', '-')}-{digest}")
    if not os.path.exists(path):
        subprocess.run(["cc", "-O2", "-Wall", "-o", path + ".tmp", source] + libraries, check=True)
        os.replace(path + ".tmp", path)
    return path


def client_binary():
    """examples/bench_clients.c, the device and MQTT-over-WebSocket load generator."""
    return c_binary("bench_clients", ["-lssl", "-lcrypto"])


class ClientFleet:
    """`n` clients spread over load-generator processes (examples/bench_clients.c, epoll and raw sockets, at most
    `per_process` each: a process may open 20,000 files). `mode` is "gateway" (device tokens signed with `key`,
    `kind` in the token), "mqttws" (MQTT over mosquitto's WebSocket listener), with "-tls" for wss://, or "mqtt" (MQTT over
    TCP straight to mosquitto, for telemetry only). `ready()` waits until every
    process has read its requests, `go()` starts them all at once and returns (connected, failed, seconds until
    the last process was done, errors), `close()` ends them and returns how many connections the server closed.
    With `messages`, `send()` makes every device send that many telemetry messages at `qos`, `window` unanswered at
    most (and at most `rate` per second each, if given), and returns (acked, nacked, seconds); with a `rate`, `start()`
    starts the sending without waiting for its end (background load until `close()`)."""

    def __init__(self, procs, work, mode, port, n, per_process=5000, inflight=100, prefix="idle", key=None,
                 kind="sensor", respond=False, max_seconds=600, messages=0, window=100, qos=1, rate=0):
        self.procs, self.children = procs, []
        binary = client_binary()
        count = -(-n // per_process) if n else 0
        first = 1
        for k in range(count):
            share = n // count + (1 if k < n % count else 0)
            path = f"{work}/{prefix}-clients-{k}.txt"
            with open(path, "w") as f:
                for i in range(first, first + share):
                    device = f"{prefix}-{i}"
                    gateway = mode.startswith("gateway")
                    lines = [f"GET {'/v1/connect' if gateway else '/mqtt'} HTTP/1.1", f"Host: 127.0.0.1:{port}",
                             "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13",
                             "Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16)).decode()]
                    if gateway:
                        lines.append("Authorization: Bearer " + token(key, {"sub": device, "kind": kind}))
                    else:
                        lines.append("Sec-WebSocket-Protocol: mqtt")
                    f.write(device + "\t" + "|".join(lines) + "||\n")
            first += share
            args = [binary, mode, str(port), path, str(inflight), "1" if respond else "0", str(max_seconds)]
            if messages:
                args += [str(messages), str(window), str(qos), str(rate)]
            self.children.append(procs.start(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))

    @property
    def pids(self):
        return [c.pid for c in self.children]

    def ready(self):
        for child in self.children:
            line = child.stdout.readline()
            if '"ready"' not in line:
                raise RuntimeError(f"load generator did not start: {line!r}")

    def go(self):
        start = time.monotonic()
        for child in self.children:
            child.stdin.write("go\n")
            child.stdin.flush()
        connected = failed = 0
        errors = []
        for child in self.children:
            event = json.loads(child.stdout.readline())
            connected, failed = connected + event["connected"], failed + event["failed"]
            errors += [e for e in event["errors"] if e]
        return connected, failed, time.monotonic() - start, errors

    def start(self):
        for child in self.children:
            child.stdin.write("send\n")
            child.stdin.flush()

    def send(self):
        start = time.monotonic()
        self.start()
        acked = nacked = 0
        for child in self.children:
            event = json.loads(child.stdout.readline())
            acked, nacked = acked + event["acked"], nacked + event["nacked"]
        return acked, nacked, time.monotonic() - start

    def close(self):
        lost = 0
        for child in self.children:
            child.stdin.close()
        for child in self.children:
            line = child.stdout.readline()
            if line:
                lost += json.loads(line).get("lost_while_idle", 0)
            child.wait(30)
        return lost


def wait_quiet(pid, busy=0.05, timeout=30):
    """Waits until `pid` used less than `busy` of a core over half a second (work after a burst has settled)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(0.5)
        if cpu_seconds(pid) - before < busy * 0.5:
            return


def header(title, sizes):
    print(f"== {title}: {sizes}")
    print(f"   {machine()}")


WINDOW = int(os.environ.get("BENCH_WINDOW", "64"))


def telemetry(procs, work, gateway, devices, messages, prefix, qos=1, window=WINDOW, **pids):
    """One telemetry flow through `gateway` from the C load generator (examples/bench_clients.c): `devices` devices
    connect first (not measured), then each sends `messages` telemetry messages with `seq` at `qos`, at most `window`
    unanswered. Returns (acked, nacked, seconds, CPU seconds of the gateway, the generator and `pids` over the sending).
    A generator process costs a few µs per message, so it is never what limits the flow (gatehouse-sim, in Swift with
    a task per device, needed more CPU per message than the gateway)."""
    fleet = ClientFleet(procs, work, "gateway", gateway.http_port, devices, prefix=prefix, key=gateway.key,
                        messages=messages, window=window, qos=qos)
    return measured_send(fleet, f"of {devices} devices", gateway.pid, gateway=gateway.pid, **pids)


def direct_telemetry(procs, work, broker, devices, messages, prefix, qos=1, window=WINDOW):
    """The same devices' telemetry without the gateway: each of `devices` clients of the generator speaks MQTT 3.1.1
    over TCP to `broker` itself and publishes `messages` messages like those the gateway publishes for a device, at
    most `window` unanswered (QoS 1) or per write (QoS 0). Returns (answered, seconds, CPU seconds of the broker and
    the generator over the sending): the floor for the same clients, the same window and the same broker."""
    fleet = ClientFleet(procs, work, "mqtt", broker.port, devices, prefix=prefix, messages=messages, window=window, qos=qos)
    answered, _, seconds, used = measured_send(fleet, f"of {devices} MQTT clients", broker.pid, broker=broker.pid)
    return answered, seconds, used


def measured_send(fleet, clients, server_pid, **pids):
    """Connects `fleet` (not measured; `clients` names them in an error), waits until `server_pid` has settled, then
    has every client send its messages. Returns (acked, nacked, seconds, CPU seconds of the generator and `pids` over
    the sending and what it left to do), and ends the fleet. A QoS 0 message is acked once handed to libmosquitto, so
    the gateway may still be writing (and the broker reading) when the last ack arrives: the CPU is taken once every
    process in `pids` has settled."""
    fleet.ready()
    _, failed, _, errors = fleet.go()
    if failed:
        raise RuntimeError(f"{failed} {clients} could not connect: {errors[:1]}")
    wait_quiet(server_pid)
    cpu = CPU(load=fleet.pids, **pids)
    acked, nacked, seconds = fleet.send()
    for pid in pids.values():
        wait_quiet(pid)
    used = cpu.take()
    fleet.close()
    return acked, nacked, seconds, used


def self_signed(work):
    """A throwaway certificate and key for 127.0.0.1 (openssl), for the wss:// figures. Readable by all: mosquitto
    started as root reads them as its own user."""
    directory = f"{work}/tls"
    os.makedirs(directory, exist_ok=True)
    cert, key = f"{directory}/tls.crt", f"{directory}/tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", cert], check=True, capture_output=True)
    for path in (work, directory, cert, key):
        os.chmod(path, 0o755 if os.path.isdir(path) else 0o644)
    return cert, key


class Subscriber:
    """mosquitto_sub -q 1 on every device's telemetry (`gatehouse/+/telemetry`), into a file. `wait(expected)` waits
    for that many messages and a quiet second after them (late duplicates), stops it and returns (messages that
    arrived, the distinct (topic, seq) pairs)."""

    def __init__(self, procs, port, path):
        self.procs, self.path = procs, path
        self.proc = procs.start(["mosquitto_sub", "-p", str(port), "-q", "1", "-v", "-t", "gatehouse/+/telemetry"],
                                stdout=open(path, "w"))

    def lines(self):
        with open(self.path) as f:
            return sum(1 for _ in f)

    def wait(self, expected, timeout=60):
        deadline, last, quiet = time.monotonic() + timeout, -1, 0
        while time.monotonic() < deadline:
            n = self.lines()
            quiet = quiet + 1 if n == last else 0
            if n >= expected and quiet >= 4:  # everything, and nothing more for 1 s (late duplicates)
                break
            last = n
            time.sleep(0.25)
        self.procs.stop(self.proc)
        seen, arrived = set(), 0
        for line in open(self.path):
            topic, _, body = line.partition(" ")
            try:
                seen.add((topic, json.loads(body)["seq"]))
                arrived += 1
            except (ValueError, KeyError):
                pass
        return arrived, seen
