"""``fastwsgi.run``: serve one app in the calling process."""
from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from typing import Any, Callable, Optional

from .options import ServerHooks, ServerOptions, options_from_kwargs

log = logging.getLogger("fastwsgi.error")


def _default_log_handler() -> None:
    """Without logging set up by the program, log as the command does (gunicorn's
    format, INFO, stderr): the start-up lines and app errors are seen."""
    if log.hasHandlers():
        return
    from .log_format import DATE_FORMAT, ERROR_FORMAT
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(ERROR_FORMAT, DATE_FORMAT))
    log.addHandler(handler)
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)


def listen(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket for host:port (IPv6 when host contains ':')."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def run(
    app: Callable,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    hooks: Optional[ServerHooks] = None,
    sock: Optional[socket.socket] = None,
    **options: Any,
) -> None:
    """Serves ``app`` on host:port in this process until SIGINT or SIGTERM.

    Both signals stop gracefully: no new connections are accepted and
    in-flight requests finish (within ``graceful_timeout`` seconds).
    Keyword options are the fields of :class:`fastwsgi.options.ServerOptions`.
    """
    from ._loop import Server

    server_options: ServerOptions = options_from_kwargs(options)
    listener = sock if sock is not None else listen(host, port)
    server = Server(app, [listener], server_options, hooks)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: server.stop(graceful=True))
    _default_log_handler()
    from . import __version__
    log.info("Starting fastwsgi %s", __version__)
    log.info("Listening at: %s (%s)", _url(listener), os.getpid())
    try:
        server.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if sock is None:
            listener.close()


def _url(listener: socket.socket) -> str:
    name = listener.getsockname()
    if listener.family == socket.AF_UNIX:
        return f"unix:{name}"
    host, port = name[:2]
    return f"http://[{host}]:{port}" if listener.family == socket.AF_INET6 else f"http://{host}:{port}"
