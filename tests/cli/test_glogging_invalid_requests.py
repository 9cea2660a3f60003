"""Malformed requests are logged where operators look by default, as gunicorn logs
them: ``[WARNING] Invalid request from ip=ADDRESS: REASON``."""
from __future__ import annotations

import socket
import time

import pytest

MALFORMED = {
    "request-line": b"GARBAGE\r\n\r\n",
    "header-name": b"GET / HTTP/1.1\r\nHost: t\r\nBad Name: x\r\n\r\n",
    "field-too-large": b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
}


def _send(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_malformed_request_is_a_warning(serve, kind):
    server = serve("-b", "127.0.0.1:0", "webapp").wait_ready()
    answer = _send(server.port, MALFORMED[kind])
    assert answer.startswith(b"HTTP/1.1 4"), answer[:100]
    server.wait_for_log(r"^\[[^]]+\] \[\d+\] \[WARNING\] Invalid request from ip=127\.0\.0\.1: \S", timeout=5)
