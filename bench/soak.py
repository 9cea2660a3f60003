"""Soak: run the real ``fastwsgi`` command for minutes under mixed load; watch every worker.

The server is the command users run (``python -m fastwsgi -w N``) serving
``support.apps.soak:app`` (tests/support/apps/soak.py).  Two loads run side by side for
``--duration``:

* ``wrk`` (when installed) on keep-alive connections, rotating through GET,
  HEAD, streamed and file_wrapper responses and 16 KiB uploads;
* a Python mix (``tests/support/workload.py``), ``--mix-rate`` rounds a second,
  for what wrk does not do: pipelined bursts, chunked and spooled uploads,
  100-continue, app failures before and after the headers, refused requests,
  PROXY headers, and clients that vanish mid-request and mid-response.
  Every answer is checked; failures are counted and the first few printed;
* with ``--fork-pool``, a request to ``/pool`` every ``--fork-pool-interval``
  seconds: a task on a fork ``multiprocessing.Pool`` that forks a fresh child
  per task, so the workers' client descriptors are always shared with a child
  (an app that forks), while the loads above open and close connections.

Every ``--interval`` seconds each worker's RSS and open descriptors are read
from /proc and printed.  At the end: a CSV of the samples, a JSON and a
Markdown summary (per worker: RSS idle, after warm-up and at the end of the
load, its least-squares slope, descriptors idle before and after), and exit
status 1 if a worker grew past ``--rss-limit-kib``, holds more descriptors
idle after the load than before it, or the mix saw a wrong answer.

    python bench/soak.py                          # 5 minutes, 2 workers
    python bench/soak.py --duration 1800 --workers 4 --connections 64
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
TESTS = ROOT / "tests"
sys.path[:0] = [str(ROOT), str(TESTS)]

from support import workload
from support.processes import children, free_port

# wrk's rotation: (method, path, body size); /file is 1 MiB, so it comes rarely.
# No HEAD: wrk's response parser does not know the method and would wait for
# the body a Content-Length announces (the Python mix sends HEAD).
WRK_REQUESTS = [("GET", "/hello", 0)] * 6 + [
    ("GET", "/write", 0), ("GET", "/no-content", 0), ("GET", "/stream?4", 0),
    ("POST", "/echo", 16384), ("GET", "/file", 0),
]
# The command's default spool threshold is 1 MiB: the mix's "spooled" bodies go past it.
CLI_SPOOLED = 1200 * 1024


def log(message: str) -> None:
    print(message, flush=True)


def wrk_script() -> str:
    # Built in init(): wrk sets the Host header only just before calling it.
    lines = ["local requests = {}", "function init(args)"]
    for index, (method, path, size) in enumerate(WRK_REQUESTS, 1):
        body = f'string.rep("w", {size})' if size else "nil"
        headers = '{["Content-Type"] = "application/octet-stream"}' if size else "{}"
        lines.append(f'  requests[{index}] = wrk.format("{method}", "{path}", {headers}, {body})')
    lines += [
        "end",
        "local n = 0",
        "function request()",
        f"  n = n % {len(WRK_REQUESTS)} + 1",
        "  return requests[n]",
        "end",
    ]
    return "\n".join(lines) + "\n"


# -- the server ----------------------------------------------------------------------

class Server:
    def __init__(self, workers: int, port: int, log_path: Path, fork_pool: bool = False):
        env = {k: v for k, v in os.environ.items()
               if k not in ("GUNICORN_CMD_ARGS", "FASTWSGI_CMD_ARGS", "WEB_CONCURRENCY", "PORT")}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(TESTS)])
        if fork_pool:
            env["SOAK_FORK_POOL"] = "1"   # the app makes its fork Pool at import
        self.log_path = log_path
        self.log_file = open(log_path, "wb")  # noqa: SIM115 - the server writes it until stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fastwsgi", "-w", str(workers), "-b", f"127.0.0.1:{port}",
             "--keep-alive", "5", "--proxy-protocol", "auto", "--proxy-allow-from", "127.0.0.1",
             "support.apps.soak:app"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self.log_file, start_new_session=True)
        self.port = port

    def workers(self) -> list[int]:
        return sorted(children(self.proc.pid))

    def wait_ready(self, workers: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"fastwsgi exited ({self.proc.returncode}); see {self.log_path.name}")
            booted = len(re.findall(r"Booting worker with pid", self.log_path.read_text(errors="replace")))
            if booted >= workers and len(self.workers()) >= workers:
                try:
                    workload.server_stats(workload.Target(self.port))
                    return
                except OSError:
                    pass
            time.sleep(0.1)
        raise SystemExit(f"fastwsgi not ready within {timeout:.0f}s")

    def stop(self) -> int:
        try:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGTERM)
                try:
                    return self.proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait()
        finally:
            self.log_file.close()


def take_samples(server: Server, samples: list, phase: str, elapsed: float) -> list[dict]:
    taken = []
    for role, pids in (("master", [server.proc.pid]), ("worker", server.workers())):
        for pid in pids:
            sample = process_sample(pid)
            if sample:
                taken.append({"elapsed_s": round(elapsed, 1), "phase": phase, "role": role, "pid": pid, **sample})
    samples.extend(taken)
    return taken


def process_sample(pid: int) -> dict | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {"rss_kib": int(fields["VmRSS"].split()[0]), "hwm_kib": int(fields["VmHWM"].split()[0]),
            "fds": fds}


# -- the loads -----------------------------------------------------------------------

class PythonMix(threading.Thread):
    """support.workload rounds at a steady rate; counts rounds and failures."""

    def __init__(self, target: workload.Target, rate: float, stop: threading.Event):
        super().__init__(daemon=True)
        self.target, self.rate, self.stop = target, rate, stop
        self.rounds = 0
        self.failures: list[str] = []

    def run(self) -> None:
        period = 1.0 / self.rate
        next_round = time.monotonic()
        while not self.stop.is_set():
            try:
                workload.run_round(self.target)
                self.rounds += 1
            except Exception as error:  # noqa: BLE001 - counted and reported, the soak goes on
                self.failures.append(f"{type(error).__name__}: {error}")
                if len(self.failures) <= 5:
                    log(f"  mix failure: {self.failures[-1]}")
            next_round += period
            self.stop.wait(max(0.0, next_round - time.monotonic()))


class PoolCaller(threading.Thread):
    """--fork-pool: GET /pool at a steady interval, each on a new connection; counts failures."""

    def __init__(self, port: int, interval: float, stop: threading.Event, failures: list[str]):
        super().__init__(daemon=True)
        self.port, self.interval, self.stop, self.failures = port, interval, stop, failures
        self.calls = 0

    def run(self) -> None:
        import http.client
        while not self.stop.wait(self.interval):
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                connection.request("GET", "/pool")
                response = connection.getresponse()
                body = response.read()
                if (response.status, body) != (200, b"45"):
                    raise AssertionError(f"/pool answered {response.status} {body[:80]!r}")
                self.calls += 1
            except Exception as error:  # noqa: BLE001 - counted and reported, the soak goes on
                self.failures.append(f"/pool: {type(error).__name__}: {error}")
                if len(self.failures) <= 5:
                    log(f"  mix failure: {self.failures[-1]}")
            finally:
                connection.close()


def start_wrk(args, port: int, workdir: Path, duration: float):
    wrk = shutil.which(args.wrk)
    if wrk is None or args.connections == 0:
        return None
    script = workdir / "soak.lua"
    script.write_text(wrk_script())
    command = [wrk, "-t1", f"-c{args.connections}", f"-d{int(duration)}s", "--timeout", "10s",
               "-s", str(script), f"http://127.0.0.1:{port}/"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def parse_wrk(output: str) -> dict:
    result = {}
    if match := re.search(r"(\d+) requests in", output):
        result["requests"] = int(match.group(1))
    if match := re.search(r"Requests/sec:\s*([\d.]+)", output):
        result["requests_per_second"] = float(match.group(1))
    if match := re.search(r"Non-2xx or 3xx responses:\s*(\d+)", output):
        result["non_2xx_3xx"] = int(match.group(1))
    if match := re.search(r"Socket errors: (.*)", output):
        result["socket_errors"] = match.group(1).strip()
    return result


# -- the summary ---------------------------------------------------------------------

# The mix's app failures, and the malformed requests it sends on purpose (logged at
# WARNING, as gunicorn logs them).
PLANNED_FAILURE = re.compile(r"\[ERROR\] Error handling request /raise-(before|after)"
                             r"|\[WARNING\] Invalid request from ip=")
PROBLEM = re.compile(r"\[(WARNING|ERROR|CRITICAL)\]")


def read_error_log(path: Path) -> dict:
    """The server's log lines by kind: the mix's planned app failures, and anything else amiss."""
    planned, unexpected, booted = 0, [], 0
    for line in path.read_text(errors="replace").splitlines():
        booted += "Booting worker with pid" in line
        if PLANNED_FAILURE.search(line):
            planned += 1
        elif PROBLEM.search(line):
            unexpected.append(line)
    return {"planned_app_failures": planned, "unexpected": len(unexpected), "workers_booted": booted,
            "unexpected_examples": unexpected[:5]}


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value), per minute."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        return 0.0
    return 60 * sum((t - mean_t) * (v - mean_v) for t, v in points) / spread


def summarize(samples: list[dict], warm_up: float, rss_limit_kib: int) -> dict:
    """Per worker: RSS over the load (after warm-up) and descriptors idle before and after."""
    workers = {}
    for pid in sorted({s["pid"] for s in samples if s["role"] == "worker"}):
        own = [s for s in samples if s["pid"] == pid]
        loaded = [s for s in own if s["phase"] == "load"]
        settled = [s for s in loaded if s["elapsed_s"] >= warm_up] or loaded or own
        idle_before = next((s for s in own if s["phase"] == "idle-before"), own[0])
        idle_after = next((s for s in reversed(own) if s["phase"] == "idle-after"), own[-1])
        first, last = settled[0], settled[-1]
        growth = last["rss_kib"] - first["rss_kib"]
        workers[str(pid)] = {
            "rss_idle_before_kib": idle_before["rss_kib"],
            "rss_after_warm_up_kib": first["rss_kib"],
            "rss_end_of_load_kib": last["rss_kib"],
            "rss_idle_after_kib": idle_after["rss_kib"],
            "rss_min_kib": min(s["rss_kib"] for s in settled),
            "rss_max_kib": max(s["rss_kib"] for s in settled),
            "rss_growth_after_warm_up_kib": growth,
            "rss_slope_kib_per_min": round(slope_per_minute([(s["elapsed_s"], s["rss_kib"]) for s in settled]), 1),
            "peak_hwm_kib": max(s["hwm_kib"] for s in own),
            "fds_idle_before": idle_before["fds"],
            "fds_idle_after": idle_after["fds"],
            "fds_max_under_load": max(s["fds"] for s in loaded) if loaded else idle_after["fds"],
            "level": growth <= rss_limit_kib and idle_after["fds"] <= idle_before["fds"],
        }
    return workers


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


def write_markdown(path: Path, summary: dict) -> None:
    wrk = summary["wrk"]
    lines = [
        "# fastwsgi soak",
        "",
        (f"{summary['duration_s']:.0f} s, {summary['workers']} workers, wrk {wrk.get('requests', 0):,} "
         f"requests ({wrk.get('requests_per_second', 0):,.0f}/s, non-2xx {wrk.get('non_2xx_3xx', 0)}), "
         f"Python mix {summary['mix_rounds']:,} rounds ({summary['mix_failures']} failed), warm-up "
         f"{summary['warm_up_s']:.0f} s. Error log: {summary['error_log']['planned_app_failures']:,} "
         f"planned app failures and refused requests, {summary['error_log']['unexpected']} other warnings or errors. "
         f"Workers booted: {summary['workers_booted']}"
         + (f"; fork-pool calls: {summary['fork_pool_calls']:,}." if summary["fork_pool_calls"] is not None
            else ".")),
        "",
        ("| worker | RSS idle before | after warm-up | end of load | idle after | min..max after warm-up "
         "| slope after warm-up | fds idle before → after (max under load) | level |"),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for pid, w in summary["per_worker"].items():
        lines.append(
            f"| {pid} | {mib(w['rss_idle_before_kib'])} | {mib(w['rss_after_warm_up_kib'])} "
            f"| {mib(w['rss_end_of_load_kib'])} | {mib(w['rss_idle_after_kib'])} "
            f"| {mib(w['rss_min_kib'])}..{mib(w['rss_max_kib'])} | {w['rss_slope_kib_per_min']:+.0f} KiB/min "
            f"| {w['fds_idle_before']} → {w['fds_idle_after']} ({w['fds_max_under_load']}) "
            f"| {'yes' if w['level'] else 'NO'} |")
    path.write_text("\n".join(lines) + "\n")


# -- main ----------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=300, help="seconds of load (default 300)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32, help="wrk connections; 0: no wrk")
    parser.add_argument("--mix-rate", type=float, default=5.0, help="Python mix rounds per second")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--warm-up", type=float, default=None,
                        help="seconds before the baseline sample (default: 10%% of the duration, 10..60)")
    parser.add_argument("--rss-limit-kib", type=int, default=8192,
                        help="largest RSS growth per worker after warm-up that still counts as level")
    parser.add_argument("--fork-pool", action="store_true",
                        help="also call /pool, a task on a fork multiprocessing.Pool, throughout")
    parser.add_argument("--fork-pool-interval", type=float, default=0.25,
                        help="seconds between /pool calls (default 0.25)")
    parser.add_argument("--wrk", default="wrk", help="the wrk executable")
    parser.add_argument("--out", type=Path, default=BENCH / "results",
                        help="directory for soak.csv, soak-summary.json and soak-summary.md")
    parser.add_argument("--keep-log", action="store_true",
                        help="keep the server's error log there too (soak-server.log; ~1 MB per 5 minutes "
                             "of planned app failures)")
    args = parser.parse_args(argv)
    warm_up = args.warm_up if args.warm_up is not None else min(60.0, max(10.0, args.duration / 10))
    args.out.mkdir(parents=True, exist_ok=True)

    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="fastwsgi-soak-"))
    server = Server(args.workers, port, workdir / "soak-server.log", args.fork_pool)
    samples: list[dict] = []
    stop = threading.Event()
    mix = PythonMix(workload.Target(port, spooled=CLI_SPOOLED, body_limit=None), args.mix_rate, stop)
    pool_caller = PoolCaller(port, args.fork_pool_interval, stop, mix.failures) if args.fork_pool else None
    wrk_output = ""
    try:
        try:
            server.wait_ready(args.workers)
            take_samples(server, samples, "idle-before", 0.0)
            log(f"fastwsgi: master {server.proc.pid}, workers {server.workers()}, port {port}; "
                f"{args.duration:.0f}s of load, warm-up {warm_up:.0f}s, a sample every {args.interval:.0f}s")
            wrk = start_wrk(args, port, workdir, args.duration)
            if wrk is None:
                log("wrk: not used (not installed or --connections 0)")
            mix.start()
            if pool_caller is not None:
                pool_caller.start()
            started = time.monotonic()
            next_sample = started
            while True:
                elapsed = time.monotonic() - started
                if elapsed >= next_sample - started:
                    row = [f"{s['pid']}: {s['rss_kib'] / 1024:6.1f} MiB {s['fds']:3d} fds"
                           for s in take_samples(server, samples, "load", elapsed) if s["role"] == "worker"]
                    log(f"[{elapsed:6.0f}s] " + " | ".join(row)
                        + f" | mix {mix.rounds} rounds, {len(mix.failures)} failed")
                    next_sample += args.interval
                if elapsed >= args.duration or server.proc.poll() is not None:
                    break
                time.sleep(min(0.5, max(0.0, next_sample - time.monotonic())))
            stop.set()
            mix.join(30)
            if pool_caller is not None:
                pool_caller.join(30)
            if wrk is not None:
                wrk_output = wrk.communicate(timeout=60)[0]
            # a last sample once the load is gone and lingering connections closed
            time.sleep(3)
            take_samples(server, samples, "idle-after", time.monotonic() - started)
        finally:
            stop.set()
            exit_code = server.stop()
        log_summary = read_error_log(server.log_path)
        if args.keep_log:
            shutil.copy(server.log_path, args.out / "soak-server.log")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    with open(args.out / "soak.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["elapsed_s", "phase", "role", "pid", "rss_kib", "hwm_kib", "fds"])
        writer.writeheader()
        writer.writerows(samples)
    per_worker = summarize(samples, warm_up, args.rss_limit_kib)
    summary = {
        "duration_s": args.duration, "workers": args.workers, "warm_up_s": warm_up,
        "wrk_connections": args.connections, "wrk": parse_wrk(wrk_output),
        "mix_rate": args.mix_rate, "mix_rounds": mix.rounds, "mix_failures": len(mix.failures),
        "mix_failure_examples": mix.failures[:5], "server_exit_code": exit_code,
        "fork_pool_calls": pool_caller.calls if pool_caller is not None else None,
        "workers_booted": log_summary["workers_booted"],
        "error_log": log_summary,
        "per_worker": per_worker,
    }
    (args.out / "soak-summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    write_markdown(args.out / "soak-summary.md", summary)
    log("")
    log((args.out / "soak-summary.md").read_text())
    # A worker that died (by a signal or otherwise) is logged and rebooted: a boot
    # beyond the first ones is a failure too.
    healthy = (bool(per_worker) and all(w["level"] for w in per_worker.values())
               and not mix.failures and exit_code == 0 and not log_summary["unexpected"]
               and log_summary["workers_booted"] == args.workers)
    log("soak: " + ("level" if healthy else "NOT level (see the summary)"))
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
