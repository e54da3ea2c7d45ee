#!/usr/bin/env python3
"""The service on Lambda beside the service as an HTTP server, measured the same way on this
machine: cold start, warm latency, CPU time and instructions per request.

    bench/lambda.py LAMBDA_BIN HTTP_BIN [--quick]

LAMBDA_BIN is built with `--features lambda` (e.g. `.ci/musl-build --features lambda`), HTTP_BIN
without (`.ci/musl-build`). The Lambda side runs against Cargo Lambda's Runtime API emulator
(`cargo lambda watch --only-lambda-apis`, from CARGO_LAMBDA or PATH), the HTTP side on a
loopback port; the client is this script, over one keep-alive connection to the emulator's
function URL or to the server.

- cold start: exec -> the first answer to `GET /` reaches the client. For Lambda the request is
  already waiting in the emulator when the binary is started, so the figure covers start-up,
  the Runtime API round trips (`/next`, `/response`) and the emulator's own hops; for HTTP the
  client polls the port every 100 us. Median and p90 of STARTS runs.
- warm: N sequential `GET /` after a warm-up; median and p99 latency at the client, and the
  service process's CPU time per request (/proc/PID/task/*/schedstat, nanoseconds).
- instructions per request: the service under callgrind, N1 then N2 requests, (I2 - I1) /
  (N2 - N1), so start-up and shutdown cancel out (valgrind must be installed; skipped if not).

The service runs on CPU 0, the client and the emulator on CPU 1 (CPU affinity). Loopback only; every
process it starts is stopped when it ends. Prints one Markdown table.
"""

import http.client
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
QUICK = "--quick" in sys.argv
args = [a for a in sys.argv[1:] if a != "--quick"]
if len(args) != 2:
    sys.exit("usage: bench/lambda.py LAMBDA_BIN HTTP_BIN [--quick]")
LAMBDA_BIN, HTTP_BIN = (str(Path(a).resolve()) for a in args)
STARTS = 10 if QUICK else 30
WARM_N = 300 if QUICK else 2000
CG_N1, CG_N2 = (50, 250) if QUICK else (200, 1200)
CARGO_LAMBDA = os.environ.get("CARGO_LAMBDA") or shutil.which("cargo-lambda")
if not CARGO_LAMBDA:
    sys.exit("lambda bench: cargo-lambda not found (set CARGO_LAMBDA)")
SERVICE_CPU, CLIENT_CPU = "0", "1"
work = Path(tempfile.mkdtemp(prefix="lambda-bench-"))
children = []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def spawn(cmd, env=None, cpu=SERVICE_CPU, log="/dev/null"):
    # The child inherits this process's CPU affinity: set it for the spawn, then take the
    # client's back (no taskset exec in the measured start).
    os.sched_setaffinity(0, {int(cpu)})
    try:
        p = subprocess.Popen(cmd, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT, cwd=REPO)
    finally:
        os.sched_setaffinity(0, {int(CLIENT_CPU)})
    children.append(p)
    return p


def stop(p, sig=signal.SIGKILL):
    if p.poll() is None:
        p.send_signal(sig)
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def cpu_seconds(pid):
    """CPU time of all the process's threads so far, in ns resolution (schedstat: time on CPU)."""
    return sum(int((t / "schedstat").read_text().split()[0]) for t in Path(f"/proc/{pid}/task").iterdir()) / 1e9


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


os.sched_setaffinity(0, {int(CLIENT_CPU)})
emu_port = free_port()
emulator = spawn(
    [CARGO_LAMBDA, "lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P", str(emu_port)],
    cpu=CLIENT_CPU,
    log=work / "emulator.log",
)
for _ in range(300):
    try:
        socket.create_connection(("127.0.0.1", emu_port), timeout=1).close()
        break
    except OSError:
        time.sleep(0.1)
LAMBDA_ENV = {
    "AWS_LAMBDA_RUNTIME_API": f"http://127.0.0.1:{emu_port}/.rt",
    "AWS_LAMBDA_FUNCTION_NAME": "_",
    "AWS_LAMBDA_FUNCTION_VERSION": "1",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
}
URL_PATH = "/lambda-url/_/"


class Client:
    """One keep-alive HTTP/1.1 connection; `get()` returns the status after reading the body."""

    def __init__(self, port, timeout=60):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def get(self, path):
        self.conn.request("GET", path)
        r = self.conn.getresponse()
        r.read()
        return r.status


def lambda_start():
    """Starts the Lambda binary and returns (process, seconds from exec to the first answer)."""
    done = {}
    client = Client(emu_port)

    def ask():
        done["status"] = client.get(URL_PATH)
        done["t"] = time.perf_counter()

    t = threading.Thread(target=ask)
    t.start()
    time.sleep(0.3)  # the request is waiting in the emulator
    t0 = time.perf_counter()
    p = spawn([LAMBDA_BIN], env=LAMBDA_ENV)
    t.join(60)
    assert done.get("status") == 200, done
    return p, done["t"] - t0


def http_start():
    port = free_port()
    t0 = time.perf_counter()
    p = spawn([HTTP_BIN], env={"PORT": str(port)})
    while True:
        try:
            c = Client(port, timeout=5)
            if c.get("/") == 200:
                return p, time.perf_counter() - t0, port
        except OSError:
            time.sleep(0.0001)


def cold(kind):
    times = []
    for _ in range(STARTS):
        if kind == "lambda":
            p, t = lambda_start()
        else:
            p, t, _ = http_start()
        times.append(t * 1000)
        stop(p)
    return statistics.median(times), pct(times, 90)


def warm(kind):
    if kind == "lambda":
        p, _ = lambda_start()
        client, path = Client(emu_port), URL_PATH
    else:
        p, _, port = http_start()
        client, path = Client(port), "/"
    for _ in range(100):
        client.get(path)
    cpu0 = cpu_seconds(p.pid)
    lat = []
    for _ in range(WARM_N):
        t0 = time.perf_counter()
        assert client.get(path) == 200
        lat.append((time.perf_counter() - t0) * 1e6)
    cpu_us = (cpu_seconds(p.pid) - cpu0) / WARM_N * 1e6
    stop(p)
    return statistics.median(lat), pct(lat, 99), cpu_us


def instructions(kind, n):
    """Instructions (callgrind Ir) of the service serving n requests, start to exit."""
    out = work / f"cg-{kind}-{n}"
    vg = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
    if kind == "lambda":
        done = {}

        def ask():
            c = Client(emu_port, timeout=300)
            for _ in range(n):
                assert c.get(URL_PATH) == 200
            done["ok"] = True

        t = threading.Thread(target=ask)
        t.start()
        p = spawn([*vg, LAMBDA_BIN], env=LAMBDA_ENV, log=work / "cg.log")
        t.join(600)
        assert done.get("ok")
        stop(p, signal.SIGTERM)
    else:
        port = free_port()
        p = spawn([*vg, HTTP_BIN], env={"PORT": str(port)}, log=work / "cg.log")
        for _ in range(3000):
            try:
                c = Client(port, timeout=300)
                c.get("/")
                break
            except OSError:
                time.sleep(0.01)
        for _ in range(n - 1):
            assert c.get("/") == 200
        c.conn.close()
        stop(p, signal.SIGTERM)
    for line in out.read_text().splitlines():
        if line.startswith("summary:") or line.startswith("totals:"):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {out}")


try:
    rows = []
    for kind, label in (("http", "HTTP server (`GET /`)"), ("lambda", "Lambda through the emulator (function URL `GET /`)")):
        c50, c90 = cold(kind)
        w50, w99, cpu = warm(kind)
        if shutil.which("valgrind"):
            ipr = (instructions(kind, CG_N2) - instructions(kind, CG_N1)) / (CG_N2 - CG_N1)
            ipr = f"{ipr:,.0f}"
        else:
            ipr = "valgrind not installed"
        rows.append(f"| {label} | {c50:.2f} / {c90:.2f} ms | {w50:.0f} / {w99:.0f} µs | {cpu:.1f} µs | {ipr} |")
    print(f"\n{STARTS} cold starts, {WARM_N} warm requests, instructions from {CG_N1} and {CG_N2} requests\n")
    print("| service | cold start p50 / p90 | warm latency p50 / p99 | service CPU per request | instructions per request |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
finally:
    for p in children:
        if p.poll() is None:
            p.kill()
            p.wait()
    shutil.rmtree(work, ignore_errors=True)
