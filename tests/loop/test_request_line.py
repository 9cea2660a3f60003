"""The request line is parsed as soon as its line ends (RFC 9112 §3): a malformed one is
refused without waiting for the rest of the head, and a refusal of what follows a HEAD
request line has no content (RFC 9110 §9.3.2)."""
from __future__ import annotations

import pytest
from support.harness import exchange, hello_app, running
from support.wire import read_all


def refusal(answer: bytes) -> tuple[int, bytes]:
    """The status of the one response in ``answer`` and what follows its header section."""
    head, _, content = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), content


@pytest.mark.parametrize("status,request_line", [
    (505, b"GET / HTTP/2.0\r\n"),
    (400, b"G@T / HTTP/1.1\r\n"),
    (400, b"GET /a\x7fb HTTP/1.1\r\n"),
])
def test_a_malformed_request_line_is_refused_before_the_head_ends(status, request_line):
    with running(hello_app) as server, server.connect() as sock:
        sock.sendall(request_line + b"Host: f\r\nX-Unfinished: ")
        # the head never ends, and the connection stays open: the answer comes anyway
        answer = read_all(sock)
    assert refusal(answer)[0] == status
    assert refusal(answer)[1]


@pytest.mark.parametrize("status,raw", [
    (431, b"HEAD / HTTP/1.1\r\nHost: f\r\nX-Big: " + b"h" * 9000 + b"\r\n\r\n"),
    (431, b"HEAD / HTTP/1.0\r\nHost: f\r\nX-Big: " + b"h" * 9000 + b"\r\n\r\n"),
    # RFC 9110 §2.5: processed as HTTP/1.1, so a HEAD request
    (431, b"HEAD / HTTP/1.5\r\nHost: f\r\nX-Big: " + b"h" * 9000 + b"\r\n\r\n"),
    # the target is refused, but the line says HEAD
    (400, b"HEAD foo HTTP/1.1\r\nHost: f\r\n\r\n"),
    (414, b"HEAD /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: f\r\n\r\n"),
    # a second empty line is refused; the HEAD line after it had come with it
    (400, b"\r\n\r\nHEAD / HTTP/1.1\r\nHost: f\r\n\r\n"),
])
def test_a_refused_head_request_gets_no_content(status, raw):
    with running(hello_app) as server:
        assert refusal(exchange(server, raw)) == (status, b"")


def test_a_head_request_timed_out_in_its_head_gets_no_content():
    with running(hello_app, header_timeout=1.0) as server, server.connect() as sock:
        sock.sendall(b"HEAD / HTTP/1.1\r\nHost: f\r\n")
        sock.settimeout(10)
        answer = read_all(sock, timeout=10)
    assert refusal(answer) == (408, b"")


@pytest.mark.parametrize("raw", [
    b"HEAD /\x7f HTTP/1.1\r\nHost: f\r\n\r\n",      # not a request line
    b"HEAD / HTTP/2.0\r\nHost: f\r\n\r\n",          # not an HTTP/1 request
    b"HEADER / HTTP/1.1\r\nHost: f\r\nX-Big: " + b"h" * 9000 + b"\r\n\r\n",
])
def test_a_refusal_has_content_unless_the_request_line_said_head(raw):
    with running(hello_app) as server:
        status, content = refusal(exchange(server, raw))
    assert status in (400, 431, 505) and content


def test_the_parser_knows_the_method_once_the_request_line_ends():
    from fastwsgi._parser import HeadParser
    parser = HeadParser()
    assert parser.parse_bytes(b"HEAD / HTTP/1.1") == 0
    assert not parser.request_line_parsed and not parser.head_request
    assert parser.parse_bytes(b"HEAD / HTTP/1.1\r\nHost: f\r\n") == 0
    assert parser.request_line_parsed and parser.head_request
    assert parser.parse_bytes(b"HEADX / HTTP/1.1\r\nHost: f\r\n") == 0
    assert parser.request_line_parsed and not parser.head_request
