"""System calls per request, by name, under ``strace -c -f``.

The same runs as ``callgrind.py`` (the same server processes, client and
scenarios), with strace in valgrind's place: each server runs for N and for
FACTOR x N requests and

    calls per request = (calls_big - calls_small) / (FACTOR x N - N)

for every system call, so that start-up (the interpreter's imports, nginx's
configuration) and shutdown cancel out. ``-f`` follows every thread and child.

strace stops the server at every call, so it runs many times slower than
without it: the client keeps up with it, and a many-connection scenario finds
as many ready connections per epoll_wait as it can hold. The counts are
counts; the times strace reports are not used.
"""
import os
import shutil

import counted_servers  # bench/counted_servers.py: fastwsgi and nginx under a counting tool
from callgrind_client import drive  # bench/callgrind_client.py: the requests, every answer checked


def read_strace_summary(path):
    """{syscall: calls} of an ``strace -c`` summary file."""
    calls = {}
    with open(path) as f:
        for line in f:
            fields = line.split()
            # % time, seconds, usecs/call, calls, [errors,] syscall
            if len(fields) in (5, 6) and fields[-1] != "total" and fields[3].isdigit():
                calls[fields[-1]] = int(fields[3])
    return calls


def count_once(args, scenario, requests, workdir):
    """{syscall: calls} of one server run that serves `requests` requests."""
    out = os.path.join(workdir, f"strace.{args.server}.{scenario.name}.{requests}.txt")
    wrapper = [args.strace, "-f", "-c", "-o", out, "--"]
    server = counted_servers.start(args.server, wrapper, args.python, scenario,
                                   dict(scenario.options), requests, workdir, args.timeout)
    try:
        drive(server.port, scenario, requests, args.timeout)
        server.finish(args.timeout)
        return read_strace_summary(out)
    finally:
        server.kill()
        if os.path.exists(out):
            os.unlink(out)


def measure(args, scenario, small, big, workdir):
    """{syscall: calls per request} of one scenario, from a small and a big run."""
    calls_small = count_once(args, scenario, small, workdir)
    calls_big = count_once(args, scenario, big, workdir)
    per_request = {}
    for name in set(calls_small) | set(calls_big):
        delta = (calls_big.get(name, 0) - calls_small.get(name, 0)) / (big - small)
        if abs(delta) >= 0.0005:
            per_request[name] = round(delta, 3)
    return dict(sorted(per_request.items(), key=lambda item: -item[1]))


def find_strace(path=None):
    return path or shutil.which("strace") or "strace"
