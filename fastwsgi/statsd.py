"""StatsD metrics under gunicorn's names, types and datagram format.

What gunicorn 27 sends, fastwsgi sends (``--statsd-host``, ``--statsd-prefix``,
``--dogstatsd-tags``):

  gunicorn.requests               counter, one per request      (workers)
  gunicorn.request.status.<code>  counter, one per request      (workers)
  gunicorn.request.duration       timer in ms, one per request  (workers)
  gunicorn.workers                gauge, when the count changes (master)
  gunicorn.log.critical|error|warning|exception
                                  counter, one per logged line  (master and workers)

and any ``extra={"metric": ..., "value": ..., "mtype": ...}`` given to a log call.

gunicorn sends each line as its own datagram.  A worker here sends the lines of the
requests completed in one loop iteration together, newline-separated (the StatsD
multi-metric packet, which statsd, the Datadog agent, Telegraf and statsd_exporter
read), each datagram within MAX_DATAGRAM bytes, so a busy loop makes one send(2) per
iteration rather than three per request.
"""
from __future__ import annotations

import logging
import re
import socket
from typing import Any, Iterable

from .sockets import _is_ipv6, parse_address

DEFAULT_PORT = "8125"
# Fits an Ethernet MTU once IP and UDP headers are added (etsy statsd's advice).
MAX_DATAGRAM = 1432

GAUGE, COUNTER, HISTOGRAM, TIMER = "gauge", "counter", "histogram", "timer"

_LEVEL_METRICS = {logging.CRITICAL: "gunicorn.log.critical", logging.ERROR: "gunicorn.log.error",
                  logging.WARNING: "gunicorn.log.warning"}


def parse_statsd_address(value: str) -> tuple[str, int] | str:
    """gunicorn's reading of --statsd-host: HOST[:PORT] (port 8125), [v6]:PORT, unix:PATH."""
    # gunicorn keeps reading "unix:PORT" as the host named unix, as before its release 20.
    legacy = re.match(r"^unix:(\d+)$", value)
    if legacy:
        return ("unix", int(legacy.group(1)))
    address = parse_address(value, default_port=DEFAULT_PORT)
    if isinstance(address, int):
        raise ValueError("Value must be one of ('host:port', 'unix://PATH')")
    return address


class Statsd:
    """A connected datagram socket and gunicorn's line formats."""

    def __init__(self, address: tuple[str, int] | str, prefix: str = "", tags: str = "") -> None:
        """``address`` as cfg.statsd_host holds it: ("host", port), or a unix path."""
        # gunicorn: a trailing dot is added to a non-empty prefix.
        self.prefix = re.sub(r"^(.+[^.]+)\.*$", "\\g<1>.", prefix or "")
        self.suffix = "|#" + tags if tags else ""
        if isinstance(address, str):
            family = socket.AF_UNIX
        elif _is_ipv6(address[0]):
            family = socket.AF_INET6
        else:
            family = socket.AF_INET
        self.sock: socket.socket | None
        try:
            self.sock = socket.socket(family, socket.SOCK_DGRAM)
            self.sock.connect(address)
            self.sock.setblocking(False)
        except OSError:
            # As gunicorn: an unreachable statsd must not stop the server.
            self.sock = None
        # The lines of every request, made once.
        self._duration_head = f"{self.prefix}gunicorn.request.duration:".encode("ascii")
        self._duration_tail = f"|ms{self.suffix}".encode("ascii")
        self._requests_line = f"{self.prefix}gunicorn.requests:1|c|@1.0{self.suffix}".encode("ascii")
        self._status_lines: dict[str, bytes] = {}
        self._reporting = False

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    # --- gunicorn's statsd methods ----------------------------------------------
    def gauge(self, name: str, value: Any) -> None:
        self.send([f"{self.prefix}{name}:{value}|g"])

    def increment(self, name: str, value: Any, sampling_rate: float = 1.0) -> None:
        self.send([f"{self.prefix}{name}:{value}|c|@{sampling_rate}"])

    def decrement(self, name: str, value: Any, sampling_rate: float = 1.0) -> None:
        self.send([f"{self.prefix}{name}:-{value}|c|@{sampling_rate}"])

    def timer(self, name: str, value: Any) -> None:
        self.send([f"{self.prefix}{name}:{value}|ms"])

    def histogram(self, name: str, value: Any) -> None:
        self.send([f"{self.prefix}{name}:{value}|h"])

    def metric(self, name: str, value: Any, mtype: str) -> None:
        """A log call's extra={"metric", "value", "mtype"}, as gunicorn's Statsd.log."""
        send = {GAUGE: self.gauge, COUNTER: self.increment, HISTOGRAM: self.histogram,
                TIMER: self.timer}.get(mtype)
        if send is not None:
            send(name, value)

    # --- the loop's batch ---------------------------------------------------------
    def requests(self, completed: Iterable[tuple[str, float]]) -> None:
        """The requests one loop iteration completed: (status line, seconds) each."""
        if self.sock is None:
            return
        duration, tail = self._duration_head, self._duration_tail
        requests_line, status_lines = self._requests_line, self._status_lines
        lines = []
        for status, seconds in completed:
            # gunicorn: the timedelta in ms, to the microsecond.
            lines.append(duration + repr(round(seconds * 1e6) / 1e3).encode() + tail)
            lines.append(requests_line)
            status_line = status_lines.get(status)
            if status_line is None:
                status_line = self._status_line(status)
            lines.append(status_line)
        self._send_lines(lines)

    def _status_line(self, status: str) -> bytes:
        code = int(str(status).split(None, 1)[0])
        line = f"{self.prefix}gunicorn.request.status.{code}:1|c|@1.0{self.suffix}".encode("ascii")
        if len(self._status_lines) < 64:
            self._status_lines[status] = line
        return line

    def send(self, lines: list[str]) -> None:
        """Lines from a log call or a hook (worker.log.increment(...)). As gunicorn's
        Statsd logger: whatever goes wrong (a name that is not ASCII, a socket that
        raises) is a warning in the error log, never an error in the caller."""
        if self.sock is None:
            return
        try:
            self._send_lines([(line + self.suffix).encode("ascii") for line in lines])
        except Exception:
            if self._reporting:
                return  # the warning's own counter failed to send
            self._reporting = True
            try:
                logging.getLogger("gunicorn.error").warning("Error sending message to statsd",
                                                            exc_info=True)
            finally:
                self._reporting = False

    def _send_lines(self, lines: list[bytes]) -> None:
        datagram = b"\n".join(lines)
        if len(datagram) <= MAX_DATAGRAM:
            self._send(datagram)
            return
        packet: list[bytes] = []
        size = 0
        for line in lines:
            if packet and size + 1 + len(line) > MAX_DATAGRAM:
                self._send(b"\n".join(packet))
                packet, size = [], 0
            size += len(line) + (1 if packet else 0)
            packet.append(line)
        self._send(b"\n".join(packet))

    def _send(self, datagram: bytes) -> None:
        try:
            self.sock.send(datagram)
        except OSError:
            # A full socket buffer or no listener: metrics are dropped, never the request.
            pass


class LogCounter(logging.Handler):
    """Counts the error log's warnings and worse, as gunicorn's Statsd logger does."""

    def __init__(self, statsd: Statsd) -> None:
        super().__init__(logging.WARNING)
        self.statsd = statsd

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno == logging.ERROR and record.exc_info:
            name = "gunicorn.log.exception"
        else:
            name = _LEVEL_METRICS.get(record.levelno)
            if name is None:
                name = "gunicorn.log.critical" if record.levelno > logging.CRITICAL else "gunicorn.log.warning"
        self.statsd.increment(name, 1)
