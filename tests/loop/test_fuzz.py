"""Socket fuzz: mutated request streams against a live server, held to an independent reference.

Seeds are the request corpora (``tests/requests``) and a few smuggling-shaped
messages; hypothesis flips, drops, duplicates and injects bytes (CR, LF, NUL,
SP, huge numbers, extra framing headers), glues several messages into one
pipelined stream and splits it into packets.  For every stream:

* the server answers with bytes h11 (client mode) reads as well-formed HTTP/1.1
  responses, or closes; it never hangs (every wait is bounded), answers
  complete requests without waiting for the end of the stream, and keeps
  serving a plain request afterwards;
* every request the app is called for is, in order, a request h11 (server
  mode) reads from the same bytes, with the same method, target, version and
  body: the two never disagree on where a message ends (no smuggling).

Mutated PROXY protocol headers must never shift the request behind them.
Examples are random on each run; a failure prints the stream that shows it.
"""
from __future__ import annotations

import re
import socket
import threading
import time

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.corpus import corpus
from support.harness import running
from support.wire import (
    TIMEOUT,
    MalformedResponse,
    SeenRequest,
    read_all,
    read_responses,
    reference_requests,
)

# Seconds the whole exchange for one stream may take before it counts as a hang.
EXCHANGE_TIMEOUT = 5.0
# derandomize: the same examples every run, so CI is deterministic; explore more
# with --hypothesis-seed=N (and without derandomize) when hunting.
FUZZ = settings(max_examples=1500, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

SMUGGLING_SEEDS = [
    (b"POST /a HTTP/1.1\r\nHost: f\r\nContent-Length: 5\r\n\r\nhello"
     b"GET /b HTTP/1.1\r\nHost: f\r\n\r\n"),
    (b"POST /a HTTP/1.1\r\nHost: f\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"5;e=1\r\nhello\r\n0\r\nT: 1\r\n\r\nGET /b HTTP/1.1\r\nHost: f\r\n\r\n"),
    (b"POST /a HTTP/1.1\r\nHost: f\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: f\r\n\r\n"),
    (b"GET /a HTTP/1.1\r\nHost: f\r\nContent-Length: 30\r\n\r\n"
     b"GET /smuggled HTTP/1.1\r\nH: x\r\n\r\n"),
    b"HEAD /a HTTP/1.1\r\nHost: f\r\n\r\nGET /b HTTP/1.0\r\n\r\n",
    (b"POST /a HTTP/1.1\r\nHost: f\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc"
     b"OPTIONS * HTTP/1.1\r\nHost: f\r\nConnection: close\r\n\r\n"),
]

# Fragments a mutation injects: bare line ends, NUL, spaces, separators, high bytes.
INJECTED = [b"\r", b"\n", b"\r\n", b"\0", b" ", b"\t", b":", b",", b";", b"\x7f", b"\xff", b"0", b"\"",
            b"\r\n\r\n", b"\n\n", b" \r\n"]
HUGE_NUMBERS = [b"99999999999999999999", b"18446744073709551616", b"9223372036854775808",
                b"-1", b"+5", b"0x10", b"1e3", b"00000000000000000000000000000005", b"5 5",
                b"4294967296", b"ffffffffffffffff1", b"", b" 0"]
FRAMING_LINES = [b"Transfer-Encoding: chunked", b"Transfer-Encoding : chunked",
                 b"Transfer-Encoding: xchunked", b"Transfer-Encoding:\tchunked",
                 b"Transfer-Encoding: chunked, identity", b"Transfer-Encoding: identity, chunked",
                 b"Transfer-Encoding: CHUNKED", b" Transfer-Encoding: chunked",
                 b"Transfer_Encoding: chunked", b"Content-Length: 0", b"Content-Length: 5",
                 b"Content-Length: 1, 1", b"Content-Length: 99999999999999999999",
                 b"Content_Length: 3", b"Connection: close", b"Connection: keep-alive",
                 b"Expect: 100-continue", b"Host: other", b"X: a\0b", b"X:\r\n y"]


def _seeds() -> list[bytes]:
    default_options = [message for kind in ("valid", "invalid") for _, message, expectation in corpus(kind)
                       if not expectation.get("options") and len(message) < 4096]
    return SMUGGLING_SEEDS + default_options


SEEDS = _seeds()
DIGITS = re.compile(rb"[0-9a-fA-F]+")


def mutate(data: bytes, mutation: tuple) -> bytes:
    kind, where, arg = mutation
    at = where % (len(data) + 1)
    if kind == "flip" and data:
        at %= len(data)
        return data[:at] + bytes([arg % 256]) + data[at + 1:]
    if kind == "insert":
        return data[:at] + INJECTED[arg % len(INJECTED)] + data[at:]
    if kind == "delete":
        return data[:at] + data[at + 1 + arg % 4:]
    if kind == "truncate":
        return data[:at]
    if kind == "duplicate":
        return data[:at + 1 + arg % 64] + data[at:]
    if kind == "number":
        runs = list(DIGITS.finditer(data))
        if runs:
            run = runs[where % len(runs)]
            return data[:run.start()] + HUGE_NUMBERS[arg % len(HUGE_NUMBERS)] + data[run.end():]
        return data
    if kind == "framing":
        # a header line, after the line end at or past ``at``
        eol = data.find(b"\r\n", at)
        if eol < 0:
            return data
        return data[:eol + 2] + FRAMING_LINES[arg % len(FRAMING_LINES)] + b"\r\n" + data[eol + 2:]
    return data


mutations = st.tuples(
    st.sampled_from(["flip", "insert", "delete", "truncate", "duplicate", "number", "framing"]),
    st.integers(0, 1 << 16), st.integers(0, 255))

streams = st.tuples(
    st.lists(st.sampled_from(range(len(SEEDS))), min_size=1, max_size=3),
    st.lists(mutations, max_size=4),
    # packet boundaries, as fractions of the stream's length in 1/1000
    st.lists(st.integers(1, 999), max_size=3),
    # wait for the answers to the complete requests before half-closing
    st.booleans(),
)


def build_stream(seed_indexes, mutation_list) -> bytes:
    data = b"".join(SEEDS[i] for i in seed_indexes)
    for mutation in mutation_list:
        data = mutate(data, mutation)
    return data


# -- the server under fuzz ----------------------------------------------------------

class Recorder:
    """The app: records each request it is called with, answers 200."""

    def __init__(self):
        self.seen: list[SeenRequest] = []
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        body = environ["wsgi.input"].read()
        request = SeenRequest(environ["REQUEST_METHOD"].encode("latin-1"),
                              environ["RAW_URI"].encode("latin-1"),
                              environ["SERVER_PROTOCOL"][len("HTTP/"):].encode("ascii"),
                              body)
        with self.lock:
            self.seen.append(request)
        answer = b"seen %d" % len(body)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(answer)))])
        return [answer]

    def peek(self) -> list[SeenRequest]:
        with self.lock:
            return list(self.seen)

    def take(self) -> list[SeenRequest]:
        with self.lock:
            seen, self.seen = self.seen, []
        return seen


# Every stream is served with the app on the loop's thread and on a pool of threads
# (--threads): the hand-over must not change a byte of what either side sees.
APP_THREADS = pytest.fixture(scope="module", params=[1, 4], ids=["app-on-loop", "app-threads"])


@APP_THREADS
def fuzzed(request):
    recorder = Recorder()
    with running(recorder, io_timeout=EXCHANGE_TIMEOUT, header_timeout=EXCHANGE_TIMEOUT,
                 threads=request.param) as server:
        yield server, recorder
    assert server.error is None


def send_stream(server, data: bytes, cuts: list, recorder: Recorder | None = None, expected: int = 0) -> bytes:
    """Sends ``data`` in packets cut at ``cuts`` (per mille), half-closes, reads to the server's close.

    With ``expected``, that many final responses (or a refusal, or a close) must
    come before the half-close: a server must not sit on complete requests
    waiting for more bytes or for the end of the stream.
    """
    points = sorted({len(data) * cut // 1000 for cut in cuts} - {0, len(data)})
    with server.connect(timeout=EXCHANGE_TIMEOUT) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        start = 0
        received = b""
        try:
            for point in points + [len(data)]:
                sock.sendall(data[start:point])
                start = point
                if point != len(data):
                    time.sleep(0.002)
            if expected:
                received = _await_responses(sock, recorder, expected)
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused early: what it answered is still to be read
        try:
            return received + read_all(sock, EXCHANGE_TIMEOUT)
        except ConnectionResetError:
            return received
        except socket.timeout:
            raise AssertionError(f"the server neither answered nor closed within {EXCHANGE_TIMEOUT}s") from None


def _await_responses(sock: socket.socket, recorder: Recorder, expected: int) -> bytes:
    received = b""
    deadline = time.monotonic() + EXCHANGE_TIMEOUT
    while True:
        methods = [request.method for request in recorder.peek()]
        responses = read_responses(received, methods, ended=False).responses
        if len(responses) >= expected or any(response.status >= 400 for response in responses):
            return received
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{len(responses)} of {expected} complete requests answered "
                                 f"within {EXCHANGE_TIMEOUT}s with the connection open")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            return received
        received += chunk


def still_serving(server) -> None:
    with server.connect(timeout=TIMEOUT) as sock:
        sock.sendall(b"GET /after HTTP/1.1\r\nHost: f\r\nConnection: close\r\n\r\n")
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer[:200]


def check_exchange(data: bytes, answer: bytes, seen: list, reference=None) -> None:
    """The properties every (stream, answer, requests the app saw) must have."""
    reference = reference or reference_requests(data)
    # 1. No smuggling: the app saw, in order, requests h11 reads the same way.
    for index, request in enumerate(seen):
        assert index < len(reference.requests), (
            f"the app got request {index} {request.framing()!r}; h11 reads only "
            f"{len(reference.requests)} ({reference.outcome}: {reference.error})")
        assert request.framing() == reference.requests[index].framing(), (
            f"request {index} framed differently:\n  app: {request.framing()!r}\n"
            f"  h11: {reference.requests[index].framing()!r}")
    # 2. Every byte of the answer is a well-formed response.
    try:
        # The answer after the last served request is for the next request
        # the reference read, else for the one it refused.
        if len(reference.requests) > len(seen):
            refused = reference.requests[len(seen)].method
        else:
            refused = reference.refused_method()
        reading = read_responses(answer, [request.method for request in seen] + [refused])
    except MalformedResponse as error:
        raise AssertionError(f"{error}; answer {answer[:600]!r}") from None
    assert reading.clean_end, f"a response was cut short: {answer[-300:]!r}"
    responses = reading.responses
    # 3. One 200 per request the app saw, then at most one refusal that closes.
    assert len(seen) <= len(responses) <= len(seen) + 1, (len(seen), [r.status for r in responses])
    for response in responses[:len(seen)]:
        assert response.status == 200, response
    if len(responses) > len(seen):
        refusal = responses[-1]
        assert 400 <= refusal.status < 600 and refusal.headers.get("connection") == "close", refusal


@given(streams)
@FUZZ
def test_mutated_streams_get_well_formed_answers_and_never_smuggle(fuzzed, stream):
    server, recorder = fuzzed
    seed_indexes, mutation_list, cuts, answers_first = stream
    data = build_stream(seed_indexes, mutation_list)
    reference = reference_requests(data)
    recorder.take()
    answer = send_stream(server, data, cuts, recorder, len(reference.requests) if answers_first else 0)
    check_exchange(data, answer, recorder.take(), reference)
    still_serving(server)
    recorder.take()


@pytest.mark.parametrize("index", range(len(SMUGGLING_SEEDS)))
def test_smuggling_seeds_are_read_as_h11_reads_them(fuzzed, index):
    server, recorder = fuzzed
    recorder.take()
    answer = send_stream(server, SMUGGLING_SEEDS[index], [])
    check_exchange(SMUGGLING_SEEDS[index], answer, recorder.take())


# -- PROXY protocol headers ------------------------------------------------------------

PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
PROXY_SEEDS = [
    b"PROXY TCP4 198.51.100.1 127.0.0.1 5555 80\r\n",
    b"PROXY TCP6 2001:db8::1 ::1 5555 80\r\n",
    b"PROXY UNKNOWN\r\n",
    PROXY_V2_SIGNATURE + b"\x21\x11\x00\x0c" + bytes([203, 0, 113, 7, 127, 0, 0, 1]) + b"\x12\x67\x00\x50",
    PROXY_V2_SIGNATURE + b"\x21\x21\x00\x24" + bytes(15) + b"\x01" + bytes(15) + b"\x01" + b"\x12\x67\x00\x50",
    PROXY_V2_SIGNATURE + b"\x20\x00\x00\x00",
    # a TLV after the addresses: the length covers it
    PROXY_V2_SIGNATURE + b"\x21\x11\x00\x13" + bytes([203, 0, 113, 7, 127, 0, 0, 1]) + b"\x12\x67\x00\x50"
    + b"\x04\x00\x04abcd",
]
PROXIED_REQUESTS = [
    b"GET /p HTTP/1.1\r\nHost: f\r\n\r\n",
    SMUGGLING_SEEDS[0],
    SMUGGLING_SEEDS[1],
]

proxy_streams = st.tuples(st.sampled_from(range(len(PROXY_SEEDS))), st.sampled_from(range(len(PROXIED_REQUESTS))),
                          st.lists(mutations, max_size=3), st.lists(st.integers(1, 999), max_size=2))


@APP_THREADS
def proxied(request):
    recorder = Recorder()
    with running(recorder, io_timeout=EXCHANGE_TIMEOUT, header_timeout=EXCHANGE_TIMEOUT,
                 proxy_protocol=True, proxy_allow_ips=("127.0.0.1",), threads=request.param) as server:
        yield server, recorder
    assert server.error is None


def proxy_header_length(stream: bytes) -> int:
    """Where the request starts behind a PROXY header, read from the spec alone
    (haproxy's proxy-protocol.txt): v1 ends at its first CRLF, v2 is 16 bytes
    plus the length its bytes 15-16 give; 0 if the stream does not open with one."""
    if stream.startswith(b"PROXY "):
        end = stream.find(b"\r\n")
        return end + 2 if 0 <= end <= 105 else 0
    if stream.startswith(PROXY_V2_SIGNATURE) and len(stream) >= 16:
        return 16 + int.from_bytes(stream[14:16], "big")
    return 0


@given(proxy_streams)
@FUZZ
def test_mutated_proxy_headers_never_shift_the_request_that_follows(proxied, stream):
    # Only the PROXY header is mutated: whatever the loop makes of it, the app
    # sees the requests an HTTP reading finds where the header says it ends.
    server, recorder = proxied
    header_index, request_index, mutation_list, cuts = stream
    header = PROXY_SEEDS[header_index]
    for mutation in mutation_list:
        header = mutate(header, mutation)
    data = header + PROXIED_REQUESTS[request_index]
    recorder.take()
    answer = send_stream(server, data, cuts)
    check_exchange(data, answer, recorder.take(), reference_requests(data[proxy_header_length(data):]))
    still_serving(server)
    recorder.take()


# -- refusals of HEAD requests ------------------------------------------------------------

HEAD_REFUSALS = [
    pytest.param(431, b"HEAD / HTTP/1.1\r\nHost: f\r\nX-Big: " + b"h" * 9000 + b"\r\n\r\n", id="431-field-too-long"),
    pytest.param(417, b"HEAD / HTTP/1.1\r\nHost: f\r\nExpect: something-else\r\n\r\n", id="417-expectation"),
    pytest.param(413, b"HEAD / HTTP/1.1\r\nHost: f\r\nContent-Length: 100\r\n\r\n", id="413-body-over-limit"),
    pytest.param(400, b"HEAD / HTTP/1.1\r\nHost: f\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                 id="400-bad-chunk-size"),
]


@pytest.mark.parametrize("status,raw", HEAD_REFUSALS)
def test_a_refused_head_request_gets_no_content(status, raw):
    # RFC 9110 §9.3.2: a response to HEAD carries no content, refusals included;
    # a client reads none, so content would be taken for the next response.
    with running(Recorder(), limit_request_body=10) as server:
        answer = send_stream(server, raw, [])
    reading = read_responses(answer, [b"HEAD"])
    assert [response.status for response in reading.responses] == [status]
