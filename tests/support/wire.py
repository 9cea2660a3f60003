"""Both directions of a connection, read by h11, an independent HTTP/1.1 implementation.

``Client`` is one client connection: requests go out as raw bytes, and every
response is read by h11 (client mode, ``next_response``), so every byte the
server writes is checked against RFC 9112 by code that is not ours.
``read_responses`` reads a whole byte stream a server wrote back the same way,
given the methods of the requests it answered.  ``reference_requests`` is what
a strict HTTP/1.1 server (h11, in server mode) makes of a byte stream: the
requests it would hand to an application, in order, and why it stopped.  The
socket fuzz compares the last with what the app saw and holds the answers to
RFC 9112; none of it shares code with fastwsgi.
"""
from __future__ import annotations

import dataclasses
import re
import socket
import struct
import time
from typing import Callable, Optional

import h11

from support.framing import CHUNK_LINE

TIMEOUT = 10.0


class Client:
    """One client connection; requests are raw bytes, responses parsed by h11."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.conn = h11.Connection(h11.CLIENT)

    @classmethod
    def connect(cls, port: int, receive_buffer: int = 0) -> Client:
        """A connection to 127.0.0.1:``port``."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer:
            # A small window, so the server is still writing when the client vanishes.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.settimeout(TIMEOUT)
        sock.connect(("127.0.0.1", port))
        return cls(sock)

    def __enter__(self) -> Client:  # noqa: PYI034
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self, method: bytes = b"GET") -> Response:
        """Reads one final response (the interim ones before it are listed in it)."""
        deadline = time.monotonic() + TIMEOUT

        def receive() -> bool:
            if time.monotonic() > deadline:
                raise TimeoutError("no complete response")
            self.conn.receive_data(self.sock.recv(65536))
            return True

        try:
            return next_response(self.conn, method, receive)
        except StreamEnded:
            raise ConnectionError("closed before a complete response") from None

    def response(self, method: bytes = b"GET"):
        """Reads one response: (h11.Response, body bytes)."""
        reply = self.reply(method)
        return reply.head, reply.body

    def closed_by_server(self) -> bool:
        """True once the server has closed its side (no more bytes follow)."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if not self.sock.recv(65536):
                return True
        return False

    def close(self, reset: bool = False) -> None:
        if reset:
            # SO_LINGER 0: close() sends RST, as a crashed client's kernel would.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
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


# -- responses: what a server wrote back --------------------------------------------------

@dataclasses.dataclass
class Response:
    status: int
    headers: dict
    body: bytes
    interim: list
    head: Optional[h11.Response] = dataclasses.field(default=None, repr=False, compare=False)


@dataclasses.dataclass
class ResponseReading:
    responses: list
    # True when the stream ended between responses (none cut short; an interim
    # 100 Continue may precede a close when the body never came).
    clean_end: bool


class MalformedResponse(AssertionError):
    pass


class StreamEnded(Exception):
    """The bytes ran out before the next response was complete."""

    def __init__(self, between_responses: bool):
        super().__init__("between responses" if between_responses else "within a response")
        self.between_responses = between_responses


def next_response(conn: h11.Connection, method: bytes, receive: Callable[[], bool]) -> Response:
    """The next response on ``conn``, an h11 connection in client mode.

    ``method`` is the method of the request it answers (it decides whether a
    body follows).  ``receive()`` gives ``conn`` more bytes when it needs them,
    or returns False when none will come.  Raises MalformedResponse on any byte
    that is not valid HTTP/1.1, StreamEnded when the bytes end first.
    """
    if conn.our_state is h11.IDLE:
        # h11 must know the request to frame a response (HEAD, 1.0 …).  A 2xx to
        # CONNECT would switch h11 to a tunnel; read the answer as HTTP.
        method = b"GET" if method == b"CONNECT" else method
        conn.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
        conn.send(h11.EndOfMessage())
    head, body, interim = None, bytearray(), []
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as error:
            remaining, closed = conn.trailing_data
            if closed and not remaining and head is None and interim:
                # 100 Continue, then the close of a request whose body never came:
                # a server "MUST ultimately send a final status code ... unless the
                # connection is closed prematurely" (RFC 9110 §10.1.1). h11 reports
                # the close as an error; it ends the stream between responses.
                raise StreamEnded(between_responses=True) from None
            raise MalformedResponse(str(error)) from None
        if event is h11.NEED_DATA:
            if not receive():
                raise StreamEnded(between_responses=False)
        elif isinstance(event, h11.InformationalResponse):
            interim.append(event.status_code)
        elif isinstance(event, h11.Response):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                conn.start_next_cycle()
            return Response(head.status_code, headers_of(head), bytes(body), interim, head)
        elif isinstance(event, h11.ConnectionClosed):
            raise StreamEnded(between_responses=head is None)
        elif event is h11.PAUSED:
            raise MalformedResponse("an unexpected protocol switch")


def read_responses(data: bytes, methods: list, ended: bool = True) -> ResponseReading:
    """Parses every response in ``data``: the whole stream up to the server's
    close, or (``ended=False``) what has arrived so far.

    ``methods[i]`` is the method of the request the i-th response answers (it
    decides whether a body follows); responses past the list answer GET.
    Raises MalformedResponse on any byte that is not valid HTTP/1.1.
    """
    conn = h11.Connection(h11.CLIENT)
    conn.receive_data(data)
    if ended:
        conn.receive_data(b"")
    responses: list[Response] = []
    while True:
        if conn.our_state is h11.IDLE:
            pending, closed = conn.trailing_data
            if not pending:
                return ResponseReading(responses, closed)
        method = methods[len(responses)] if len(responses) < len(methods) else b"GET"
        try:
            responses.append(next_response(conn, method, receive=lambda: False))
        except StreamEnded as end:
            return ResponseReading(responses, end.between_responses)
        except MalformedResponse as error:
            raise MalformedResponse(f"response {len(responses)}: {error}") from None


# -- requests: what a strict server reads from a byte stream ----------------------------------

@dataclasses.dataclass
class SeenRequest:
    """One request as an application receives it: the parts that frame it."""

    method: bytes
    target: bytes
    version: bytes
    body: bytes = b""
    headers: list = dataclasses.field(default_factory=list)

    def framing(self) -> tuple:
        return self.method, self.target, self.version, self.body


@dataclasses.dataclass
class ReferenceReading:
    requests: list
    # "eof": every byte was a complete request; "incomplete": the stream ends
    # mid-request; "closed": a request ended the connection (Connection: close,
    # HTTP/1.0, CONNECT); "error": h11 refused the bytes at ``requests[len]``.
    outcome: str
    error: str = ""
    error_status: int = 0
    # the bytes from the request h11 refused on ("error") to the end
    refused: bytes = b""

    def refused_method(self) -> bytes:
        """The method of the refused request, when its request line is well formed.

        A client that sent HEAD reads no content in the answer, refusals included
        (RFC 9110 §9.3.2); past a malformed request line, it reads as for GET.
        """
        match = HEAD_LINE.match(self.refused)
        return b"HEAD" if match else b"GET"


# Any HTTP/1 minor: RFC 9110 §2.5 processes a higher one as HTTP/1.1 (_processed_as).
HEAD_LINE = re.compile(rb"(?:\r\n)*HEAD [\x21-\x7e]+ HTTP/1\.[0-9]\r\n")


def _processed_as(version: bytes) -> bytes:
    # RFC 9110 §2.5: a higher 1.x minor is processed as HTTP/1.1, the highest we conform to.
    return b"1.1" if version.startswith(b"1.") and version > b"1.1" else version


def reference_requests(data: bytes) -> ReferenceReading:
    """The requests h11 reads from ``data`` followed by end of stream.

    Where h11 is stricter than RFC 9112 without any doubt about framing, the
    bytes are rewritten to an equivalent h11 accepts (``EQUIVALENTS``), and one
    empty line before a request line is skipped (§2.2).
    """
    requests: list[SeenRequest] = []
    while True:
        if data.startswith(b"\r\n"):
            data = data[2:]
        try:
            request, conn = _read_one(data)
        except h11.RemoteProtocolError as error:
            return ReferenceReading(requests, "error", str(error), error.error_status_hint, data)
        if request is None:
            return ReferenceReading(requests, "eof" if conn is not None else "closed")
        requests.append(request)
        # A CONNECT answered 2xx would switch h11 to a tunnel; refuse it so
        # reading goes on as HTTP.  A 200 turns down an Upgrade.
        status = 405 if request.method == b"CONNECT" else 200
        conn.send(h11.Response(status_code=status, headers=[("Content-Length", "0")]))
        conn.send(h11.EndOfMessage())
        if conn.their_state is not h11.DONE and not _http10_keep_alive(request):
            # Connection: close, or HTTP/1.0 without keep-alive: nothing more is read.
            return ReferenceReading(requests, "closed")
        data = bytes(conn.trailing_data[0])


def _read_one(data: bytes):
    """(the first request in ``data``, its h11 connection); (None, conn) at end of stream."""
    while True:
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(data)
        conn.receive_data(b"")
        current = None
        try:
            while True:
                event = conn.next_event()
                if isinstance(event, h11.Request):
                    current = SeenRequest(event.method, event.target, _processed_as(event.http_version),
                                          headers=list(event.headers))
                elif isinstance(event, h11.Data):
                    current.body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    return current, conn
                elif isinstance(event, h11.ConnectionClosed):
                    return None, conn
                else:
                    # NEED_DATA cannot follow the end of stream; PAUSED is a protocol switch.
                    return None, None
        except h11.RemoteProtocolError as error:
            for equivalent in EQUIVALENTS:
                rewritten = equivalent(data, error)
                if rewritten is not None and rewritten != data:
                    data = rewritten
                    break
            else:
                raise


def _http10_keep_alive(request: SeenRequest) -> bool:
    # RFC 9112 Appendix C.2.2: HTTP/1.0 persistence, which h11 does not implement.
    tokens = [token.strip().lower() for name, value in request.headers if name == b"connection"
              for token in value.split(b",")]
    return request.version == b"1.0" and b"keep-alive" in tokens and b"close" not in tokens


TRANSFER_ENCODING_LINE = re.compile(rb"(?im)^transfer-encoding:([^\r\n]*)\r\n")
# RFC 9112 §7.1.1: chunk-size [ chunk-ext ] CRLF.
CHUNK_LINE_CRLF = re.compile(CHUNK_LINE.pattern + rb"\r\n")


def _only_chunked(data: bytes, error: h11.RemoteProtocolError):
    """The message with its transfer codings cut down to ``chunked``, if chunked frames it.

    h11 supports no coding but chunked (501 otherwise).  RFC 9112 §6.3 frames a
    request by its final coding alone, so ``gzip, chunked`` is as chunked as
    ``chunked``.
    """
    end = data.find(b"\r\n\r\n")
    if error.error_status_hint != 501 or end < 0:
        return None
    head = data[:end + 2]
    values = TRANSFER_ENCODING_LINE.findall(head)
    codings = [coding.strip(b" \t").lower() for value in values for coding in value.split(b",")]
    codings = [coding for coding in codings if coding]
    if not codings or codings[-1] != b"chunked" or codings.count(b"chunked") != 1:
        return None
    head = TRANSFER_ENCODING_LINE.sub(b"", head) + b"Transfer-Encoding: chunked\r\n"
    return head + data[end + 2:]


def _bare_chunk_sizes(data: bytes, error: h11.RemoteProtocolError):
    """The message with chunk extensions dropped, when h11 refused one RFC 9112 allows.

    h11 accepts no whitespace before ";" (BWS); extensions never change framing.
    """
    if "illegal chunk header" not in str(error):
        return None
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    out = [data[:end + 4]]
    pos = end + 4
    while True:
        line = CHUNK_LINE_CRLF.match(data, pos)
        if line is None:
            return None  # not a chunk line RFC 9112 allows either: h11's refusal stands
        size = int(line.group(1), 16)
        out.append(line.group(1) + b"\r\n")
        pos = line.end()
        if size == 0:
            return b"".join(out) + data[pos:]
        out.append(data[pos:pos + size + 2])
        pos += size + 2
        if pos > len(data):
            return None


EQUIVALENTS = [_only_chunked, _bare_chunk_sizes]
