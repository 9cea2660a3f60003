#!/usr/bin/env python3
"""Worker memory per idle connection: plain, and TLS after a completed handshake.

One fastwsgi worker (``fastwsgi -w 1``) serves hello; this script opens N keep-alive
connections, sends one request on each (so every TLS handshake is complete and every
connection has been through a request), leaves them idle, and reads the worker's
RSS from /proc before and after. Prints the growth per connection. ``--servers``
adds peers, plain only, measured alike: gunicorn's gthread worker (from the peers
venv) and nginx's ``return 200`` (its one worker process).

    python bench/idle_memory.py --connections 1000          # plain and TLS
    python bench/idle_memory.py --connections 1000 --tls-only
    python bench/idle_memory.py --connections 10000 --servers fastwsgi,gthread,nginx

The worker's keepalive is raised so the connections stay open while they are
counted; the file-descriptor limit of this process is raised to fit them.
"""
from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def worker_pid(master: int, timeout: float = 15.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            children = open(f"/proc/{master}/task/{master}/children").read().split()
        except OSError:
            children = []
        if children:
            return int(children[0])
        time.sleep(0.05)
    raise RuntimeError("the worker did not start")


def certificate(directory: str) -> tuple[str, str]:
    key, cert = os.path.join(directory, "key.pem"), os.path.join(directory, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


DEFAULT_PEERS_PYTHON = os.path.expanduser("~/.cache/fastwsgi-bench/peers/bin/python")
NGINX_CONF = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log error;
events {{ worker_connections {connections}; }}
http {{
    access_log off;
    keepalive_timeout 600;
    keepalive_requests 100000;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "Hello, World!"; }}
    }}
}}
"""


def server_args(server: str, port: int, connections: int, directory: str, peers_python: str):
    if server == "fastwsgi":
        return [sys.executable, "-m", "fastwsgi", "-w", "1", "-b", f"127.0.0.1:{port}",
                "--keep-alive", "600", "--worker-connections", str(connections + 10),
                "--log-level", "warning", "apps:hello"]
    if server == "gthread":
        return [peers_python, "-m", "gunicorn", "-k", "gthread", "--threads", "4", "-w", "1",
                "-b", f"127.0.0.1:{port}", "--keep-alive", "600", "--worker-connections",
                str(connections + 10), "--log-level", "warning", "--no-control-socket",
                "apps:hello"]
    if server == "nginx":
        conf = os.path.join(directory, "nginx.conf")
        with open(conf, "w") as out:
            out.write(NGINX_CONF.format(dir=directory, port=port, connections=connections + 100))
        return [shutil.which("nginx") or "/usr/sbin/nginx", "-c", conf, "-p", directory,
                "-g", "daemon off;"]
    raise ValueError(f"unknown server {server!r}")


def measure(connections: int, tls: bool, directory: str, server: str = "fastwsgi",
            peers_python: str = DEFAULT_PEERS_PYTHON) -> dict:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = server_args(server, port, connections, directory, peers_python)
    if tls:
        cert, key = certificate(directory)
        args[3:3] = ["--certfile", cert, "--keyfile", key]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, HERE]))
    master = subprocess.Popen(args, cwd=HERE, env=env, stderr=subprocess.DEVNULL)
    sockets = []
    try:
        pid = worker_pid(master.pid)
        context = None
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        warm = open_connection(port, context)   # the first request's one-time costs
        sockets.append(warm)
        time.sleep(0.3)
        before = rss_kib(pid)
        for _ in range(connections):
            sockets.append(open_connection(port, context))
        time.sleep(0.5)
        after = rss_kib(pid)
    finally:
        for sock in sockets:
            sock.close()
        master.terminate()
        master.wait(15)
    return {"server": server, "tls": tls, "connections": connections, "rss_before_kib": before, "rss_after_kib": after,
            "kib_per_connection": (after - before) / connections}


def open_connection(port: int, context: ssl.SSLContext | None) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if context is not None:
        sock = context.wrap_socket(sock)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = b""
    while not re.search(rb"\r\n\r\nHello, World!$", answer):
        data = sock.recv(4096)
        if not data:
            raise RuntimeError("closed")
        answer += data
    return sock


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--tls-only", action="store_true")
    parser.add_argument("--servers", default="fastwsgi", help="fastwsgi, gthread, nginx (peers: plain only)")
    parser.add_argument("--peers-python", default=DEFAULT_PEERS_PYTHON,
                        help="the interpreter whose gunicorn runs")
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.connections * 2 + 100)), hard))
    for server in args.servers.split(","):
        for tls in ([True] if args.tls_only else [False, True]):
            if tls and server != "fastwsgi":
                continue
            with tempfile.TemporaryDirectory() as directory:
                result = measure(args.connections, tls, directory, server, args.peers_python)
            print(f"{server:9} {'TLS  ' if tls else 'plain'} {result['connections']} idle connections: worker RSS "
                  f"{result['rss_before_kib']} -> {result['rss_after_kib']} KiB, "
                  f"{result['kib_per_connection']:.1f} KiB per connection")
    return 0


if __name__ == "__main__":
    sys.exit(main())
