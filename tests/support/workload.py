"""One round of the soak workload against a server running ``support.apps.soak.app``.

A round touches every path through the loop once or more: keep-alive, pipelining,
bodies in memory and spooled, streaming, file_wrapper, HEAD, app failures,
refused requests, PROXY headers and clients that vanish mid-request or
mid-response.  Every answer is parsed with h11 and checked, so a soak proves the
server stays correct as well as bounded.
"""
from __future__ import annotations

import dataclasses
import json
import socket
import struct
import time

import h11

from support.wire import Client


@dataclasses.dataclass
class Target:
    """Where the server listens and the limits it was started with."""

    port: int
    # A body size above the server's spool_threshold (support.apps.soak: 64 KiB; the CLI: 1 MiB).
    spooled: int = 200 * 1024
    # The server's limit_request_body, if it has one (support.apps.soak: 2 MiB); None: no 413 case.
    body_limit: int | None = 2 * 1024 * 1024


def get(path: str, extra: str = "", method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: soak\r\n{extra}\r\n".encode()


def post(path: str, body: bytes, extra: str = "") -> bytes:
    return get(path, f"Content-Length: {len(body)}\r\n{extra}", "POST") + body


def chunked(path: str, body: bytes, piece: int = 8192) -> bytes:
    parts = [get(path, "Transfer-Encoding: chunked\r\n", "POST")]
    for start in range(0, len(body), piece):
        chunk = body[start:start + piece]
        parts.append(b"%x;ext=1\r\n%s\r\n" % (len(chunk), chunk))
    parts.append(b"0\r\nX-Trailer: yes\r\n\r\n")
    return b"".join(parts)


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)


# --- the scenarios ------------------------------------------------------------------

def keep_alive_gets(target: Target) -> None:
    with Client.connect(target.port) as c:
        for _ in range(5):
            c.send(get("/hello"))
            reply = c.reply()
            expect(reply.status == 200 and reply.body == b"Hello, World!", "hello")
        c.send(get("/write"))
        expect(c.reply().body == b"written first;then returned", "write()")
        c.send(get("/no-content"))
        expect(c.reply().status == 204, "204")
        c.send(get("/stream?8"))
        reply = c.reply()
        expect(reply.headers.get("transfer-encoding") == "chunked" and len(reply.body) == 8 * 16384, "stream")
        c.send(get("/stream", method="HEAD"))
        expect(c.reply(b"HEAD").body == b"", "HEAD stream")
        c.send(get("/file", method="HEAD"))
        reply = c.reply(b"HEAD")
        expect(reply.body == b"" and reply.headers.get("content-length") == str(1024 * 1024), "HEAD file")
        c.send(get("/file"))
        expect(len(c.reply().body) == 1024 * 1024, "file")
        c.send(get("/missing"))
        expect(c.reply().status == 404, "404")


def pipelined_burst(target: Target) -> None:
    paths = ["/hello", "/write", "/no-content", "/stream?2", "/hello"] * 3 + ["/hello"]
    with Client.connect(target.port) as c:
        c.send(b"".join(get(p) for p in paths))
        for path in paths:
            status = c.reply().status
            expect(status in (200, 204), f"pipelined {path}: {status}")
        # a pipelined burst of uploads, in memory and spooled
        bodies = [b"a" * 100, b"b" * target.spooled, b"c" * 10]
        c.send(b"".join(post("/echo", b) for b in bodies))
        for b in bodies:
            expect(c.reply().body == str(len(b)).encode(), "pipelined upload")


def uploads(target: Target) -> None:
    with Client.connect(target.port) as c:
        for size in (0, 1000, target.spooled):
            c.send(post("/echo", b"x" * size))
            expect(c.reply().body == str(size).encode(), f"Content-Length upload {size}")
        for size in (10, target.spooled):
            c.send(chunked("/echo", b"y" * size))
            expect(c.reply().body == str(size).encode(), f"chunked upload {size}")
        c.send(chunked("/lines", b"line\n" * 50000))
        expect(c.reply().body == b"50000", "spooled readline")
        # Expect: 100-continue, body sent only after the interim response
        body = b"z" * target.spooled
        c.send(get("/echo", f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n", "POST"))
        interim = c.sock.recv(64)
        expect(interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), f"100-continue: {interim!r}")
        c.send(body)
        if len(interim) > len(b"HTTP/1.1 100 Continue\r\n\r\n"):
            c.conn.receive_data(interim[len(b"HTTP/1.1 100 Continue\r\n\r\n"):])
        expect(c.reply().body == str(len(body)).encode(), "upload after 100-continue")


def app_failures(target: Target) -> None:
    with Client.connect(target.port) as c:
        c.send(get("/raise-before"))
        reply = c.reply()
        expect(reply.status == 500 and reply.headers.get("connection") == "close", "500 before headers")
        expect(c.closed_by_server(), "closed after 500")
    with Client.connect(target.port) as c:
        c.send(get("/raise-after"))
        status, _, _ = _head_only(c)
        expect(status == 200, "headers before the failure")
        expect(c.closed_by_server(), "closed after a failure mid-body")


def _head_only(c: Client) -> tuple[int, dict, None]:
    c.conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    c.conn.send(h11.EndOfMessage())
    while True:
        event = c.conn.next_event()
        if event is h11.NEED_DATA:
            c.conn.receive_data(c.sock.recv(65536))
        elif isinstance(event, h11.Response):
            return event.status_code, {}, None


REFUSED = [
    (b"GET / HTTP/1.1\r\nHost: soak\r\nBad Header\r\n\r\n", 400),
    (b"GET /\x01 HTTP/1.1\r\nHost: soak\r\n\r\n", 400),
    (b"GET /" + b"u" * 8000 + b" HTTP/1.1\r\nHost: soak\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\nHost: soak\r\nX-Big: " + b"h" * 9000 + b"\r\n\r\n", 431),
    (b"POST /echo HTTP/1.1\r\nHost: soak\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    (b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400),
    (b"PROXY TCP4 nonsense\r\nGET / HTTP/1.1\r\nHost: soak\r\n\r\n", 400),
]


def refused(target: Target) -> None:
    cases = list(REFUSED)
    if target.body_limit is not None:
        cases.append((b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: %d\r\n\r\n"
                      % (target.body_limit + 1), 413))
    for raw, wanted in cases:
        with Client.connect(target.port) as c:
            c.send(raw)
            reply = c.reply()
            expect(reply.status == wanted, f"{raw[:40]!r}: {reply.status}, wanted {wanted}")
            expect(reply.headers.get("connection") == "close", "refusal closes")
            expect(c.closed_by_server(), "closed after a refusal")


PROXY_V2 = (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", 12)
            + socket.inet_aton("203.0.113.7") + socket.inet_aton("127.0.0.1") + struct.pack("!HH", 4711, 80))


def proxy_protocol(target: Target) -> None:
    for preface in (b"PROXY TCP4 198.51.100.1 127.0.0.1 5555 80\r\n", b"PROXY UNKNOWN\r\n", PROXY_V2):
        with Client.connect(target.port) as c:
            c.send(preface + get("/hello") + get("/hello"))
            expect(c.reply().body == b"Hello, World!", "after PROXY header")
            expect(c.reply().body == b"Hello, World!", "keep-alive after PROXY header")


def vanishing_clients(target: Target) -> None:
    spooled = target.spooled
    partial_requests = [
        b"GET /hello HTT",
        b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 1000\r\n\r\nonly this",
        # spooled to a file, then abandoned: the file must be closed
        b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: %d\r\n\r\n%s" % (2 * spooled, b"q" * spooled),
        b"POST /echo HTTP/1.1\r\nHost: soak\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n%s\r\n" % (spooled, b"q" * spooled),
        b"PROXY TCP4 198.51.100.1 127.0.0.1 5555 80\r\nGET / HT",
    ]
    for reset in (False, True):
        for raw in partial_requests:
            c = Client.connect(target.port)
            c.send(raw)
            c.close(reset=reset)
    # mid-response: the server is blocked on a small receive window
    for path in ("/stream?256", "/file", "/write"):
        for reset in (False, True):
            c = Client.connect(target.port, receive_buffer=4096)
            c.send(get(path))
            c.sock.recv(100)
            c.close(reset=reset)


SCENARIOS = [keep_alive_gets, pipelined_burst, uploads, app_failures, refused, proxy_protocol,
             vanishing_clients]


def run_round(target: Target) -> None:
    for scenario in SCENARIOS:
        scenario(target)


def server_stats(target: Target) -> dict:
    with Client.connect(target.port) as c:
        c.send(get("/__stats"))
        return json.loads(c.reply().body)


def settled_stats(target: Target, timeout: float = 10.0) -> dict:
    """Stats once the server holds no connection but the one asking (lingering closes done)."""
    deadline = time.monotonic() + timeout
    while True:
        stats = server_stats(target)
        if stats["connections"] <= 1 or time.monotonic() > deadline:
            return stats
        time.sleep(0.05)


def rounds(target: Target, warm_up: int, measured: int, repeats: int) -> list[dict]:
    """Settled stats after ``warm_up`` rounds, then after each of ``measured`` rounds,
    a round being ``repeats`` runs of the workload."""
    for _ in range(warm_up * repeats):
        run_round(target)
    samples = [settled_stats(target)]
    for _ in range(measured):
        for _ in range(repeats):
            run_round(target)
        samples.append(settled_stats(target))
    return samples
