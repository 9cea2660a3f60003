"""Smoke test of an installed fastwsgi: it imports, serves, and stops on SIGTERM.

Run by the interpreter the wheel was installed into, from outside the source
tree (cibuildwheel's test-command, tests/release/test_packaging.py):

    python tests/release/smoke_wheel.py

It serves ``fastwsgi.demo:app`` on a free loopback port twice, through
``fastwsgi.run`` and through the ``fastwsgi`` console script, asks for one
page each time, and exits 0 when both answered and stopped cleanly.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

# tests/, for the test helpers (standard library only); fastwsgi still comes from the wheel.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from support.processes import free_port  # noqa: E402

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


def first_response(url: str, server: subprocess.Popen) -> tuple[float, bytes]:
    """Seconds until ``url`` answers 200, and the body; fails if the server exits first."""
    started = time.monotonic()
    while time.monotonic() - started < START_TIMEOUT:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - started, response.read()
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"no answer from {url} within {START_TIMEOUT:.0f} s")


def serve_and_stop(argv: list[str], port: int) -> float:
    server = subprocess.Popen(argv)
    try:
        elapsed, body = first_response(f"http://127.0.0.1:{port}/smoke?q=1", server)
        if b"Hello from fastwsgi" not in body or b"QUERY_STRING: q=1" not in body:
            raise SystemExit(f"unexpected body: {body!r}")
        server.send_signal(signal.SIGTERM)
        code = server.wait(STOP_TIMEOUT)
        if code != 0:
            raise SystemExit(f"{argv[0]} exited with {code} after SIGTERM")
        return elapsed
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def main() -> int:
    import fastwsgi

    source = os.path.dirname(fastwsgi.__file__)
    if not source.startswith(sysconfig.get_paths()["purelib"]) and not source.startswith(
        sysconfig.get_paths()["platlib"]
    ):
        raise SystemExit(f"fastwsgi was imported from {source}, not from the installed wheel")
    port = free_port()
    run_api = serve_and_stop(
        [sys.executable, "-c",
         f"import fastwsgi, fastwsgi.demo; fastwsgi.run(fastwsgi.demo.app, port={port})"],
        port,
    )
    port = free_port()
    console_script = os.path.join(sysconfig.get_paths()["scripts"], "fastwsgi")
    cli = serve_and_stop([console_script, "--bind", f"127.0.0.1:{port}", "fastwsgi.demo:app"], port)
    print(f"fastwsgi {fastwsgi.__version__} from {source}: fastwsgi.run answered in "
          f"{run_api:.2f} s, the fastwsgi command in {cli:.2f} s; both stopped on SIGTERM")
    return 0


if __name__ == "__main__":
    sys.exit(main())
