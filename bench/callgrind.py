#!/usr/bin/env python3
"""Instructions per request: fastwsgi's user-space cost under valgrind's callgrind.

Wall-clock benchmarks on a shared 2-core machine move by 10-20 % from run to
run; instruction counts do not, so this is the guard a hot-path change is
checked against.  For each scenario the server (one fastwsgi loop, in-process,
``callgrind_serve.py``) runs under ``valgrind --tool=callgrind`` twice, once
for N requests and once for FACTOR x N, each time stopping by itself after its
count.  A client in this process, outside valgrind, sends the requests over
loopback and checks every response.  Start-up and shutdown cost the same in
both runs, so

    instructions per request = (total_big - total_small) / (FACTOR x N - N)

is the steady-state cost of one request, warm caches included.  Each scenario
is measured --repeats times; the table shows the median and the spread.

A scenario is one row of SCENARIOS: the app, the bytes of one request, how
many are written per batch (pipelining), over how many connections, and the
server options for that row.
A later row for threads or TLS adds its options (and, for TLS, its client
transport) there; nothing else changes.

Each figure is also given without the instructions spent inside glibc's
allocator (malloc, free and their internals): their cost follows the heap's
layout, which shifts with any change to what is allocated at start-up, so two
builds with the same hot path can differ there by hundreds of instructions per
request. The same calls are made either way; the guard compares the rest.

``--server nginx`` counts the C ceiling the same way: nginx answering the
same bytes with ``return 200`` in one process (``counted_servers.py``), on the
rows it can serve (the hello app, no TLS, no options).

Outputs: a table on stdout and a JSON file (--out).  With --baseline FILE the
delta against that file is printed per scenario and the exit status is 1 when
any scenario costs more than --threshold percent over its baseline (without
the allocator, when the baseline has that figure).
"""
import argparse
import dataclasses
import datetime as _dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import apps  # bench/apps.py: the apps and their expected bodies
import counted_servers  # bench/counted_servers.py: fastwsgi and nginx under a counting tool
from callgrind_client import drive  # bench/callgrind_client.py: the requests, every answer checked


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    desc: str
    app: str                     # key of apps.APPS, or MODULE:CALLABLE of a framework app
    request: bytes               # one request, as written on the wire
    pipeline: int = 1            # requests per write; all answers are read before the next write
    connections: int = 1         # keep-alive connections, all open first, one batch in flight on each
    options: dict = dataclasses.field(default_factory=dict)   # ServerOptions fields for this row
    tls: bool = False            # the server speaks TLS; the client wraps its socket

    @property
    def expected_body(self):
        return apps.APPS[self.app][1] if self.app in apps.APPS else apps.HELLO


_GET = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
_POST = (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
         b"Content-Length: %d\r\n\r\n" % len(apps.POST_BODY)) + apps.POST_BODY

SCENARIOS = {s.name: s for s in (
    Scenario("hello", "GET, 13-byte body, keep-alive, one connection", "hello", _GET),
    Scenario("access_log", "GET hello with the access log on, gunicorn's default format, to a file",
             "hello", _GET, options={"access_log": True}),
    Scenario("post16k", "POST 16 KiB body, the app reads wsgi.input fully", "echo", _POST),
    Scenario("pipeline16", "GET hello, 16 requests pipelined per write", "hello", _GET, pipeline=16),
    Scenario("c1000", "GET hello over 1,000 keep-alive connections, one request in flight on each",
             "hello", _GET, connections=1000),
    Scenario("threads8", "GET hello, the app on a pool of 8 threads (--threads 8)", "hello", _GET,
             options={"threads": 8}),
    Scenario("tls_hello", "GET hello over TLS 1.3, keep-alive (the handshake is in both runs)",
             "hello", _GET, tls=True),
    Scenario("flask_hello", "GET / of bench/flask_app.py (Flask's quickstart hello)",
             "flask_app:app", _GET),
    Scenario("django_hello", "GET / of bench/django_app.py (startproject's middleware)",
             "django_app:application", _GET),
)}


# --------------------------------------------------------------------------- one run


def read_totals(path):
    """The instruction count (Ir) of a callgrind output file."""
    with open(path) as f:
        for line in f:
            if line.startswith(("totals:", "summary:")):
                return int(line.split()[1])
    raise ValueError("no totals line in the callgrind output")


# glibc's allocator: what its calls cost moves with the heap's layout (which chunks
# sit in which bins), not with the code asking; builds that differ in nothing on the
# hot path differ by tens to hundreds of instructions per request here.
ALLOCATOR_FUNCTIONS = frozenset({
    "malloc", "free", "calloc", "realloc", "_int_malloc", "_int_free", "_int_realloc",
    "unlink_chunk.constprop.0", "unlink_chunk", "malloc_consolidate", "tcache_get", "tcache_put",
})


def read_allocator_cost(path, annotate="callgrind_annotate"):
    """Instructions a callgrind output file spent inside glibc's allocator."""
    out = subprocess.run([annotate, "--threshold=100", "--auto=no", "--inclusive=no", path],
                         capture_output=True, text=True, check=True).stdout
    total = 0
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0].replace(",", "").isdigit() and ":" in line:
            function = line.rsplit(":", 1)[1].split(" [")[0].strip()
            if function in ALLOCATOR_FUNCTIONS:
                total += int(fields[0].replace(",", ""))
    return total


def measure_once(args, scenario, requests, workdir):
    """Total instructions of one server run that serves `requests` requests."""
    out = os.path.join(workdir, f"callgrind.{args.server}.{scenario.name}.{requests}.out")
    options = dict(scenario.options)
    if scenario.tls:
        options["certificate"] = self_signed_certificate(workdir)
    wrapper = [args.valgrind, "--tool=callgrind", "-q", f"--callgrind-out-file={out}"]
    server = counted_servers.start(args.server, wrapper, args.python, scenario, options,
                                   requests, workdir, args.timeout)
    try:
        drive(server.port, scenario, requests, args.timeout)
        server.finish(args.timeout)
        return read_totals(out), read_allocator_cost(out)
    finally:
        server.kill()
        if os.path.exists(out):
            if args.keep:
                os.makedirs(args.keep, exist_ok=True)
                shutil.move(out, os.path.join(args.keep, os.path.basename(out)))
            else:
                os.unlink(out)


def self_signed_certificate(workdir):
    """A certificate and its key for 127.0.0.1 in one PEM file, made once (openssl)."""
    path = os.path.join(workdir, "certificate.pem")
    if not os.path.exists(path):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                        "/CN=127.0.0.1", "-keyout", path, "-out", path + ".crt"],
                       check=True, capture_output=True)
        with open(path, "a") as pem, open(path + ".crt") as crt:
            pem.write(crt.read())
    return path


def measure(args, scenario, workdir, progress):
    """Instructions per request of one scenario, --repeats times."""
    # Every connection carries at least one batch in both runs, so that opening
    # them (the same in both) cancels out.
    small = max(args.requests, scenario.pipeline * scenario.connections)
    small -= small % scenario.pipeline
    big = small * args.factor
    runs = []
    for i in range(1, args.repeats + 1):
        total_small, allocator_small = measure_once(args, scenario, small, workdir)
        total_big, allocator_big = measure_once(args, scenario, big, workdir)
        per_request = (total_big - total_small) / (big - small)
        allocator = (allocator_big - allocator_small) / (big - small)
        runs.append({"total_small": total_small, "total_big": total_big,
                     "instructions_per_request": round(per_request, 1),
                     "allocator_per_request": round(allocator, 1)})
        progress(f"run {i}/{args.repeats}: {per_request:,.0f} instructions/request, "
                 f"{allocator:,.0f} of them in malloc/free "
                 f"({total_small:,} for {small}, {total_big:,} for {big})")
    figures = [r["instructions_per_request"] for r in runs]
    median = statistics.median(figures)
    outside = statistics.median(r["instructions_per_request"] - r["allocator_per_request"]
                                for r in runs)
    return {"desc": scenario.desc, "requests": [small, big], "options": scenario.options,
            "instructions_per_request": round(median, 1),
            "without_allocator": round(outside, 1),
            # half the range, in % of the median: the figure is median +/- spread
            "spread_pct": round(50 * (max(figures) - min(figures)) / median, 3),
            "runs": runs}


# --------------------------------------------------------------------------- report


def _git(*argv):
    try:
        p = subprocess.run(["git", "-C", REPO, *argv], capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return ""
    return p.stdout.strip() if p.returncode == 0 else ""


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def metadata(args):
    measured = ("fastwsgi", "setup.py", "pyproject.toml")
    python = subprocess.run([args.python, "-c", "import platform; print(platform.python_version())"],
                            capture_output=True, text=True, check=False).stdout.strip()
    return {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        # The last commit that changed the measured code, and whether the tree differs from it.
        "commit": _git("log", "-1", "--format=%H", "--", *measured),
        "uncommitted_changes": bool(_git("status", "--porcelain", "--", *measured)),
        "python": python,
        "valgrind": subprocess.run([args.valgrind, "--version"], capture_output=True,
                                   text=True, check=False).stdout.strip(),
        "machine": f"{platform.machine()}, {_cpu_model()}, {os.cpu_count()} cores, "
                   f"Linux {platform.release()}",
        "server": args.server, "factor": args.factor, "repeats": args.repeats,
    }


def print_table(results):
    print("\n| scenario | instructions/request | without malloc/free | spread | requests (small, big) |")
    print("|---|---:|---:|---:|---|")
    for name, r in results.items():
        print(f"| {name} | {r['instructions_per_request']:,.0f} | "
              f"{r.get('without_allocator', float('nan')):,.0f} | ±{r['spread_pct']:.2f}% | "
              f"{r['requests'][0]}, {r['requests'][1]} |")


def compare(results, meta, baseline, threshold):
    """Print the delta per scenario against a baseline; True if any is over threshold."""
    print(f"\nagainst the baseline of {baseline['meta'].get('date', '?')} "
          f"(commit {baseline['meta'].get('commit', '?')[:12]}, "
          f"Python {baseline['meta'].get('python', '?')}); threshold +{threshold:g}%\n")
    then = baseline["meta"]
    for key in ("python", "valgrind", "machine"):
        if then.get(key) != meta.get(key):
            print(f"note: {key} differs (baseline: {then.get(key)!r}, now: {meta.get(key)!r}); "
                  "instruction counts are comparable only on the same one")
    # The threshold applies to the count without glibc's allocator, when both runs
    # have it: what the allocator costs follows the heap's layout (ALLOCATOR_FUNCTIONS).
    print("| scenario | baseline | now | delta | without malloc/free: baseline | now | delta |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    over = False
    for name, r in results.items():
        base = baseline["scenarios"].get(name)
        if not base:
            print(f"| {name} | — | {r['instructions_per_request']:,.0f} | (no baseline) | | | |")
            continue
        delta = 100 * (r["instructions_per_request"] / base["instructions_per_request"] - 1)
        guarded = delta
        outside = ""
        if "without_allocator" in base and "without_allocator" in r:
            guarded = 100 * (r["without_allocator"] / base["without_allocator"] - 1)
            outside = (f"{base['without_allocator']:,.0f} | {r['without_allocator']:,.0f} | "
                       f"{guarded:+.2f}%")
        mark = ""
        if guarded > threshold:
            over, mark = True, " **over**"
        print(f"| {name} | {base['instructions_per_request']:,.0f} | "
              f"{r['instructions_per_request']:,.0f} | {delta:+.2f}% | {outside or '| |'}{mark} |")
    return over


def stale_extensions():
    """Compiled modules older than their Cython sources (a rebuild is due)."""
    pkg = os.path.join(REPO, "fastwsgi")
    sources = [os.path.join(root, f) for root, _, files in os.walk(pkg)
               for f in files if f.endswith((".pyx", ".pxi", ".pxd", ".h"))]
    newest = max((os.path.getmtime(p) for p in sources), default=0)
    return [f for f in os.listdir(pkg) if f.endswith(".so")
            and os.path.getmtime(os.path.join(pkg, f)) < newest]


# --------------------------------------------------------------------------- main


def write_results(path, data):
    """The figures as JSON at ``path`` (its directory made if need be)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    print(f"\nwrote {path}")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="scenarios: " + ", ".join(SCENARIOS))
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated (default: all)")
    ap.add_argument("--requests", type=int, default=2000,
                    help="requests of the small run, N (default %(default)s)")
    ap.add_argument("--factor", type=int, default=6,
                    help="the big run serves FACTOR x N requests (default %(default)s)")
    ap.add_argument("--repeats", type=int, default=3, help="pairs of runs per scenario (default 3)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "callgrind.json"),
                    help="JSON results file (default: %(default)s)")
    ap.add_argument("--baseline", help="JSON file of an earlier run to compare against")
    ap.add_argument("--threshold", type=float, default=1.0,
                    help="with --baseline: exit 1 if a scenario costs more than this %% over it "
                         "(default %(default)s)")
    ap.add_argument("--server", choices=counted_servers.SERVERS, default="fastwsgi",
                    help="the server counted: fastwsgi, or nginx (the C ceiling; the rows of "
                         "the hello app) (default %(default)s)")
    ap.add_argument("--python", default=sys.executable,
                    help="interpreter that runs fastwsgi (default: the one running this script)")
    ap.add_argument("--valgrind", default=shutil.which("valgrind") or "valgrind")
    ap.add_argument("--keep", metavar="DIR",
                    help="keep each run's callgrind output file in DIR, to read per function "
                         "with callgrind_annotate (the big run's minus the small run's)")
    ap.add_argument("--timeout", type=float, default=300,
                    help="seconds any one step (start, the client's requests, stop) may take")
    a = ap.parse_args(argv)
    a.scenarios = [s.strip() for s in a.scenarios.split(",") if s.strip()]
    for s in a.scenarios:
        if s not in SCENARIOS:
            ap.error(f"unknown scenario {s!r} (known: {', '.join(SCENARIOS)})")
        if a.server == "nginx" and not counted_servers.nginx_serves(SCENARIOS[s]):
            ap.error(f"nginx does not answer scenario {s!r} as fastwsgi's app does")
    if a.requests < 1 or a.factor < 2 or a.repeats < 1:
        ap.error("--requests must be >= 1, --factor >= 2, --repeats >= 1")
    return a


def main(argv=None):
    args = parse_args(argv)
    if not shutil.which(args.valgrind):
        sys.exit(f"error: {args.valgrind!r} not found (apt-get install -y valgrind)")
    baseline = None
    if args.baseline:
        with open(args.baseline) as f:
            baseline = json.load(f)
    stale = stale_extensions()
    if stale:
        print(f"warning: {', '.join(stale)} older than the Cython sources: rebuild "
              "(pip install -e .) or this measures old code", flush=True)
    data = {"meta": metadata(args), "scenarios": {}}
    workdir = tempfile.mkdtemp(prefix="fastwsgi-callgrind-")
    try:
        for name in args.scenarios:
            def progress(msg, name=name):
                print(f"{name:<11} {msg}", flush=True)
            data["scenarios"][name] = measure(args, SCENARIOS[name], workdir, progress)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print_table(data["scenarios"])
    write_results(args.out, data)
    if baseline is not None and compare(data["scenarios"], data["meta"], baseline, args.threshold):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
