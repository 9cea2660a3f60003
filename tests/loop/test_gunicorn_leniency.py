"""Where gunicorn is lenient with apps and clients and the RFCs allow it, so is the loop.

Each case names the rule that decides it; what would break framing or split a
response stays refused (tests/loop/test_failures.py).
"""
from __future__ import annotations

import pytest
from support.harness import exchange, running
from support.wire import Client, headers_of


def echo_environ(*keys):
    def app(environ, start_response):
        body = "\n".join(f"{key}={environ.get(key)!r}" for key in keys).encode()
        body += b"\n" + environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    return app


def test_repeated_cookie_lines_join_with_semicolons_and_werkzeug_sees_every_cookie():
    # RFC 6265 §5.4 / RFC 9113 §8.2.3: Cookie lines combine with "; ", the separator
    # inside one Cookie line; a comma would glue two cookies into one value.
    from werkzeug.wrappers import Request

    def app(environ, start_response):
        cookies = Request(environ).cookies
        body = f"{sorted(cookies.items())!r}|{environ['HTTP_COOKIE']}|{environ['HTTP_ACCEPT']}".encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    with running(app) as server:
        client = Client(server.connect())
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\nCookie: a=1\r\nAccept: text/html\r\n"
                    b"Cookie: b=2; c=3\r\nAccept: */*\r\n\r\n")
        _, body = client.response()
        client.close()
    # other fields join with "," as gunicorn and wsgiref join them (RFC 9110 §5.3)
    assert body == b"[('a', '1'), ('b', '2'), ('c', '3')]|a=1; b=2; c=3|text/html,*/*"


def test_decoded_chunked_body_has_length_and_no_transfer_encoding():
    # RFC 3875 §4.1.18: the server may leave out what it processed itself; the app
    # gets the decoded body and its size, as waitress passes it.
    app = echo_environ("CONTENT_LENGTH", "HTTP_TRANSFER_ENCODING")
    with running(app) as server:
        client = Client(server.connect())
        client.send(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        _, body = client.response(b"POST")
        client.close()
    assert body == b"CONTENT_LENGTH='11'\nHTTP_TRANSFER_ENCODING=None\nhello world"


def test_a_higher_minor_version_is_served_as_http11():
    # RFC 9110 §2.5: a higher minor of a major version we implement is processed as
    # the highest minor we conform to; 505 is for other majors.
    with running(echo_environ("SERVER_PROTOCOL")) as server:
        raw = exchange(server, b"GET / HTTP/1.2\r\nHost: x\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"SERVER_PROTOCOL='HTTP/1.1'" in raw
        assert exchange(server, b"GET / HTTP/2.0\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 505 ")


@pytest.mark.parametrize("value", ["close", "Close", "keep-alive, close"])
def test_app_connection_close_is_honoured_not_refused(value):
    # gunicorn serves an app's Connection header; "close" ends the connection after
    # this response, and the header is written once, by the server.
    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "2"), ("Connection", value)])
        return [b"ok"]

    with running(app) as server:
        client = Client(server.connect())
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        response, body = client.response()
        assert (response.status_code, body) == (200, b"ok")
        assert [v for n, v in response.headers if n == b"connection"] == [b"close"]
        client.sock.settimeout(5)
        assert client.sock.recv(65536) == b""  # the pipelined second request is not answered
        client.close()


@pytest.mark.parametrize("name, value", [("Connection", "keep-alive"), ("Keep-Alive", "timeout=5"),
                                         ("Trailers", "x"), ("TE", "trailers")])
def test_other_hop_by_hop_headers_from_the_app_are_left_out(name, value):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "2"), (name, value), ("X-Kept", "1")])
        return [b"ok"]

    with running(app) as server:
        client = Client(server.connect())
        for _ in range(2):  # the connection stays usable
            client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            response, body = client.response()
            headers = headers_of(response)
            assert (response.status_code, body, headers["x-kept"]) == (200, b"ok", "1")
            assert name.lower() not in headers or name.lower() == "connection"
            assert headers.get("connection") != value or name != "Connection"
        client.close()


@pytest.mark.parametrize("status, line", [
    ("200", b"HTTP/1.1 200 OK\r\n"),
    ("404", b"HTTP/1.1 404 Not Found\r\n"),
    ("299", b"HTTP/1.1 299 \r\n"),        # no standard phrase: an empty reason (RFC 9112 §4)
    ("200 ", b"HTTP/1.1 200 \r\n"),
])
def test_status_without_reason_phrase_is_served(status, line):
    def app(environ, start_response):
        start_response(status, [("Content-Length", "2")])
        return [b"ok"]

    with running(app) as server:
        raw = exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert raw.startswith(line) and raw.endswith(b"\r\n\r\nok")
