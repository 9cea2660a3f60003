"""An independent reading of both directions of one connection, by h11.

``reference_requests`` is what a strict HTTP/1.1 server (h11, in server mode)
makes of a byte stream: the requests it would hand to an application, in order,
and why it stopped.  ``read_responses`` parses everything a server wrote back
(h11, in client mode), given the methods of the requests it answered.  The
socket fuzz compares the first with what the app saw and holds the second to
RFC 9112; neither shares code with fastwsgi.
"""
from __future__ import annotations

import dataclasses
import re

import h11


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


HEAD_LINE = re.compile(rb"(?:\r\n)*HEAD [\x21-\x7e]+ HTTP/1\.[01]\r\n")



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
TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
QUOTED_STRING = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
# RFC 9112 §7.1.1: chunk-size [ chunk-ext ] CRLF, with BWS around ";" and "=".
CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]+)(?:[ \t]*;[ \t]*" + TOKEN + rb"(?:[ \t]*=[ \t]*(?:"
                        + TOKEN + rb"|" + QUOTED_STRING + rb"))?)*\r\n")


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
        line = CHUNK_LINE.match(data, pos)
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


@dataclasses.dataclass
class Response:
    status: int
    headers: dict
    body: bytes
    interim: list


@dataclasses.dataclass
class ResponseReading:
    responses: list
    # True when the stream ended between responses (none cut short; an interim
    # 100 Continue may precede a close when the body never came).
    clean_end: bool


class MalformedResponse(AssertionError):
    pass


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
    interim: list[int] = []
    head = None
    body = bytearray()
    while True:
        if conn.our_state is h11.IDLE:
            pending, closed = conn.trailing_data
            if not pending:
                return ResponseReading(responses, closed)
            method = methods[len(responses)] if len(responses) < len(methods) else b"GET"
            # A 2xx to CONNECT would switch h11 to a tunnel; read the answer as HTTP.
            method = b"GET" if method == b"CONNECT" else method
            conn.send(h11.Request(method=method, target="/", headers=[("Host", "fuzz")]))
            conn.send(h11.EndOfMessage())
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as error:
            raise MalformedResponse(f"response {len(responses)}: {error}") from None
        if isinstance(event, h11.InformationalResponse):
            interim.append(event.status_code)
        elif isinstance(event, h11.Response):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            headers = {name.decode().lower(): value.decode("latin-1") for name, value in head.headers}
            responses.append(Response(head.status_code, headers, bytes(body), interim))
            head, body, interim = None, bytearray(), []
            if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                conn.start_next_cycle()
        elif isinstance(event, h11.ConnectionClosed):
            return ResponseReading(responses, head is None)
        elif event is h11.NEED_DATA:
            return ResponseReading(responses, False)
        elif event is h11.PAUSED:
            raise MalformedResponse(f"response {len(responses)}: an unexpected protocol switch")
