"""--protocol uwsgi through a real server: request packets sent by hand (the bytes
nginx's uwsgi_pass sends), the corpus's refusals on the wire, keep-alive and
framing of the answers, and uwsgi_allow_ips."""
import json
import socket
import time

import pytest

from support import apps, uwsgi
from support.processes import ServerProcess
from support.wire import Client, read_all, read_responses

INVALID = uwsgi.corpus("invalid")


@pytest.fixture
def uwsgi_server(tmp_path):
    """uwsgi_server(*args) runs ``fastwsgi --protocol uwsgi ARGS uwsgiapp:application``."""
    apps.install("uwsgiapp", tmp_path)
    started = []

    def start(*args, bind="127.0.0.1:0"):
        server = ServerProcess("fastwsgi", ["--protocol", "uwsgi", "-b", bind, *args,
                                            "uwsgiapp:application"], tmp_path)
        started.append(server)
        return server.wait_ready()

    yield start
    for server in started:
        server.close()


def environ_of(response):
    assert response.status == 200, response
    return json.loads(response.body)


def test_the_environ_is_the_packets_vars(uwsgi_server):
    server = uwsgi_server()
    with Client.connect(server.port) as client:
        client.send(uwsgi.packet(uwsgi.request_vars(path="/a b", query="x=1", host="example.com",
                                                    x_trace="t1")))
        environ = environ_of(client.reply())
    assert environ["PATH_INFO"] == "/a b"
    assert environ["QUERY_STRING"] == "x=1"
    assert environ["RAW_URI"] == "/a b?x=1"
    # who the client is, as the front end says (uwsgi_allow_ips let it say so)
    assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == ("203.0.113.7", "50123")
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("example.com", "80")
    assert environ["HTTP_HOST"] == "example.com"
    assert environ["HTTP_X_TRACE"] == "t1"
    assert environ["wsgi.url_scheme"] == "http"


def test_bodies_by_content_length_over_one_kept_alive_connection(uwsgi_server):
    server = uwsgi_server()
    bodies = [b"first body", b"x" * 200_000, b""]
    with Client.connect(server.port) as client:
        for body in bodies:
            data = uwsgi.packet(uwsgi.request_vars(method="POST", body=body), body)
            # sent in pieces, as a slow front end would
            for start in range(0, len(data), 65536):
                client.send(data[start:start + 65536])
                time.sleep(0.01)
            reply = client.reply()
            assert reply.headers.get("connection") != "close"
            assert environ_of(reply)["body_length"] == len(body)


def test_pipelined_packets_are_answered_in_order(uwsgi_server):
    server = uwsgi_server()
    with Client.connect(server.port) as client:
        client.send(b"".join(uwsgi.packet(uwsgi.request_vars(path=f"/{i}")) for i in range(5)))
        paths = [environ_of(client.reply())["PATH_INFO"] for _ in range(5)]
    assert paths == [f"/{i}" for i in range(5)]


def test_answers_are_never_chunked(uwsgi_server):
    # nginx passes uwsgi response bodies on as they are: chunk markers would
    # become content. Without a Content-Length the body ends with the connection.
    server = uwsgi_server()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(uwsgi.packet(uwsgi.request_vars(path="/stream")))
        data = read_all(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower()
    assert b"connection: close" in head.lower()
    assert body == b"".join(b"chunk %d\n" % i for i in range(100))


def test_an_answer_to_head_closes_the_connection(uwsgi_server):
    # nginx reads the answer to a HEAD until the connection closes.
    server = uwsgi_server()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(uwsgi.packet(uwsgi.request_vars(method="HEAD")))
        data = read_all(sock)
        assert time.monotonic() - started < 1.0
    reading = read_responses(data, [b"HEAD"])
    assert [response.status for response in reading.responses] == [200]
    assert reading.responses[0].body == b""


@pytest.mark.parametrize("name, data, case", INVALID, ids=[case[0] for case in INVALID])
def test_a_bad_packet_is_refused_and_its_connection_closed(uwsgi_server, name, data, case):
    server = uwsgi_server()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        reading = read_responses(read_all(sock), [b"GET"])
    assert [response.status for response in reading.responses] == [case["status"]]
    assert reading.responses[0].headers["connection"] == "close"
    # the worker serves on
    with Client.connect(server.port) as client:
        client.send(uwsgi.packet(uwsgi.request_vars()))
        assert client.reply().status == 200
    assert "Invalid request from ip=127.0.0.1" in server.log


def test_a_packet_cut_short_by_the_peer_gets_no_answer(uwsgi_server):
    server = uwsgi_server()
    data = uwsgi.packet(uwsgi.request_vars(method="POST", body=b"x" * 100), b"x" * 100)
    for cut in (2, 10, len(data) - 150, len(data) - 1):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(data[:cut])
            sock.shutdown(socket.SHUT_WR)
            assert read_all(sock) == b"", cut
    with Client.connect(server.port) as client:
        client.send(uwsgi.packet(uwsgi.request_vars()))
        assert client.reply().status == 200


def test_garbage_on_the_port_does_not_stop_the_worker(uwsgi_server):
    server = uwsgi_server()
    pids = server.worker_pids()
    for garbage in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x00\xff\xff\x00" + b"\x01" * 65535,
                    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(garbage)
            response = read_all(sock)
            assert response.startswith(b"HTTP/1.1 4") or response.startswith(b"HTTP/1.1 5"), response
    with Client.connect(server.port) as client:
        client.send(uwsgi.packet(uwsgi.request_vars()))
        assert client.reply().status == 200
    assert server.worker_pids() == pids


def test_only_allowed_front_ends_may_send_packets(uwsgi_server, tmp_path):
    sock_path = tmp_path / "uwsgi.sock"
    server = uwsgi_server("--uwsgi-allow-from", "192.0.2.1,10.0.0.0/8", "-b", f"unix:{sock_path}")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(uwsgi.packet(uwsgi.request_vars()))
        reading = read_responses(read_all(sock), [b"GET"])
    assert [response.status for response in reading.responses] == [403]
    assert "uwsgi request from '127.0.0.1' not allowed" in server.log
    # a Unix socket's peer has no address: allowed, as gunicorn allows it
    with socket.socket(socket.AF_UNIX) as unix:
        unix.settimeout(10)
        unix.connect(str(sock_path))
        unix.sendall(uwsgi.packet(uwsgi.request_vars()))
        unix.shutdown(socket.SHUT_WR)
        reading = read_responses(read_all(unix), [b"GET"])
    assert [response.status for response in reading.responses] == [200]


def test_a_network_in_the_allow_list_admits_its_addresses(uwsgi_server):
    server = uwsgi_server("--uwsgi-allow-from", "127.0.0.0/8")
    with Client.connect(server.port) as client:
        client.send(uwsgi.packet(uwsgi.request_vars()))
        assert client.reply().status == 200


def test_an_unknown_protocol_is_refused_at_start(tmp_path):
    apps.install("uwsgiapp", tmp_path)
    server = ServerProcess("fastwsgi", ["--protocol", "spdy", "uwsgiapp:application"], tmp_path)
    try:
        assert server.wait_exit() != 0
        assert "'spdy': expected one of http, uwsgi" in server.log
    finally:
        server.close()


def test_with_threads_the_answers_are_framed_alike(uwsgi_server):
    server = uwsgi_server("--threads", "4")
    with Client.connect(server.port) as client:
        body = b"y" * 300_000
        client.send(uwsgi.packet(uwsgi.request_vars(method="POST", body=body), body))
        assert environ_of(client.reply())["body_length"] == len(body)
        client.send(uwsgi.packet(uwsgi.request_vars(path="/large")))
        assert client.reply().body == b"L" * 1_000_000
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(uwsgi.packet(uwsgi.request_vars(path="/stream")))
        data = read_all(sock)
    head, _, streamed = data.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower()
    assert streamed == b"".join(b"chunk %d\n" % i for i in range(100))
