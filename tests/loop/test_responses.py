"""Responses on the wire: framing, headers, keep-alive, HEAD, PEP 3333 start_response rules."""
from __future__ import annotations

import http.client
import wsgiref.validate

import pytest
from support.harness import exchange, hello_app, running
from support.wire import Client, headers_of


def test_hello_through_http_client_under_wsgiref_validator():
    with running(wsgiref.validate.validator(hello_app)) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        conn.request("GET", "/")
        response = conn.getresponse()
        assert response.status == 200
        assert response.read() == b"Hello, World!"
        assert response.getheader("Content-Length") == "13"
        assert response.getheader("Server").startswith("fastwsgi/")
        assert response.getheader("Date").endswith(" GMT")


def test_keep_alive_serves_many_requests_on_one_connection():
    with running(hello_app) as server:
        client = Client(server.connect())
        for _ in range(5):
            client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            response, body = client.response()
            assert response.status_code == 200 and body == b"Hello, World!"
            assert "connection" not in headers_of(response)


def test_http10_closes_unless_keep_alive_asked():
    with running(hello_app) as server:
        raw = exchange(server, b"GET / HTTP/1.0\r\n\r\n")
        assert b"Connection: close\r\n" in raw and raw.endswith(b"Hello, World!")
        with server.connect() as sock:
            sock.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            first = sock.recv(65536)
            assert b"Connection: keep-alive\r\n" in first
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")


def test_connection_close_from_client_is_honoured():
    with running(hello_app) as server:
        raw = exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                               b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert raw.count(b"HTTP/1.1 200") == 1
        assert b"Connection: close" in raw


def _streaming_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"one,"
    yield b""
    yield b"two"


def test_unknown_length_is_chunked_on_http11():
    with running(_streaming_app) as server:
        raw = exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head, _, body = raw.partition(b"\r\n\r\n")
        assert b"Transfer-Encoding: chunked" in head
        assert body == b"4\r\none,\r\n3\r\ntwo\r\n0\r\n\r\n"


def test_unknown_length_is_close_delimited_on_http10():
    with running(_streaming_app) as server:
        raw = exchange(server, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        head, _, body = raw.partition(b"\r\n\r\n")
        assert b"Transfer-Encoding" not in head and b"Content-Length" not in head
        assert b"Connection: close" in head
        assert body == b"one,two"


def test_list_body_gets_content_length():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ab", b"cd"]

    with running(app) as server:
        client = Client(server.connect())
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        response, body = client.response()
        assert headers_of(response)["content-length"] == "4" and body == b"abcd"


def test_head_sends_headers_but_no_body():
    with running(hello_app) as server:
        client = Client(server.connect())
        client.send(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        response, body = client.response(b"HEAD")
        assert headers_of(response)["content-length"] == "13" and body == b""
        response, body = client.response()
        assert body == b"Hello, World!"


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified"])
def test_bodiless_statuses_carry_no_body_or_framing(status):
    def app(environ, start_response):
        start_response(status, [])
        return [b"ignored"]

    with running(app) as server:
        raw = exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(f"HTTP/1.1 {status}".encode())
        assert b"Transfer-Encoding" not in head and b"Content-Length" not in head
        assert body == b""


def test_app_content_length_caps_the_body():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "3")])
        return [b"abcdef"]

    with running(app) as server:
        client = Client(server.connect())
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.response()[1] == b"abc"
        assert client.response()[1] == b"abc"


def test_short_body_closes_the_connection():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "10")])
        return [b"abc"]

    with running(app) as server:
        raw = exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert raw.count(b"HTTP/1.1 200") == 1 and raw.endswith(b"abc")


def test_write_callable_sends_before_iterable():
    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "6")])
        write(b"abc")
        return [b"def"]

    with running(wsgiref.validate.validator(app)) as server:
        raw = exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert raw.endswith(b"\r\n\r\nabcdef")


def test_app_date_and_server_headers_win():
    def app(environ, start_response):
        start_response("200 OK", [("Date", "Thu, 01 Jan 1970 00:00:00 GMT"), ("Server", "mine"),
                                  ("Content-Length", "0")])
        return []

    with running(app) as server:
        raw = exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert raw.count(b"Date:") == 1 and b"Server: mine\r\n" in raw


def test_exc_info_before_headers_replaces_the_status():
    def app(environ, start_response):
        start_response("200 OK", [])
        try:
            raise ValueError("boom")
        except ValueError:
            import sys
            start_response("503 Service Unavailable", [("Content-Length", "4")], sys.exc_info())
        return [b"down"]

    with running(app) as server:
        raw = exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 503 Service Unavailable\r\n") and raw.endswith(b"down")


def test_environ_reaches_the_app_as_pep3333_says():
    seen = {}

    def app(environ, start_response):
        seen.update(environ)
        start_response("200 OK", [("Content-Length", "0")])
        return []

    with running(wsgiref.validate.validator(app), root_path="/mount") as server:
        exchange(server, b"GET /mount/a%2Fb?q=1 HTTP/1.1\r\nHost: example.org:81\r\n"
                         b"X-Forwarded-For: 1.2.3.4\r\nX_Forwarded_For: evil\r\n"
                         b"Connection: close\r\n\r\n")
    assert seen["SCRIPT_NAME"] == "/mount" and seen["PATH_INFO"] == "/a/b"
    assert seen["QUERY_STRING"] == "q=1" and seen["RAW_URI"] == "/mount/a%2Fb?q=1"
    assert seen["SERVER_NAME"] == "example.org" and seen["SERVER_PORT"] == "81"
    assert seen["HTTP_X_FORWARDED_FOR"] == "1.2.3.4"
    assert seen["REMOTE_ADDR"] == "127.0.0.1" and seen["REMOTE_PORT"].isdigit()
    assert seen["wsgi.input_terminated"] is True and seen["wsgi.url_scheme"] == "http"


def test_header_lines_follow_each_response_even_when_the_app_reuses_its_list():
    shared = [("Content-Type", "text/plain"), ("Content-Length", "1")]
    answers = iter([("200 OK", None), ("200 OK", ("X-Extra", "yes")), ("404 Not Found", None)])

    def app(environ, start_response):
        status, extra = next(answers)
        if extra:
            shared.append(extra)
        elif len(shared) > 2:
            del shared[2:]
        start_response(status, shared)
        return [b"x"]

    with running(app) as server:
        client = Client(server.connect())
        seen = []
        for _ in range(3):
            client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            response, _ = client.response()
            seen.append((response.status_code, headers_of(response).get("x-extra")))
    assert seen == [(200, None), (200, "yes"), (404, None)]
