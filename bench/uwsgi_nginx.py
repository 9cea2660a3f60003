#!/usr/bin/env python3
"""Requests per second through nginx: `uwsgi_pass` to `--protocol uwsgi` (fastwsgi,
gunicorn 27), against fastwsgi's own HTTP/1.1 behind `proxy_pass` (upstream
keep-alive), one run each.

One worker per server, pinned to core 0; nginx (one worker process) and wrk on core
1, wrk keeping its connections to nginx alive. nginx opens a new connection to a uwsgi
upstream for every request (its uwsgi module keeps none), so the uwsgi rows pay for a
connection per request where the proxy_pass row reuses its upstream connections.

  python bench/uwsgi_nginx.py                    # ~40 s
  python bench/uwsgi_nginx.py --duration 20 --peers-python ~/.cache/fastwsgi-bench/peers/bin/python
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from attack import HOST, free_port, scratch_server, wait_listening  # noqa: E402

SERVER_CORE, FRONT_CORE = "0", "1"
DEFAULT_PEERS_PYTHON = os.path.expanduser("~/.cache/fastwsgi-bench/peers/bin/python")
APP = '''
BODY = b"Hello, World!"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def app(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
'''
NGINX_CONF = '''
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log error;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    uwsgi_temp_path {dir}/uwsgi;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    scgi_temp_path {dir}/scgi;
    upstream app {{
        server {host}:{upstream_port};
        keepalive 32;
    }}
    server {{
        listen {host}:{port};
        location / {{
{location}
        }}
    }}
}}
'''
# What nginx's uwsgi_params file sets (written out: distributions put it in different
# places); tests/support/uwsgi.py uses it too.
UWSGI_PARAMS = '''
            uwsgi_param QUERY_STRING $query_string;
            uwsgi_param REQUEST_METHOD $request_method;
            uwsgi_param CONTENT_TYPE $content_type;
            uwsgi_param CONTENT_LENGTH $content_length;
            uwsgi_param REQUEST_URI $request_uri;
            uwsgi_param PATH_INFO $document_uri;
            uwsgi_param DOCUMENT_ROOT $document_root;
            uwsgi_param SERVER_PROTOCOL $server_protocol;
            uwsgi_param REQUEST_SCHEME $scheme;
            uwsgi_param HTTPS $https if_not_empty;
            uwsgi_param REMOTE_ADDR $remote_addr;
            uwsgi_param REMOTE_PORT $remote_port;
            uwsgi_param SERVER_PORT $server_port;
            uwsgi_param SERVER_NAME $server_name;
'''
UWSGI_LOCATION = UWSGI_PARAMS + '''            uwsgi_pass app;'''
PROXY_LOCATION = '''
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://app;'''
# (row name, server, its --protocol, nginx's location)
ROWS = [
    ("fastwsgi uwsgi", "fastwsgi", "uwsgi", UWSGI_LOCATION),
    ("gunicorn uwsgi", "gunicorn", "uwsgi", UWSGI_LOCATION),
    ("fastwsgi http (proxy_pass)", "fastwsgi", "http", PROXY_LOCATION),
]


def server_command(server: str, python: str, protocol: str):
    def command(port, workdir):
        args = [python, "-m", server, "-w", "1", "-b", f"{HOST}:{port}", "--protocol", protocol,
                "--keep-alive", "30"]
        if server == "gunicorn":
            args.append("--no-control-socket")
        return ["taskset", "-c", SERVER_CORE] + args + ["bench_app:app"]
    return command


def run_nginx(workdir: str, upstream_port: int, location: str):
    port = free_port()
    conf = os.path.join(workdir, "nginx.conf")
    with open(conf, "w") as out:
        out.write(NGINX_CONF.format(dir=workdir, host=HOST, port=port, upstream_port=upstream_port,
                                    location=location))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = subprocess.Popen(["taskset", "-c", FRONT_CORE, nginx, "-c", conf, "-p", workdir,
                             "-g", "daemon off;"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    wait_listening(port)
    return proc, port


def wrk(port: int, seconds: int, connections: int) -> dict:
    out = subprocess.run(["taskset", "-c", FRONT_CORE, "wrk", "-t1", f"-c{connections}",
                          f"-d{seconds}s", f"http://{HOST}:{port}/"],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {"requests_per_second": rps, "non_2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": socket_errors.group(1) if socket_errors else ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds measured per row")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--python", default=sys.executable, help="the interpreter whose fastwsgi runs")
    parser.add_argument("--peers-python", default=DEFAULT_PEERS_PYTHON,
                        help="the interpreter whose gunicorn runs")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    results = []
    for name, server, protocol, location in ROWS:
        python = args.python if server == "fastwsgi" else args.peers_python
        with scratch_server("bench_app", APP, server_command(server, python, protocol)) as (_, port, _dir):
            with tempfile.TemporaryDirectory() as nginx_dir:
                nginx, front_port = run_nginx(nginx_dir, port, location)
                try:
                    wrk(front_port, args.warmup, args.connections)
                    row = {"row": name, **wrk(front_port, args.duration, args.connections)}
                finally:
                    os.killpg(nginx.pid, signal.SIGTERM)
                    nginx.wait(10)
        results.append(row)
        print(f"{name:30} {row['requests_per_second']:>10,.0f} requests/s"
              f"  non-2xx {row['non_2xx']}  {row['socket_errors']}", flush=True)
        time.sleep(1)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=1)


if __name__ == "__main__":
    main()
