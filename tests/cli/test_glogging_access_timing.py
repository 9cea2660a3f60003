"""Access lines reach the file when their request completes, as gunicorn writes them:
at once on an idle server, and none lost when the worker is then killed."""
from __future__ import annotations

import os
import signal
import socket
import time



def _lines(path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_line_written_within_a_fifth_of_a_second_of_the_response(serve):
    access = serve.dir / "access.log"
    server = serve("-b", "127.0.0.1:0", "--access-logfile", str(access), "webapp").wait_ready()
    server.request("/warm")
    server.wait_until(lambda: len(_lines(access)) == 1, message="for the first line")
    time.sleep(1.5)  # idle: whatever periodic work the worker does has just happened
    status, _, _ = server.request("/idle")
    answered = time.monotonic()
    assert status == 200
    while len(_lines(access)) < 2 and time.monotonic() - answered < 0.2:
        time.sleep(0.005)
    assert '"GET /idle HTTP/1.1" 200' in "\n".join(_lines(access)), \
        f"no access line 0.2 s after the response: {_lines(access)}"


def test_lines_of_served_requests_survive_a_sigkill_of_the_worker(serve):
    access = serve.dir / "access.log"
    server = serve("-b", "127.0.0.1:0", "--access-logfile", str(access), "--timeout", "0",
                   "webapp").wait_ready()
    (worker,) = server.worker_pids()
    for n in range(3):
        assert server.request(f"/served/{n}")[0] == 200
    # The worker is busy in the app when the OOM killer comes: no tick will flush for it.
    hung = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        hung.sendall(b"GET /hang HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.3)
        os.kill(worker, signal.SIGKILL)
        server.wait_until(lambda: worker not in server.worker_pids(), message="for the worker to die")
    finally:
        hung.close()
    served = [line for line in _lines(access) if "/served/" in line]
    assert len(served) == 3, _lines(access)
