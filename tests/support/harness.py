"""Runs a fastwsgi Server in a thread on a free loopback port.

Talk to it with ``support.wire.Client`` (responses read by h11) or raw bytes
(``exchange``).
"""
from __future__ import annotations

import contextlib
import socket
import threading
from typing import Iterator, Optional

from fastwsgi._loop import Server
from fastwsgi.options import ServerHooks, ServerOptions
from support.wire import TIMEOUT, read_all


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
