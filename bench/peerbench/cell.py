"""One cell of the table: one server x scenario started, checked and measured."""
import http.client
import os
import shlex
import statistics
import time

import apps  # bench/apps.py: the WSGI apps and expected bodies

from . import HOST
from .processes import (
    Running,
    children_cpu,
    free_port,
    group_cpu_seconds,
    system_cpu,
    tail,
)
from .report import fmt_rps, scrub
from .scenarios import SCENARIOS
from .wrk import parse_wrk, run_wrk, wrk_command


def check_response(port, scenario, timeout=10):
    """One request, as the scenario sends it; verify status and body."""
    sc = SCENARIOS[scenario]
    expected = apps.APPS[sc["app"]][1]
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        if sc["app"] == "echo":
            conn.request("POST", "/", body=apps.POST_BODY,
                         headers={"Content-Type": "application/octet-stream"})
        else:
            conn.request("GET", "/")
        r = conn.getresponse()
        body = r.read()
    except Exception as e:  # noqa: BLE001
        return f"check request failed: {type(e).__name__}: {e}"
    finally:
        conn.close()
    if r.status != 200:
        return f"check: status {r.status}"
    if body != expected:
        return f"check: wrong body ({len(body)} bytes, expected {len(expected)})"
    return None


def one_run(args, running, port, scenario):
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


def wait_quiet(args, running, progress):
    """Wait (bounded by --quiet-timeout) until the rest of the machine is idle."""
    if args.quiet_timeout <= 0:
        return True
    deadline = time.monotonic() + args.quiet_timeout
    said = False
    quiet_windows = 0
    while True:
        srv0, sys0, t0 = group_cpu_seconds(running.proc.pid), system_cpu(), time.monotonic()
        time.sleep(0.5)
        dt = time.monotonic() - t0
        other = 100 * ((system_cpu()[0] - sys0[0]) - (group_cpu_seconds(running.proc.pid) - srv0)) / dt
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


def measure(args, server, scenario, logdir, progress):
    """Run one server x scenario. Returns a result dict (never raises on server failure)."""
    sc = SCENARIOS[scenario]
    res = {"server": server.name, "scenario": scenario, "runs": [], "status": "ok", "error": None}
    port = free_port()
    res["port"] = port
    logpath = os.path.join(logdir, f"{server.name}-{scenario}.log")
    running = Running(server, sc["app"], port, logpath, args.server_cpu)
    res["command"] = scrub(shlex.join(running.cmd), port)
    try:
        err = running.wait_ready(args.startup_timeout)
        if err:
            res.update(status="fail-start", error=err + "\n" + tail(logpath))
            progress(f"FAILED to start: {err}")
            return res
        err = check_response(port, scenario)
        if err:
            res.update(status="fail-check", error=err)
            progress(f"FAILED {err}")
            return res
        res["wrk_command"] = scrub(shlex.join(wrk_command(args, port, scenario, args.duration)), port)
        if args.warmup > 0:
            rc, out = run_wrk(wrk_command(args, port, scenario, args.warmup), args.warmup)
            w = parse_wrk(out)
            progress(f"warm-up {args.warmup}s: " + (f"{fmt_rps(w['rps'])} req/s" if w["rps"] is not None
                                                   else f"wrk rc={rc}"))
        i, retries = 1, 0
        res["discarded_runs"] = []
        while i <= args.repeats:
            if not running.alive():
                res.update(status="fail-crash", error=f"server exited (code {running.proc.returncode})\n"
                           + tail(logpath))
                progress("FAILED: server died")
                return res
            wait_quiet(args, running, progress)
            w = one_run(args, running, port, scenario)
            noisy = w["other_cpu_pct"] > args.max_noise or w["steal_cpu_pct"] > args.max_noise
            w["noisy"] = noisy
            nerr = sum(w["errors"].values())
            extra = ""
            if nerr or w["non2xx"]:
                extra = f"  [socket errors {w['errors']}, non-2xx {w['non2xx']}]"
            figure = (f"{fmt_rps(w['rps'])} req/s" if w["rps"] is not None
                      else f"no result (wrk rc={w['wrk_rc']})")
            lat = w["latency_ms"].get("p99")
            line = (f"run {i}/{args.repeats}: {figure}"
                    + (f"  p99 {lat:.2f} ms" if lat is not None else "")
                    + f"  cpu: server {w['server_cpu_pct']:.0f}% wrk {w['wrk_cpu_pct']:.0f}%"
                    + (f" other {w['other_cpu_pct']:.0f}%" if w["other_cpu_pct"] >= 5 else "")
                    + (f" steal {w['steal_cpu_pct']:.0f}%" if w["steal_cpu_pct"] >= 5 else "")
                    + extra)
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
        return finalize(res)
    finally:
        running.stop()
