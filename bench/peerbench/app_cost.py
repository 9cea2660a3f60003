"""The app's own cost: a scenario's app called in a loop in one process, no server, no socket.

Each call gets the environ a server builds for the scenario's request (the
request wrk sends: its method, path and Host, a fresh ``wsgi.input``), a
``start_response`` that keeps the status and headers, and its response is
iterated and closed as a server does.  The time per call is what the app costs
any server; with the C ceiling's cost per request (1 / nginx's req/s) it sets
the limit a server can reach on this row (``limits.py``).

Run by ``run.py`` with the interpreter that runs our server, pinned to the
server's core; by hand, from bench/:

    python -m peerbench.app_cost flask-json
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import io
import json
import platform
import statistics
import subprocess
import sys
import time
from typing import Any, Callable

from . import HOST
from .processes import children_cpu, system_cpu
from .scenarios import SCENARIOS, Scenario, app_callable, app_module

ENVIRON_PORT = 8000        # the port in Host; the environ is the same for any port
FRAMEWORKS = ("flask", "werkzeug", "django")


def request_environ(scenario: Scenario) -> dict[str, Any]:
    """The environ of the scenario's request, as a server builds it, without wsgi.input."""
    environ = {
        "REQUEST_METHOD": "GET" if scenario.request_body is None else "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": scenario.path,
        "QUERY_STRING": "",
        "SERVER_NAME": HOST,
        "SERVER_PORT": str(ENVIRON_PORT),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_SOFTWARE": "fastwsgi",
        "REMOTE_ADDR": HOST,
        "REMOTE_PORT": "50000",
        "HTTP_HOST": f"{HOST}:{ENVIRON_PORT}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scenario.scheme,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
    }
    if scenario.request_body is not None:
        environ["CONTENT_TYPE"] = "application/octet-stream"
        environ["CONTENT_LENGTH"] = str(len(scenario.request_body))
    return environ


def serve_once(app: Callable, template: dict[str, Any], body: bytes) -> tuple[str, list[bytes]]:
    """One call as a server makes it: a fresh environ and input, the body iterated, close() called."""
    environ = dict(template)
    environ["wsgi.input"] = io.BytesIO(body)
    started: list[Any] = []
    chunks: list[bytes] = []

    def start_response(status, headers, exc_info=None):
        if exc_info is not None and started:
            raise exc_info[1].with_traceback(exc_info[2])
        started[:] = [status, headers]
        return chunks.append

    result = app(environ, start_response)
    try:
        chunks.extend(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return started[0], chunks


def seconds_per_call(app: Callable, template: dict[str, Any], body: bytes, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        serve_once(app, template, body)
    return (time.perf_counter() - start) / calls


def measure(scenario: Scenario, runs: int, min_run_seconds: float) -> dict[str, Any]:
    """µs per call: the median of `runs` timed runs, each of as many calls as fill min_run_seconds."""
    app = getattr(importlib.import_module(app_module(scenario)), app_callable(scenario))
    template, body = request_environ(scenario), scenario.request_body or b""
    status, chunks = serve_once(app, template, body)
    if not status.startswith("200") or b"".join(chunks) != scenario.expected_body:
        raise SystemExit(f"{scenario.app} answered {status!r} with {b''.join(chunks)[:80]!r}")
    calls = 16
    while seconds_per_call(app, template, body, calls) * calls < min_run_seconds:   # also the warm-up
        calls *= 2
    per_call_us = [1e6 * seconds_per_call(app, template, body, calls) for _ in range(runs)]
    median = statistics.median(per_call_us)
    return {
        "us_per_call": median,
        "spread_pct": 100 * (max(per_call_us) - min(per_call_us)) / median,
        "runs_us": [round(x, 3) for x in per_call_us],
        "calls_per_run": calls,
        "python": platform.python_version(),
        "frameworks": {name: importlib.metadata.version(name) for name in FRAMEWORKS if name in sys.modules},
    }


def measure_in_subprocess(args, scenario: Scenario, python: str, env: dict[str, str], cwd: str,
                          timeout: float = 300) -> dict[str, Any]:
    """measure() run by `python` pinned to the server's core; 'error' set when it fails.
    'other_cpu_pct' is what the rest of the machine used meanwhile, in % of a core."""
    cmd = ["taskset", "-c", str(args.server_cpu), python, "-m", "peerbench.app_cost", scenario.name,
           "--runs", str(args.app_cost_runs)]
    child0, machine0, start = children_cpu(), system_cpu()[0], time.monotonic()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"no result within {timeout:.0f} s"}
    elapsed = time.monotonic() - start
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    own = children_cpu() - child0
    result["other_cpu_pct"] = round(max(0.0, 100 * (system_cpu()[0] - machine0 - own) / elapsed), 1)
    result["noisy"] = result["other_cpu_pct"] > args.max_noise
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenario", choices=[name for name, s in SCENARIOS.items() if s.app_cost])
    ap.add_argument("--runs", type=int, default=7, help="timed runs; the figure is their median")
    ap.add_argument("--min-run-seconds", type=float, default=0.25, help="length of one timed run")
    a = ap.parse_args(argv)
    json.dump(measure(SCENARIOS[a.scenario], a.runs, a.min_run_seconds), sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
