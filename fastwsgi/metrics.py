"""Prometheus metrics (``--metrics-bind ADDR``), served by the master, summed over
every worker, in the Prometheus text exposition format (version 0.0.4).

Each worker's loop counts into its own slot of an anonymous shared mapping made
before the first fork: a few int64 increments per request, no message to the
master, no lock (one writer per slot; aligned 8-byte stores are atomic).  When a
worker exits, the master folds the slot's counters into the totals of the
workers gone and hands the slot to a new worker.  The master counts what only it
sees: worker boots, exits, timeouts and restarts.

The layout of a slot is the loop's (``loop/metrics.pxi``), written out here so that the
master need not import the loop.
"""
from __future__ import annotations

import mmap
import os
import selectors
import socket
import struct
from typing import Any

from .master_socket import MasterSocketServer
from .sockets import parse_address

OPEN_CONNECTIONS, IN_FLIGHT, BYTES_IN, BYTES_OUT, DURATION_SUM_US = 0, 1, 2, 3, 4
DURATION_BUCKETS = 8
DURATION_BOUNDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
REQUESTS = 24
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other"]
STATUS_CLASSES = ["1xx", "2xx", "3xx", "4xx", "5xx"]
REFUSED, REFUSED_FIRST, REFUSED_COUNT = 64, 400, 200
SLOT_SIZE = 264
GAUGES = (OPEN_CONNECTIONS, IN_FLIGHT)

SLOT_BYTES = SLOT_SIZE * 8
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# A scrape is answered from the master's loop, without ever waiting on a client: each
# one has this long to send its request and take the answer, and this many may be
# open at once (the oldest is dropped for a new one).
REQUEST_TIMEOUT = 1.0
HEAD_LIMIT = 8192


class MetricsArea:
    """Shared counters: one slot per live worker, and the totals of those gone."""

    def __init__(self, slots: int) -> None:
        self.map = mmap.mmap(-1, slots * SLOT_BYTES, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
        self.free = list(range(slots - 1, -1, -1))
        self.retired = [0] * SLOT_SIZE
        self.boots = self.exits = self.timeouts = self.restarts = 0

    def slot(self, index: int) -> memoryview:
        return memoryview(self.map)[index * SLOT_BYTES:(index + 1) * SLOT_BYTES]

    def take(self) -> int | None:
        return self.free.pop() if self.free else None

    def release(self, index: int) -> None:
        """A worker is gone: keep its counters, clear its gauges, free its slot."""
        values = self.counters(index)
        for i, value in enumerate(values):
            if i not in GAUGES:
                self.retired[i] += value
        self.map[index * SLOT_BYTES:(index + 1) * SLOT_BYTES] = bytes(SLOT_BYTES)
        self.free.append(index)

    def counters(self, index: int) -> tuple[int, ...]:
        return struct.unpack_from(f"{SLOT_SIZE}q", self.map, index * SLOT_BYTES)

    def totals(self, live: list[int]) -> list[int]:
        totals = list(self.retired)
        for index in live:
            for i, value in enumerate(self.counters(index)):
                totals[i] += value
        return totals

    def close(self) -> None:
        self.map.close()


def exposition(totals: list[int], area: MetricsArea, workers: int) -> str:
    """The text format: one HELP and TYPE per family, then its samples."""
    out: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: list[tuple[str, Any]]) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(f"{name}{labels} {value}" for labels, value in samples)

    requests = []
    for m, method in enumerate(METHODS):
        for c, status_class in enumerate(STATUS_CLASSES):
            value = totals[REQUESTS + m * len(STATUS_CLASSES) + c]
            if value:
                requests.append((f'{{method="{method}",status="{status_class}"}}', value))
    family("fastwsgi_requests_total", "counter",
           "Requests answered by the app, by method and status class.", requests)

    buckets, cumulative = [], 0
    for i, bound in enumerate(DURATION_BOUNDS + [None]):
        cumulative += totals[DURATION_BUCKETS + i]
        le = "+Inf" if bound is None else repr(bound)
        buckets.append((f'_bucket{{le="{le}"}}', cumulative))
    buckets.append(("_sum", totals[DURATION_SUM_US] / 1e6))
    buckets.append(("_count", cumulative))
    family("fastwsgi_request_duration_seconds", "histogram",
           "Time from a request's head to the end of its response.", buckets)

    family("fastwsgi_requests_in_flight", "gauge", "Requests begun and not yet answered.",
           [("", totals[IN_FLIGHT])])
    family("fastwsgi_connections_open", "gauge", "Client connections open.",
           [("", totals[OPEN_CONNECTIONS])])
    family("fastwsgi_received_bytes_total", "counter", "Bytes read from clients.", [("", totals[BYTES_IN])])
    family("fastwsgi_sent_bytes_total", "counter", "Bytes written to clients.", [("", totals[BYTES_OUT])])
    refused = [(f'{{status="{REFUSED_FIRST + i}"}}', totals[REFUSED + i])
               for i in range(REFUSED_COUNT) if totals[REFUSED + i]]
    family("fastwsgi_refused_requests_total", "counter",
           "Requests the server answered itself with an error, by status.", refused)
    family("fastwsgi_workers", "gauge", "Worker processes running.", [("", workers)])
    family("fastwsgi_worker_boots_total", "counter", "Worker processes started.", [("", area.boots)])
    family("fastwsgi_worker_exits_total", "counter", "Worker processes that ended.", [("", area.exits)])
    family("fastwsgi_worker_timeouts_total", "counter",
           "Workers aborted for missing their heartbeat (timeout).", [("", area.timeouts)])
    family("fastwsgi_worker_restarts_total", "counter",
           "Workers started to replace one that ended.", [("", area.restarts)])
    return "\n".join(out) + "\n"


def bind_metrics(spec: str) -> socket.socket:
    address = parse_address(spec, default_port="9090")
    if isinstance(address, int):
        sock = socket.socket(fileno=address)
    elif isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(address)
    else:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        if hasattr(socket, "TCP_DEFER_ACCEPT"):
            # A client that sends nothing is not handed to the master at all for a while.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 1)
    sock.listen(16)
    sock.setblocking(False)
    sock.set_inheritable(False)
    return sock


class ScrapeClient:
    """One connection to /metrics: what it sent so far, what is left to send back."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.head = b""
        self.out = b""


class MetricsServer(MasterSocketServer):
    """The master's side: slots for workers, its own counters, and /metrics.

    The endpoint is served without blocking: the listener and every client are on
    a selector of their own, whose descriptor the master's wait includes, so that
    a silent or slow client never delays signals, reaping or spawning
    (master_socket.py)."""

    max_clients = 16

    def __init__(self, spec: str, max_workers: int, log: Any) -> None:
        self.log = log
        super().__init__(bind_metrics(spec))
        self.area = MetricsArea(max(4 * max_workers, 64))
        self.slots: dict[int, int] = {}  # worker pid -> slot
        self._exits_to_replace = 0

    def __str__(self) -> str:
        name = self.sock.getsockname()
        if self.sock.family == socket.AF_UNIX:
            return f"unix:{name}"
        if self.sock.family == socket.AF_INET6:
            return f"http://[{name[0]}]:{name[1]}"
        return f"http://{name[0]}:{name[1]}"

    # --- workers ------------------------------------------------------------------
    def slot_for_new_worker(self) -> tuple[int | None, memoryview | None]:
        self.area.boots += 1
        if self._exits_to_replace:
            self._exits_to_replace -= 1
            self.area.restarts += 1
        index = self.area.take()
        return index, (self.area.slot(index) if index is not None else None)

    def worker_started(self, pid: int, index: int | None) -> None:
        if index is not None:
            self.slots[pid] = index

    def worker_exited(self, pid: int, halting: bool) -> None:
        self.area.exits += 1
        if not halting:
            self._exits_to_replace += 1
        index = self.slots.pop(pid, None)
        if index is not None:
            self.area.release(index)

    def worker_timed_out(self) -> None:
        self.area.timeouts += 1

    # --- what the counters hold (also read by the control socket's "show") ---------------
    def totals(self) -> list[int]:
        """Every counter summed over the live workers and those gone."""
        return self.area.totals(list(self.slots.values()))

    def worker_counters(self, pid: int) -> tuple[int, ...] | None:
        """One live worker's own counters (None when it has no slot)."""
        index = self.slots.get(pid)
        return self.area.counters(index) if index is not None else None

    # --- scrapes ------------------------------------------------------------------
    def render(self) -> str:
        return exposition(self.totals(), self.area, len(self.slots))

    def handle(self) -> None:
        """Serves whatever is ready now, and drops the clients out of time; never waits."""
        for key, events in self.selector.select(0):
            if key.data is None:
                self.accept()
                continue
            client = key.data
            try:
                if events & selectors.EVENT_READ:
                    self._read(client)
                if client.out and events & selectors.EVENT_WRITE:
                    self._write(client)
            except OSError:
                self.drop(client)
        self.sweep()

    def new_client(self, sock: socket.socket, now: float) -> ScrapeClient:
        return ScrapeClient(sock, now + REQUEST_TIMEOUT)

    def accepted(self, client: ScrapeClient) -> None:
        # A scraper's request is usually there already: answered now, it cannot
        # be the oldest client dropped for the next one.
        try:
            self._read(client)
        except OSError:
            self.drop(client)

    def _read(self, client: ScrapeClient) -> None:
        try:
            chunk = client.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        if not chunk:
            self.drop(client)
            return
        client.head += chunk
        if b"\r\n\r\n" in client.head or b"\n\n" in client.head:
            client.out = self._answer(client.head)
        elif len(client.head) >= HEAD_LIMIT:
            client.out = self._response("431 Request Header Fields Too Large",
                                        b"Request Header Fields Too Large\n", False)
        else:
            return
        self.selector.modify(client.sock, selectors.EVENT_WRITE, client)
        self._write(client)

    def _write(self, client: ScrapeClient) -> None:
        try:
            sent = client.sock.send(client.out)
        except (BlockingIOError, InterruptedError):
            return
        client.out = client.out[sent:]
        if not client.out:
            self.drop(client)

    def _answer(self, head: bytes) -> bytes:
        """The whole response to a request head (Connection: close)."""
        request_line = head.split(b"\n", 1)[0].rstrip(b"\r").decode("latin-1").split(" ")
        if len(request_line) != 3 or request_line[2] not in ("HTTP/1.0", "HTTP/1.1") or not request_line[1]:
            # No HTTP version (an HTTP/0.9 request line) or a malformed one: as the workers answer.
            return self._response("400 Bad Request", b"Bad Request\n", False)
        method, target = request_line[0], request_line[1]
        if method not in ("GET", "HEAD"):
            return self._response("405 Method Not Allowed", b"Method Not Allowed\n", method == "HEAD")
        if target.split("?", 1)[0] != "/metrics":
            return self._response("404 Not Found", b"Not Found\n", method == "HEAD")
        return self._response("200 OK", self.render().encode("utf-8"), method == "HEAD")

    def _response(self, status: str, body: bytes, head_only: bool) -> bytes:
        content_type = CONTENT_TYPE if status.startswith("200") else "text/plain"
        head = (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode("latin-1")
        return head if head_only else head + body

    def close(self) -> None:
        path = self.sock.getsockname() if self.sock.family == socket.AF_UNIX else None
        self.close_sockets()
        if path:
            try:
                os.unlink(path)
            except OSError:
                pass
