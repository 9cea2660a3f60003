#!/usr/bin/env python3
"""Head-of-line blocking on workers without threads, behind keep-alive clients.

`-w 4`, 8 keep-alive clients (as a proxy's upstream keepalive pool or a load
balancer's front end keeps them) spread over the workers, each asking for a fast
endpoint and pausing --think-ms between requests; one at a time, in turn, a client
asks for a 2 s endpoint instead, so every connection's worker is in turn busy in
a long call. A worker busy in the 2 s call must not keep the fast requests of its
other connections waiting. gunicorn's sync worker closes after every request, so
each of its fast requests is a new connection a free worker accepts; fastwsgi
keeps the connections and passes those with a request waiting to a free worker
once the call has run a few milliseconds (fastwsgi/loop/handoff.pxi). Reported:
the fast requests' p50, p99 and max, and how many took over 100 ms, per server;
one run each, the server pinned to one core and the clients to the other.

  python bench/head_of_line.py                         # ~70 s: fastwsgi, then gunicorn
  python bench/head_of_line.py --servers fastwsgi --duration 10
  python bench/head_of_line.py --peers-python ~/.cache/fastwsgi-bench/peers/bin/python
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from attack import HOST, scratch_server  # noqa: E402

SERVER_CORE, CLIENT_CORE = "0", "1"
APP = '''
import time

BODY = b"Hello, World!"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def app(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep({slow_seconds})
    start_response("200 OK", HEADERS)
    return [BODY]
'''
DEFAULT_PEERS_PYTHON = os.path.expanduser("~/.cache/fastwsgi-bench/peers/bin/python")


def command(server: str, bindir: str, port: int, workers: int) -> list:
    args = [os.path.join(bindir, server), "-w", str(workers), "-b", f"{HOST}:{port}",
            "--keep-alive", "30"]
    if server == "gunicorn":
        args.append("--no-control-socket")
    return ["taskset", "-c", SERVER_CORE] + args + ["hol_app:app"]


class Client:
    """One keep-alive HTTP/1.1 client on a raw socket; reconnects when the server
    says Connection: close (the time to reconnect counts in the request's)."""

    def __init__(self, port: int):
        self.port = port
        self.sock = None
        self.buffer = b""

    def get(self, path: str) -> None:
        if self.sock is None:
            self.sock = socket.create_connection((HOST, self.port), timeout=30)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.buffer = b""
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.receive()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").lower().split("\r\n")
        if not lines[0].startswith("http/1.1 200"):
            raise RuntimeError(f"unexpected answer: {lines[0]}")
        length = next(int(line.split(":", 1)[1]) for line in lines if line.startswith("content-length:"))
        while len(self.buffer) < length:
            self.buffer += self.receive()
        self.buffer = self.buffer[length:]
        if "connection: close" in lines:
            self.sock.close()
            self.sock = None

    def receive(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise RuntimeError("the server closed the connection mid-answer")
        return data


def client_loop(index: int, port: int, args, start: float, until: float, turn, out) -> None:
    """Fast requests; the slow one when the turn is this client's (one at a time)."""
    os.sched_setaffinity(0, {int(CLIENT_CORE)})
    client = Client(port)
    think = args.think_ms / 1000.0
    fast, errors, slow = [], 0, 0
    client.get("/")   # connected, and taken by some worker, before the first slow call
    time.sleep(max(0.0, start - time.monotonic()))
    while time.monotonic() < until:
        path = "/slow" if turn.value == index else "/"
        began = time.perf_counter()
        try:
            client.get(path)
            if path == "/":
                fast.append(time.perf_counter() - began)
        except (OSError, RuntimeError):
            errors += 1
            client.sock = None
        if path == "/slow":
            slow += 1
            turn.value = (index + 1) % args.clients
        time.sleep(think)
    out.send((fast, slow, errors))


def measure(server: str, bindir: str, args) -> dict:
    app = APP.format(slow_seconds=args.slow_seconds)
    with scratch_server("hol_app", app, lambda port, _: command(server, bindir, port, args.workers)) as (_, port, _):
        time.sleep(1.0)
        start = time.monotonic() + 1.0
        until = start + args.duration
        turn = multiprocessing.Value("i", 0, lock=False)
        pipes, processes = [], []
        for index in range(args.clients):
            receiver, sender = multiprocessing.Pipe(duplex=False)
            process = multiprocessing.Process(target=client_loop,
                                              args=(index, port, args, start, until, turn, sender))
            process.start()
            pipes.append(receiver)
            processes.append(process)
        results = [pipe.recv() for pipe in pipes]
        for process in processes:
            process.join(10)
    fast = sorted(latency for latencies, _, _ in results for latency in latencies)
    return {
        "server": server,
        "fast_requests": len(fast),
        "slow_requests": sum(slow for _, slow, _ in results),
        "errors": sum(errors for _, _, errors in results),
        "p50_ms": round(statistics.median(fast) * 1000, 2),
        "p99_ms": round(fast[int(len(fast) * 0.99)] * 1000, 2),
        "max_ms": round(fast[-1] * 1000, 2),
        "over_100ms": sum(1 for latency in fast if latency > 0.1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", default="fastwsgi,gunicorn")
    parser.add_argument("--python", default=sys.executable, help="the interpreter whose fastwsgi runs")
    parser.add_argument("--peers-python", default=DEFAULT_PEERS_PYTHON, help="the interpreter whose gunicorn runs")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--slow-seconds", type=float, default=2.0)
    parser.add_argument("--think-ms", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    for server in args.servers.split(","):
        python = args.python if server == "fastwsgi" else args.peers_python
        rows.append(measure(server, os.path.dirname(python), args))
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"-w {args.workers}, {args.clients} keep-alive clients taking turns on a {args.slow_seconds:g} s "
          f"endpoint, {args.duration:g} s; fast requests:")
    print(f"{'server':10} {'requests':>9} {'slow':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'>100ms':>7} {'errors':>7}")
    for row in rows:
        print(f"{row['server']:10} {row['fast_requests']:>9} {row['slow_requests']:>5} {row['p50_ms']:>8} "
              f"{row['p99_ms']:>8} {row['max_ms']:>8} {row['over_100ms']:>7} {row['errors']:>7}")


if __name__ == "__main__":
    main()
