#!/usr/bin/env python3
"""Proves that stopping the service cuts no response short (tests/image.sh, `docker stop`).

    image-drain.py --port PORT --stop CMD --signalled CMD [--requests N] [--size BYTES]

Opens N connections and starts one `POST /echo` on each with `expect: 100-continue`. The
server answers `100 Continue` only once the handler reads the body (hyper sends it when the
body is first polled), so after that answer each request is certainly in flight on the server.
Half of each body is sent; then the stop command runs (e.g. `docker stop`), and the rest of the
bodies is sent only after the `--signalled` command succeeds (e.g. the container logged that it
is draining): the server got SIGTERM while all N requests were in the middle of their bodies.
Every one must still get `200` with its whole body echoed: a response cut short, a reset or a
wrong body fails. Exits 0 with one summary line; the stop command's status is printed for the
caller to judge.
"""

import argparse
import os
import socket
import subprocess
import sys
import time


def read_until(sock, marker, buf=b""):
    while marker not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {len(buf)} bytes, before {marker!r}")
        buf += chunk
    return buf


def read_response(sock):
    """(status, headers, body) of one response; raises if the connection ends before its end."""
    buf = read_until(sock, b"\r\n\r\n")
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in lines[1:])}
    length = int(headers.get("content-length", "-1"))
    if length < 0:
        raise ConnectionError(f"{status} without content-length: {headers}")
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"{status}: body cut at {len(body)} of {length} bytes")
        body += chunk
    return status, headers, body


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stop", required=True, help="shell command that stops the server")
    parser.add_argument("--signalled", required=True, help="shell command: exit 0 once it drains")
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--size", type=int, default=256 * 1024)
    args = parser.parse_args()

    bodies = [os.urandom(args.size) for _ in range(args.requests)]
    half = args.size // 2
    socks = []
    for body in bodies:
        sock = socket.create_connection(("127.0.0.1", args.port), timeout=30)
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/octet-stream\r\n"
            + f"content-length: {len(body)}\r\nexpect: 100-continue\r\n\r\n".encode()
        )
        socks.append(sock)
    for sock, body in zip(socks, bodies):
        rest = read_until(sock, b"\r\n\r\n")
        if not rest.startswith(b"HTTP/1.1 100"):
            sys.exit(f"drain: expected 100 Continue, got {rest[:80]!r}")
        sock.sendall(body[:half])

    started = time.monotonic()
    stop = subprocess.Popen(args.stop, shell=True)
    signalled = None
    while stop.poll() is None and time.monotonic() < started + 9:
        if subprocess.run(args.signalled, shell=True).returncode == 0:
            signalled = time.monotonic() - started
            break
        time.sleep(0.05)
    if signalled is None:
        for sock in socks:
            sock.close()
        status = stop.wait()
        print(f"drain: FAIL the server never said it was draining; stop command exit {status}")
        sys.exit(1)

    results = []
    for sock, body in zip(socks, bodies):
        try:
            sock.sendall(body[half:])
            status, _, echoed = read_response(sock)
            results.append("ok" if status == 200 and echoed == body else f"{status}, body differs")
        except OSError as error:
            results.append(f"cut short: {error}")
        finally:
            sock.close()
    status = stop.wait()
    elapsed = time.monotonic() - started
    bad = [r for r in results if r != "ok"]
    print(
        f"drain: {args.requests} requests in flight when the server got the signal "
        f"({signalled * 1000:.0f} ms after the stop), {len(results) - len(bad)} answered 200 with their "
        f"{args.size}-byte bodies echoed whole; stop command exit {status} after {elapsed * 1000:.0f} ms"
    )
    for r in bad:
        print(f"drain: FAIL {r}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
