"""What one serving loop needs to know: limits, timeouts and hooks.

The drop-in configuration layer (``config.py``) turns gunicorn's settings into
a :class:`ServerOptions`; :func:`fastwsgi.run` builds one from keyword
arguments.  The event loop reads these once, at start, into C fields.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable, Optional, Sequence

from . import __version__, settings

Environ = dict


def _setting_default(name: str, convert: Callable[[Any], Any] = lambda value: value) -> Any:
    """The default of gunicorn's setting ``name``, from the one table (settings.py),
    validated as a config value would be and converted to the type the loop takes."""
    setting = settings.BY_NAME[name]
    return convert(setting.validator(setting.default))


def _copied_setting_default(name: str, convert: Callable[[Any], Any]) -> Any:
    """A field whose default is a fresh copy of the setting's (a mutable value)."""
    return dataclasses.field(default_factory=lambda: _setting_default(name, convert))


@dataclasses.dataclass
class ServerOptions:
    """The loop's settings. Where a gunicorn setting exists, the field has its name
    (or says which it is) and its default comes from settings.py."""

    # RFC 9112 limits.
    limit_request_line: int = _setting_default("limit_request_line")
    limit_request_fields: int = _setting_default("limit_request_fields")
    limit_request_field_size: int = _setting_default("limit_request_field_size")
    # Largest request body accepted, in bytes; 0 means no limit (gunicorn has none).
    limit_request_body: int = _setting_default("limit_request_body")

    # Seconds an idle keep-alive connection is kept open.
    keepalive: float = _setting_default("keepalive", float)
    # Seconds a client has to send a complete header block (slowloris guard).
    header_timeout: float = _setting_default("header_timeout", float)
    # Seconds a request body or a response write may go without progress.
    io_timeout: float = _setting_default("io_timeout", float)
    # A request body must arrive within io_timeout plus one second per this many
    # bytes received (Apache mod_reqtimeout's MinRate); 0 disables the rate.
    min_upload_rate: int = _setting_default("min_upload_rate")
    # Seconds in-flight requests get to finish after a graceful stop.
    graceful_timeout: float = _setting_default("graceful_timeout", float)

    # Connections one loop holds at once; past it, accepting pauses.
    worker_connections: int = _setting_default("worker_connections")
    # Threads the app runs on (gunicorn's gthread); 1: on the loop's own thread.
    threads: int = _setting_default("threads")
    # With threads > 1: seconds after which a request still in the app is logged,
    # once, with its thread's stack (gunicorn's timeout); 0: never.
    timeout: float = _setting_default("timeout", float)
    # Stop gracefully after serving this many requests; 0 means never.
    max_requests: int = _setting_default("max_requests")

    # PEP 3333 SCRIPT_NAME prefix (gunicorn: root_path / SCRIPT_NAME env).
    root_path: str = _setting_default("root_path")
    server_software: str = f"fastwsgi/{__version__}"
    # Add a Server header to responses (the app's own wins when present).
    send_server_header: bool = True
    # Use sendfile(2) for wsgi.file_wrapper responses (the setting's default, None,
    # leaves it on unless the environment turns it off: Config.sendfile).
    sendfile: bool = True
    # Request bodies above this many bytes are spooled to a temporary file.
    spool_threshold: int = _setting_default("spool_threshold")
    # Request bodies held in memory at once, summed over a worker's connections;
    # past it, new bodies are spooled from their first byte. 0 means no bound.
    body_memory_limit: int = _setting_default("body_memory_limit")
    # Directory for spooled bodies (tmp_upload_dir); None means tempfile's default.
    spool_dir: Optional[str] = _setting_default("tmp_upload_dir")

    # gunicorn's header_map: how a header name containing '_' is handled:
    # "drop", "refuse" (400) or "dangerous" (pass through as-is).
    header_map: str = _setting_default("header_map")
    # Strip spaces before the colon in a field name (unsafe).
    strip_header_spaces: bool = _setting_default("strip_header_spaces")
    # Accept obs-fold continuation lines (RFC 9112 §5.2).
    permit_obsolete_folding: bool = _setting_default("permit_obsolete_folding")
    permit_unconventional_http_method: bool = _setting_default("permit_unconventional_http_method")
    # Upper-case the method once it is checked (gunicorn's casefold_http_method).
    casefold_http_method: bool = _setting_default("casefold_http_method")
    # Accept HTTP versions other than 1.x (gunicorn's permit_unconventional_http_version).
    permit_unconventional_http_version: bool = _setting_default("permit_unconventional_http_version")

    # Trusted front ends for X-Forwarded-* / Forwarded and PROXY protocol. The
    # command line's default also reads $FORWARDED_ALLOW_IPS; run() does not.
    forwarded_allow_ips: Sequence[str] = _setting_default("forwarded_allow_ips", tuple)
    secure_scheme_headers: dict = _copied_setting_default("secure_scheme_headers", dict)
    # Header names with '_' a trusted front end may set (gunicorn's forwarder_headers).
    forwarder_headers: Sequence[str] = _setting_default("forwarder_headers", tuple)
    # Whether a PROXY header is read (proxy_protocol other than "off").
    proxy_protocol: bool = _setting_default("proxy_protocol", lambda mode: mode != "off")
    proxy_allow_ips: Sequence[str] = _setting_default("proxy_allow_ips", tuple)
    # What the sockets speak: "http" (HTTP/1.1) or "uwsgi" (the uwsgi protocol's
    # request packets, from a front end such as nginx's uwsgi_pass).
    protocol: str = _setting_default("protocol")
    # Front ends allowed to send uwsgi packets (Unix sockets always are).
    uwsgi_allow_ips: Sequence[str] = _setting_default("uwsgi_allow_ips", tuple)

    # TLS: an ssl.SSLContext for the server side (fastwsgi.tls.ssl_context makes
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

    # Workers of one master without threads: (send end, receive end) of the Unix
    # socketpair they share, through which a worker busy in a long app call passes
    # its waiting keep-alive connections to a free sibling; None: no hand-off.
    handoff_channel: Any = None

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
