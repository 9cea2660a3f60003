"""TLS inside the loop, driven by real TLS clients (the ssl module) against a CA made
for each test session (trustme). The decrypted bytes are read by h11, as for plain
connections."""
from __future__ import annotations

import datetime
import io
import socket
import ssl
import threading
import time

import pytest
from support.harness import running
from support.wire import TIMEOUT, Client, read_all

trustme = pytest.importorskip("trustme")


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture(scope="module")
def server_context(ca):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    context.set_alpn_protocols(["http/1.1"])
    return context


@pytest.fixture(scope="module")
def client_context(ca):
    context = ssl.create_default_context()
    ca.configure_trust(context)
    context.set_alpn_protocols(["http/1.1"])
    return context


def tls_connect(server, context, **kwargs) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    return context.wrap_socket(raw, server_hostname="127.0.0.1", **kwargs)


def request(path: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n".encode()


def echo_app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/download":
        size = int(environ["QUERY_STRING"])
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(size))])
        return [bytes(range(256)) * (size // 256)]
    if path == "/file":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"0123456789" * 100000), 65536)
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "application/octet-stream")])
        for i in range(40):   # 10 MiB through write(): past the high-water mark, the spool
            write(bytes([65 + i % 26]) * (256 * 1024))
        return []
    body = environ["wsgi.input"].read()
    answer = (f"{environ['wsgi.url_scheme']} {path} {len(body)} "
              f"{environ['REMOTE_ADDR']}").encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(answer)))])
    return [answer]


@pytest.fixture(params=[1, 4], ids=["app-on-loop", "app-threads"])
def tls_server(request, server_context):
    with running(echo_app, ssl_context=server_context, threads=request.param,
                 header_timeout=2) as server:
        yield server


def test_handshake_alpn_and_the_https_scheme(tls_server, client_context):
    with tls_connect(tls_server, client_context) as sock:
        assert sock.selected_alpn_protocol() == "http/1.1"
        client = Client(sock)
        client.send(request("/hello"))
        response, body = client.response()
    assert response.status_code == 200
    assert body == b"https /hello 0 127.0.0.1"


def test_keep_alive_and_pipelining_over_tls(tls_server, client_context):
    with tls_connect(tls_server, client_context) as sock:
        client = Client(sock)
        for i in range(20):
            client.send(request(f"/one/{i}"))
            assert client.response()[1] == f"https /one/{i} 0 127.0.0.1".encode()
        client.send(b"".join(request(f"/piped/{i}") for i in range(16)))
        bodies = [client.response()[1] for _ in range(16)]
    assert bodies == [f"https /piped/{i} 0 127.0.0.1".encode() for i in range(16)]


def test_ten_mib_each_way(tls_server, client_context):
    upload = bytes(range(256)) * (40 * 1024)   # 10 MiB
    with tls_connect(tls_server, client_context) as sock:
        client = Client(sock)
        client.send(b"POST /up HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n" % len(upload))
        sock.sendall(upload)
        assert client.response(b"POST")[1] == b"https /up %d 127.0.0.1" % len(upload)
        client.send(request("/download?%d" % len(upload)))
        response, body = client.response()
    assert body == upload


def test_file_wrapper_and_write_spool_fall_back_to_encrypted_reads(tls_server, client_context):
    with tls_connect(tls_server, client_context) as sock:
        client = Client(sock)
        client.send(request("/file"))
        assert client.response()[1] == b"0123456789" * 100000
        client.send(request("/write"))
        body = client.response()[1]
    assert body == b"".join(bytes([65 + i % 26]) * (256 * 1024) for i in range(40))


def test_a_slow_reader_of_a_large_response_is_served_after_it_reads(tls_server, client_context):
    with tls_connect(tls_server, client_context) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
        client = Client(sock)
        client.send(request("/download?%d" % (4 << 20)))
        time.sleep(0.5)   # the server's socket fills; the rest waits as ciphertext and plaintext
        assert len(client.response()[1]) == 4 << 20


def test_a_client_stalled_mid_handshake_is_dropped_and_the_worker_serves_on(tls_server, client_context):
    stalled = socket.create_connection(("127.0.0.1", tls_server.port), timeout=TIMEOUT)
    stalled.sendall(b"\x16\x03\x01\x00\xc8")   # the start of a ClientHello, never finished
    started = time.monotonic()
    with tls_connect(tls_server, client_context) as sock:
        client = Client(sock)
        client.send(request("/meanwhile"))
        assert client.response()[0].status_code == 200
    assert stalled.recv(100) == b""   # closed at header_timeout (2 s here)
    assert 1.5 < time.monotonic() - started < 6
    stalled.close()


def test_plain_http_on_the_tls_port_gets_a_plain_400_and_a_close(tls_server, client_context):
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=TIMEOUT) as sock:
        sock.sendall(request("/plain"))
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert answer.endswith(b"This port speaks HTTPS: the request must come over TLS.\n")
    with tls_connect(tls_server, client_context) as sock:
        client = Client(sock)
        client.send(request("/after"))
        assert client.response()[0].status_code == 200


def test_garbage_instead_of_a_handshake_is_dropped(tls_server, client_context):
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"\x16\x03\x01\x00\x05\x00\x00\x00\x00\x00" + b"\xff" * 100)
        answer = read_all(sock)   # the server closes (after an alert, record type 21)
    assert answer == b"" or answer[0] == 0x15
    with tls_connect(tls_server, client_context) as sock:
        client = Client(sock)
        client.send(request("/after"))
        assert client.response()[0].status_code == 200


def test_connection_close_sends_close_notify(tls_server, client_context):
    with tls_connect(tls_server, client_context, suppress_ragged_eofs=False) as sock:
        client = Client(sock)
        client.send(request("/bye", "Connection: close\r\n"))
        assert client.response()[0].status_code == 200
        # A close without close_notify would raise SSLEOFError here.
        assert sock.recv(100) == b""


def test_sessions_resume(tls_server, client_context):
    with tls_connect(tls_server, client_context) as first:
        client = Client(first)
        client.send(request("/first"))
        client.response()   # TLS 1.3 tickets arrive with or after the first response
        session = first.session
    with tls_connect(tls_server, client_context, session=session) as second:
        assert second.session_reused
        client = Client(second)
        client.send(request("/second"))
        assert client.response()[0].status_code == 200


def test_the_clients_close_notify_is_answered(tls_server, client_context):
    """RFC 8446 §6.1: the client says it is done first; the server answers with its
    own close_notify (unwrap() returns only once it has it)."""
    with tls_connect(tls_server, client_context, suppress_ragged_eofs=False) as sock:
        client = Client(sock)
        client.send(request("/first"))
        assert client.response()[0].status_code == 200
        plain = sock.unwrap()
        plain.close()


def test_tls12_session_ids_resume_after_the_client_closes_first(tls_server, ca):
    """TLS 1.2 session-ID resumption needs the session shut down cleanly on both
    sides: here the client closes first, with its close_notify, ten times over."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    session = None
    reused = []
    for _ in range(10):
        with tls_connect(tls_server, context, session=session) as sock:
            reused.append(sock.session_reused)
            client = Client(sock)
            client.send(request("/again"))
            assert client.response()[0].status_code == 200
            session = sock.session
            sock.unwrap().close()
    assert reused == [False] + [True] * 9


def test_proxy_protocol_header_is_read_before_the_handshake(server_context, client_context):
    with running(echo_app, ssl_context=server_context, proxy_protocol=True,
                 proxy_allow_ips=("127.0.0.1",)) as server:
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
        raw.sendall(b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 443\r\n")
        with client_context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            client = Client(sock)
            client.send(request("/proxied"))
            assert client.response()[1] == b"https /proxied 0 203.0.113.7"


def test_client_certificates_when_required(ca, client_context):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cadata=ca.cert_pem.bytes().decode())
    ca.issue_cert("127.0.0.1").configure_cert(context)
    context.verify_mode = ssl.CERT_REQUIRED
    with running(echo_app, ssl_context=context) as server:
        with_cert = ssl.create_default_context()
        ca.configure_trust(with_cert)
        ca.issue_cert("client@example.com").configure_cert(with_cert)
        with tls_connect(server, with_cert) as sock:
            client = Client(sock)
            client.send(request("/with-cert"))
            assert client.response()[0].status_code == 200
        # Without one the handshake fails (TLS 1.3 reports it at the first read).
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with tls_connect(server, client_context) as sock:
                sock.sendall(request("/without"))
                if not sock.recv(100):
                    raise ConnectionError("closed")


def test_an_expired_certificate_is_refused_by_the_client(ca, client_context):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    expired = ca.issue_cert("127.0.0.1", not_before=datetime.datetime(2020, 1, 1),
                            not_after=datetime.datetime(2020, 2, 1))
    expired.configure_cert(context)
    with running(echo_app, ssl_context=context) as server:
        with pytest.raises(ssl.SSLCertVerificationError, match="expired"):
            tls_connect(server, client_context)
        # The worker serves on: the next client with a lenient context gets answers.
        lenient = ssl.create_default_context()
        lenient.check_hostname = False
        lenient.verify_mode = ssl.CERT_NONE
        with tls_connect(server, lenient) as sock:
            client = Client(sock)
            client.send(request("/lenient"))
            assert client.response()[0].status_code == 200


def test_a_streamed_response_over_tls_to_a_reader_that_stops_holds_the_thread(server_context,
                                                                              client_context):
    produced = []

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])

        def body():
            for i in range(1000):
                produced.append(i)
                yield b"y" * 65536
        return body()

    with running(app, ssl_context=server_context, threads=2) as server:
        sock = tls_connect(server, client_context)
        sock.sendall(request("/"))
        time.sleep(1.0)
        held = len(produced)
        time.sleep(0.3)
        assert len(produced) == held < 400, f"{held} pieces produced for a client that reads nothing"
        sock.close()
        with tls_connect(server, client_context) as other:
            other.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            other.settimeout(TIMEOUT)
            total = 0
            while True:
                data = other.recv(1 << 20)
                if not data:
                    break
                total += len(data)
        assert total > 1000 * 65536


def test_many_connections_handshake_at_once(tls_server, client_context):
    results = []

    def one(i):
        with tls_connect(tls_server, client_context) as sock:
            client = Client(sock)
            client.send(request(f"/c{i}"))
            results.append(client.response()[1])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert sorted(results) == sorted(f"https /c{i} 0 127.0.0.1".encode() for i in range(30))
