"""fastwsgi.run() announces itself as the command does: gunicorn's log format on
stderr, "Starting fastwsgi VERSION" and "Listening at: URL (PID)"."""
from __future__ import annotations

import http.client
import re
import sys

import pytest
from support.apps import APPS
from support.processes import ServerProcess


@pytest.mark.parametrize("host,url_host", [("127.0.0.1", "127.0.0.1"), ("::1", "[::1]")])
def test_run_prints_the_start_up_lines(tmp_path, host, url_host):
    server = ServerProcess("fastwsgi", [], tmp_path, program=[sys.executable, str(APPS / "embedded.py"), host])
    try:
        server.wait_for_log(r"^\[[^]]+\] \[\d+\] \[INFO\] Starting fastwsgi \d")
        match = server.wait_for_log(rf"^\[[^]]+\] \[(\d+)\] \[INFO\] Listening at: "
                                    rf"http://{re.escape(url_host)}:(\d+) \((\d+)\)$")[0]
        assert int(match.group(1)) == int(match.group(3)) == server.pid
        conn = http.client.HTTPConnection(host, int(match.group(2)), timeout=10)
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"embedded"
        conn.close()
    finally:
        server.close()
