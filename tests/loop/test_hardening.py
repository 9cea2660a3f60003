"""Defects that would crash a worker, lose a request or desync a connection, each pinned down."""
from __future__ import annotations

import logging
import socket
import threading
import time

import pytest
from support.harness import exchange, hello_app, running
from support.wire import TIMEOUT, Client, headers_of, read_all


@pytest.mark.parametrize("method", [b"HEAL", b"HEXX", b"HEA", b"HEADS"])
def test_a_method_that_only_starts_like_head_gets_its_body(method):
    # Only the token HEAD omits content (RFC 9110 §9.3.2); HEAL must not desync the
    # connection by promising a length and sending nothing.
    with running(hello_app) as server:
        client = Client(server.connect())
        client.send(method + b" / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        first, body = client.response(method)
        assert (first.status_code, body) == (200, b"Hello, World!")
        second, body = client.response()
        assert (second.status_code, body) == (200, b"Hello, World!")
        client.close()


def test_write_from_close_after_a_chunked_body_never_reaches_the_wire(caplog):
    calls = []

    class Body:
        def __init__(self, write):
            self.write = write

        def __iter__(self):
            yield b"part"

        def close(self):
            try:
                self.write(b"late")
            except Exception as error:  # the app sees the refusal
                calls.append(error)
                raise

    def app(environ, start_response):
        return Body(start_response("200 OK", [("Content-Type", "text/plain")]))

    caplog.set_level(logging.ERROR, logger="fastwsgi.error")
    with running(app) as server:
        client = Client(server.connect())
        for _ in range(2):  # the next response on the connection is intact
            client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            response, body = client.response()
            assert (response.status_code, body) == (200, b"part")
        client.sock.settimeout(0.3)
        with pytest.raises(socket.timeout):
            client.sock.recv(1)  # nothing after the last chunk
        client.close()
    assert len(calls) == 2 and all(isinstance(error, RuntimeError) for error in calls)
    assert "Error closing response iterable" in caplog.text


@pytest.mark.parametrize("status", ["100 Continue", "103 Early Hints", "101 Switching Protocols"])
def test_an_interim_status_as_the_final_status_is_a_500(status):
    def app(environ, start_response):
        start_response(status, [])
        return [b""]

    with running(app) as server:
        raw = exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
        assert b"Connection: close\r\n" in raw
        assert exchange(server, b"GET / HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 500")


def test_a_spool_failure_closes_only_its_connection(tmp_path, caplog):
    # The spool directory is gone: storing a large body fails with an OSError; that
    # request is refused, and the worker serves the connection beside it.
    caplog.set_level(logging.ERROR, logger="fastwsgi.error")
    with running(hello_app, spool_threshold=1024, spool_dir=str(tmp_path / "missing")) as server:
        bystander = Client(server.connect())
        bystander.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert bystander.response()[0].status_code == 200
        with server.connect() as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100000)
            answer = read_all(sock)
        assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        assert b"Connection: close\r\n" in answer
        bystander.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert bystander.response()[0].status_code == 200
        bystander.close()
    assert "cannot store the request body" in caplog.text


def test_graceful_stop_answers_a_request_on_an_idle_keep_alive_connection():
    # Idle keep-alive connections are not cut at the stop: a request sent in that
    # moment is answered, with Connection: close, as gunicorn's gthread does.
    with running(hello_app, keepalive=5) as server:
        client = Client(server.connect())
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.response()[0].status_code == 200
        server.server.stop(graceful=True)
        time.sleep(0.3)
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        response, body = client.response()
        assert (response.status_code, body) == (200, b"Hello, World!")
        assert headers_of(response)["connection"] == "close"
        client.close()
        server.thread.join(TIMEOUT)
        assert not server.thread.is_alive()


def test_graceful_stop_serves_connections_waiting_in_the_backlog():
    # The app blocks the loop; meanwhile clients connect and send. The stop comes
    # before the loop accepted them: they are taken in and answered, not reset.
    started = threading.Event()

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/slow":
            started.set()
            time.sleep(0.5)
        return hello_app(environ, start_response)

    with running(app) as server:
        slow = server.connect()
        slow.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        assert started.wait(TIMEOUT)
        waiting = [server.connect() for _ in range(5)]
        for sock in waiting:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        server.server.stop(graceful=True)
        answers = [read_all(sock) for sock in [slow] + waiting]
        for sock in [slow] + waiting:
            sock.close()
        server.thread.join(TIMEOUT)
    assert all(answer.startswith(b"HTTP/1.1 200 OK\r\n") for answer in answers), answers
    assert all(b"Connection: close\r\n" in answer for answer in answers)


def test_a_trickled_body_is_dropped_by_the_minimum_rate_though_each_byte_rearms_io_timeout():
    # One byte per 0.2 s keeps a 1 s io_timeout from firing for ever; the rate rule
    # (io_timeout + 1 s per 100 bytes) answers 408 after about a second.
    with running(hello_app, io_timeout=1.0, min_upload_rate=100) as server:
        with server.connect() as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
            started = time.monotonic()
            sock.settimeout(0.2)
            answer = b""
            while time.monotonic() - started < 8 and not answer:
                try:
                    sock.sendall(b"x")
                    answer = sock.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    break
            elapsed = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
        assert elapsed < 4, elapsed


def test_a_steady_upload_above_the_rate_is_received_whole():
    def app(environ, start_response):
        body = str(len(environ["wsgi.input"].read())).encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    with running(app, io_timeout=1.0, min_upload_rate=1000, spool_threshold=1024) as server:
        client = Client(server.connect())
        client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6000\r\n\r\n")
        for _ in range(6):  # 2,000 bytes/s for 3 s: past io_timeout, within the rate
            client.send(b"y" * 1000)
            time.sleep(0.5)
        response, body = client.response(b"POST")
        assert (response.status_code, body) == (200, b"6000")
        client.close()


def _closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(0.05)
    try:
        return sock.recv(1) == b""
    except socket.timeout:
        return False
    except OSError:
        return True


def test_at_capacity_the_oldest_incomplete_head_makes_room_for_a_new_client():
    with running(hello_app, worker_connections=4, header_timeout=30) as server:
        slow = []
        for _ in range(4):
            sock = server.connect()
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")   # a head that never ends
            slow.append(sock)
            time.sleep(0.05)
        time.sleep(0.2)
        client = Client(server.connect())
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.response()[0].status_code == 200
        closed = [_closed_by_server(sock) for sock in slow]
        assert closed == [True, False, False, False], closed
        client.close()
        for sock in slow:
            sock.close()


def test_at_capacity_idle_keep_alives_go_before_incomplete_heads():
    with running(hello_app, worker_connections=3, keepalive=30) as server:
        slow = server.connect()
        slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        idle = []
        for _ in range(2):
            client = Client(server.connect())
            client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert client.response()[0].status_code == 200
            idle.append(client)
        time.sleep(0.2)
        newcomer = Client(server.connect())
        newcomer.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert newcomer.response()[0].status_code == 200
        assert [_closed_by_server(c.sock) for c in idle] == [True, False]
        assert not _closed_by_server(slow)
        for sock in [slow, newcomer.sock] + [c.sock for c in idle]:
            sock.close()


def test_at_capacity_an_upload_below_the_minimum_rate_makes_room_after_heads():
    # Slow uploads (each far below min_upload_rate, yet within its io_timeout) fill
    # the worker; the newcomer is served, at the cost of the oldest slow upload.
    with running(hello_app, worker_connections=3, io_timeout=30, min_upload_rate=1000) as server:
        uploads = []
        for _ in range(3):
            sock = server.connect()
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nxx")
            uploads.append(sock)
            time.sleep(0.05)
        time.sleep(1.2)   # past the grace that lets an upload show its rate
        client = Client(server.connect())
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.response()[0].status_code == 200
        assert [_closed_by_server(sock) for sock in uploads] == [True, False, False]
        client.close()
        for sock in uploads:
            sock.close()


def test_at_capacity_an_upload_at_a_good_rate_is_not_shed():
    with running(hello_app, worker_connections=1, io_timeout=30, min_upload_rate=1000) as server:
        upload = server.connect()
        upload.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 50000)
        time.sleep(1.2)   # 50,000 bytes in 1.2 s: well above 1,000 bytes/s
        newcomer = server.connect()
        newcomer.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert not _closed_by_server(upload)
        upload.sendall(b"x" * 50000)   # the upload completes and is answered...
        upload.settimeout(TIMEOUT)
        assert upload.recv(65536).startswith(b"HTTP/1.1 200 OK")
        upload.close()
        # ...and then the newcomer, which waited in the backlog.
        assert read_all(newcomer).startswith(b"HTTP/1.1 200 OK")
        newcomer.close()


def test_at_capacity_with_every_connection_busy_new_clients_wait_in_the_backlog():
    release = threading.Event()

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/wait":
            release.wait(TIMEOUT)
        return hello_app(environ, start_response)

    with running(app, worker_connections=1) as server:
        busy = server.connect()
        busy.sendall(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)
        waiting = server.connect()
        waiting.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        release.set()
        assert read_all(waiting).startswith(b"HTTP/1.1 200 OK")
        busy.close()
        waiting.close()
