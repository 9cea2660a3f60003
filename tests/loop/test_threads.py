"""threads > 1: the app runs on a pool of threads, the loop keeps every socket.

Each test drives a real server (loop_harness, in this process) over loopback and
reads its answers with h11. Blocking is simulated with events and sleeps the test
controls; every wait is bounded.
"""
from __future__ import annotations

import concurrent.futures
import io
import logging
import socket
import tempfile
import threading
import time

from support.harness import hello_app, running
from support.wire import TIMEOUT, Client, headers_of, read_all

THREADS = 4


def request(path: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode()


def get(server, path: str) -> tuple:
    client = Client(server.connect())
    try:
        client.send(request(path))
        response, body = client.response()
        return response.status_code, body, headers_of(response)
    finally:
        client.close()


def plain(status: str, body: bytes, start_response) -> list:
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def test_environ_says_multithread_and_offers_the_socket():
    seen = {}

    def app(environ, start_response):
        seen.update(environ)
        seen["thread"] = threading.current_thread().name
        return plain("200 OK", b"ok", start_response)

    with running(app, threads=THREADS) as server:
        assert get(server, "/")[0] == 200
    assert seen["wsgi.multithread"] is True
    assert "gunicorn.socket" in seen
    assert seen["thread"].startswith("fastwsgi-app-")
    with running(app) as server:
        get(server, "/")
    assert seen["wsgi.multithread"] is False
    assert seen["thread"] != "" and not seen["thread"].startswith("fastwsgi-app-")


def test_slow_requests_run_side_by_side():
    """THREADS requests that each block for 0.5 s finish in about one request's time."""
    def app(environ, start_response):
        time.sleep(0.5)
        return plain("200 OK", b"slept", start_response)

    with running(app, threads=THREADS) as server:
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(THREADS) as clients:
            answers = list(clients.map(lambda _: get(server, "/")[:2], range(THREADS)))
        elapsed = time.monotonic() - started
    assert answers == [(200, b"slept")] * THREADS
    assert elapsed < 0.5 * THREADS * 0.6, f"{THREADS} requests of 0.5 s took {elapsed:.2f} s"


def test_one_slow_request_does_not_hold_the_others():
    release = threading.Event()

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/slow":
            release.wait(TIMEOUT)
        return plain("200 OK", environ["PATH_INFO"].encode(), start_response)

    with running(app, threads=2) as server:
        slow = Client(server.connect())
        slow.send(request("/slow"))
        try:
            for _ in range(20):
                assert get(server, "/fast")[:2] == (200, b"/fast")
        finally:
            release.set()
        response, body = slow.response()
        slow.close()
    assert (response.status_code, body) == (200, b"/slow")


def test_requests_beyond_the_pool_wait_for_a_thread():
    """More blocking requests than threads: all are answered, the extra ones after."""
    def app(environ, start_response):
        time.sleep(0.3)
        return plain("200 OK", b"done", start_response)

    with running(app, threads=2) as server:
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(6) as clients:
            answers = list(clients.map(lambda _: get(server, "/")[:2], range(6)))
        elapsed = time.monotonic() - started
    assert answers == [(200, b"done")] * 6
    assert elapsed >= 0.85, "6 requests of 0.3 s on 2 threads cannot take less than 0.9 s"


def test_pipelined_responses_keep_their_order():
    """The first request sleeps longest: its answer still comes first."""
    def app(environ, start_response):
        delay = float(environ["QUERY_STRING"] or 0)
        time.sleep(delay)
        if environ["PATH_INFO"] == "/stream":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return iter([b"streamed ", environ["QUERY_STRING"].encode()])
        return plain("200 OK", environ["QUERY_STRING"].encode(), start_response)

    paths = ["/a?0.3", "/stream?0.2", "/b?0.1", "/c?0", "/stream?0", "/d?0.05"]
    with running(app, threads=THREADS) as server:
        client = Client(server.connect())
        client.send(b"".join(request(path) for path in paths))
        bodies = [client.response()[1] for _ in paths]
        client.close()
    expected = [b"streamed " + p.split("?")[1].encode() if p.startswith("/stream")
                else p.split("?")[1].encode() for p in paths]
    assert bodies == expected


def test_keep_alive_connection_serves_request_after_request():
    with running(hello_app, threads=THREADS) as server:
        client = Client(server.connect())
        for _ in range(50):
            client.send(request("/"))
            response, body = client.response()
            assert (response.status_code, body) == (200, b"Hello, World!")
        client.close()


def test_an_app_error_on_a_thread_is_a_500_and_the_worker_serves_on(caplog):
    def app(environ, start_response):
        if environ["PATH_INFO"] == "/boom":
            raise RuntimeError("boom on a thread")
        return hello_app(environ, start_response)

    with caplog.at_level(logging.ERROR, logger="fastwsgi.error"):
        with running(app, threads=THREADS) as server:
            status, body, headers = get(server, "/boom")
            assert (status, headers["connection"]) == (500, "close")
            assert get(server, "/")[:2] == (200, b"Hello, World!")
    assert "Error handling request GET /boom" in caplog.text
    assert "RuntimeError: boom on a thread" in caplog.text


def test_an_error_mid_stream_cuts_the_connection():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body():
            yield b"first part "
            raise RuntimeError("broken generator")
        return body()

    with running(app, threads=THREADS) as server:
        with server.connect() as sock:
            sock.sendall(request("/"))
            answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"first part " in answer
    assert not answer.endswith(b"0\r\n\r\n"), "a broken body must not look complete"


def test_a_header_error_found_by_the_loop_is_a_500(caplog):
    """start_response's headers are checked on the loop, where they are encoded."""
    def app(environ, start_response):
        start_response("200 OK", [("Bad Name", "x")])
        return [b"never sent"]

    with caplog.at_level(logging.ERROR, logger="fastwsgi.error"):
        with running(app, threads=THREADS) as server:
            status, body, _ = get(server, "/")
            assert status == 500 and b"never sent" not in body
            assert get(server, "/")[0] == 500
    assert "invalid character in header name" in caplog.text


def test_streamed_chunks_reach_the_client_as_they_are_produced():
    """A generator that yields, then blocks: its first chunk is out before it resumes."""
    resume = threading.Event()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/event-stream")])

        def events():
            yield b"data: one\n\n"
            resume.wait(TIMEOUT)
            yield b"data: two\n\n"
        return events()

    with running(app, threads=THREADS) as server:
        with server.connect() as sock:
            sock.sendall(request("/"))
            received = b""
            while b"data: one" not in received:
                received += sock.recv(65536)
            assert b"data: two" not in received
            resume.set()
            while not received.endswith(b"0\r\n\r\n"):
                received += sock.recv(65536)
    assert b"data: two" in received


def test_write_and_file_wrapper_and_early_hints_from_a_thread():
    with tempfile.NamedTemporaryFile() as file:
        file.write(b"file body " * 1000)
        file.flush()

        def app(environ, start_response):
            path = environ["PATH_INFO"]
            if path == "/write":
                write = start_response("200 OK", [("Content-Type", "text/plain")])
                write(b"written, ")
                return [b"returned"]
            if path == "/file":
                start_response("200 OK", [("Content-Type", "text/plain")])
                return environ["wsgi.file_wrapper"](open(file.name, "rb"))
            if path == "/bytesio":
                start_response("200 OK", [("Content-Type", "text/plain")])
                return environ["wsgi.file_wrapper"](io.BytesIO(b"in memory"), 4)
            environ["wsgi.early_hints"]([("Link", "</style.css>; rel=preload")])
            return plain("200 OK", b"hinted", start_response)

        with running(app, threads=THREADS) as server:
            assert get(server, "/write")[1] == b"written, returned"
            status, body, headers = get(server, "/file")
            assert (status, body, headers["content-length"]) == (200, b"file body " * 1000, "10000")
            assert get(server, "/bytesio")[1] == b"in memory"
            with server.connect() as sock:
                sock.sendall(request("/hints", "Connection: close\r\n"))
                answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
                             b"HTTP/1.1 200 OK\r\n")
    assert answer.endswith(b"hinted")


def test_a_streamed_response_to_a_reader_that_stops_holds_no_memory():
    """Backpressure across threads: past the high-water mark the body waits (parked,
    on no thread) until the client takes what was produced."""
    produced = []
    piece = b"x" * 65536

    def app(environ, start_response):
        if environ["PATH_INFO"] != "/":
            return hello_app(environ, start_response)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])

        def body():
            for i in range(2000):   # 125 MiB if nothing held it back
                produced.append(i)
                yield piece
        return body()

    with running(app, threads=THREADS) as server:
        sock = server.connect()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(request("/"))
        time.sleep(1.0)
        held = len(produced)
        time.sleep(0.5)
        assert len(produced) == held, "the thread kept producing for a client that does not read"
        # What was produced is what the kernel buffers plus at most twice the
        # high-water mark (queued on the loop and handed over), never the body.
        assert held * len(piece) < 16 * 1024 * 1024, f"{held} pieces produced"
        assert get(server, "/other")[0] == 200   # another thread serves meanwhile
        received = 0
        sock.settimeout(TIMEOUT)
        while True:
            data = sock.recv(1 << 20)
            if not data:
                break
            received += len(data)
            if received > 2000 * len(piece):
                break
        sock.close()
    assert len(produced) == 2000


def read_response_length(sock: socket.socket) -> int:
    """Reads one response to its end (Content-Length); the body's length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(headers_of_raw(head)[b"content-length"])
    received = len(body)
    while received < length:
        chunk = sock.recv(1 << 20)
        assert chunk, f"{received} of {length} bytes"
        received += len(chunk)
    return received


def headers_of_raw(head: bytes) -> dict:
    return {name.strip().lower(): value.strip()
            for name, _, value in (line.partition(b":") for line in head.split(b"\r\n")[1:])}


def test_readers_that_stop_do_not_hold_the_threads():
    """More clients stop reading a large streamed body than there are threads: each
    body waits parked, on no thread, so a fresh request is answered at once; every
    body then arrives whole once its client reads on, and close() is called for each,
    read to the end or left."""
    piece = b"y" * 65536
    pieces = 128   # 8 MiB a body
    closed = []

    class Body:
        def __iter__(self):
            for _ in range(pieces):
                yield piece

        def close(self):
            closed.append(threading.current_thread().name)

    def app(environ, start_response):
        if environ["PATH_INFO"] != "/big":
            return hello_app(environ, start_response)
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(pieces * len(piece)))])
        return Body()

    with running(app, threads=2) as server:
        readers = []
        for _ in range(6):
            sock = server.connect()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            sock.sendall(request("/big"))
            readers.append(sock)
        time.sleep(0.5)   # every body has filled its socket
        for _ in range(5):
            began = time.monotonic()
            assert get(server, "/")[:2] == (200, b"Hello, World!")
            # far below TIMEOUT, which it would wait with both threads held
            assert time.monotonic() - began < 2.0
        for sock in readers[:3]:
            sock.settimeout(TIMEOUT)
            assert read_response_length(sock) == pieces * len(piece)
            sock.close()
        for sock in readers[3:]:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            sock.close()
        deadline = time.monotonic() + TIMEOUT
        while len(closed) < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(closed) == 6, closed
        assert get(server, "/")[:2] == (200, b"Hello, World!")


def test_a_client_that_leaves_mid_app_gets_close_called_and_the_output_dropped():
    entered, closed = threading.Event(), threading.Event()
    release = threading.Event()

    class Body:
        def __iter__(self):
            entered.set()
            release.wait(TIMEOUT)
            yield b"too late"

        def close(self):
            closed.set()

    def app(environ, start_response):
        if environ["PATH_INFO"] != "/leave":
            return hello_app(environ, start_response)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body()

    with running(app, threads=THREADS) as server:
        sock = server.connect()
        sock.sendall(request("/leave"))
        assert entered.wait(TIMEOUT)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()   # a reset: the loop sees the client gone while the thread runs
        deadline = time.monotonic() + TIMEOUT
        while server.server.connection_count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.server.connection_count == 0
        release.set()
        assert closed.wait(TIMEOUT), "close() was not called"
        assert get(server, "/")[:2] == (200, b"Hello, World!")


def test_max_requests_with_threads_stops_after_the_count():
    with running(hello_app, threads=THREADS, max_requests=5) as server:
        client = Client(server.connect())
        for _ in range(5):
            client.send(request("/"))
            assert client.response()[0].status_code == 200
        server.thread.join(TIMEOUT)
        assert not server.thread.is_alive(), "the server did not stop after max_requests"


def test_graceful_stop_lets_running_requests_finish():
    entered = threading.Barrier(THREADS + 1, timeout=TIMEOUT)

    def app(environ, start_response):
        entered.wait()
        time.sleep(0.5)
        return plain("200 OK", b"finished", start_response)

    with running(app, threads=THREADS) as server:
        with concurrent.futures.ThreadPoolExecutor(THREADS) as clients:
            futures = [clients.submit(get, server, "/") for _ in range(THREADS)]
            entered.wait()
            server.server.stop(graceful=True)
            answers = [future.result(TIMEOUT)[:3] for future in futures]
        server.thread.join(TIMEOUT)
        assert not server.thread.is_alive()
    for status, body, headers in answers:
        assert (status, body, headers["connection"]) == (200, b"finished", "close")


def test_a_long_request_is_logged_with_its_threads_stack(caplog):
    release = threading.Event()

    def stuck_in_here(environ, start_response):
        release.wait(TIMEOUT)
        return plain("200 OK", b"late", start_response)

    with caplog.at_level(logging.WARNING, logger="fastwsgi.error"):
        with running(stuck_in_here, threads=2, timeout=1) as server:
            client = Client(server.connect())
            client.send(request("/stuck"))
            deadline = time.monotonic() + TIMEOUT
            while "still running" not in caplog.text and time.monotonic() < deadline:
                time.sleep(0.05)
            release.set()
            assert client.response()[1] == b"late"
            client.close()
    assert "Request GET /stuck from 127.0.0.1 still running after" in caplog.text
    assert "on thread fastwsgi-app-" in caplog.text
    assert "in stuck_in_here" in caplog.text and "release.wait(TIMEOUT)" in caplog.text
    assert caplog.text.count("still running") == 1


def test_a_request_body_is_read_by_the_loop_and_given_whole_to_the_thread():
    def app(environ, start_response):
        body = environ["wsgi.input"].read()
        return plain("200 OK", b"%d %s" % (len(body), body[:5]), start_response)

    upload = b"abcde" * 100000
    with running(app, threads=THREADS) as server:
        client = Client(server.connect())
        client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(upload) + upload)
        response, body = client.response(b"POST")
        client.close()
    assert body == b"500000 abcde"


def test_pre_request_runs_on_the_thread_and_access_log_on_the_loop():
    from fastwsgi.options import ServerHooks
    seen = []
    hooks = ServerHooks(
        pre_request=lambda environ: seen.append(("pre", threading.current_thread().name)),
        access_log=lambda environ, status, headers, sent, seconds: seen.append(
            ("access", status, sent, threading.current_thread().name.startswith("fastwsgi-app-"))))
    with running(hello_app, hooks=hooks, threads=2) as server:
        assert get(server, "/")[0] == 200
        deadline = time.monotonic() + TIMEOUT
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert seen[0][0] == "pre" and seen[0][1].startswith("fastwsgi-app-")
    assert seen[1] == ("access", "200 OK", 13, False)
