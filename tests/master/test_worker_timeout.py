"""--timeout: the request a hung worker's app is stuck in is answered as gunicorn
answers it, logged in the access log, and the error log shows where the app hung."""
from __future__ import annotations

import re
import socket
import time

import pytest
from support import apps

# gunicorn's util.write_error for a 500, byte for byte.
GUNICORN_500_BODY = (b"<html>\n  <head>\n    <title>Internal Server Error</title>\n  </head>\n  <body>\n"
                     b"    <h1><p>Internal Server Error</p></h1>\n    \n  </body>\n</html>\n")
GUNICORN_500 = (b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Type: text/html\r\n"
                b"Content-Length: 141\r\n\r\n" + GUNICORN_500_BODY)

def _exchange(port: int, request: bytes, timeout: float = 15.0) -> bytes:
    """Everything the server sends until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        received = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                return received
            received += chunk
    raise AssertionError(f"connection still open after {timeout}s; got {received!r}")


def test_stuck_request_answered_500_logged_and_located(serve):
    access = serve.dir / "access.log"
    server = serve("-b", "127.0.0.1:0", "--timeout", "2", "--access-logfile", str(access),
                   "webapp").wait_ready()
    assert len(GUNICORN_500_BODY) == 141
    answer = _exchange(server.port, b"GET /hang HTTP/1.1\r\nHost: t\r\n\r\n")
    assert answer == GUNICORN_500
    server.wait_until(lambda: access.exists() and "/hang" in access.read_text(), timeout=5,
                      message="for the access line")
    assert '"GET /hang HTTP/1.1" 500 0 ' in access.read_text()
    server.wait_for_log(r"\[ERROR\] Error handling request GET /hang", timeout=5)
    # The app's own frame, where it hung, is in the log.
    assert re.search(r'webapp\.py", line \d+, in application\n\s+time\.sleep\(0\.1\)', server.log), server.log
    server.wait_ready()  # a new worker serves
    assert server.request("/")[0] == 200


def test_stack_of_every_thread_is_logged(serve):
    if serve.name == "gunicorn":
        pytest.skip("gunicorn logs the main thread's traceback only")
    apps.install("threaded", serve.dir)
    server = serve("-b", "127.0.0.1:0", "--timeout", "2", "threaded").wait_ready()
    assert _exchange(server.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n") == GUNICORN_500
    server.wait_for_log(r"Thread sidekick \(\d+\), most recent call last:", timeout=5)
    assert re.search(r'threaded\.py", line \d+, in _sidekick', server.log), server.log
    assert re.search(r"Thread MainThread \(\d+\), most recent call last:(\n .*)*"
                     r'threaded\.py", line \d+, in application', server.log), server.log
