"""Request bodies, 100-continue, pipelining and refused requests, through a real socket."""
from __future__ import annotations

import socket
import wsgiref.validate

import pytest
from support.harness import exchange, hello_app, running
from support.wire import Client, read_all


def echo_app(environ, start_response):
    length = environ.get("CONTENT_LENGTH", "")
    body = environ["wsgi.input"].read(int(length or 0))
    info = f"{length}|".encode()
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(len(info) + len(body)))])
    return [info, body]


def test_content_length_body_reaches_the_app():
    with running(wsgiref.validate.validator(echo_app)) as server:
        raw = exchange(server, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                               b"Connection: close\r\n\r\nhello")
        assert raw.endswith(b"5|hello")


def test_chunked_body_is_decoded_and_its_length_given():
    with running(echo_app) as server:
        raw = exchange(server, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                               b"Connection: close\r\n\r\n"
                               b"5;name=val\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: x\r\n\r\n")
        assert raw.endswith(b"11|hello world")


def test_body_split_across_many_packets():
    with running(echo_app) as server:
        with server.connect() as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            message = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789"
            for i in range(len(message)):
                sock.sendall(message[i:i + 1])
            client = Client(sock)
            response, body = client.response(b"POST")
            assert body == b"10|0123456789"


def test_input_stream_reads_lines_and_sizes():
    lines = []

    def app(environ, start_response):
        stream = environ["wsgi.input"]
        lines.append(stream.read(2))
        lines.append(stream.readline())
        lines.append(stream.readline(3))
        lines.extend(stream.readlines())
        lines.append(stream.read())
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "0")])
        return []

    # read() with no size is allowed by wsgi.input_terminated, which wsgiref's validator predates.
    with running(app) as server:
        exchange(server, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n"
                         b"Connection: close\r\n\r\nabcd\nefghij\nkl\nmnop\n")
    assert lines == [b"ab", b"cd\n", b"efg", b"hij\n", b"kl\n", b"mnop\n", b""]


def test_large_upload_is_spooled_to_a_file():
    payload = bytes(range(256)) * 4096  # 1 MiB

    def app(environ, start_response):
        stream = environ["wsgi.input"]
        data = b"".join(iter(lambda: stream.read(65536), b""))
        ok = data == payload
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok" if ok else b"no"]

    with running(app, spool_threshold=64 * 1024) as server:
        raw = exchange(server, b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                               b"Content-Length: %d\r\n\r\n" % len(payload) + payload)
        assert raw.endswith(b"ok")


def test_expect_100_continue_is_answered_before_the_body():
    with running(echo_app) as server:
        with server.connect() as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                         b"Expect: 100-continue\r\n\r\n")
            assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
            sock.sendall(b"data")
            assert Client(sock).response(b"POST")[1] == b"4|data"


def test_a_body_invited_by_100_continue_that_never_comes_ends_with_a_close():
    """The client half-closes instead of sending the body it asked leave to send:
    the request can never complete, so no final response follows the 100 (RFC 9110
    §10.1.1: "unless the connection is closed prematurely"), the app is not called,
    and the connection closes, as gunicorn closes on a body cut short."""
    called = []

    def app(environ, start_response):
        called.append(environ["PATH_INFO"])
        return echo_app(environ, start_response)

    with running(app) as server:
        raw = exchange(server, b"POST /never HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                               b"Expect: 100-continue\r\n\r\n")
    assert raw == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert called == []


def test_expect_100_continue_over_the_body_limit_gets_413_without_100():
    with running(echo_app, limit_request_body=10) as server:
        raw = exchange(server, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n"
                               b"Expect: 100-continue\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 413 ")
        assert b"100 Continue" not in raw


def test_sixteen_pipelined_requests_answered_in_order():
    def app(environ, start_response):
        body = environ["PATH_INFO"].encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    with running(app) as server:
        client = Client(server.connect())
        client.send(b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(16)))
        assert [client.response()[1] for _ in range(16)] == [b"/%d" % i for i in range(16)]


def test_pipelined_bodies_are_kept_apart():
    with running(echo_app) as server:
        client = Client(server.connect())
        client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n"
                    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.response(b"POST")[1] == b"3|abc"
        assert client.response(b"POST")[1] == b"2|de"
        assert client.response()[1] == b"|"


REFUSED = [
    (b"GET / HTTP/1.1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    (b"GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
    (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 9000 + b"\r\n\r\n", 431),
    (b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X: a\r\n" * 101 + b"\r\n", 431),
    (b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400),
]


@pytest.mark.parametrize("raw,status", REFUSED)
def test_refused_requests_get_a_status_and_a_closed_connection(raw, status):
    calls = []

    def app(environ, start_response):
        calls.append(environ)
        return hello_app(environ, start_response)

    with running(app) as server:
        answer = exchange(server, raw)
    assert answer.startswith(b"HTTP/1.1 %d " % status)
    assert b"Connection: close\r\n" in answer
    assert calls == []


SMUGGLING = [
    # CL.TE and TE.CL: both framings present
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    # two different lengths
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\n"
    b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    # TE that does not end in chunked
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n"
    b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    # invalid chunk size
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"-1\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    # a bare LF chunk terminator
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    # a space before the colon
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\n"
    b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    # Content-Length with a sign
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabcGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
]


@pytest.mark.parametrize("raw", SMUGGLING)
def test_no_smuggled_request_ever_reaches_the_app(raw):
    paths = []

    def app(environ, start_response):
        paths.append(environ["PATH_INFO"])
        environ["wsgi.input"].read()
        return hello_app(environ, start_response)

    with running(app) as server:
        exchange(server, raw)
    assert "/smuggled" not in paths


def test_body_over_the_limit_is_refused_with_413():
    with running(echo_app, limit_request_body=8) as server:
        raw = exchange(server, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                               b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 413 ")


def test_underscore_twin_of_a_header_is_dropped_not_merged():
    seen = []

    def app(environ, start_response):
        seen.append((environ.get("CONTENT_LENGTH"), environ.get("HTTP_X_FORWARDED_FOR")))
        return hello_app(environ, start_response)

    with running(app) as server:
        raw = exchange(server, b"POST / HTTP/1.1\r\nHost: a\r\nContent_Length: 40\r\n"
                               b"X_Forwarded_For: 6.6.6.6\r\nConnection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert seen == [(None, None)]


def _remote_app(environ, start_response):
    body = f"{environ['REMOTE_ADDR']}:{environ['REMOTE_PORT']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


@pytest.mark.parametrize("preamble,expected", [
    (b"PROXY TCP4 203.0.113.9 10.0.0.1 51000 80\r\n", b"203.0.113.9:51000"),
    (b"PROXY TCP6 2001:db8::7 2001:db8::1 4000 443\r\n", b"2001:db8::7:4000"),
    (b"PROXY UNKNOWN\r\n", b"127.0.0.1:"),
    (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c" + bytes([198, 51, 100, 4, 10, 0, 0, 1])
     + (6000).to_bytes(2, "big") + (80).to_bytes(2, "big"), b"198.51.100.4:6000"),
    (b"", b"127.0.0.1:"),  # detection: plain HTTP from a trusted peer still works
])
def test_proxy_protocol_names_the_real_client(preamble, expected):
    with running(_remote_app, proxy_protocol=True) as server:
        raw = exchange(server, preamble + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert raw.partition(b"\r\n\r\n")[2].startswith(expected)


def test_proxy_header_split_across_packets_and_bad_ones_refused():
    with running(_remote_app, proxy_protocol=True) as server:
        with server.connect() as sock:
            for piece in (b"PRO", b"XY TCP4 192.0.2.1 192.0.2.2 1 2", b"\r\nGET / HTTP/1.0\r\n\r\n"):
                sock.sendall(piece)
            assert read_all(sock).endswith(b"192.0.2.1:1")
        assert exchange(server, b"PROXY TCP4 999.1.1.1 1.1.1.1 1 2\r\n").startswith(b"HTTP/1.1 400 ")


@pytest.mark.parametrize("header", [
    b"PROXY TCP6 fe80::1%\x1b[31mEVIL\r 2001:db8::1 4000 443\r\n",
    b"PROXY TCP6 fe80::1%eth0 2001:db8::1 4000 443\r\n",
    b"PROXY TCP6 2001:db8::7 fe80::1%lo 4000 443\r\n",
    b"PROXY TCP4 203.0.113.9\t 10.0.0.1 51000 80\r\n",
])
def test_proxy_v1_addresses_are_plain_addresses(header):
    """No scope id, no control character: what reaches REMOTE_ADDR and the access
    log is an address and nothing else."""
    with running(_remote_app, proxy_protocol=True) as server:
        raw = exchange(server, header + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 400 ")
    assert b"EVIL" not in raw and b"%" not in raw.partition(b"\r\n\r\n")[2]


def test_proxy_header_from_an_untrusted_peer_is_not_believed():
    with running(_remote_app, proxy_protocol=True, proxy_allow_ips=("192.0.2.55",)) as server:
        raw = exchange(server, b"PROXY TCP4 203.0.113.9 10.0.0.1 51000 80\r\nGET / HTTP/1.0\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 400 ")


def test_a_flood_of_pipelined_requests_is_answered_in_order_with_bounded_buffering():
    import threading

    count = 20000

    def app(environ, start_response):
        body = environ["QUERY_STRING"].encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    with running(app) as server:
        sock = server.connect()
        received = bytearray()

        def reader():
            while received.count(b"HTTP/1.1 200") < count:
                data = sock.recv(1 << 20)
                if not data:
                    return
                received.extend(data)

        thread = threading.Thread(target=reader)
        thread.start()
        sock.sendall(b"".join(b"GET /?%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(count)))
        thread.join(30)
        sock.close()
        bodies = [part.rpartition(b"\r\n\r\n")[2] for part in bytes(received).split(b"HTTP/1.1 200 OK")[1:]]
        assert bodies == [b"%d" % i for i in range(count)]
