"""One cell of the table: one server x scenario started, checked and measured."""
import http.client
import os
import shlex
import statistics
import time

from . import HOST
from .peers import RSS_SERVERS, unserved_setting
from .processes import (
    Running,
    children_cpu,
    free_port,
    group_cpu_seconds,
    system_cpu,
    tail,
    worker_rss_kib,
)
from .report import fmt_rps, scrub
from .scenarios import Scenario
from .wrk import count_command, parse_count, parse_wrk, run_wrk, wrk_command


def check_response(port, scenario: Scenario, certificate=None, timeout=10):
    """One request, as the scenario sends it; verify status and body."""
    if scenario.tls:
        conn = http.client.HTTPSConnection(HOST, port, timeout=timeout, context=certificate.client_context())
    else:
        conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        if scenario.request_body is not None:
            conn.request("POST", scenario.path, body=scenario.request_body,
                         headers={"Content-Type": "application/octet-stream"})
        else:
            conn.request("GET", scenario.path)
        r = conn.getresponse()
        body = r.read()
    except Exception as e:  # noqa: BLE001
        return f"check request failed: {type(e).__name__}: {e}"
    finally:
        conn.close()
    if r.status != 200:
        return f"check: status {r.status}"
    if body != scenario.expected_body:
        return f"check: wrong body ({len(body)} bytes, expected {len(scenario.expected_body)})"
    return None


def measure_rss(args, running, port, scenario: Scenario, progress):
    """Worker RSS after the check request, then after --rss-requests more (a wrk run that
    stops at that count, bounded by --rss-timeout)."""
    at_rest = worker_rss_kib(running.proc.pid)
    _rc, out = run_wrk(count_command(args, port, scenario, args.rss_requests, args.rss_timeout),
                       args.rss_timeout)
    responses, not_ok = parse_count(out)
    after = worker_rss_kib(running.proc.pid)
    rss = {"at_rest_kib": at_rest, "after_kib": after, "requests": 1 + responses, "non200": not_ok}
    progress(f"worker RSS {at_rest / 1024:.1f} MiB at rest, {after / 1024:.1f} MiB after "
             f"{1 + responses:,} requests" + (f" ({not_ok} not 200)" if not_ok else ""))
    return rss


def one_run(args, running, port, scenario: Scenario):
    """One measured wrk run, with CPU accounting of server, wrk and the rest of the machine."""
    srv0, wrk0, sys0 = group_cpu_seconds(running.proc.pid), children_cpu(), system_cpu()
    t0 = time.monotonic()
    rc, out = run_wrk(wrk_command(args, port, scenario, args.duration), args.duration)
    elapsed = time.monotonic() - t0
    sys1 = system_cpu()
    w = parse_wrk(out)
    w["wrk_rc"] = rc
    # In % of one core. Server near 100%: the server is the bottleneck (good).
    # wrk near 100%: the figure is capped by the load generator.
    w["server_cpu_pct"] = round(100 * (group_cpu_seconds(running.proc.pid) - srv0) / elapsed, 1)
    w["wrk_cpu_pct"] = round(100 * (children_cpu() - wrk0) / elapsed, 1)
    # Everything else on the machine (other jobs = noise), and the VM host's steal.
    w["other_cpu_pct"] = round(max(0.0, 100 * (sys1[0] - sys0[0]) / elapsed
                                   - w["server_cpu_pct"] - w["wrk_cpu_pct"]), 1)
    w["softirq_cpu_pct"] = round(100 * (sys1[1] - sys0[1]) / elapsed, 1)
    w["steal_cpu_pct"] = round(100 * (sys1[2] - sys0[2]) / elapsed, 1)
    if rc != 0 or w["rps"] is None:
        w["raw"] = out[-2000:]
    return w


def wait_quiet(args, progress, pgid=None):
    """Wait (bounded by --quiet-timeout) until the machine is idle but for process group pgid."""
    if args.quiet_timeout <= 0:
        return True
    deadline = time.monotonic() + args.quiet_timeout
    said = False
    quiet_windows = 0
    while True:
        srv0, sys0, t0 = group_cpu_seconds(pgid) if pgid else 0, system_cpu(), time.monotonic()
        time.sleep(0.5)
        dt = time.monotonic() - t0
        server = group_cpu_seconds(pgid) - srv0 if pgid else 0
        other = 100 * ((system_cpu()[0] - sys0[0]) - server) / dt
        if other <= args.max_noise:
            quiet_windows += 1
            if quiet_windows < 3:      # 1.5 s of continuous quiet
                continue
            if said:
                progress("machine quiet again")
            return True
        quiet_windows = 0
        if time.monotonic() > deadline:
            progress(f"machine still busy ({other:.0f}% of a core used by other processes); going on")
            return False
        if not said:
            progress(f"waiting for other processes to go quiet ({other:.0f}% of a core busy; "
                     f"up to {args.quiet_timeout:g} s)")
            said = True


def finalize(res):
    """Summary fields of a cell from its runs (also used by --report-only)."""
    good = [r for r in res["runs"] if r.get("rps") is not None and r.get("requests", 0) > 0]
    if not good and res["status"] == "ok":
        res.update(status="fail-wrk", error="wrk produced no successful run")
    # The median is taken over the clean (not noisy) runs when there are any.
    clean = [r for r in good if not r.get("noisy")]
    res["median_of"] = f"{len(clean)} clean runs" if clean else f"{len(good)} runs, all noisy"
    rps = [r["rps"] for r in (clean or good)]
    res["median_rps"] = statistics.median(rps) if rps else None
    res["errors_total"] = {k: sum(r["errors"][k] for r in res["runs"]) for k in
                           ("connect", "read", "write", "timeout")}
    res["non2xx_total"] = sum(r["non2xx"] for r in res["runs"])
    res["requests_total"] = sum(r["requests"] for r in res["runs"])
    return res


def measure(args, server, scenario: Scenario, logdir, progress):
    """Run one server x scenario. Returns a result dict (never raises on server failure)."""
    res = {"server": server.name, "scenario": scenario.name, "runs": [], "status": "ok", "error": None}
    port = free_port()
    res["port"] = port
    logpath = os.path.join(logdir, f"{server.name}-{scenario.name}.log")
    running = Running(server, scenario, port, logpath, args.server_cpu)
    res["command"] = scrub(shlex.join(running.cmd), port)
    try:
        err = running.wait_ready(args.startup_timeout)
        if not err:
            err = check_response(port, scenario, server.certificate)
        unserved = unserved_setting(server, tail(logpath, 40))
        if unserved:
            # Ours refuses or ignores a setting the row needs (--threads, --certfile): not
            # a failure of the server, a row it does not serve yet.
            res.update(status="unsupported", error=unserved)
            progress(f"n/a: {unserved}")
            return res
        if err:
            status = "fail-check" if err.startswith("check") else "fail-start"
            res.update(status=status, error=err if status == "fail-check" else err + "\n" + tail(logpath))
            progress(f"FAILED {err}")
            return res
        if scenario.rss and server.name in RSS_SERVERS and args.rss_requests > 0:
            res["rss"] = measure_rss(args, running, port, scenario, progress)
        res["wrk_command"] = scrub(shlex.join(wrk_command(args, port, scenario, args.duration)), port)
        if args.warmup > 0:
            rc, out = run_wrk(wrk_command(args, port, scenario, args.warmup), args.warmup)
            w = parse_wrk(out)
            progress(f"warm-up {args.warmup}s: " + (f"{fmt_rps(w['rps'])} req/s" if w["rps"] is not None
                                                   else f"wrk rc={rc}"))
        completed = measured_runs(args, running, port, scenario, logpath, res, progress)
        return finalize(res) if completed else res
    finally:
        running.stop()


def measured_runs(args, running, port, scenario: Scenario, logpath, res, progress):
    """--repeats clean runs into res["runs"] (noisy ones discarded up to --noise-retries);
    False when the server died before the last of them."""
    i, retries = 1, 0
    res["discarded_runs"] = []
    while i <= args.repeats:
        if not running.alive():
            res.update(status="fail-crash", error=f"server exited (code {running.proc.returncode})\n"
                       + tail(logpath))
            progress("FAILED: server died")
            return False
        wait_quiet(args, progress, running.proc.pid)
        w = one_run(args, running, port, scenario)
        noisy = w["other_cpu_pct"] > args.max_noise or w["steal_cpu_pct"] > args.max_noise
        w["noisy"] = noisy
        line = run_line(args, i, w)
        if noisy and retries < args.noise_retries:
            retries += 1
            res["discarded_runs"].append(w)
            progress(line + f"  NOISY (other jobs on the machine) -> discarded, "
                     f"re-running ({retries}/{args.noise_retries})")
            continue
        if noisy:
            line += "  NOISY (kept: no retries left)"
        res["runs"].append(w)
        progress(line)
        i += 1
    if not running.alive():
        res.update(status="fail-crash", error=f"server exited (code {running.proc.returncode})\n"
                   + tail(logpath))
        progress("FAILED: server died during the run")
    return True


def run_line(args, i, w):
    """The progress line of measured run i."""
    nerr = sum(w["errors"].values())
    extra = ""
    if nerr or w["non2xx"]:
        extra = f"  [socket errors {w['errors']}, non-2xx {w['non2xx']}]"
    figure = (f"{fmt_rps(w['rps'])} req/s" if w["rps"] is not None
              else f"no result (wrk rc={w['wrk_rc']})")
    lat = w["latency_ms"].get("p99")
    return (f"run {i}/{args.repeats}: {figure}"
            + (f"  p99 {lat:.2f} ms" if lat is not None else "")
            + f"  cpu: server {w['server_cpu_pct']:.0f}% wrk {w['wrk_cpu_pct']:.0f}%"
            + (f" other {w['other_cpu_pct']:.0f}%" if w["other_cpu_pct"] >= 5 else "")
            + (f" steal {w['steal_cpu_pct']:.0f}%" if w["steal_cpu_pct"] >= 5 else "")
            + extra)
