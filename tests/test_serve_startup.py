"""fastwsgi.run() announces itself as the command does: gunicorn's log format on
stderr, "Starting fastwsgi VERSION" and "Listening at: URL (PID)"."""
from __future__ import annotations

import http.client
import re
import subprocess
import sys
import time

import pytest

SCRIPT = '''
import fastwsgi

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"embedded"]

fastwsgi.run(app, host={host!r}, port=0)
'''


def _wait_for(path, pattern, proc, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(pattern, path.read_text(), re.MULTILINE)
        if match:
            return match
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"no {pattern!r}; stderr:\n{path.read_text()}")


@pytest.mark.parametrize("host,url_host", [("127.0.0.1", "127.0.0.1"), ("::1", "[::1]")])
def test_run_prints_the_start_up_lines(tmp_path, host, url_host):
    stderr = tmp_path / "stderr"
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT.format(host=host)], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=open(stderr, "wb"))
    try:
        _wait_for(stderr, r"^\[[^]]+\] \[\d+\] \[INFO\] Starting fastwsgi \d", proc)
        match = _wait_for(stderr, rf"^\[[^]]+\] \[(\d+)\] \[INFO\] Listening at: "
                                  rf"http://{re.escape(url_host)}:(\d+) \((\d+)\)$", proc)
        assert int(match.group(1)) == int(match.group(3)) == proc.pid
        conn = http.client.HTTPConnection(host, int(match.group(2)), timeout=10)
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"embedded"
        conn.close()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
