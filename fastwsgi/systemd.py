"""systemd's readiness protocol (sd_notify(3)) for ``Type=notify`` and
``Type=notify-reload`` units: datagrams of ``KEY=value`` lines sent to the
AF_UNIX socket named by ``NOTIFY_SOCKET`` (a path, or ``@name`` for Linux's
abstract namespace)."""
from __future__ import annotations

import os
import socket
import time
from typing import Any

NOTIFY_SOCKET = "NOTIFY_SOCKET"


def notify_socket() -> str | None:
    return os.environ.get(NOTIFY_SOCKET) or None


def sd_notify(state: str, log: Any) -> None:
    """Sends ``state``; without NOTIFY_SOCKET (not run by systemd) does nothing.
    A failure is logged at debug and never stops the server, as gunicorn's."""
    address = notify_socket()
    if address is None:
        return
    if address[0] == "@":
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode("utf-8"))
    except OSError:
        log.debug("Exception while invoking sd_notify()", exc_info=True)


def reloading_state() -> str:
    # systemd 253+ (Type=notify-reload) wants the reload's CLOCK_MONOTONIC start with it.
    return f"RELOADING=1\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"
