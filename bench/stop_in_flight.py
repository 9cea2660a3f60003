#!/usr/bin/env python3
"""What a graceful stop does to requests already in: 20 connections each send a
one-second request to `-w 2`, the master gets TERM (or HUP) half a second later;
how many are answered 200, how many refused (503), how many lost, and when the last
answer came. fastwsgi with and without threads against gunicorn's gthread and sync.

  python bench/stop_in_flight.py                    # ~2 minutes
  python bench/stop_in_flight.py --signal HUP --graceful-timeout 30
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from attack import HOST, scratch_server  # noqa: E402

APP = '''
import time


def app(environ, start_response):
    time.sleep(float(environ.get("QUERY_STRING") or 1))
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
'''
CONFIGS = {
    "fastwsgi": ("fastwsgi", []),
    "fastwsgi-threads4": ("fastwsgi", ["--threads", "4"]),
    "gunicorn-sync": ("gunicorn", ["--no-control-socket"]),
    "gunicorn-gthread8": ("gunicorn", ["--no-control-socket", "-k", "gthread", "--threads", "8"]),
}


def one_request(port: int, seconds: float, out: list, index: int, began: float) -> None:
    try:
        with socket.create_connection((HOST, port), timeout=40) as sock:
            sock.sendall(b"GET /?%g HTTP/1.1\r\nHost: x\r\n\r\n" % seconds)
            answer = sock.recv(65536)
        status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/1.1 ") else "lost"
    except OSError:
        status = "lost"
    out[index] = (status, time.monotonic() - began)


def measure(name: str, bindir: str, args) -> dict:
    program, extra = CONFIGS[name]
    def start(port: int, _workdir: str) -> list:
        return [os.path.join(bindir, program), "-w", "2", "-b", f"{HOST}:{port}",
                "--graceful-timeout", f"{args.graceful_timeout:g}", *extra, "stop_app:app"]

    with scratch_server("stop_app", APP, start, stop_timeout=args.graceful_timeout + 10) as (proc, port, _):
        time.sleep(2.0)   # both workers booted
        results: list = [None] * args.requests
        began = time.monotonic()
        threads = [threading.Thread(target=one_request, args=(port, args.seconds, results, i, began))
                   for i in range(args.requests)]
        for thread in threads:
            thread.start()
        time.sleep(args.signal_after)
        proc.send_signal(getattr(signal, "SIG" + args.signal))
        for thread in threads:
            thread.join(args.graceful_timeout + 20)
        if args.signal == "TERM":
            proc.wait(args.graceful_timeout + 10)
    statuses = [r[0] if r else "lost" for r in results]
    answered = [r[1] for r in results if r and r[0] != "lost"]
    return {"200": statuses.count("200"), "503": statuses.count("503"),
            "lost": len(statuses) - statuses.count("200") - statuses.count("503"),
            "last": max(answered) if answered else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--signal", default="TERM", choices=("TERM", "HUP"))
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--signal-after", type=float, default=0.5)
    parser.add_argument("--graceful-timeout", type=float, default=10)
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter whose bin/ holds fastwsgi and gunicorn")
    args = parser.parse_args()
    bindir = os.path.dirname(args.python)
    print(f"{args.signal} at {args.signal_after}s, {args.requests} x {args.seconds}s requests, -w 2, "
          f"graceful_timeout {args.graceful_timeout}s\n")
    print("| server | 200 | 503 | lost | last answer (s) |\n|---|---:|---:|---:|---:|")
    for name in args.configs.split(","):
        cell = measure(name, bindir, args)
        last = f"{cell['last']:.1f}" if cell["last"] is not None else "-"
        print(f"| {name} | {cell['200']} | {cell['503']} | {cell['lost']} | {last} |", flush=True)


if __name__ == "__main__":
    main()
