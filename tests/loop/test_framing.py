"""How a response body is delimited (RFC 9112 §6.3), decided in one place and checked
against h11: the rule alone, and what the server puts on the wire by it."""
from __future__ import annotations

import itertools
import socket

import h11
import pytest
from support.harness import running
from support.wire import TIMEOUT

from fastwsgi._loop import framing_of

STATUSES = [200, 201, 204, 304, 404, 500]
METHODS = ["GET", "HEAD", "POST"]
MINORS = [0, 1]
GRID = list(itertools.product(STATUSES, METHODS, MINORS, [False, True]))


def implied_framing(method: str, status: int, head: bytes) -> str:
    """The framing a recipient reads from a response head (h11's reading rule)."""
    if method == "HEAD" or status in (204, 304):
        return "none"
    fields = [line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line]
    names = {name.strip().lower(): value.strip().lower() for name, value in fields}
    if names.get(b"transfer-encoding") == b"chunked":
        return "chunked"
    if b"content-length" in names:
        return "length"
    return "close"


def h11_framing(status, method, minor, has_length) -> str:
    server = h11.Connection(h11.SERVER)
    server.receive_data(f"{method} / HTTP/1.{minor}\r\nHost: x\r\n\r\n".encode())
    assert isinstance(server.next_event(), h11.Request)
    headers = [("Content-Length", "5")] if has_length else []
    head = server.send(h11.Response(status_code=status, headers=headers))
    return implied_framing(method, status, head)


@pytest.mark.parametrize("status, method, minor, has_length", GRID)
def test_the_rule_agrees_with_h11(status, method, minor, has_length):
    assert framing_of(status, method == "HEAD", has_length, minor) == \
        h11_framing(status, method, minor, has_length)


def test_informational_and_no_content_statuses_never_carry_a_body():
    for status in (100, 101, 199, 204, 304):
        assert framing_of(status, False, True, 1) == "none"


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


@pytest.mark.parametrize("status, method, minor, has_length", GRID)
def test_the_server_frames_by_the_rule(status, method, minor, has_length):
    body = b"" if status in (204, 304) else b"hello"

    def app(environ, start_response):
        headers = [("Content-Type", "text/plain")]
        if has_length:
            headers.append(("Content-Length", str(len(body))))
        start_response(f"{status} X", headers)
        # A generator: the server does not learn the length from the iterable.
        return (part for part in [body])

    with running(app) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
            body_part = b"" if method != "POST" else b"Content-Length: 0\r\n"
            sock.sendall(f"{method} / HTTP/1.{minor}\r\nHost: x\r\n".encode() + body_part
                         + b"Connection: close\r\n\r\n")
            response = read_until_closed(sock)
    head, _, rest = response.partition(b"\r\n\r\n")
    expected = framing_of(status, method == "HEAD", has_length, minor)
    assert implied_framing(method, status, head) == expected
    if expected == "none":
        assert rest == b""
    elif expected == "chunked":
        assert rest == (b"5\r\nhello\r\n0\r\n\r\n" if body else b"0\r\n\r\n")
    else:
        assert rest == body
