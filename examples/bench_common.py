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


def wait_ready(http_port):
    """Waits (up to about 10 s) until the gateway's /readyz answers 200."""
    for _ in range(100):
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz", timeout=1).status == 200:
                return
        except OSError:
            time.sleep(0.1)
