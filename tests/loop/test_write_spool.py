"""PEP 3333 write() past the high-water mark: the output waits in a spool file, never the loop.

The app runs on the loop, so a write() that waited for its client would freeze every
other connection of the worker; instead what the socket does not take now is kept in
a temporary file in the spool directory and sent from there as the client reads.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time

import pytest
from support.harness import hello_app, running
from support.wire import TIMEOUT, Client, read_all

PIECE = 64 * 1024
PIECES = 160  # 10 MiB


def piece(i: int) -> bytes:
    # Every piece different, so a reordered or repeated piece is seen.
    return (b"%06d" % i) * (PIECE // 6) + b"#" * (PIECE % 6)


EXPECTED = b"".join(piece(i) for i in range(PIECES))


def make_app(finished: threading.Event, content_length: bool = False):
    def app(environ, start_response):
        if environ["PATH_INFO"] != "/big":
            return hello_app(environ, start_response)
        headers = [("Content-Type", "application/octet-stream")]
        if content_length:
            headers.append(("Content-Length", str(len(EXPECTED))))
        write = start_response("200 OK", headers)
        for i in range(PIECES):
            write(piece(i))
        finished.set()
        return []
    return app


def spool_files(spool_dir) -> list:
    """This process's open descriptors on files in spool_dir (unlinked temporary files)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(spool_dir)):
            found.append(target)
    return found


def not_reading(server) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(TIMEOUT)
    sock.connect(("127.0.0.1", server.port))
    return sock


def test_a_client_that_never_reads_does_not_hold_the_other_connections(tmp_path):
    finished = threading.Event()
    # io_timeout far longer than the test: a write() that waited on the socket would
    # hold the loop until it expired.
    with running(make_app(finished), io_timeout=30.0, spool_dir=str(tmp_path)) as server:
        stalled = not_reading(server)
        stalled.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        assert finished.wait(TIMEOUT), "write() waited for the client that does not read"
        assert spool_files(tmp_path), "the unsent output is not in the spool directory"
        other = Client(server.connect(timeout=5.0))
        other.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        response, body = other.response()
        assert (response.status_code, body) == (200, b"Hello, World!")
        other.close()
        stalled.close()
        deadline = time.monotonic() + TIMEOUT
        while spool_files(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not spool_files(tmp_path), "the spool of a closed connection was kept open"


@pytest.mark.parametrize("content_length", [False, True], ids=["chunked", "content-length"])
def test_a_slow_reader_gets_the_spooled_response_whole_and_in_order(tmp_path, content_length):
    finished = threading.Event()
    with running(make_app(finished, content_length), spool_dir=str(tmp_path)) as server:
        sock = not_reading(server)
        client = Client(sock)
        # Two requests pipelined: the second response must follow the spooled one.
        client.send(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert finished.wait(TIMEOUT)
        response, body = client.response()
        assert response.status_code == 200
        assert len(body) == len(EXPECTED) and body == EXPECTED
        response, body = client.response()
        assert (response.status_code, body) == (200, b"Hello, World!")
        # The connection goes on, and the drained spool is closed.
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        response, body = client.response()
        assert (response.status_code, body) == (200, b"Hello, World!")
        assert not spool_files(tmp_path)
        client.close()


def test_small_writes_stay_in_memory(tmp_path):
    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        for part in (b"a", b"b", b"c"):
            write(part)
            assert not spool_files(tmp_path)
        return [b"d"]

    with running(app, spool_dir=str(tmp_path)) as server:
        client = Client(server.connect())
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        response, body = client.response()
        assert (response.status_code, body) == (200, b"abcd")
        client.close()


def test_a_spool_that_cannot_be_written_fails_the_request_not_the_worker(tmp_path, caplog):
    finished = threading.Event()
    missing = tmp_path / "gone"   # no such directory: the spool cannot be opened
    caplog.set_level(logging.ERROR, logger="fastwsgi.error")
    with running(make_app(finished), spool_dir=str(missing)) as server:
        stalled = not_reading(server)
        stalled.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        deadline = time.monotonic() + TIMEOUT
        while "Error handling request" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.01)
        assert "FileNotFoundError" in caplog.text
        assert not finished.is_set()
        # The headers and the first bytes went out: the connection is closed.
        received = read_all(stalled)
        assert received.startswith(b"HTTP/1.1 200 OK\r\n")
        assert len(received) < len(EXPECTED)
        stalled.close()
        client = Client(server.connect())
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        response, body = client.response()
        assert (response.status_code, body) == (200, b"Hello, World!")
        client.close()
