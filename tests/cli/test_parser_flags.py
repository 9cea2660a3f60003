"""gunicorn's request-line compatibility flags, set on the command line, against a real
server: casefold_http_method, permit_unconventional_http_method and
permit_unconventional_http_version, each off by default."""
from __future__ import annotations

import socket

import pytest

ECHO_APP = '''
def application(environ, start_response):
    body = f"{environ['REQUEST_METHOD']} {environ['SERVER_PROTOCOL']}".encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
'''


def ask(server, request: bytes) -> tuple[int, bytes]:
    """The status and body a request gets, on a connection of its own (closed after)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
            head, _, body = received.partition(b"\r\n\r\n")
            length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")]
            if length and len(body) >= length[0]:
                break
    head, _, body = received.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.fixture
def echo(serve):
    (serve.dir / "echo.py").write_text(ECHO_APP)

    def start(*flags):
        return serve("-b", "127.0.0.1:0", *flags, "echo:application").wait_ready()
    return start


def request(method: bytes, version: bytes = b"HTTP/1.1") -> bytes:
    return method + b" / " + version + b"\r\nHost: x\r\nConnection: close\r\n\r\n"


def test_lower_case_method_is_refused_by_default(echo):
    server = echo()
    assert ask(server, request(b"get"))[0] == 400
    assert ask(server, request(b"GET")) == (200, b"GET HTTP/1.1")


def test_casefold_alone_still_refuses_a_lower_case_method(echo):
    # gunicorn upper-cases the method only once it passed the method check
    server = echo("--casefold-http-method")
    assert ask(server, request(b"get"))[0] == 400


def test_casefold_upper_cases_a_permitted_method(echo):
    server = echo("--casefold-http-method", "--permit-unconventional-http-method")
    assert ask(server, request(b"get")) == (200, b"GET HTTP/1.1")
    assert ask(server, request(b"-blargh")) == (200, b"-BLARGH HTTP/1.1")


def test_without_casefold_a_permitted_method_is_kept_as_sent(echo):
    server = echo("--permit-unconventional-http-method")
    assert ask(server, request(b"-blargh")) == (200, b"-blargh HTTP/1.1")


@pytest.mark.parametrize("version", [b"HTTP/0.9", b"HTTP/2.0", b"HTTP/3.1"])
def test_other_versions_are_refused_by_default(echo, version):
    status, _ = ask(echo(), request(b"GET", version))
    assert status in (400, 505)


@pytest.mark.parametrize("version", [b"HTTP/0.9", b"HTTP/2.0", b"HTTP/3.1"])
def test_permitted_versions_are_served_and_named_in_the_environ(echo, version):
    server = echo("--permit-unconventional-http-version")
    assert ask(server, request(b"GET", version)) == (200, b"GET " + version)


def test_a_malformed_version_stays_refused_when_permitted(echo):
    server = echo("--permit-unconventional-http-version")
    assert ask(server, request(b"GET", b"HTTP/0.99"))[0] == 400
