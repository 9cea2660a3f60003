#!/usr/bin/env python3
"""A rolling deploy across hosts behind nginx, under steady load: does any request fail
or run twice?

The run builds its own network: a namespace for the load balancer (nginx, with
upstream keep-alive, as deployments configure it) and one namespace per host, each
joined to the balancer by a veth pair with addresses of its own (10.231.N.0/24, which
exist only inside these namespaces). Each host runs ``fastwsgi -w 2`` on its own
address. A client inside the balancer's namespace sends a steady mix of GET and POST
requests to nginx over keep-alive connections, each carrying a unique id; the app
records every id it serves. The hosts are then restarted one after another, each as
an operator would:

- ``term``: SIGTERM to the master, wait for it to exit, start it again, wait until
  its workers serve;
- ``usr2``: SIGUSR2 (a new master on the same socket), wait until the new master's
  workers serve, then SIGTERM to the old master (gunicorn's binary upgrade).

At the end every response is checked: its status (any non-200 is a failure, as is a
request that got no answer), and every id is looked up in the hosts' records (an id
served twice was run twice: nginx retried a request a host had already taken).

Needs root (``ip netns``, from iproute2) and nginx (``apt-get install nginx-light``).

    sudo python bench/rolling_deploy.py --rounds term,usr2 --rate 300

prints a table and, with --json, one JSON object of the figures.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
HOST_PORT = 8000
LB_PORT = 8080

APP = '''\
import os

RECORD = os.environ["ROLLING_RECORD"]
NAME = os.environ["ROLLING_HOST"]


def app(environ, start_response):
    # Records the request's id before answering: an id recorded twice was served twice.
    request_id = environ.get("HTTP_X_REQUEST_ID", "-")
    body = environ["wsgi.input"].read()
    with open(RECORD, "a") as record:   # O_APPEND: one line, one write, whole
        record.write(request_id + "\\n")
    if environ["PATH_INFO"] == "/slow":
        import time
        time.sleep(0.2)
    answer = f"{NAME} {os.getpid()} {request_id} {len(body)}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(answer)))])
    return [answer]
'''

NGINX_CONF = '''\
worker_processes 1;
user root;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream app {{
{servers}
        keepalive 32;
        # Below the hosts' --keep-alive (2 s): nginx lets an idle connection go
        # first, so none is closed by its host as nginx sends a request on it.
        keepalive_timeout 1s;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout;
            proxy_connect_timeout 2s;
            proxy_read_timeout 30s;
        }}
    }}
}}
'''


def run(*command: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=check, capture_output=True, text=True)


def missing_requirements() -> str | None:
    """Why this machine cannot run the deploy, or None."""
    if os.geteuid() != 0:
        return "needs root for ip netns"
    for tool in ("ip", "nginx"):
        if shutil.which(tool) is None:
            return f"needs {tool} (apt-get install iproute2 nginx-light)"
    probe = f"fwprobe{os.getpid()}"
    if run("ip", "netns", "add", probe, check=False).returncode != 0:
        return "ip netns add is not permitted here"
    run("ip", "netns", "del", probe, check=False)
    return None


class Network:
    """The balancer's namespace and the hosts', joined by veth pairs; removed on exit."""

    def __init__(self, hosts: int):
        tag = f"{os.getpid() % 100000}"
        self.lb = f"fwlb{tag}"
        self.hosts = [f"fwh{tag}n{n}" for n in range(1, hosts + 1)]
        self.addresses = [f"10.231.{n}.2" for n in range(1, hosts + 1)]
        self.tag = tag

    def __enter__(self) -> "Network":
        try:
            run("ip", "netns", "add", self.lb)
            run("ip", "-n", self.lb, "link", "set", "lo", "up")
            for n, (host, address) in enumerate(zip(self.hosts, self.addresses), start=1):
                lb_end, host_end = f"fw{self.tag}a{n}", f"fw{self.tag}b{n}"
                run("ip", "netns", "add", host)
                run("ip", "-n", host, "link", "set", "lo", "up")
                run("ip", "link", "add", lb_end, "netns", self.lb, "type", "veth",
                    "peer", "name", host_end, "netns", host)
                run("ip", "-n", self.lb, "addr", "add", f"10.231.{n}.1/24", "dev", lb_end)
                run("ip", "-n", host, "addr", "add", f"{address}/24", "dev", host_end)
                run("ip", "-n", self.lb, "link", "set", lb_end, "up")
                run("ip", "-n", host, "link", "set", host_end, "up")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        for namespace in [self.lb, *self.hosts]:
            # Deleting a namespace deletes its veth ends too.
            run("ip", "netns", "del", namespace, check=False)

    def command(self, namespace: str, *command: str) -> list[str]:
        return ["ip", "netns", "exec", namespace, *command]


class Host:
    """One fastwsgi master in a host namespace; its log tells when its workers serve."""

    def __init__(self, network: Network, index: int, workdir: str, workers: int, python: str,
                 graceful_timeout: float, extra_args=(), server: str = "fastwsgi"):
        self.network, self.index, self.workers = network, index, workers
        self.namespace = network.hosts[index]
        self.address = network.addresses[index]
        self.name = f"host{index + 1}"
        self.dir = os.path.join(workdir, self.name)
        os.makedirs(self.dir)
        with open(os.path.join(self.dir, "rolling_app.py"), "w") as out:
            out.write(APP)
        self.record = os.path.join(self.dir, "served.log")
        self.log = os.path.join(self.dir, "server.log")
        self.pidfile = os.path.join(self.dir, "master.pid")
        self.python, self.graceful_timeout = python, graceful_timeout
        self.extra_args = list(extra_args)
        self.server = server
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = dict(os.environ, ROLLING_RECORD=self.record, ROLLING_HOST=self.name)
        command = self.network.command(
            self.namespace, self.python, "-m", self.server, "-b", f"{self.address}:{HOST_PORT}",
            "-w", str(self.workers), "--graceful-timeout", str(int(self.graceful_timeout)),
            "--pid", self.pidfile, *self.extra_args, "rolling_app:app")
        log = open(self.log, "a")
        mark = self.booted()
        self.proc = subprocess.Popen(command, cwd=self.dir, env=env, stdout=log, stderr=log,
                                     start_new_session=True)
        log.close()
        self.wait_booted(mark + self.workers)

    def booted(self) -> int:
        """Workers booted so far, by the log."""
        try:
            with open(self.log) as log:
                return log.read().count("Booting worker with pid")
        except FileNotFoundError:
            return 0

    def wait_booted(self, count: int, timeout: float = 30.0) -> None:
        wait_for(lambda: self.booted() >= count, timeout, f"{self.name}'s workers to boot",
                 self.log_tail)
        time.sleep(0.3)   # the workers' app loaded and their loops entered

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(FileNotFoundError):
            with open(self.log) as log:
                return "".join(log.readlines()[-lines:])
        return "(no log)"

    def master_pid(self) -> int:
        pid = read_pid(self.pidfile)
        if pid is None:
            raise RuntimeError(f"{self.name}: no pidfile")
        return pid

    def restart_term(self) -> None:
        """SIGTERM, wait for the exit, start again."""
        pid = self.master_pid()
        os.kill(pid, signal.SIGTERM)
        # by its pid: after a USR2 round the master is not this object's child
        wait_for(lambda: not alive(pid), self.graceful_timeout + 15,
                 f"{self.name}'s master to exit", self.log_tail)
        if self.proc is not None:
            self.proc.wait(5)
        self.start()

    def restart_usr2(self) -> None:
        """SIGUSR2, the new master's workers booted, SIGTERM to the old master (gunicorn's
        binary upgrade: the new master writes PIDFILE.2, and PIDFILE once promoted)."""
        old = self.master_pid()
        mark = self.booted()
        os.kill(old, signal.SIGUSR2)
        self.wait_booted(mark + self.workers)
        new = read_pid(self.pidfile + ".2")
        if new is None or new == old:
            raise RuntimeError(f"{self.name}: no new master after USR2:\n{self.log_tail()}")
        os.kill(old, signal.SIGTERM)
        wait_for(lambda: not alive(old) and read_pid(self.pidfile) == new,
                 self.graceful_timeout + 15, f"{self.name}'s old master to hand over",
                 self.log_tail)
        if self.proc is not None:
            self.proc.wait(5)
        # The new master is not this object's child: stop() signals it by the pidfile.
        self.proc = None

    def stop(self) -> None:
        pid = read_pid(self.pidfile)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + self.graceful_timeout + 5
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(os.getpgid(pid), signal.SIGKILL)
        if self.proc is not None:
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)

    def served_ids(self) -> list[str]:
        try:
            with open(self.record) as record:
                return record.read().split()
        except FileNotFoundError:
            return []


def read_pid(path: str) -> int | None:
    try:
        with open(path) as pidfile:
            return int(pidfile.read().strip())
    except (FileNotFoundError, ValueError):
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
    return True


CLIENT = r'''
import http.client, json, sys, threading, time, uuid

port, rate, connections, stop_file, out = (int(sys.argv[1]), float(sys.argv[2]),
                                           int(sys.argv[3]), sys.argv[4], sys.argv[5])
results = []
lock = threading.Lock()


def one_client(number):
    # Requests at an even pace over one keep-alive connection, a new one after an error.
    interval = connections / rate
    conn = None
    sent = 0
    next_at = time.monotonic() + number * interval / connections
    while True:
        try:
            open(stop_file).close()
            return
        except FileNotFoundError:
            pass
        now = time.monotonic()
        if now < next_at:
            time.sleep(next_at - now)
        next_at += interval
        sent += 1
        request_id = uuid.uuid4().hex
        post = sent % 3 == 0
        path = "/slow" if sent % 10 == 0 else "/"
        started = time.monotonic()
        status, body, error = 0, "", ""
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST" if post else "GET", path, body=b"x" * 1000 if post else None,
                         headers={"X-Request-Id": request_id})
            response = conn.getresponse()
            status, body = response.status, response.read().decode("latin-1")
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
        except Exception as e:
            error = repr(e)
            if conn is not None:
                conn.close()
            conn = None
        with lock:
            results.append((request_id, "POST" if post else "GET", status, body[:80], error,
                            started, time.monotonic() - started))


threads = [threading.Thread(target=one_client, args=(n,)) for n in range(connections)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
with open(out, "w") as f:
    json.dump(results, f)
'''


def deploy(rounds: list[str], hosts: int = 3, workers: int = 2, rate: float = 300.0,
           connections: int = 16, settle: float = 2.0, graceful_timeout: float = 10.0,
           python: str = sys.executable, keep: bool = False, server_args=(),
           server: str = "fastwsgi") -> dict:
    """Runs the deploy; returns its figures."""
    workdir = tempfile.mkdtemp(prefix="fastwsgi-rolling-")
    try:
        with Network(hosts) as network:
            nodes = [Host(network, i, workdir, workers, python, graceful_timeout, server_args,
                          server) for i in range(hosts)]
            nginx_dir = os.path.join(workdir, "nginx")
            os.makedirs(nginx_dir)
            servers = "\n".join(f"        server {a}:{HOST_PORT} max_fails=1 fail_timeout=2s;"
                                for a in network.addresses)
            conf = os.path.join(nginx_dir, "nginx.conf")
            with open(conf, "w") as out:
                out.write(NGINX_CONF.format(dir=nginx_dir, servers=servers, port=LB_PORT))
            nginx = None
            client = None
            try:
                for node in nodes:
                    node.start()
                nginx = subprocess.Popen(network.command(network.lb, "nginx", "-c", conf, "-p",
                                                         nginx_dir, "-g", "daemon off;"),
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                wait_for(lambda: os.path.exists(os.path.join(nginx_dir, "nginx.pid")), 10, "nginx")
                time.sleep(0.3)
                stop_file = os.path.join(workdir, "stop")
                out = os.path.join(workdir, "client.json")
                client_py = os.path.join(workdir, "client.py")
                with open(client_py, "w") as f:
                    f.write(CLIENT)
                client = subprocess.Popen(network.command(
                    network.lb, python, client_py, str(LB_PORT), str(rate), str(connections),
                    stop_file, out))
                time.sleep(settle)
                restarts = []
                for kind in rounds:
                    for node in nodes:
                        started = time.monotonic()
                        (node.restart_term if kind == "term" else node.restart_usr2)()
                        restarts.append((kind, node.name, time.monotonic() - started, started))
                        time.sleep(settle)
                open(stop_file, "w").close()
                client.wait(60)
                client = None
                with open(out) as f:
                    results = json.load(f)
                served = collections.Counter()
                for node in nodes:
                    served.update(node.served_ids())
                with open(os.path.join(nginx_dir, "nginx-error.log")) as log:
                    nginx_errors = [line.strip() for line in log if "[error]" in line]
                # A refused connect is how a stopped host says so; nginx retries it.
                refused = sum("(111: Connection refused)" in line for line in nginx_errors)
                nginx_errors = [line for line in nginx_errors
                                if "(111: Connection refused)" not in line]
            finally:
                if client is not None:
                    client.kill()
                    client.wait(5)
                if nginx is not None:
                    nginx.terminate()
                    nginx.wait(10)
                for node in nodes:
                    node.stop()
            figures = summarize(results, served, restarts, rounds, hosts, workers, rate)
            figures["nginx_refused_connects"] = refused
            figures["nginx_errors"] = nginx_errors[:10]
            return figures
    finally:
        if keep:
            print(f"rolling_deploy: logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def wait_for(condition, timeout: float, what: str, detail=lambda: "") -> None:
    """Polls ``condition`` until it holds; RuntimeError naming ``what`` (and what
    ``detail()`` then says, a log's tail) once ``timeout`` seconds have gone."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}\n{detail()}".rstrip())
        time.sleep(0.05)


def after_restart(started: float, restarts) -> str:
    """When a request began, from the start of the restart before it."""
    before = [(started - at, host, kind) for kind, host, _, at in restarts if at <= started]
    if not before:
        return "before any restart"
    offset, host, kind = min(before)
    return f"{offset:.3f} s into {host}'s {kind} restart"


def summarize(results, served, restarts, rounds, hosts, workers, rate) -> dict:
    failures = [r for r in results if r[2] != 200]
    twice = [request_id for request_id, count in served.items() if count > 1]
    unrecorded = [r for r in results if r[2] == 200 and served[r[0]] == 0]
    latencies = sorted(r[6] for r in results if r[2] == 200)
    by_host = collections.Counter(r[3].split(" ", 1)[0] for r in results if r[2] == 200)
    return {
        "rounds": rounds, "hosts": hosts, "workers": workers, "rate": rate,
        "requests": len(results), "failures": len(failures),
        "failed": [{"method": r[1], "status": r[2], "error": r[4], "body": r[3],
                    "after_restart_s": after_restart(r[5], restarts)} for r in failures[:10]],
        "served_twice": len(twice), "answered_unrecorded": len(unrecorded),
        "p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "p99_ms": (round(statistics.quantiles(latencies, n=100)[98] * 1000, 1)
                   if len(latencies) > 100 else None),
        "max_ms": round(latencies[-1] * 1000, 1) if latencies else None,
        "by_host": dict(sorted(by_host.items())),
        "restarts": [{"kind": k, "host": h, "seconds": round(s, 2)} for k, h, s, _ in restarts],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", default="term,usr2",
                    help="comma-separated restart rounds over all hosts: term, usr2")
    ap.add_argument("--hosts", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rate", type=float, default=300.0, help="requests per second in all")
    ap.add_argument("--connections", type=int, default=16, help="client keep-alive connections")
    ap.add_argument("--settle", type=float, default=2.0, help="seconds between restarts")
    ap.add_argument("--graceful-timeout", type=int, default=10)
    ap.add_argument("--python", default=sys.executable, help="the Python that runs fastwsgi")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the hosts' and nginx's logs")
    ap.add_argument("--server-args", default="", help="more server options, e.g. '--threads 4'")
    ap.add_argument("--server", default="fastwsgi", choices=("fastwsgi", "gunicorn"),
                    help="the module run as `python -m SERVER` on each host (gunicorn takes "
                         "the same options), to compare")
    args = ap.parse_args()
    why = missing_requirements()
    if why:
        print(f"rolling_deploy: {why}", file=sys.stderr)
        return 2
    rounds = [r for r in args.rounds.split(",") if r]
    unknown = set(rounds) - {"term", "usr2"}
    if unknown:
        ap.error(f"unknown rounds: {', '.join(sorted(unknown))}")
    figures = deploy(rounds, args.hosts, args.workers, args.rate, args.connections,
                     args.settle, args.graceful_timeout, args.python, args.keep,
                     args.server_args.split(), args.server)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(f"rolling deploy: {args.hosts} {args.server} hosts x -w {args.workers} "
              f"{args.server_args} behind nginx (upstream "
              f"keepalive), {args.rate:.0f} req/s over {args.connections} connections, "
              f"rounds {','.join(rounds)}")
        for key in ("requests", "failures", "served_twice", "answered_unrecorded", "p50_ms",
                    "p99_ms", "max_ms", "by_host", "nginx_refused_connects"):
            print(f"  {key:20} {figures[key]}")
        for restart in figures["restarts"]:
            print(f"  restart {restart['kind']:5} {restart['host']}: {restart['seconds']} s")
        for failed in figures["failed"]:
            print(f"  failed: {failed['method']} {failed['status']} {failed['error']} "
                  f"({failed['after_restart_s']})")
        for line in figures["nginx_errors"]:
            print(f"  nginx: {line}")
    return 0 if figures["failures"] == 0 and figures["served_twice"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
