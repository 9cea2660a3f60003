"""What one serving loop needs to know: limits, timeouts and hooks.

The drop-in configuration layer (``config.py``) turns gunicorn's settings into
a :class:`ServerOptions`; :func:`fastwsgi.run` builds one from keyword
arguments.  The event loop reads these once, at start, into C fields.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable, Optional, Sequence

from . import __version__

Environ = dict


@dataclasses.dataclass
class ServerOptions:
    # RFC 9112 limits, with gunicorn's names and defaults.
    limit_request_line: int = 4094
    limit_request_fields: int = 100
    limit_request_field_size: int = 8190
    # Largest request body accepted, in bytes; 0 means no limit (gunicorn has none).
    limit_request_body: int = 1024 ** 3

    # Seconds an idle keep-alive connection is kept open (gunicorn: keepalive=2).
    keepalive: float = 2.0
    # Seconds a client has to send a complete header block (slowloris guard).
    header_timeout: float = 30.0
    # Seconds a request body or a response write may go without progress.
    io_timeout: float = 30.0
    # A request body must arrive within io_timeout plus one second per this many
    # bytes received (Apache mod_reqtimeout's MinRate); 0 disables the rate.
    min_upload_rate: int = 500
    # Seconds in-flight requests get to finish after a graceful stop.
    graceful_timeout: float = 30.0

    # Connections one loop holds at once; past it, accepting pauses.
    worker_connections: int = 1000
    # Threads the app runs on (gunicorn's gthread); 1: on the loop's own thread.
    threads: int = 1
    # With threads > 1: seconds after which a request still in the app is logged,
    # once, with its thread's stack (gunicorn's timeout); 0: never.
    timeout: float = 30.0
    # Stop gracefully after serving this many requests; 0 means never.
    max_requests: int = 0

    # PEP 3333 SCRIPT_NAME prefix (gunicorn: root_path / SCRIPT_NAME env).
    root_path: str = ""
    server_software: str = f"fastwsgi/{__version__}"
    # Add a Server header to responses (the app's own wins when present).
    send_server_header: bool = True
    # Use sendfile(2) for wsgi.file_wrapper responses.
    sendfile: bool = True
    # Request bodies above this many bytes are spooled to a temporary file.
    spool_threshold: int = 1024 * 1024
    # Request bodies held in memory at once, summed over a worker's connections;
    # past it, new bodies are spooled from their first byte. 0 means no bound.
    body_memory_limit: int = 64 * 1024 * 1024
    # Directory for spooled bodies; None means tempfile's default.
    spool_dir: Optional[str] = None

    # gunicorn's header_map: how a header name containing '_' is handled:
    # "drop" (default), "refuse" (400) or "dangerous" (pass through as-is).
    header_map: str = "drop"
    # Strip spaces before the colon in a field name (unsafe, off by default).
    strip_header_spaces: bool = False
    # Accept obs-fold continuation lines (RFC 9112 §5.2), off by default.
    permit_obsolete_folding: bool = False

    # Trusted front ends for X-Forwarded-* / Forwarded and PROXY protocol.
    forwarded_allow_ips: Sequence[str] = ("127.0.0.1", "::1")
    secure_scheme_headers: dict = dataclasses.field(
        default_factory=lambda: {
            "X-FORWARDED-PROTOCOL": "ssl",
            "X-FORWARDED-PROTO": "https",
            "X-FORWARDED-SSL": "on",
        }
    )
    proxy_protocol: bool = False
    proxy_allow_ips: Sequence[str] = ("127.0.0.1", "::1")

    # TLS: an ssl.SSLContext for the server side (fastwsgi.sockets.ssl_context makes
    # gunicorn's); every listener then speaks TLS. None: plain HTTP.
    ssl_context: Any = None
    # A client that closes without TLS close_notify ends its stream like one that
    # sends it (gunicorn's suppress_ragged_eofs); False: the connection fails.
    suppress_ragged_eofs: bool = True

    # wsgi.multiprocess: true when several worker processes serve the same app.
    multiprocess: bool = False

    # A writable buffer (a slot of fastwsgi.metrics.MetricsArea) the loop counts
    # requests, bytes and connections into; None: no metrics.
    metrics: Any = None

    # Extra keys every environ starts with (e.g. from raw_env); copied, not shared.
    base_environ: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class ServerHooks:
    """Callbacks a serving loop makes; every one is optional.

    Exceptions raised by a hook are logged and swallowed: a hook must never
    take the loop down.
    """

    # Called at least once a second from the loop thread (worker heartbeat).
    on_tick: Optional[Callable[[], None]] = None
    # Called with the environ just before the app is called.
    pre_request: Optional[Callable[[Environ], None]] = None
    # Called after the response is complete (or the connection was lost):
    # (environ, status line such as "200 OK", response headers,
    #  response body bytes sent, request duration in seconds).
    post_request: Optional[Callable[[Environ, str, list, int, float], None]] = None
    # Same signature as post_request; the access logger.
    access_log: Optional[Callable[[Environ, str, list, int, float], None]] = None
    # Called once per loop iteration that completed requests, with a list of
    # (status line, request duration in seconds), one per request.
    request_metrics: Optional[Callable[[list], None]] = None
    # Called at the end of a loop iteration in which access_log was called, before
    # the loop waits again: the access logger writes out what it buffered.
    flush_access_log: Optional[Callable[[], None]] = None
    # Logger for errors and app tracebacks.
    error_log: logging.Logger = dataclasses.field(
        default_factory=lambda: logging.getLogger("fastwsgi.error")
    )


def options_from_kwargs(kwargs: dict[str, Any]) -> ServerOptions:
    """Build ServerOptions from ``run(**options)`` keywords, rejecting unknown names."""
    names = {f.name for f in dataclasses.fields(ServerOptions)}
    unknown = sorted(set(kwargs) - names)
    if unknown:
        raise TypeError(f"unknown server option(s): {', '.join(unknown)}")
    return ServerOptions(**kwargs)
