"""environ["wsgi.early_hints"]: a 103 Early Hints block on the wire before the final
response, for HTTP/1.1 clients only; the same bytes from fastwsgi and gunicorn."""
from __future__ import annotations

import re
import socket
import time

import pytest
from support import apps

EARLY_HINTS = (b"HTTP/1.1 103 Early Hints\r\n"
               b"Link: </style.css>; rel=preload; as=style\r\n"
               b"Link: </app.js>; rel=preload; as=script\r\n"
               b"\r\n"
               b"HTTP/1.1 103 Early Hints\r\n"
               b"X-Second: two\r\n"
               b"\r\n"
               b"HTTP/1.1 103 Early Hints\r\n"
               b"Link: </late.css>; rel=preload\r\n"
               b"\r\n")


def _exchange(port: int, request: bytes, body_end: bytes, timeout: float = 10.0) -> bytes:
    """The raw bytes of the answer to one request, up to the end of its body."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        deadline = time.monotonic() + timeout
        while not data.endswith(body_end) and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


@pytest.fixture
def hints_server(serve):
    apps.install("hintsapp", serve.dir)
    return serve("-b", "127.0.0.1:0", "hintsapp:application").wait_ready()


def test_http11_client_gets_103_blocks_then_the_response(hints_server):
    raw = _exchange(hints_server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"ok")
    assert raw.startswith(EARLY_HINTS)
    final = raw[len(EARLY_HINTS):]
    assert final.startswith(b"HTTP/1.1 200 OK\r\n")
    assert final.endswith(b"\r\n\r\nok")
    assert b" 103 " not in final


def test_http10_client_gets_no_103(hints_server):
    raw = _exchange(hints_server.port, b"GET / HTTP/1.0\r\nHost: x\r\n\r\n", b"ok")
    assert re.match(rb"HTTP/1\.[01] 200 OK\r\n", raw)
    assert b"103" not in raw.split(b"\r\n", 1)[0]
    assert b"Early Hints" not in raw


def test_header_injection_is_refused(hints_server):
    raw = _exchange(hints_server.port, b"GET /bad HTTP/1.1\r\nHost: x\r\n\r\n", b"raised")
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"X-Injected" not in raw
    assert raw.endswith(b"raised")
