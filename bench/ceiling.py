#!/usr/bin/env python3
"""fastwsgi against the C ceiling (nginx), counted: instructions and system calls
per request.

For each scenario both servers serve the same requests from the same client
(``callgrind_client.py``): first under callgrind (``callgrind.py``'s method:
a small and a big run, the difference per request), then under ``strace -c -f``
(``syscalls.py``, the same method). Counts do not move with the machine's load
as requests/s do, so the ratio fastwsgi / nginx can be judged on a shared
machine.

    python bench/ceiling.py                       # c1000 and pipeline16, ~6 min
    python bench/ceiling.py --scenarios hello,c1000,pipeline16 --out FILE

Prints one table (markdown) and writes the figures as JSON (--out).
"""
import argparse
import copy
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import callgrind  # noqa: E402  bench/callgrind.py: instructions per request
import counted_servers  # noqa: E402
import syscalls  # noqa: E402  bench/syscalls.py: system calls per request

# The calls of the serving loop shown in their own columns; the rest are summed.
COLUMNS = ("epoll_wait", "epoll_ctl", "recvfrom", "read", "sendmsg", "writev", "write")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default="c1000,pipeline16",
                    help="comma-separated rows of callgrind.py that nginx serves "
                         "(default %(default)s)")
    ap.add_argument("--requests", type=int, default=2000, help="requests of the small run")
    ap.add_argument("--factor", type=int, default=6, help="the big run serves FACTOR x N")
    ap.add_argument("--repeats", type=int, default=1, help="callgrind pairs per cell (default 1)")
    ap.add_argument("--python", default=sys.executable, help="interpreter that runs fastwsgi")
    ap.add_argument("--valgrind", default=shutil.which("valgrind") or "valgrind")
    ap.add_argument("--strace", default=syscalls.find_strace())
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "ceiling.json"))
    a = ap.parse_args(argv)
    a.scenarios = [s.strip() for s in a.scenarios.split(",") if s.strip()]
    for name in a.scenarios:
        if name not in callgrind.SCENARIOS or not counted_servers.nginx_serves(callgrind.SCENARIOS[name]):
            ap.error(f"scenario {name!r} is not a callgrind.py row that nginx serves")
    a.keep = None
    a.server = None   # set per cell
    return a


def measure_cell(args, server, scenario, workdir):
    run = copy.copy(args)
    run.server = server
    instructions = callgrind.measure(
        run, scenario, workdir, lambda msg: print(f"{scenario.name:<11} {server:<8} {msg}", flush=True))
    small, big = instructions["requests"]
    calls = syscalls.measure(run, scenario, small, big, workdir)
    print(f"{scenario.name:<11} {server:<8} {sum(calls.values()):.2f} system calls/request: "
          + ", ".join(f"{name} {n:g}" for name, n in list(calls.items())[:8]), flush=True)
    return {"instructions_per_request": instructions["instructions_per_request"],
            "without_allocator": instructions["without_allocator"],
            "requests": instructions["requests"], "syscalls_per_request": calls}


def print_table(results):
    print("\n| scenario | server | instructions/request | system calls/request | "
          + " | ".join(COLUMNS) + " | other |")
    print("|---|---|---:|---:|" + "---:|" * (len(COLUMNS) + 1))
    for name, cells in results.items():
        rows = [(server, cell) for server, cell in cells.items()]
        for server, cell in rows:
            calls = cell["syscalls_per_request"]
            other = sum(n for call, n in calls.items() if call not in COLUMNS)
            print(f"| {name} | {server} | {cell['instructions_per_request']:,.0f} | "
                  f"{sum(calls.values()):.2f} | "
                  + " | ".join(f"{calls.get(call, 0):.3f}" for call in COLUMNS)
                  + f" | {other:.3f} |")
        if {"fastwsgi", "nginx"} <= set(cells):
            ours, ceiling = cells["fastwsgi"], cells["nginx"]
            ratio = ours["instructions_per_request"] / ceiling["instructions_per_request"]
            calls_ratio = (sum(ours["syscalls_per_request"].values())
                           / max(sum(ceiling["syscalls_per_request"].values()), 1e-9))
            print(f"| {name} | fastwsgi / nginx | {ratio:.2f}× | {calls_ratio:.2f}× |"
                  + " |" * (len(COLUMNS) + 1))


def main(argv=None):
    args = parse_args(argv)
    data = {"meta": callgrind.metadata(args), "scenarios": {}}
    data["meta"].pop("server", None)
    workdir = tempfile.mkdtemp(prefix="fastwsgi-ceiling-")
    try:
        for name in args.scenarios:
            scenario = callgrind.SCENARIOS[name]
            data["scenarios"][name] = {server: measure_cell(args, server, scenario, workdir)
                                       for server in counted_servers.SERVERS}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print_table(data["scenarios"])
    callgrind.write_results(args.out, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
