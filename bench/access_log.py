#!/usr/bin/env python3
"""What the access log costs: hello world with and without `--access-logfile FILE`,
fastwsgi against gunicorn, one worker each, in one run.

Each server runs with `-w 1` pinned to one core (taskset), `wrk -t1 -c50` on the
other; every cell is the median of --repeats runs after a warm-up. The log goes to a
file in a scratch directory (gunicorn's default format for both servers).

  python bench/access_log.py                       # ~2 minutes
  python bench/access_log.py --repeats 5 --duration 10
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from attack import APP, HOST, scratch_server  # noqa: E402

SERVER_CORE, WRK_CORE = "0", "1"
REQUESTS_PER_SEC = re.compile(r"Requests/sec:\s+([\d.]+)")


def command(server: str, bindir: str, port: int, log_file: str | None) -> list:
    args = [os.path.join(bindir, server), "-w", "1", "-b", f"{HOST}:{port}"]
    if server == "gunicorn":
        args.append("--no-control-socket")
    if log_file:
        args += ["--access-logfile", log_file]
    return ["taskset", "-c", SERVER_CORE] + args + ["attack_app:app"]


def measure(server: str, bindir: str, with_log: bool, args) -> dict:
    def log_path(workdir: str) -> str | None:
        return os.path.join(workdir, "access.log") if with_log else None

    def start(port: int, workdir: str) -> list:
        return command(server, bindir, port, log_path(workdir))

    with scratch_server("attack_app", APP, start) as (_, port, workdir):
        time.sleep(1.0)
        url = f"http://{HOST}:{port}/"
        wrk = ["taskset", "-c", WRK_CORE, "wrk", "-t1", "-c50"]
        subprocess.run(wrk + [f"-d{args.warmup}s", url], capture_output=True, check=True)
        runs = []
        for _ in range(args.repeats):
            output = subprocess.run(wrk + [f"-d{args.duration}s", url], capture_output=True,
                                    text=True, check=True).stdout
            runs.append(float(REQUESTS_PER_SEC.search(output).group(1)))
        log_file = log_path(workdir)
        lines = sum(1 for _ in open(log_file)) if log_file else 0
    return dict(median=statistics.median(runs), runs=runs, log_lines=lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--servers", default="fastwsgi,gunicorn")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter whose bin/ holds fastwsgi and gunicorn")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "access_log.json"))
    args = parser.parse_args()
    bindir = os.path.dirname(args.python)
    results = {}
    for server in args.servers.split(","):
        for with_log in (False, True):
            cell = measure(server, bindir, with_log, args)
            results.setdefault(server, {})["with log" if with_log else "no log"] = cell
            print(f"{server:9} {'with log' if with_log else 'no log':8} "
                  f"{cell['median']:>10,.0f} req/s  runs {cell['runs']}  lines {cell['log_lines']}",
                  flush=True)
    print("\n| server | no log | with --access-logfile | with / without |\n|---|---:|---:|---:|")
    for server, cells in results.items():
        plain, logged = cells["no log"]["median"], cells["with log"]["median"]
        print(f"| {server} | {plain:,.0f} | {logged:,.0f} | {logged / plain:.2f} |")
    if len(results) > 1 and "fastwsgi" in results:
        ours = results["fastwsgi"]["with log"]["median"]
        for server, cells in results.items():
            if server != "fastwsgi":
                print(f"\nwith the log, fastwsgi / {server}: {ours / cells['with log']['median']:.1f}x")
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as out:
        json.dump(results, out, indent=2)


if __name__ == "__main__":
    main()
