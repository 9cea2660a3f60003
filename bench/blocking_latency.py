#!/usr/bin/env python3
"""Latency of a blocking app on one worker without threads: 20 keep-alive clients,
each request sleeping 50 ms in the app, fastwsgi against gunicorn's sync worker.

One worker serves one request at a time either way, so the throughput is the same
(1 / 50 ms); what differs is when each answer leaves. An answer must leave when its
app call ends, never held for the other clients' calls. Each server runs with `-w 1`
pinned to one core (taskset), `wrk -t1 -c20 --latency` on the other; the figures
are the medians of --repeats runs after a warm-up.

  python bench/blocking_latency.py                  # ~1 minute
  python bench/blocking_latency.py --python /path/to/venv/bin/python --servers fastwsgi
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from attack import HOST, scratch_server  # noqa: E402
from peerbench.wrk import parse_wrk  # noqa: E402

SERVER_CORE, WRK_CORE = "0", "1"
APP = '''
import time

BODY = b"Hello, World!"


def app(environ, start_response):
    time.sleep({seconds})
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [BODY]
'''


def command(server: str, bindir: str, port: int) -> list:
    args = [os.path.join(bindir, server), "-w", "1", "-b", f"{HOST}:{port}", "--keep-alive", "30"]
    if server == "gunicorn":
        args.append("--no-control-socket")
    return ["taskset", "-c", SERVER_CORE] + args + ["blocking_app:app"]


def measure(server: str, bindir: str, args) -> dict:
    app = APP.format(seconds=args.sleep_ms / 1000.0)
    with scratch_server("blocking_app", app, lambda port, _: command(server, bindir, port)) as (_, port, _):
        time.sleep(1.0)
        url = f"http://{HOST}:{port}/"
        wrk = ["taskset", "-c", WRK_CORE, "wrk", "-t1", f"-c{args.connections}", "--latency",
               "--timeout", "10s"]
        subprocess.run(wrk + [f"-d{args.warmup}s", url], capture_output=True, check=True)
        runs = [parse_wrk(subprocess.run(wrk + [f"-d{args.duration}s", url], capture_output=True,
                                         text=True, check=True).stdout)
                for _ in range(args.repeats)]
    return {key: statistics.median(run["latency_ms"][key] for run in runs) for key in ("p50", "p99", "max")} | {
        "rps": statistics.median(run["rps"] for run in runs),
        "errors": sum(sum(run["errors"].values()) for run in runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--servers", default="fastwsgi,gunicorn")
    parser.add_argument("--sleep-ms", type=float, default=50.0)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter whose bin/ holds fastwsgi and gunicorn")
    args = parser.parse_args()
    bindir = os.path.dirname(args.python)
    print("| server | req/s | p50 ms | p99 ms | max ms | socket errors |\n|---|---:|---:|---:|---:|---:|")
    for server in args.servers.split(","):
        cell = measure(server, bindir, args)
        print(f"| {server} | {cell['rps']:,.1f} | {cell['p50']:,.0f} | {cell['p99']:,.0f} | "
              f"{cell['max']:,.0f} | {cell['errors']} |", flush=True)


if __name__ == "__main__":
    main()
