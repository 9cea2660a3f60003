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

See README.md in this directory for how to set up the peers.
"""

import argparse
import datetime as _dt
import fcntl
import http.client
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import apps  # noqa: E402  (bench/apps.py: the WSGI apps and expected bodies)

BENCH_HOME = os.environ.get(
    "FASTWSGI_BENCH_HOME", os.path.join(os.path.expanduser("~"), ".cache", "fastwsgi-bench")
)
HOST = "127.0.0.1"

# --------------------------------------------------------------------------- scenarios

# name -> description, app (key of apps.APPS), wrk connections, lua script, script args
SCENARIOS = {
    "hello": dict(
        desc="GET, 13-byte body, keep-alive, 50 connections",
        app="hello", conns=50, script=None),
    "pipeline16": dict(
        desc="GET hello, 16 requests pipelined per write, 50 connections",
        app="hello", conns=50, script="pipeline.lua", script_args=["16"]),
    "body64k": dict(
        desc="GET, 64 KiB response body, 50 connections",
        app="body_64k", conns=50, script=None),
    "body1m": dict(
        desc="GET, 1 MiB response body, 50 connections",
        app="body_1m", conns=50, script=None),
    "post16k": dict(
        desc="POST 16 KiB body, app reads wsgi.input fully, 50 connections",
        app="echo", conns=50, script="post.lua", script_args=[str(apps.POST_SIZE)]),
    "c1000": dict(
        desc="GET hello, 1,000 concurrent keep-alive connections",
        app="hello", conns=1000, script=None),
}

OURS = "fastwsgi"
REFERENCE = {"nginx"}          # not a peer: the C reference
ALL_SERVERS = ["fastwsgi", "bjoern", "granian", "gunicorn", "waitress", "pypi-fastwsgi", "nginx"]
DEFAULT_SERVERS = ["fastwsgi", "bjoern", "granian", "gunicorn", "pypi-fastwsgi", "nginx"]

# --------------------------------------------------------------------------- helpers


def log(msg=""):
    print(msg, flush=True)


def free_port():
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((HOST, 0))
        return s.getsockname()[1]


def raise_nofile(want=65536):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for limit in ((max(hard, want), max(hard, want)), (hard, hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, limit)
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def run_capture(cmd, **kw):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw)
        return (p.stdout + p.stderr).strip()
    except Exception as e:  # noqa: BLE001
        return f"<{e}>"


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:]).strip()
    except OSError:
        return ""


def fmt_rps(x):
    return f"{x:,.0f}"


# --------------------------------------------------------------------------- servers


class Server:
    """How to start one server kind for a given app on a given port."""

    def __init__(self, name, kind, python=None, bindir=None, dist=None):
        self.name, self.kind, self.python, self.bindir, self.dist = name, kind, python, bindir, dist
        self.extra_pythonpath = []
        self.workdir = None   # set by the harness (a temp dir, never the repo root)
        self.nginx_dir = None

    # ---- availability / version
    def check(self):
        """Return None if usable, else a reason string."""
        if self.kind == "nginx":
            return None if shutil.which("nginx") or os.path.exists("/usr/sbin/nginx") else "nginx not installed"
        if not self.python or not os.path.exists(self.python):
            return f"interpreter not found: {self.python}"
        if self.kind in ("granian", "gunicorn") and not os.path.exists(os.path.join(self.bindir, self.kind)):
            return f"{self.kind} not installed in {self.bindir}"
        probe = {"fastwsgi": "import fastwsgi; fastwsgi.run",
                 "pypi-fastwsgi": "import fastwsgi; fastwsgi.run",
                 "bjoern": "import bjoern", "waitress": "import waitress",
                 "granian": "import granian", "gunicorn": "import gunicorn"}[self.kind]
        p = subprocess.run([self.python, "-c", probe], cwd=self.workdir, env=self.env(),
                           capture_output=True, text=True)
        if p.returncode:
            return (p.stderr.strip().splitlines() or ["import failed"])[-1]
        return None

    def version(self):
        if self.kind == "nginx":
            return run_capture([self.nginx_bin(), "-v"]).replace("nginx version: ", "")
        code = ("import importlib.metadata as m\n"
                f"try: print(m.version({self.dist!r}))\n"
                "except Exception:\n"
                "  import fastwsgi; print(getattr(fastwsgi, '__version__', '?'))")
        return run_capture([self.python, "-c", code], cwd=self.workdir, env=self.env())

    def env(self):
        env = dict(os.environ)
        env.pop("PYTHONHOME", None)
        env["PYTHONPATH"] = os.pathsep.join([HERE] + self.extra_pythonpath)
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env

    def nginx_bin(self):
        return shutil.which("nginx") or "/usr/sbin/nginx"

    # ---- command line
    def command(self, app, port):
        py_run = {
            "fastwsgi": f"import apps, fastwsgi; fastwsgi.run(apps.{app}, host={HOST!r}, port={port})",
            "pypi-fastwsgi": f"import apps, fastwsgi; fastwsgi.run(apps.{app}, host={HOST!r}, port={port})",
            "bjoern": f"import apps, bjoern; bjoern.run(apps.{app}, {HOST!r}, {port})",
            # waitress: default 4 threads; connection_limit raised from 100 so that
            # the c1000 scenario is not refused by configuration.
            "waitress": (f"import apps, waitress; waitress.serve(apps.{app}, host={HOST!r}, port={port}, "
                         "_quiet=True, connection_limit=2000, backlog=2048)"),
        }
        if self.kind in py_run:
            return [self.python, "-c", py_run[self.kind]]
        if self.kind == "granian":
            return [os.path.join(self.bindir, "granian"), "--interface", "wsgi", "--workers", "1",
                    "--host", HOST, "--port", str(port), "--log-level", "warning",
                    "--no-ws", f"apps:{app}"]
        if self.kind == "gunicorn":
            # default (sync) worker, one worker process
            return [os.path.join(self.bindir, "gunicorn"), "-w", "1", "-b", f"{HOST}:{port}",
                    "--log-level", "warning", "--backlog", "2048", f"apps:{app}"]
        if self.kind == "nginx":
            conf = self.write_nginx_conf(app, port)
            return [self.nginx_bin(), "-p", self.nginx_dir, "-c", conf]
        raise ValueError(self.kind)

    def write_nginx_conf(self, app, port):
        d = self.nginx_dir
        os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
        files = {"body_64k": ("body64k.bin", apps.BODY_64K), "body_1m": ("body1m.bin", apps.BODY_1M)}
        if app in files:
            fname, data = files[app]
            with open(os.path.join(d, fname), "wb") as f:
                f.write(data)
            location = (f"root {d};\n            default_type application/octet-stream;\n"
                        f"            try_files /{fname} =404;")
        else:
            body = apps.APPS[app][1].decode()
            location = f'default_type text/plain;\n            return 200 "{body}";'
        t = os.path.join(d, "tmp")
        conf = f"""# generated by bench/run.py
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 65536;
pid {d}/nginx.pid;
error_log stderr warn;
events {{
    worker_connections 4096;
    multi_accept on;
}}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 100000000;
    client_max_body_size 16m;
    client_body_temp_path {t}/body;
    proxy_temp_path {t}/proxy;
    fastcgi_temp_path {t}/fastcgi;
    uwsgi_temp_path {t}/uwsgi;
    scgi_temp_path {t}/scgi;
    server {{
        listen {HOST}:{port} backlog=2048;
        location / {{
            {location}
        }}
    }}
}}
"""
        path = os.path.join(d, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        return path


def build_servers(args, workdir):
    peers_bin = os.path.join(args.peers_venv, "bin")
    peers_py = os.path.join(peers_bin, "python")
    pypi_py = os.path.join(args.pypi_fastwsgi_venv, "bin", "python")
    servers = {
        "fastwsgi": Server("fastwsgi", "fastwsgi", python=args.ours_python, dist="fastwsgi"),
        "bjoern": Server("bjoern", "bjoern", python=peers_py, dist="bjoern"),
        "granian": Server("granian", "granian", python=peers_py, bindir=peers_bin, dist="granian"),
        "gunicorn": Server("gunicorn", "gunicorn", python=peers_py, bindir=peers_bin, dist="gunicorn"),
        "waitress": Server("waitress", "waitress", python=peers_py, dist="waitress"),
        "pypi-fastwsgi": Server("pypi-fastwsgi", "pypi-fastwsgi", python=pypi_py, dist="fastwsgi"),
        "nginx": Server("nginx", "nginx"),
    }
    for s in servers.values():
        s.workdir = workdir
        s.nginx_dir = os.path.join(workdir, "nginx")
    ours = servers["fastwsgi"]
    # Ours: use the installed package if the interpreter has one (pip install [-e] .);
    # otherwise fall back to the source tree (python setup.py build_ext --inplace).
    if args.ours_pythonpath is not None:
        ours.extra_pythonpath = [p for p in args.ours_pythonpath.split(os.pathsep) if p]
    elif ours.check() is not None:
        ours.extra_pythonpath = [REPO]
    return servers


class Running:
    """A started server process group; always stopped via stop()."""

    def __init__(self, server, app, port, logpath, cpu):
        self.server, self.port, self.logpath = server, port, logpath
        self.cmd = ["taskset", "-c", str(cpu)] + server.command(app, port)
        self.logf = open(logpath, "w")
        self.logf.write("$ " + " ".join(self.cmd) + "\n")
        self.logf.flush()
        self.proc = subprocess.Popen(
            self.cmd, cwd=server.workdir, env=server.env(), stdin=subprocess.DEVNULL,
            stdout=self.logf, stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self):
        return self.proc.poll() is None

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return f"exited with code {self.proc.returncode} before accepting connections"
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return None
            except OSError:
                time.sleep(0.05)
        return f"did not accept connections within {timeout:.0f} s"

    def stop(self):
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        # Children (gunicorn/granian workers) may outlive the leader: sweep the group.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.logf.close()


_CLK = os.sysconf("SC_CLK_TCK")


def group_cpu_seconds(pgid):
    """user+system CPU seconds of all live processes in process group pgid."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is state (field 3); pgrp is field 5, utime 14, stime 15
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / _CLK


def system_cpu():
    """Machine-wide CPU seconds (all cores) from /proc/stat: (process time, softirq, steal)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]] + [0] * 8
    # user nice system idle iowait irq softirq steal
    # Tick-based accounting charges softirq time to the interrupted process as well,
    # so "busy" includes irq/softirq, and busy - server - wrk is the rest of the machine.
    return sum(v[0:3]) / _CLK + (v[5] + v[6]) / _CLK, (v[5] + v[6]) / _CLK, v[7] / _CLK


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


# --------------------------------------------------------------------------- wrk

_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m|h)$", text)
    return float(m.group(1)) * _UNIT[m.group(2)] if m else None


def parse_wrk(out):
    r = {"rps": None, "requests": 0, "duration_s": None, "bytes_read": None,
         "errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0}, "non2xx": 0,
         "latency_ms": {}}
    m = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    if m:
        r["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m),\s+([\d.]+)(B|KB|MB|GB|TB) read", out)
    if m:
        r["requests"] = int(m.group(1))
        r["duration_s"] = _ms(m.group(2) + m.group(3)) / 1e3
        r["bytes_read"] = float(m.group(4)) * 1024 ** "B KB MB GB TB".split().index(m.group(5))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r["errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups())))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        r["non2xx"] = int(m.group(1))
    m = re.search(r"^\s+Latency\s+(\S+)\s+(\S+)\s+(\S+)", out, re.M)
    if m:
        r["latency_ms"]["avg"] = _ms(m.group(1))
        r["latency_ms"]["max"] = _ms(m.group(3))
    for pct, val in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M):
        r["latency_ms"][f"p{pct}"] = _ms(val)
    return r


def _secs(x):
    """wrk wants integer durations: 2.5 -> '2500ms'."""
    return f"{int(x)}s" if float(x).is_integer() else f"{int(round(x * 1000))}ms"


def wrk_command(args, port, scenario, duration):
    sc = SCENARIOS[scenario]
    cmd = ["taskset", "-c", str(args.wrk_cpu), args.wrk, f"-t{args.threads}", f"-c{sc['conns']}",
           f"-d{_secs(duration)}", f"--timeout={_secs(args.timeout)}", "--latency"]
    if sc["script"]:
        cmd += ["-s", os.path.join(HERE, sc["script"])]
    cmd.append(f"http://{HOST}:{port}/")
    if sc.get("script_args"):
        cmd += ["--"] + sc["script_args"]
    return cmd


def _children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_wrk(cmd, duration):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    try:
        out, _ = p.communicate(timeout=duration + 60)
    except BaseException:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
        raise
    return p.returncode, out


# --------------------------------------------------------------------------- one cell


def one_run(args, running, port, scenario):
    """One measured wrk run, with CPU accounting of server, wrk and the rest of the machine."""
    srv0, wrk0, sys0 = group_cpu_seconds(running.proc.pid), _children_cpu(), system_cpu()
    t0 = time.monotonic()
    rc, out = run_wrk(wrk_command(args, port, scenario, args.duration), args.duration)
    elapsed = time.monotonic() - t0
    sys1 = system_cpu()
    w = parse_wrk(out)
    w["wrk_rc"] = rc
    # In % of one core. Server near 100%: the server is the bottleneck (good).
    # wrk near 100%: the figure is capped by the load generator.
    w["server_cpu_pct"] = round(100 * (group_cpu_seconds(running.proc.pid) - srv0) / elapsed, 1)
    w["wrk_cpu_pct"] = round(100 * (_children_cpu() - wrk0) / elapsed, 1)
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
    res["command"] = _scrub(shlex.join(running.cmd), port)
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
        res["wrk_command"] = _scrub(shlex.join(wrk_command(args, port, scenario, args.duration)), port)
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


# --------------------------------------------------------------------------- report

STATUS_MARK = {"fail-start": "FAIL (start)", "fail-check": "FAIL (bad response)",
               "fail-crash": "FAIL (crashed)", "fail-wrk": "FAIL (wrk)", "unavailable": "n/a"}


def cell_text(r):
    if r is None:
        return ""
    if r["status"] != "ok" and r.get("median_rps") is None:
        return STATUS_MARK.get(r["status"], "FAIL")
    txt = fmt_rps(r["median_rps"])
    errs = sum(r.get("errors_total", {}).values()) + r.get("non2xx_total", 0)
    if errs:
        txt += " ⚠"
    runs = [run for run in r.get("runs", []) if run.get("rps")]
    if runs and all(run.get("noisy") for run in runs):
        txt += " ~"
    if r["status"] != "ok":
        txt += " ✗"
    return txt


def best_peer(results, scenario, servers):
    best = None
    for s in servers:
        if s == OURS or s in REFERENCE:
            continue
        r = results.get(s, {}).get(scenario)
        if r and r["status"] == "ok" and r.get("median_rps"):
            if best is None or r["median_rps"] > best[1]:
                best = (s, r["median_rps"])
    return best


def write_markdown(path, data):
    results, servers, scenarios = data["results"], data["servers"], data["scenarios"]
    meta = data["meta"]
    L = []
    L.append("# fastwsgi peer benchmark\n")
    L.append(f"- date: {meta['date']}")
    L.append(f"- machine: {meta['cpu']}, {meta['ncpu']} cores, Linux {meta['kernel']}, Python {meta['python']}")
    L.append(f"- method: server pinned to core {meta['server_cpu']}, wrk ({meta['wrk_version']}) "
             f"pinned to core {meta['wrk_cpu']} with -t{meta['threads']}; "
             f"{meta['warmup']} s warm-up, then {meta['repeats']} × {meta['duration']} s runs; "
             "cell = **median requests/s** (higher is better)")
    for m in meta.get("merges", []):
        what = (", ".join(m["cells"]) if "cells" in m
                else f"{', '.join(m.get('servers', []))} × {', '.join(m.get('scenarios', []))}")
        L.append(f"- re-measured {m['date']} ({m['warmup']:g} s warm-up, {m['repeats']} × "
                 f"{m['duration']:g} s): {what or 'nothing'}")
    L.append("- versions: " + ", ".join(f"{s} {data['versions'].get(s, '?')}" for s in servers))
    L.append("")
    head = ["scenario"] + servers + ["best peer", "fastwsgi / best peer"]
    L.append("| " + " | ".join(head) + " |")
    L.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
    notes = []
    for sc in scenarios:
        row = [sc]
        for s in servers:
            r = results.get(s, {}).get(sc)
            row.append(cell_text(r))
            if r and (r["status"] != "ok" or sum(r.get("errors_total", {}).values())
                      or r.get("non2xx_total")):
                notes.append((s, sc, r))
        bp = best_peer(results, sc, servers)
        row.append(f"{bp[0]} {fmt_rps(bp[1])}" if bp else "—")
        ours = results.get(OURS, {}).get(sc)
        if bp and ours and ours["status"] == "ok" and ours.get("median_rps"):
            row.append(f"**{ours['median_rps'] / bp[1]:.2f}×**")
        else:
            row.append("—")
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    L.append("Run-to-run spread, (max − min) / median of the measured runs:\n")
    L.append("| scenario | " + " | ".join(servers) + " |")
    L.append("|" + "|".join(["---"] + ["---:"] * len(servers)) + "|")
    for sc in scenarios:
        row = [sc]
        for s in servers:
            r = results.get(s, {}).get(sc) or {}
            rps = [x["rps"] for x in r.get("runs", []) if x.get("rps")]
            row.append(f"{100 * (max(rps) - min(rps)) / statistics.median(rps):.0f}%" if len(rps) > 1 else "")
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    L.append("Peers = every server except fastwsgi (ours) and nginx (the C reference, "
             "serving the same bytes from `return`/static files).")
    L.append("⚠ = wrk saw socket errors or non-2xx responses (details below); "
             "✗ = server failed part of the scenario; FAIL = no usable measurement; "
             "~ = every run of the cell had other processes busy on the machine (noisy); "
             "otherwise the median is over the clean runs only.")
    L.append("")
    L.append("## Scenarios\n")
    for sc in scenarios:
        L.append(f"- **{sc}**: {SCENARIOS[sc]['desc']}")
    if notes:
        L.append("\n## Errors and failures\n")
        for s, sc, r in notes:
            if r["status"] != "ok":
                err = (r.get("error") or "").strip().splitlines()
                L.append(f"- {s} / {sc}: **{r['status']}** — {err[0] if err else ''}")
            e = r.get("errors_total", {})
            if sum(e.values()) or r.get("non2xx_total"):
                L.append(f"- {s} / {sc}: socket errors connect {e.get('connect', 0)}, read {e.get('read', 0)}, "
                         f"write {e.get('write', 0)}, timeout {e.get('timeout', 0)}; non-2xx "
                         f"{r.get('non2xx_total', 0)} (of {r.get('requests_total', 0):,} responses, all measured runs)")
    L.append("\n## Commands\n")
    for s in servers:
        for sc in scenarios:
            r = results.get(s, {}).get(sc)
            if r and r.get("command"):
                L.append(f"- {s} / {sc}: `{r['command']}`")
                break
    wc = {sc: next((r.get("wrk_command") for s in servers
                    for r in [results.get(s, {}).get(sc)] if r and r.get("wrk_command")), None)
          for sc in scenarios}
    for sc in scenarios:
        if wc[sc]:
            L.append(f"- wrk / {sc}: `{wc[sc]}`")
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")


_SCRUB = []  # (machine-specific text, neutral text), longest first; filled by main()


def _scrub(text, port=None):
    """Make text written under bench/ free of this machine's paths and ports."""
    if not text:
        return text
    for old, new in _SCRUB:
        text = text.replace(old, new)
    if port:
        text = re.sub(rf"\b{port}\b", "PORT", text)
    return re.sub(r"127\.0\.0\.1([:,= ]+|', )\d{2,5}\b", r"127.0.0.1\1PORT", text)


def _set_scrub(args, workdir):
    home = os.path.expanduser("~")
    pairs = [(workdir, "$TMP"), (HERE, "bench"), (REPO, "."),
             (args.ours_python, "python"), (args.wrk, "wrk"),
             (shutil.which("nginx") or "/usr/sbin/nginx", "nginx"),
             (home, "~"), (tempfile.gettempdir() + os.sep, "$TMPDIR/")]
    pairs = [(a, b) for a, b in pairs if a and len(a) > 1]
    pairs.sort(key=lambda p: -len(p[0]))
    _SCRUB[:] = pairs


def write_chart(path, data):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not importable by this interpreter"
    results, servers, scenarios = data["results"], data["servers"], data["scenarios"]
    colors = {"fastwsgi": "#d62728", "nginx": "#7f7f7f", "bjoern": "#1f77b4", "granian": "#2ca02c",
              "gunicorn": "#9467bd", "waitress": "#8c564b", "pypi-fastwsgi": "#ff7f0e"}
    # only servers that produced at least one number (or failed visibly) get a bar group
    shown = [s for s in servers
             if any((results.get(s, {}).get(sc) or {}).get("status", "unavailable") != "unavailable"
                    for sc in scenarios)]
    n = len(shown)
    width = 0.8 / max(n, 1)
    floor = 0.02          # ratios below this are drawn at the floor, labelled with the real value
    fig, ax = plt.subplots(figsize=(max(8, 1.9 * len(scenarios) + 2), 5.5))
    ymin, ymax = 1.0, 1.0
    for i, s in enumerate(shown):
        xs, ys, labels = [], [], []
        for j, sc in enumerate(scenarios):
            r = results.get(s, {}).get(sc)
            bp = best_peer(results, sc, servers)
            x = j - 0.4 + width * (i + 0.5)
            if r and r.get("median_rps") and bp:
                ratio = r["median_rps"] / bp[1]
                xs.append(x); ys.append(max(ratio, floor)); labels.append((r["median_rps"], ratio < floor))
                ymin, ymax = min(ymin, max(ratio, floor)), max(ymax, ratio)
            elif r and r["status"] not in ("ok", "unavailable"):
                ax.text(x, 1.0, "FAIL", ha="center", va="bottom", color=colors.get(s, "k"),
                        fontsize=7, rotation=90)
        bars = ax.bar(xs, ys, width * 0.92, label=s, color=colors.get(s, "#333333"),
                      hatch="//" if s in REFERENCE else None,
                      edgecolor="black" if s == OURS else None, linewidth=1.2 if s == OURS else 0)
        for b, (v, clipped) in zip(bars, labels):
            txt = f"{v / 1000:.0f}k" if v >= 10000 else (f"{v / 1000:.1f}k" if v >= 1000 else f"{v:.0f}")
            ax.text(b.get_x() + b.get_width() / 2, b.get_height() * 1.04, txt + (" ↓" if clipped else ""),
                    ha="center", va="bottom", fontsize=6.5, rotation=90)
    ax.set_yscale("log")
    ax.set_ylim(ymin / 1.3, ymax * 2.2)
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(scenarios)))
    ax.set_xticklabels([f"{sc}\n(best peer: {best_peer(results, sc, servers)[0]})"
                        if best_peer(results, sc, servers) else sc for sc in scenarios], fontsize=8.5)
    ax.set_ylabel("requests/s relative to best peer (log scale; 1.0 = best peer)")
    ax.set_title("WSGI servers, median req/s (on bars), normalised to the best peer per scenario\n"
                 "server on one core, wrk on the other; '↓' = below the axis floor", fontsize=10)
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}×"))
    ax.legend(ncol=max(1, min(n, 7)), fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), frameon=False)
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return None


def chart_via_peers(args, json_path, png_path):
    """Draw the chart with the peers venv's matplotlib if ours lacks it."""
    py = os.path.join(args.peers_venv, "bin", "python")
    if not os.path.exists(py):
        return "no matplotlib: install it, or run setup_peers.sh"
    code = ("import sys, json; sys.path.insert(0, sys.argv[1]); import run; "
            "print(run.write_chart(sys.argv[3], json.load(open(sys.argv[2]))) or '', end='')")
    p = subprocess.run([py, "-c", code, HERE, json_path, png_path], capture_output=True, text=True,
                       cwd=tempfile.gettempdir())
    if p.returncode != 0:
        return p.stderr.strip()[-500:] or "failed"
    return p.stdout.strip() or None


# --------------------------------------------------------------------------- main


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="servers: " + ", ".join(ALL_SERVERS)
                                 + "\nscenarios: " + ", ".join(SCENARIOS))
    ap.add_argument("--servers", default=",".join(DEFAULT_SERVERS),
                    help="comma-separated list (default: %(default)s; 'all' adds waitress)")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated (default: all)")
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
    ap.add_argument("--out-dir", default=os.path.join(HERE, "results"))
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
    a.scenarios = [s.strip() for s in a.scenarios.split(",") if s.strip()]
    for s in a.servers:
        if s not in ALL_SERVERS:
            ap.error(f"unknown server {s!r} (known: {', '.join(ALL_SERVERS)})")
    for s in a.scenarios:
        if s not in SCENARIOS:
            ap.error(f"unknown scenario {s!r} (known: {', '.join(SCENARIOS)})")
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
        "quiet_timeout": args.quiet_timeout,
    }


def write_reports(args, data):
    json_path = os.path.join(args.out_dir, "results.json")
    with open(json_path, "w") as f:
        json.dump(data, f, indent=1)
    md_path = os.path.join(args.out_dir, "results.md")
    write_markdown(md_path, data)
    png_path = os.path.join(args.out_dir, "results.png")
    err = write_chart(png_path, data)
    if err and "not importable" in err:
        err = chart_via_peers(args, json_path, png_path)
    log("")
    with open(md_path) as f:
        log(f.read().split("\n## Scenarios")[0])
    log(f"wrote {md_path}\nwrote {json_path}")
    log(f"chart: {'not written: ' + err if err else 'wrote ' + png_path}")


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
    _set_scrub(args, workdir)
    try:
        servers = build_servers(args, workdir)
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
            if name not in usable:
                why = servers[name].check()
                for sc in args.scenarios:
                    data["results"].setdefault(name, {})[sc] = {
                        "server": name, "scenario": sc, "status": "unavailable", "error": _scrub(why),
                        "runs": []}

        todo = [(sc, name) for sc in args.scenarios for name in usable]
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
            for sc, name in todo:
                k += 1
                tag = f"[{k:>2}/{total}] {name:<13} {sc:<10}"

                def progress(msg, tag=tag):
                    log(f"{tag} {msg}")
                progress("starting server ...")
                res = measure(args, servers[name], sc, logdir, progress)
                res["error"] = _scrub(res.get("error"), res.get("port"))
                for run in res["runs"]:
                    if "raw" in run:
                        run["raw"] = _scrub(run["raw"], res.get("port"))
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
