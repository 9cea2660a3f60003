"""Failing apps, vanishing and slow clients, timeouts: the worker answers or closes and serves on."""
from __future__ import annotations

import logging
import socket
import threading
import time

import pytest
from support.harness import exchange, hello_app, running
from support.wire import Client, read_all


class ClosingBody:
    """An iterable that records close(), as PEP 3333 requires servers to call it."""

    def __init__(self, chunks, fail_at=None):
        self.chunks = list(chunks)
        self.fail_at = fail_at
        self.closed = threading.Event()
        self.produced = 0

    def __iter__(self):
        for index, chunk in enumerate(self.chunks):
            if index == self.fail_at:
                raise RuntimeError("failure mid-body")
            self.produced += 1
            yield chunk

    def close(self):
        self.closed.set()


def test_app_error_before_headers_is_a_500_with_traceback_logged(caplog):
    def app(environ, start_response):
        raise KeyError("secret detail")

    caplog.set_level(logging.ERROR, logger="fastwsgi.error")
    with running(app) as server:
        raw = exchange(server, b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
        assert b"secret detail" not in raw and b"Traceback" not in raw
        # the worker serves on
        assert exchange(server, b"GET / HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 500")
    assert "Error handling request GET /boom" in caplog.text
    assert "KeyError: 'secret detail'" in caplog.text


def test_app_error_after_headers_closes_the_connection_and_calls_close():
    body = ClosingBody([b"a" * 10, b"b" * 10], fail_at=1)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return body

    with running(app) as server:
        raw = exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        # chunked, and the terminating chunk never comes: the client sees a truncated response
        assert b"Transfer-Encoding: chunked" in raw and not raw.endswith(b"0\r\n\r\n")
        assert body.closed.wait(5)


@pytest.mark.parametrize("headers,body", [
    ([("Transfer-Encoding", "chunked")], [b"x"]),
    ([("Upgrade", "websocket")], [b"x"]),
    ([("X-Bad", "a\r\nInjected: yes")], [b"x"]),
    ([("Bad Name", "x")], [b"x"]),
    ([("Content-Type", "text/plain")], ["a str, not bytes"]),
])
def test_pep3333_violations_become_500s(headers, body):
    def app(environ, start_response):
        start_response("200 OK", headers)
        return body

    with running(app) as server:
        raw = exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 500 ")
        assert b"Injected" not in raw


def test_close_is_called_after_success():
    body = ClosingBody([b"ok"])

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "2")])
        return body

    with running(app) as server:
        assert exchange(server, b"GET / HTTP/1.0\r\n\r\n").endswith(b"ok")
        assert body.closed.wait(5)


def test_client_vanishing_mid_response_calls_close():
    body = ClosingBody([b"x" * 65536] * 2000)  # 128 MiB, far more than socket buffers

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return body

    with running(app) as server:
        sock = server.connect()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.recv(1000)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # RST
        assert body.closed.wait(5)
        assert body.produced < 2000
        assert exchange(server, b"GET / HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 200")


def test_client_vanishing_mid_request_body_never_calls_the_app():
    calls = []

    def app(environ, start_response):
        calls.append(1)
        return hello_app(environ, start_response)

    with running(app) as server:
        with server.connect() as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part")
        time.sleep(0.2)
        assert exchange(server, b"GET / HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 200")
    assert calls == [1]


def test_slow_reader_pulls_the_body_only_as_fast_as_it_reads():
    chunk = b"z" * 65536
    body = ClosingBody([chunk] * 4096)  # 256 MiB

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", str(len(chunk) * 4096))])
        return body

    with running(app) as server:
        sock = server.connect()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        time.sleep(0.5)
        # while the client reads nothing, the app is asked for little beyond socket buffers
        paused_at = body.produced
        assert paused_at * len(chunk) < 16 * 1024 * 1024
        time.sleep(0.3)
        assert body.produced == paused_at
        received = len(read_all(sock))
        sock.close()
        assert received > 256 * 1024 * 1024
        assert body.closed.wait(5)


def test_slowloris_head_is_cut_off_with_408():
    with running(hello_app, header_timeout=1.0) as server:
        with server.connect() as sock:
            started = time.monotonic()
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            for _ in range(10):
                try:
                    sock.sendall(b"X-Slow: y\r\n")
                except OSError:
                    break
                time.sleep(0.3)
            answer = read_all(sock)
            assert answer.startswith(b"HTTP/1.1 408 ")
            assert time.monotonic() - started < 3.5


def test_idle_keep_alive_connection_is_closed_after_keepalive_seconds():
    with running(hello_app, keepalive=1.0) as server:
        client = Client(server.connect())
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        client.response()
        started = time.monotonic()
        assert read_all(client.sock) == b""
        assert 0.5 < time.monotonic() - started < 3.5


def test_reader_that_stops_reading_is_dropped_after_io_timeout():
    body = ClosingBody([b"y" * 65536] * 1000)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return body

    with running(app, io_timeout=1.0) as server:
        sock = server.connect()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert body.closed.wait(4)
        sock.close()
        assert server.server.connection_count == 0


def test_graceful_stop_lets_the_in_flight_request_finish():
    started = threading.Event()

    def app(environ, start_response):
        started.set()
        time.sleep(0.5)
        return hello_app(environ, start_response)

    with running(app) as server:
        sock = server.connect()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert started.wait(5)
        stopper = threading.Thread(target=server.server.stop, kwargs={"graceful": True})
        stopper.start()
        answer = read_all(sock)
        stopper.join()
        assert answer.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in answer
        server.thread.join(5)
        assert not server.thread.is_alive()


def test_max_requests_stops_the_loop_after_that_many():
    with running(hello_app, max_requests=3) as server:
        client = Client(server.connect())
        for _ in range(3):
            client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            client.response()
        server.thread.join(5)
        assert not server.thread.is_alive()
        assert server.server.requests_served == 3
