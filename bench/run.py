#!/usr/bin/env python3
"""Peer benchmark: fastwsgi against other WSGI servers (and nginx), driven by wrk.

Every server runs as one process (group) pinned to one core with taskset,
wrk runs pinned to another core. For each server x scenario the harness starts
the server with the scenario's app, waits until it accepts connections, checks
one response for correctness, runs a wrk warm-up, then N measured wrk runs,
and kills the server's process group. The median requests/s is reported.

Outputs (default directory: results/ next to this script):
  results.md    Markdown table, rows = scenarios, columns = servers
  results.json  raw numbers of every run, versions, command lines
  results.png   grouped bars per scenario, normalised to the best peer
Server logs go to ~/.cache/fastwsgi-bench/logs (--log-dir), outside the repo.

See README.md in this directory for how to set up the peers. The work is
done by the modules of peerbench/ (scenarios, peers, processes, wrk, cell,
report); this file is the command line and the loop over the cells.
"""

import argparse
import datetime as _dt
import fcntl
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time

# bench/ on the path whoever imports this file: peerbench and apps.py live there
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peerbench import BENCH_DIR, BENCH_HOME  # noqa: E402
from peerbench.app_cost import measure_in_subprocess  # noqa: E402
from peerbench.cell import finalize, measure, wait_quiet  # noqa: E402
from peerbench.peers import ALL_SERVERS, DEFAULT_SERVERS, build_servers  # noqa: E402
from peerbench.processes import raise_nofile, run_capture  # noqa: E402
from peerbench.report import fmt_rps, log, scrub, set_scrub, write_reports  # noqa: E402
from peerbench.scenarios import GROUPS, SCENARIOS, expand  # noqa: E402
from peerbench.tls import make_certificate  # noqa: E402

# The framework rows' measurements besides wrk's: (flag, type, default, help).
FRAMEWORK_OPTIONS = (
    ("--rss-requests", int, 100_000, "worker RSS of fastwsgi, gunicorn and bjoern: after one request, "
                                     "then after this many more; 0 = don't"),
    ("--rss-timeout", float, 300, "at most this many s for the --rss-requests"),
    ("--app-cost-runs", int, 7, "timed runs of the app's in-process cost; 0 = don't"),
)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="servers: " + ", ".join(ALL_SERVERS)
                                 + "\nscenarios: " + ", ".join(SCENARIOS)
                                 + "\ngroups: " + "; ".join(f"{g} = {', '.join(rows)}"
                                                            for g, rows in GROUPS.items()))
    ap.add_argument("--servers", default=",".join(DEFAULT_SERVERS),
                    help="comma-separated list (default: %(default)s; 'all' adds waitress)")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS),
                    help="comma-separated scenarios or groups (default: all)")
    ap.add_argument("--duration", type=float, default=5, help="seconds per measured run (default 5)")
    ap.add_argument("--repeats", type=int, default=3, help="measured runs per cell (default 3)")
    ap.add_argument("--warmup", type=float, default=2, help="warm-up seconds, 0 = none (default 2)")
    ap.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    ap.add_argument("--timeout", type=float, default=5, help="wrk per-request timeout in s (default 5)")
    ap.add_argument("--peers-venv", default=os.environ.get("PEERS_VENV", os.path.join(BENCH_HOME, "peers")))
    ap.add_argument("--pypi-fastwsgi-venv",
                    default=os.environ.get("PYPI_FW_VENV", os.path.join(BENCH_HOME, "pypi-fastwsgi")))
    ap.add_argument("--ours-python", default=sys.executable,
                    help="interpreter that runs our fastwsgi (default: the one running this script)")
    ap.add_argument("--ours-pythonpath", default=None,
                    help="extra PYTHONPATH for ours (default: none if the interpreter can import "
                         "fastwsgi, else the repository root)")
    ap.add_argument("--server-cpu", default="0", help="taskset CPU list for the server (default 0)")
    ap.add_argument("--wrk-cpu", default="1", help="taskset CPU list for wrk (default 1)")
    ap.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    ap.add_argument("--startup-timeout", type=float, default=20)
    ap.add_argument("--max-noise", type=float, default=15,
                    help="a run during which other processes used more than this %% of a core is "
                         "noisy: it is discarded and re-run (default %(default)s)")
    ap.add_argument("--noise-retries", type=int, default=3,
                    help="max noisy runs discarded per server x scenario (default %(default)s)")
    ap.add_argument("--quiet-timeout", type=float, default=60,
                    help="before each run, wait up to this many s for the machine to be quiet; 0 = don't")
    framework_rows = ap.add_argument_group("framework rows")
    for flag, kind, default, text in FRAMEWORK_OPTIONS:
        framework_rows.add_argument(flag, type=kind, default=default, help=text + " (default %(default)s)")
    ap.add_argument("--out-dir", default=os.path.join(BENCH_DIR, "results"))
    ap.add_argument("--log-dir", default=os.path.join(BENCH_HOME, "logs"),
                    help="server stdout/stderr, one file per server x scenario (default: %(default)s)")
    ap.add_argument("--merge", action="store_true",
                    help="merge into an existing results.json (replace only the cells measured now)")
    ap.add_argument("--only-noisy", action="store_true",
                    help="with --merge: re-measure only cells that are missing, failed, or whose "
                         "runs were all noisy")
    ap.add_argument("--report-only", action="store_true",
                    help="measure nothing: rebuild results.md and results.png from results.json")
    a = ap.parse_args(argv)
    if a.only_noisy:
        a.merge = True
    a.servers = ALL_SERVERS if a.servers == "all" else [s.strip() for s in a.servers.split(",") if s.strip()]
    names = [s.strip() for s in a.scenarios.split(",") if s.strip()]
    for s in a.servers:
        if s not in ALL_SERVERS:
            ap.error(f"unknown server {s!r} (known: {', '.join(ALL_SERVERS)})")
    for s in names:
        if s not in SCENARIOS and s not in GROUPS:
            ap.error(f"unknown scenario {s!r} (known: {', '.join(list(SCENARIOS) + list(GROUPS))})")
    a.scenarios = expand(names)
    if a.repeats < 1:
        ap.error("--repeats must be >= 1")
    return a


def machine_meta(args):
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu, "ncpu": os.cpu_count(), "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk_version": run_capture([args.wrk, "-v"]).splitlines()[0].split(" Copyright")[0] if shutil.which(args.wrk) else "?",
        "server_cpu": args.server_cpu, "wrk_cpu": args.wrk_cpu, "threads": args.threads,
        "duration": args.duration, "repeats": args.repeats, "warmup": args.warmup,
        "timeout": args.timeout, "max_noise": args.max_noise, "noise_retries": args.noise_retries,
        "quiet_timeout": args.quiet_timeout, "rss_requests": args.rss_requests,
        "app_cost_runs": args.app_cost_runs,
    }


def attach_certificate(args, servers, workdir):
    """The TLS rows' certificate, made once for the run and given to every server; the reason if it cannot be."""
    if not any(SCENARIOS[sc].tls for sc in args.scenarios):
        return None
    try:
        certificate = make_certificate(os.path.join(workdir, "tls"))
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        log(f"no certificate for the TLS rows: {e}")
        return f"no certificate: {e}"
    for server in servers.values():
        server.certificate = certificate
    return None


def measure_app_costs(args, servers, data, workdir):
    """The in-process app cost of each framework row to be measured, with our interpreter
    (the peers' when ours cannot import the framework); noisy measurements are re-made
    as noisy runs are (--noise-retries)."""
    if args.app_cost_runs <= 0:
        return
    costs = data.setdefault("app_cost", {})
    for sc in args.scenarios:
        if not SCENARIOS[sc].app_cost or (args.only_noisy and costs.get(sc, {}).get("us_per_call")
                                          and not costs[sc].get("noisy")):
            continue

        def progress(msg, sc=sc):
            log(f"[app cost] {sc}: {msg}")
        for _ in range(args.noise_retries + 1):
            wait_quiet(args, progress)
            cost = app_cost_of(args, SCENARIOS[sc], servers, workdir)
            if "error" in cost or not cost["noisy"]:
                break
            progress(f"NOISY (other processes used {cost['other_cpu_pct']:.0f}% of a core) -> re-measuring")
        costs[sc] = cost
        if "error" in cost:
            progress(f"not measured: {cost['error']}")
            continue
        progress(f"{cost['us_per_call']:.1f} µs per call (median of {len(cost['runs_us'])} "
                 f"runs of {cost['calls_per_run']:,} calls, spread {cost['spread_pct']:.0f}%)"
                 + ("  NOISY (kept)" if cost["noisy"] else ""))


def app_cost_of(args, scenario, servers, workdir):
    """measure_in_subprocess with our interpreter, else the peers'; the interpreter used is recorded."""
    errors = []
    for label, server in (("ours", servers["fastwsgi"]), ("peers", servers["gunicorn"])):
        cost = measure_in_subprocess(args, scenario, server.python, server.env(), workdir)
        if "error" not in cost:
            cost["interpreter"] = label
            return cost
        errors.append(f"{label}: {cost['error']}")
    return {"error": "; ".join(errors)}


def main(argv=None):
    args = parse_args(argv)
    if args.report_only:
        with open(os.path.join(args.out_dir, "results.json")) as f:
            data = json.load(f)
        for cells in data["results"].values():
            for res in cells.values():
                if res.get("runs"):
                    finalize(res)
        write_reports(args, data)
        return 0
    for tool in ("taskset", args.wrk):
        if not shutil.which(tool):
            sys.exit(f"error: {tool!r} not found (apt-get install -y wrk util-linux)")
    nofile = raise_nofile()
    if nofile < 4096 and "c1000" in args.scenarios:
        log(f"warning: open-files limit is {nofile}; c1000 may fail (raise `ulimit -n`)")

    def _sigterm(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored

    # One benchmark per machine at a time: two would measure each other.
    os.makedirs(BENCH_HOME, exist_ok=True)
    lock = open(os.path.join(BENCH_HOME, "run.lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log("another bench/run.py is running on this machine; waiting for it to finish ...")
        fcntl.flock(lock, fcntl.LOCK_EX)

    os.makedirs(args.out_dir, exist_ok=True)
    logdir = args.log_dir
    os.makedirs(logdir, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="fastwsgi-bench-")
    set_scrub(args, workdir)
    try:
        servers = build_servers(args, workdir)
        certificate_error = attach_certificate(args, servers, workdir)
        versions, usable = {}, []
        for name in args.servers:
            why = servers[name].check()
            if why:
                log(f"skip {name}: {why}")
                continue
            versions[name] = servers[name].version()
            usable.append(name)
        log("servers: " + ", ".join(f"{n} {versions[n]}" for n in usable))
        log(f"scenarios: {', '.join(args.scenarios)}; {args.warmup:g}s warm-up + "
            f"{args.repeats} x {args.duration:g}s; server on cpu {args.server_cpu}, wrk on cpu {args.wrk_cpu}")

        json_path = os.path.join(args.out_dir, "results.json")
        data = {"meta": machine_meta(args), "servers": [], "scenarios": [], "versions": {}, "results": {}}
        if args.merge and os.path.exists(json_path):
            with open(json_path) as f:
                data = json.load(f)
            merge_meta = machine_meta(args)
            merge_meta["servers"], merge_meta["scenarios"] = args.servers, args.scenarios
            data["meta"].setdefault("merges", []).append(merge_meta)
        else:
            merge_meta = {}
        for name in args.servers:
            if name not in data["servers"]:
                data["servers"].append(name)
        data["servers"] = [s for s in ALL_SERVERS if s in data["servers"]]
        for sc in args.scenarios:
            if sc not in data["scenarios"]:
                data["scenarios"].append(sc)
        data["scenarios"] = [s for s in SCENARIOS if s in data["scenarios"]]
        data["versions"].update(versions)

        for name in args.servers:
            for sc in args.scenarios:
                why = (servers[name].check() if name not in usable
                       else certificate_error if SCENARIOS[sc].tls else None)
                if why and SCENARIOS[sc].applies_to(name):
                    data["results"].setdefault(name, {})[sc] = {
                        "server": name, "scenario": sc, "status": "unavailable", "error": scrub(why),
                        "runs": []}

        todo = [(sc, name) for sc in args.scenarios for name in usable
                if SCENARIOS[sc].applies_to(name) and not (SCENARIOS[sc].tls and certificate_error)]
        if args.only_noisy:
            def needs_redo(r):
                runs = [x for x in (r or {}).get("runs", []) if x.get("rps")]
                return (not r or r.get("status") != "ok" or not runs
                        or all(x.get("noisy") for x in runs))
            todo = [(sc, name) for sc, name in todo if needs_redo(data["results"].get(name, {}).get(sc))]
            log(f"--only-noisy: {len(todo)} cell(s) to re-measure: "
                + ", ".join(f"{n}/{sc}" for sc, n in todo))
        total = len(todo)
        k = 0
        done = []
        if merge_meta:
            merge_meta["cells"] = done   # filled as cells complete (an interrupted run lists fewer)
        t0 = time.monotonic()
        interrupted = False
        try:
            measure_app_costs(args, servers, data, workdir)
            for sc, name in todo:
                k += 1
                tag = f"[{k:>2}/{total}] {name:<13} {sc:<10}"

                def progress(msg, tag=tag):
                    log(f"{tag} {msg}")
                progress("starting server ...")
                res = measure(args, servers[name], SCENARIOS[sc], logdir, progress)
                res["error"] = scrub(res.get("error"), res.get("port"))
                for run in res["runs"]:
                    if "raw" in run:
                        run["raw"] = scrub(run["raw"], res.get("port"))
                res.pop("port", None)
                data["results"].setdefault(name, {})[sc] = res
                done.append(f"{name}/{sc}")
                if res.get("median_rps") is not None:
                    progress(f"median {fmt_rps(res['median_rps'])} req/s")
                # write partial results as we go
                with open(json_path, "w") as f:
                    json.dump(data, f, indent=1)
        except KeyboardInterrupt:
            interrupted = True
            log("\ninterrupted: servers stopped; writing partial results")

        write_reports(args, data)
        log(f"elapsed {time.monotonic() - t0:.0f} s")
        return 130 if interrupted else 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
