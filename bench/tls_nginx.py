#!/usr/bin/env python3
"""TLS against the C ceiling: fastwsgi beside nginx on the same certificate, TLS
version, cipher suite and key-exchange group, hello world over HTTPS.

Three rows; both servers pinned to core 0 (fastwsgi's master and its one worker,
nginx's single process), up at once and measured in turns, the clients on core 1:

- keep-alive: ``wrk -t1 -c50`` over TLS (a warm-up, then --repeats runs, the median);
- full handshakes: ``openssl s_time -new -www /``, a new connection and a full
  handshake for every request, --clients of them at once;
- resumed handshakes: ``openssl s_time -reuse -www /``, every connection resuming the
  session of the one before (a TLS 1.3 ticket, or a TLS 1.2 ticket or session id).

s_time prints one character a connection, ``r`` for one whose session was resumed:
a full row with a resumed connection in it, or a resumed row where one was not, is
an error, not a figure. The protocol, suite and group fastwsgi negotiates by default
(``openssl s_client``) are what nginx is configured to; both are printed, and a
difference stops the run. Beside each figure: the server's CPU time per request or
handshake (its process group's user + system time over the run), which a busy
machine disturbs less than the rate.

With --callgrind, each server runs under valgrind's callgrind instead, and the
figure is its instructions per request or handshake: a Python client makes N, then
FACTOR x N of them, one at a time, checking each answer and its session_reused, and
the difference of the two totals over the difference of the counts drops start-up
and shutdown out, as bench/callgrind.py does.

  python bench/tls_nginx.py                        # ~1.5 min
  python bench/tls_nginx.py --callgrind            # ~10 min
  python bench/tls_nginx.py --duration 10 --repeats 5 --json tls_nginx.json
  python bench/tls_nginx.py --python other/venv/bin/python   # another build of ours
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from apps import HELLO  # noqa: E402
from callgrind import read_totals  # noqa: E402
from peerbench import HOST  # noqa: E402
from peerbench.processes import free_port, group_cpu_seconds  # noqa: E402
from peerbench.tls import Certificate, make_certificate  # noqa: E402
from peerbench.wrk import parse_wrk, run_wrk  # noqa: E402

SERVER_CORE, CLIENT_CORE = "0", "1"
SERVERS = ("fastwsgi", "nginx")

NGINX_CONF = '''
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 65536;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_timeout 65;
    keepalive_requests 100000000;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen {host}:{port} ssl backlog=2048;
        ssl_certificate {certfile};
        ssl_certificate_key {keyfile};
{tls}
        # Resumption as fastwsgi offers it: tickets (stateless, the only kind TLS 1.3
        # resumes with here) and a session cache for TLS 1.2 session ids.
        ssl_session_tickets on;
        ssl_session_cache shared:TLS:10m;
        location / {{
            default_type text/plain;
            return 200 "{body}";
        }}
    }}
}}
'''


# ------------------------------------------------------------------ the servers


class Server:
    """One server's process group, pinned to SERVER_CORE; stopped by stop()."""

    def __init__(self, name: str, cmd: list, cwd: str, port: int, timeout: float, wrapper=()):
        self.name, self.port = name, port
        self.proc = subprocess.Popen(["taskset", "-c", SERVER_CORE, *wrapper] + cmd, cwd=cwd,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited with code {self.proc.returncode} before listening")
            try:
                socket.create_connection((HOST, port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{name} did not listen within {timeout:.0f} s") from None
                time.sleep(0.1)

    def cpu_seconds(self) -> float:
        return group_cpu_seconds(self.proc.pid)

    def stop(self, timeout: float = 5) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout)
                return
            except subprocess.TimeoutExpired:
                continue


def start_fastwsgi(args, cert: Certificate, wrapper=()) -> Server:
    """The command line a user runs: one worker, gunicorn's certfile/keyfile."""
    port = free_port()
    cmd = [args.python, "-m", "fastwsgi", "-w", "1", "-b", f"{HOST}:{port}",
           "--certfile", cert.certfile, "--keyfile", cert.keyfile, "--no-control-socket",
           "apps:hello"]
    return Server("fastwsgi", cmd, HERE, port, args.startup_timeout, wrapper)


def nginx_tls_settings(tls: dict) -> str:
    """nginx held to one protocol, suite and group: those fastwsgi negotiated."""
    lines = [f"ssl_protocols {tls['protocol']};", f"ssl_ecdh_curve {tls['group']};"]
    if tls["protocol"] == "TLSv1.3":
        lines.append(f"ssl_conf_command Ciphersuites {tls['cipher']};")
    else:
        lines.append(f"ssl_ciphers {tls['cipher']};")
    return "\n".join(" " * 8 + line for line in lines)


def start_nginx(args, cert: Certificate, tls: dict, workdir: str, wrapper=()) -> Server:
    port = free_port()
    conf = os.path.join(workdir, "nginx.conf")
    with open(conf, "w") as out:
        out.write(NGINX_CONF.format(dir=workdir, host=HOST, port=port, certfile=cert.certfile,
                                    keyfile=cert.keyfile, tls=nginx_tls_settings(tls),
                                    body=HELLO.decode()))
    return Server("nginx", [args.nginx, "-c", conf, "-p", workdir], workdir, port,
                  args.startup_timeout, wrapper)


# ------------------------------------------------------------------ checks


def negotiated(port: int, timeout: float = 10) -> dict:
    """The protocol, cipher suite and key-exchange group a default OpenSSL client gets."""
    out = subprocess.run(["openssl", "s_client", "-connect", f"{HOST}:{port}", "-brief"],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=timeout, check=False).stderr
    protocol = re.search(r"^Protocol version: (\S+)", out, re.MULTILINE)
    cipher = re.search(r"^Ciphersuite: (\S+)", out, re.MULTILINE)
    # "Server Temp Key: X25519, 253 bits" or "... ECDH, prime256v1, 256 bits"
    group = re.search(r"^Server Temp Key: (?:ECDH, )?([^,\s]+)", out, re.MULTILINE)
    if not (protocol and cipher and group):
        raise RuntimeError(f"openssl s_client could not tell what was negotiated:\n{out[-500:]}")
    return {"protocol": protocol.group(1), "cipher": cipher.group(1), "group": group.group(1)}


def check_hello(port: int, timeout: float = 10) -> None:
    """One HTTPS request: the server must answer 200 with the hello body."""
    with socket.create_connection((HOST, port), timeout=timeout) as raw, \
            client_context().wrap_socket(raw) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    if not answer.startswith(b"HTTP/1.1 200 ") or not answer.endswith(HELLO):
        raise RuntimeError(f"bad answer on port {port}: {answer[:200]!r}")


# ------------------------------------------------------------------ the loads


def measure(server: Server, run) -> dict:
    """One run of a load, with the server's CPU seconds over it."""
    before = server.cpu_seconds()
    result = run()
    result["server_cpu_us"] = (server.cpu_seconds() - before) * 1e6 / max(result["count"], 1)
    return result


def keep_alive(args, port: int, seconds: float) -> dict:
    cmd = ["taskset", "-c", CLIENT_CORE, args.wrk, "-t1", f"-c{args.connections}",
           f"-d{seconds:g}s", f"https://{HOST}:{port}/"]
    code, out = run_wrk(cmd, seconds)
    summary = parse_wrk(out)
    errors = sum(summary["errors"].values()) + summary["non2xx"]
    if code != 0 or summary["rps"] is None or errors:
        raise RuntimeError(f"wrk failed (exit {code}, {errors} errors):\n{out[-500:]}")
    return {"rate": summary["rps"], "count": summary["requests"]}


# s_time's progress: one character a connection, "r" when its session was resumed.
_CONNECTION_MARKS = re.compile(r"^[r*t3]+$", re.MULTILINE)


def handshakes(args, port: int, seconds: float, resumed: bool) -> dict:
    """--clients s_time processes at once, each a new connection per request."""
    cmd = ["taskset", "-c", CLIENT_CORE, "openssl", "s_time", "-connect", f"{HOST}:{port}",
           "-reuse" if resumed else "-new", "-www", "/", "-time", f"{seconds:g}"]
    started = time.monotonic()
    clients = [subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
               for _ in range(args.clients)]
    outputs = []
    try:
        for client in clients:
            outputs.append(client.communicate(timeout=seconds + 30)[0])
    finally:
        for client in clients:
            if client.poll() is None:
                os.killpg(client.pid, signal.SIGKILL)
                client.wait()
    elapsed = time.monotonic() - started
    marks = "".join("".join(_CONNECTION_MARKS.findall(out)) for out in outputs)
    reused = marks.count("r")
    bytes_read = [int(m) for out in outputs
                  for m in re.findall(r"(\d+) bytes read per connection", out)]
    if not marks or len(bytes_read) != args.clients or min(bytes_read) == 0:
        raise RuntimeError("s_time made no requests:\n" + outputs[0][-500:])
    if resumed and reused < len(marks):
        raise RuntimeError(f"{len(marks) - reused} of {len(marks)} connections not resumed")
    if not resumed and reused:
        raise RuntimeError(f"{reused} of {len(marks)} connections resumed without asking")
    return {"rate": len(marks) / elapsed, "count": len(marks), "resumed": reused}


def summary(runs: list) -> dict:
    return {"rate": statistics.median(run["rate"] for run in runs),
            "server_cpu_us": statistics.median(run["server_cpu_us"] for run in runs),
            "runs": runs}


ROWS = {
    "keep-alive": lambda args, port: lambda seconds: keep_alive(args, port, seconds),
    "full handshake": lambda args, port: lambda seconds: handshakes(args, port, seconds, False),
    "resumed handshake": lambda args, port: lambda seconds: handshakes(args, port, seconds, True),
}


# ------------------------------------------------------------------ instructions (--callgrind)

REQUEST_1_0 = b"GET / HTTP/1.0\r\n\r\n"   # what s_time -www / sends: one request, then close


def client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE   # the run's own throwaway certificate
    return context


def counted_connections(port: int, count: int, resumed: bool, timeout: float) -> None:
    """`count` connections one after another, a request each, after one that starts
    the session; each resumes the session of the one before, or none does."""
    context = client_context()
    session = None
    for i in range(count + 1):
        with socket.create_connection((HOST, port), timeout=timeout) as raw, \
                context.wrap_socket(raw, session=session if resumed else None) as sock:
            sock.sendall(REQUEST_1_0)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            if i and sock.session_reused != resumed:
                raise RuntimeError(f"connection {i}: session_reused is {sock.session_reused}")
            session = sock.session
        if not answer.startswith(b"HTTP/1.1 200 ") or not answer.endswith(HELLO):
            raise RuntimeError(f"bad answer: {answer[:200]!r}")


def counted_requests(port: int, count: int, timeout: float) -> None:
    """`count` requests on one keep-alive connection, one at a time."""
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection((HOST, port), timeout=timeout) as raw:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with client_context().wrap_socket(raw) as sock:
            answer = b""
            for _ in range(count):
                sock.sendall(request)
                while not answer.endswith(HELLO):
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise RuntimeError("the server closed the keep-alive connection")
                    answer += chunk
                if not answer.startswith(b"HTTP/1.1 200 "):
                    raise RuntimeError(f"bad answer: {answer[:200]!r}")
                answer = b""


# Each row's client, and how many of its units (requests or connections) the small run
# makes for one --count.
COUNTED_ROWS = {
    "keep-alive": (lambda port, n, timeout: counted_requests(port, n, timeout), 10),
    "full handshake": (lambda port, n, timeout: counted_connections(port, n, False, timeout), 1),
    "resumed handshake": (lambda port, n, timeout: counted_connections(port, n, True, timeout), 1),
}


def instructions_of_run(args, start, row: str, count: int, workdir: str) -> int:
    """Instructions the server's serving process(es) executed in one run of `count`:
    every callgrind file but the fastwsgi master's (it serves no connection)."""
    out_dir = tempfile.mkdtemp(prefix="callgrind-", dir=workdir)
    wrapper = [args.valgrind, "--tool=callgrind", "-q", f"--callgrind-out-file={out_dir}/%p"]
    server = start(wrapper)
    try:
        COUNTED_ROWS[row][0](server.port, count, args.callgrind_timeout)
    finally:
        server.stop(timeout=args.callgrind_timeout)
    files = [name for name in os.listdir(out_dir)
             if server.name == "nginx" or int(name) != server.proc.pid]
    if not files:
        raise RuntimeError(f"{server.name} left no callgrind output")
    return sum(read_totals(os.path.join(out_dir, name)) for name in files)


def instructions_per_unit(args, start, row: str, workdir: str) -> float:
    """(total of FACTOR x N - total of N) / ((FACTOR - 1) x N): start-up and shutdown
    cost the same in both runs and drop out, as in callgrind.py."""
    small = args.count * COUNTED_ROWS[row][1]
    big = small * args.factor
    difference = (instructions_of_run(args, start, row, big, workdir)
                  - instructions_of_run(args, start, row, small, workdir))
    return difference / (big - small)


def count_instructions(args, cert: Certificate, tls: dict, workdir: str) -> dict:
    starts = {"fastwsgi": lambda wrapper: start_fastwsgi(args, cert, wrapper),
              "nginx": lambda wrapper: start_nginx(args, cert, tls, workdir, wrapper)}
    results: dict = {name: {} for name in SERVERS}
    for name in SERVERS:
        for row in COUNTED_ROWS:
            results[name][row] = instructions_per_unit(args, starts[name], row, workdir)
            print(f"{name:8} {row:19} {results[name][row]:>12,.0f} instructions each", flush=True)
    return results


# ------------------------------------------------------------------ the rates


def measure_rates(args, cert: Certificate, tls: dict, workdir: str) -> dict:
    """Both servers up at once (the one not measured sleeps), their runs taking turns,
    so that a change in the machine's other load reaches both alike."""
    servers = {}
    try:
        servers["fastwsgi"] = start_fastwsgi(args, cert)
        servers["nginx"] = start_nginx(args, cert, tls, workdir)
        results: dict = {name: {} for name in SERVERS}
        for row, load in ROWS.items():
            loads = {name: load(args, server.port) for name, server in servers.items()}
            for name in SERVERS:
                loads[name](args.warmup)
            runs: dict = {name: [] for name in SERVERS}
            for _ in range(args.repeats):
                for name in SERVERS:
                    runs[name].append(measure(servers[name], functools.partial(loads[name], args.duration)))
            for name in SERVERS:
                results[name][row] = summary(runs[name])
                print(f"{name:8} {row:19} {results[name][row]['rate']:>10,.0f} /s"
                      f"  server CPU {results[name][row]['server_cpu_us']:.1f} µs each", flush=True)
        return results
    finally:
        for server in servers.values():
            server.stop()


def negotiated_alike(args, cert: Certificate, workdir: str) -> dict:
    """What fastwsgi negotiates by default, and nginx held to the same; both answer hello."""
    tls = None
    for name in SERVERS:
        server = start_fastwsgi(args, cert) if name == "fastwsgi" else start_nginx(args, cert, tls, workdir)
        try:
            spoken = negotiated(server.port)
            check_hello(server.port)
        finally:
            server.stop()
        print(f"{name:8} negotiates {spoken['protocol']} {spoken['cipher']} {spoken['group']}", flush=True)
        if tls is not None and spoken != tls:
            raise RuntimeError("nginx negotiates other parameters than fastwsgi")
        tls = spoken
    return tls


# ------------------------------------------------------------------ the report


def print_rates(results: dict) -> None:
    print(f"\n{'row':19} {'fastwsgi /s':>12} {'nginx /s':>12} {'ratio':>6}"
          f"   server CPU each: {'fastwsgi':>9} {'nginx':>9}")
    for row in ROWS:
        ours, theirs = results["fastwsgi"][row], results["nginx"][row]
        print(f"{row:19} {ours['rate']:>12,.0f} {theirs['rate']:>12,.0f}"
              f" {ours['rate'] / theirs['rate']:>6.2f}"
              f"   {'':17}{ours['server_cpu_us']:>7.1f}µs {theirs['server_cpu_us']:>7.1f}µs")


def print_instructions(results: dict) -> None:
    print(f"\n{'row':19} {'fastwsgi':>12} {'nginx':>12}  nginx / fastwsgi   (instructions each)")
    for row in COUNTED_ROWS:
        ours, theirs = results["fastwsgi"][row], results["nginx"][row]
        print(f"{row:19} {ours:>12,.0f} {theirs:>12,.0f}  {theirs / ours:>16.2f}")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="the interpreter whose fastwsgi runs")
    parser.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    parser.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    parser.add_argument("--duration", type=float, default=5, help="seconds of each measured run")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of the uncounted first run")
    parser.add_argument("--repeats", type=int, default=3, help="measured runs a row; the median is shown")
    parser.add_argument("--connections", type=int, default=50, help="wrk's keep-alive connections")
    parser.add_argument("--clients", type=int, default=4,
                        help="s_time processes at once on the handshake rows")
    parser.add_argument("--startup-timeout", type=float, default=20)
    parser.add_argument("--callgrind", action="store_true",
                        help="count each server's instructions per request or handshake under "
                             "valgrind instead of measuring rates")
    parser.add_argument("--count", type=int, default=100,
                        help="--callgrind: connections of the small run (requests: 10x)")
    parser.add_argument("--factor", type=int, default=5, help="--callgrind: the big run is this x the small")
    parser.add_argument("--callgrind-timeout", type=float, default=180)
    parser.add_argument("--valgrind", default=shutil.which("valgrind") or "valgrind")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args(argv)
    if args.callgrind:
        args.startup_timeout = max(args.startup_timeout, args.callgrind_timeout)
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tls-nginx-") as workdir:
        cert = make_certificate(os.path.join(workdir, "certificate"))
        tls = negotiated_alike(args, cert, workdir)
        if args.callgrind:
            results = count_instructions(args, cert, tls, workdir)
            print_instructions(results)
        else:
            results = measure_rates(args, cert, tls, workdir)
            print_rates(results)
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"tls": tls, "callgrind": args.callgrind, "clients": args.clients,
                       "connections": args.connections, "results": results}, out, indent=1)


if __name__ == "__main__":
    main()
