"""wrk: the command line for a scenario, running it, parsing its output."""
import os
import re
import signal
import subprocess

from . import BENCH_DIR, HOST
from .scenarios import Scenario

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


def wrk_command(args, port, scenario: Scenario, duration, script=None, script_args=None):
    """wrk's command line for a scenario; script and script_args replace the scenario's own."""
    script = script or scenario.script
    script_args = scenario.script_args if script_args is None else script_args
    cmd = ["taskset", "-c", str(args.wrk_cpu), args.wrk, f"-t{args.threads}", f"-c{scenario.conns}",
           f"-d{_secs(duration)}", f"--timeout={_secs(args.timeout)}", "--latency"]
    if script:
        cmd += ["-s", os.path.join(BENCH_DIR, script)]
    cmd.append(f"{scenario.scheme}://{HOST}:{port}{scenario.path}")
    if script_args:
        cmd += ["--"] + list(script_args)
    return cmd


def count_command(args, port, scenario: Scenario, requests, timeout):
    """wrk, one thread, ended by stop_after.lua after `requests` responses (at most `timeout` s)."""
    cmd = wrk_command(args, port, scenario, timeout, script="stop_after.lua", script_args=[str(requests)])
    cmd[cmd.index(f"-t{args.threads}")] = "-t1"
    return cmd


def parse_count(out):
    """(responses, non-200 responses) of a count_command run, from the script's line or wrk's summary."""
    m = re.search(r"^responses (\d+) non-200 (\d+)$", out, re.MULTILINE)
    if m:
        return int(m.group(1)), int(m.group(2))
    summary = parse_wrk(out)
    return summary["requests"], summary["non2xx"]


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
