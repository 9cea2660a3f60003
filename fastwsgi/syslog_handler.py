"""--log-syslog: the error and access logs sent to syslog as gunicorn sends them.

Entries read ``<PRI>gunicorn.PREFIX.error: [PID] message`` (and ``.access``), with
PREFIX from --log-syslog-prefix, else the proc name: gunicorn's text, so that
syslog filters written for gunicorn keep matching.
"""
from __future__ import annotations

import logging
import logging.handlers
import socket
from typing import Any

SYSLOG_FORMAT = "[%(process)d] %(message)s"

# RFC 5424 §6.2.1 facility codes, under gunicorn's names.
SYSLOG_FACILITIES = {
    "auth": 4, "authpriv": 10, "cron": 9, "daemon": 3, "ftp": 11, "kern": 0, "lpr": 6,
    "mail": 2, "news": 7, "security": 4, "syslog": 5, "user": 1, "uucp": 8,
    "local0": 16, "local1": 17, "local2": 18, "local3": 19,
    "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}


def parse_syslog_address(address: str) -> tuple[int | None, Any]:
    """``unix://PATH[#dgram|#stream]``, ``udp://HOST[:PORT]``, ``tcp://HOST[:PORT]``
    → (socket type, address) for SysLogHandler; a unix socket's type None lets it
    try datagram, then stream (gunicorn's rules)."""
    if address.startswith("unix://"):
        path, _, kind = address[len("unix://"):].partition("#")
        return (socket.SOCK_DGRAM if kind == "dgram" else None), path
    if address.startswith("udp://"):
        rest, socktype = address[len("udp://"):], socket.SOCK_DGRAM
    elif address.startswith("tcp://"):
        rest, socktype = address[len("tcp://"):], socket.SOCK_STREAM
    else:
        raise RuntimeError("invalid syslog address")
    if "[" in rest and "]" in rest:
        host = rest.split("]")[0][1:].lower()
    elif ":" in rest:
        host = rest.split(":")[0].lower()
    elif rest == "":
        host = "localhost"
    else:
        host = rest.lower()
    rest = rest.split("]")[-1]
    port = 514
    if ":" in rest:
        text = rest.split(":", 1)[1]
        if not text.isdigit():
            raise RuntimeError(f"{text!r} is not a valid port number.")
        port = int(text)
    return socktype, (host, port)


def syslog_handler(cfg: Any, name: str) -> logging.Handler:
    """The handler for one log (``name`` is "error" or "access")."""
    prefix = cfg.syslog_prefix or cfg.proc_name.replace(":", ".")
    try:
        facility = SYSLOG_FACILITIES[cfg.syslog_facility.lower()]
    except KeyError as exc:
        raise RuntimeError("unknown facility name") from exc
    socktype, address = parse_syslog_address(cfg.syslog_addr)
    handler = logging.handlers.SysLogHandler(address=address, facility=facility, socktype=socktype)
    handler.setFormatter(logging.Formatter(f"gunicorn.{prefix}.{name}: {SYSLOG_FORMAT}"))
    return handler
