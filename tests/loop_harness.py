"""Runs a fastwsgi Server in a thread on a free loopback port, and talks HTTP to it.

Responses are read with h11, an independent HTTP/1.1 implementation, so every
byte the server writes is checked against RFC 9112 by code that is not ours.
"""
from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Iterator, Optional

import h11

from fastwsgi._loop import Server
from fastwsgi.options import ServerHooks, ServerOptions

TIMEOUT = 10.0


class RunningServer:
    def __init__(self, app, options: ServerOptions, hooks: Optional[ServerHooks]):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.server = Server(app, [self.sock], options, hooks)
        self.error: Optional[BaseException] = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.server.run()
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def connect(self, timeout: float = TIMEOUT) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def stop(self, graceful: bool = False) -> None:
        self.server.stop(graceful=graceful)
        self.thread.join(TIMEOUT)
        self.sock.close()
        assert not self.thread.is_alive(), "server did not stop"
        if self.error is not None:
            raise self.error


@contextlib.contextmanager
def running(app, hooks: Optional[ServerHooks] = None, **options) -> Iterator[RunningServer]:
    server = RunningServer(app, ServerOptions(**options), hooks)
    try:
        yield server
    finally:
        server.stop()


class Client:
    """One client connection; requests are raw bytes, responses parsed by h11."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.conn = h11.Connection(h11.CLIENT)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self, method: bytes = b"GET"):
        """Reads one response: (h11.Response, body bytes)."""
        # h11 must know the request to frame a response (HEAD, 1.0 …).
        if self.conn.our_state is h11.IDLE:
            self.conn.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
            self.conn.send(h11.EndOfMessage())
        head, body = None, bytearray()
        deadline = time.monotonic() + TIMEOUT
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                if time.monotonic() > deadline:
                    raise TimeoutError("no complete response")
                self.conn.receive_data(self.sock.recv(65536))
                continue
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
                    with contextlib.suppress(h11.LocalProtocolError):
                        self.conn.start_next_cycle()
                return head, bytes(body)
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("closed before a complete response")

    def close(self) -> None:
        self.sock.close()


def headers_of(response) -> dict:
    return {name.decode().lower(): value.decode("latin-1") for name, value in response.headers}


def read_all(sock: socket.socket, timeout: float = TIMEOUT) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(timeout)
    chunks = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def exchange(server: RunningServer, raw: bytes) -> bytes:
    """Sends raw bytes, half-closes, and returns all the server answered."""
    with server.connect() as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        return read_all(sock)


def hello_app(environ, start_response):
    body = b"Hello, World!"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
