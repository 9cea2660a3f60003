#!/usr/bin/env python3
"""Servers under attack and under signals, on loopback: how much normal traffic still gets through.

Attacks (slowhttptest, Debian's `slowhttptest` package): slow headers (-H), slow
bodies (-B), slow reads (-X) of hello world and of a 4 MiB streamed body, each with --connections connections for --length
seconds against a server with two workers, while a probe sends --probe-rate fresh
requests per second (a new connection each, `Connection: close`). Reported per
server and attack: the share of probes answered 200 and their p50/p99 latency,
counted once the attack has opened its connections.

Signals (fastwsgi and gunicorn only): SIGHUP every 2 s, and SIGTTIN/SIGTTOU
alternating every 2 s, under --signal-length seconds of `wrk -c50` keep-alive load
(wrk's socket errors and non-2xx answers are what was lost); and SIGTERM sent
while 20 one-second requests are in flight (how many were answered 200).

Every server runs with its defaults but for the worker count, the bind address,
and an open-files limit of 65,536 for every process (server and attacker alike);
`fastwsgi-threads4` and `gunicorn-gthread` run the app on 4 threads per worker.

  python bench/attack.py                                   # everything (~25 min)
  python bench/attack.py --servers fastwsgi --attacks slowloris --length 20
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
HOST = "127.0.0.1"
NOFILE = 65536

ATTACKS = {
    # slowhttptest mode flags; -i: seconds between the follow-up bytes of each connection
    "slowloris": ["-H", "-i", "10"],
    "slowbody": ["-B", "-i", "10", "-s", "8192"],
    "slowread": ["-X", "-k", "4", "-n", "10", "-w", "1", "-y", "4", "-z", "4"],
    # slow reads of a 4 MiB streamed body (/big): each response outgrows the socket
    "slowread_big": ["-X", "-k", "1", "-n", "10", "-w", "512", "-y", "1024", "-z", "1024"],
}
# the path each attack asks for (default "/", hello world)
ATTACK_PATHS = {"slowread_big": "/big"}
SIGNALS = ["hup", "ttin_ttou", "term"]

APP = '''
import time

def big_body():
    piece = b"b" * 65536
    for _ in range(64):
        yield piece


def app(environ, start_response):
    if environ["PATH_INFO"] == "/big":
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(64 * 65536))])
        return big_body()
    if environ["PATH_INFO"] == "/sleep":
        time.sleep(float(environ.get("QUERY_STRING") or 1))
    body = b"Hello, World!"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''

NGINX_CONF = '''
worker_processes 2;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 768; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    server {{
        listen {host}:{port};
        location / {{ return 200 "Hello, World!"; }}
    }}
}}
'''


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(NOFILE, hard), hard))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def wait_listening(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


@contextlib.contextmanager
def scratch_server(app_module: str, app_source: str, command, stop_timeout: float = 15.0):
    """The server ``command(port, workdir)`` starts, in a scratch directory that holds
    the app (``app_module``.py) and in a process group of its own; yields (process,
    port, workdir) once it listens, and stops the group at the end (TERM)."""
    with tempfile.TemporaryDirectory() as workdir:
        with open(os.path.join(workdir, app_module + ".py"), "w") as out:
            out.write(app_source)
        port = free_port()
        proc = subprocess.Popen(command(port, workdir), cwd=workdir, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_listening(port)
            yield proc, port, workdir
        finally:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass   # stopped already, with its workers
            proc.wait(stop_timeout)


def request(port: int, raw: bytes, timeout: float) -> bytes:
    """Sends one request on a fresh connection; all the server answered until it closed."""
    chunks = []
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(raw)
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


class Server:
    """One server under test, started in its own process group in a scratch directory."""

    def __init__(self, name: str, workdir: str, python: str):
        self.name, self.workdir, self.python = name, workdir, python
        self.port = free_port()
        self.proc = None

    def command(self) -> list:
        bind = f"{HOST}:{self.port}"
        bindir = os.path.dirname(self.python)
        if self.name == "fastwsgi":
            return [os.path.join(bindir, "fastwsgi"), "-w", "2", "-b", bind, "attack_app:app"]
        if self.name == "fastwsgi-threads4":
            return [os.path.join(bindir, "fastwsgi"), "-w", "2", "--threads", "4", "-b", bind,
                    "attack_app:app"]
        if self.name == "gunicorn-gthread":
            return [os.path.join(bindir, "gunicorn"), "-w", "2", "-k", "gthread", "--threads", "4",
                    "--no-control-socket", "-b", bind, "attack_app:app"]
        if self.name == "gunicorn":
            return [os.path.join(bindir, "gunicorn"), "-w", "2", "--no-control-socket", "-b", bind,
                    "attack_app:app"]
        if self.name == "nginx":
            conf = os.path.join(self.workdir, "nginx.conf")
            with open(conf, "w") as out:
                out.write(NGINX_CONF.format(dir=self.workdir, host=HOST, port=self.port))
            return [shutil.which("nginx") or "/usr/sbin/nginx", "-c", conf, "-g", "daemon off;"]
        raise ValueError(self.name)

    def __enter__(self):
        with open(os.path.join(self.workdir, "attack_app.py"), "w") as out:
            out.write(APP)
        self.log = open(os.path.join(self.workdir, f"{self.name}.log"), "w")
        self.proc = subprocess.Popen(self.command(), cwd=self.workdir, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=raise_nofile)
        wait_listening(self.port)
        time.sleep(1.0)   # every worker up
        return self

    def signal(self, signum: int) -> None:
        os.kill(self.proc.pid, signum)

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


class Probe:
    """Fresh requests at a fixed rate, each on a thread of its own so that a slow
    answer does not delay the next send; records (sent_at, latency or None)."""

    def __init__(self, port: int, rate: float, timeout: float = 10.0):
        self.port, self.rate, self.timeout = port, rate, timeout
        self.results, self.lock = [], threading.Lock()
        self.stopping = threading.Event()
        self.threads = []

    def _one(self, sent_at: float) -> None:
        latency = None
        try:
            data = request(self.port, b"GET / HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n",
                           self.timeout)
            if data.startswith(b"HTTP/1.1 200") and data.endswith(b"Hello, World!"):
                latency = time.monotonic() - sent_at
        except OSError:
            pass
        with self.lock:
            self.results.append((sent_at, latency))

    def run(self, seconds: float) -> None:
        start = time.monotonic()
        k = 0
        while not self.stopping.is_set():
            due = start + k / self.rate
            if due - start >= seconds:
                break
            time.sleep(max(0.0, due - time.monotonic()))
            thread = threading.Thread(target=self._one, args=(time.monotonic(),), daemon=True)
            thread.start()
            self.threads.append(thread)
            k += 1
        for thread in self.threads:
            thread.join(self.timeout + 5)

    def summary(self, since: float) -> dict:
        counted = [latency for sent_at, latency in self.results if sent_at >= since]
        ok = sorted(latency for latency in counted if latency is not None)
        served = len(ok) / len(counted) if counted else 0.0
        # A probe that failed counts as slower than any answered one.
        ranked = ok + [float("inf")] * (len(counted) - len(ok))
        p50 = statistics.median(ranked) if ranked else float("inf")
        p99 = ranked[min(len(ranked) - 1, int(0.99 * len(ranked)))] if ranked else float("inf")
        # None: that share of the probes was not answered at all.
        return dict(probes=len(counted), served=round(served * 100, 2),
                    p50_ms=None if p50 == float("inf") else round(p50 * 1000, 2),
                    p99_ms=None if p99 == float("inf") else round(p99 * 1000, 2))


def run_attack(server: Server, attack: str, args) -> dict:
    stats = os.path.join(server.workdir, "slowhttptest")
    cmd = ["slowhttptest", "-c", str(args.connections), "-r", str(args.connect_rate),
           "-l", str(args.length), "-u", f"http://{HOST}:{server.port}{ATTACK_PATHS.get(attack, '/')}",
           "-p", "5", "-x", "24",
           "-g", "-o", stats]
    cmd[1:1] = ATTACKS[attack]
    attacker = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                preexec_fn=raise_nofile, start_new_session=True)
    ramp = args.connections / args.connect_rate
    probe = Probe(server.port, args.probe_rate)
    start = time.monotonic()
    try:
        probe.run(args.length)
    finally:
        if attacker.poll() is None:
            os.killpg(attacker.pid, signal.SIGKILL)
        attacker.wait()
    result = probe.summary(since=start + ramp)
    result["attack_connected_max"] = attack_connections(stats + ".csv")
    result["alive"] = server.proc.poll() is None
    return result


def attack_connections(csv_path: str):
    """The most connections slowhttptest held open at once (its CSV: seconds,
    closed, pending, connected, service available)."""
    try:
        with open(csv_path) as rows:
            lines = rows.read().splitlines()[1:]
    except OSError:
        return None
    return max((int(line.split(",")[3]) for line in lines if line.count(",") >= 4), default=None)


WRK_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
WRK_NON2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
WRK_REQUESTS = re.compile(r"(\d+) requests in")


def run_wrk_with_signals(server: Server, signals: list, args) -> dict:
    wrk = subprocess.Popen(["wrk", "-t1", "-c50", f"-d{args.signal_length}s",
                            f"http://{HOST}:{server.port}/"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sent = 0
    end = time.monotonic() + args.signal_length - 2
    while time.monotonic() < end:
        time.sleep(2.0)
        server.signal(signals[sent % len(signals)])
        sent += 1
    output, _ = wrk.communicate(args.signal_length + 30)
    errors = WRK_ERRORS.search(output)
    non2xx = WRK_NON2XX.search(output)
    return dict(signals=sent,
                requests=int(WRK_REQUESTS.search(output).group(1)),
                socket_errors=sum(map(int, errors.groups())) if errors else 0,
                non_2xx=int(non2xx.group(1)) if non2xx else 0,
                alive=server.proc.poll() is None)


def run_term(server: Server) -> dict:
    answered = []

    def one() -> None:
        try:
            data = request(server.port, b"GET /sleep?1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 30)
            answered.append(data.startswith(b"HTTP/1.1 200"))
        except OSError:
            answered.append(False)

    threads = [threading.Thread(target=one) for _ in range(20)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    server.signal(signal.SIGTERM)
    for thread in threads:
        thread.join(60)
    server.proc.wait(60)
    return dict(in_flight=20, answered=sum(answered), exit_code=server.proc.returncode)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--servers", default="fastwsgi,gunicorn-gthread,nginx")
    parser.add_argument("--attacks", default=",".join(ATTACKS))
    parser.add_argument("--signals", default=",".join(SIGNALS), help="'' for none")
    parser.add_argument("--connections", type=int, default=3000)
    parser.add_argument("--connect-rate", type=int, default=500)
    parser.add_argument("--length", type=int, default=60)
    parser.add_argument("--probe-rate", type=float, default=20.0)
    parser.add_argument("--signal-length", type=int, default=30)
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter whose bin/ holds fastwsgi and gunicorn")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "attack.json"))
    args = parser.parse_args()
    raise_nofile()
    results = dict(connections=args.connections, length=args.length, probe_rate=args.probe_rate,
                   attacks={}, signals={})
    servers = [s for s in args.servers.split(",") if s]
    for attack in filter(None, args.attacks.split(",")):
        for name in servers:
            with tempfile.TemporaryDirectory() as workdir, Server(name, workdir, args.python) as server:
                row = run_attack(server, attack, args)
            results["attacks"].setdefault(attack, {})[name] = row
            print(f"{attack:10} {name:17} {json.dumps(row)}", flush=True)
    plans = {"hup": [signal.SIGHUP], "ttin_ttou": [signal.SIGTTIN, signal.SIGTTOU]}
    for kind in filter(None, args.signals.split(",")):
        for name in servers:
            if name == "nginx":
                continue
            with tempfile.TemporaryDirectory() as workdir, Server(name, workdir, args.python) as server:
                row = run_term(server) if kind == "term" else run_wrk_with_signals(server, plans[kind], args)
            results["signals"].setdefault(kind, {})[name] = row
            print(f"{kind:10} {name:17} {json.dumps(row)}", flush=True)
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as out:
        json.dump(results, out, indent=2)
    print(f"written {os.path.relpath(args.output)}")


if __name__ == "__main__":
    main()
