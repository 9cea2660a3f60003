"""HandOff through its channel, with the test on the other end: a connection the
channel brings is served as the message describes it, a message that is not one
of ours closes the socket it carried, and a connection whose request waits behind
a long app call is passed with its peer's address (fastwsgi/loop/handoff.pxi; the
whole path between real workers is tests/master/test_handoff.py)."""
from __future__ import annotations

import socket
import time

import pytest
from support.harness import running
from support.wire import Client

LONG_CALL = 1.0


def app(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep(LONG_CALL)
    body = f"{environ['REMOTE_ADDR']}:{environ['REMOTE_PORT']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture
def channel():
    ends = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    yield ends
    for end in ends:
        end.close()


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    """A connected loopback client and its server-side socket."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=10)
        accepted, _ = listener.accept()
    return client, accepted


def test_a_passed_connection_is_served_as_its_message_says(channel):
    with running(app, handoff_channel=channel, multiprocess=True) as server:
        client, accepted = tcp_pair()
        with client, accepted:
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            socket.send_fds(channel[0], [b"0\t1\t192.0.2.7\t4242"], [accepted.fileno()])
            accepted.close()
            conn = Client(client)
            head, body = conn.response()
            assert head.status_code == 200
            assert body == b"192.0.2.7:4242"
            # kept alive where it now is
            conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert conn.response()[0].status_code == 200


# too long for a message of ours (cut short), listeners that do not exist, words
@pytest.mark.parametrize("message", [b"x" * 300, b"7\t1\t192.0.2.7\t4242", b"-1\t1\t192.0.2.7\t4242",
                                     b"nonsense"])
def test_a_message_not_of_ours_closes_its_socket(channel, message):
    with running(app, handoff_channel=channel, multiprocess=True) as server:
        client, accepted = tcp_pair()
        with client, accepted:
            socket.send_fds(channel[0], [message], [accepted.fileno()])
            accepted.close()
            client.settimeout(5)
            assert client.recv(100) == b""   # closed, not served, not left open
        with Client.connect(server.port) as other:   # and the server goes on
            other.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert other.response()[0].status_code == 200


def test_a_request_waiting_behind_a_long_call_is_passed_with_its_peer(channel):
    with running(app, handoff_channel=channel, multiprocess=True) as server:
        with Client.connect(server.port) as slow, Client.connect(server.port) as waiting:
            for client in (slow, waiting):
                client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                assert client.response()[0].status_code == 200
            slow.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.2)
            waiting.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            channel[1].settimeout(LONG_CALL / 2)
            payload, fds, _, _ = socket.recv_fds(channel[1], 256, 1)
            assert len(fds) == 1
            with socket.socket(fileno=fds[0]) as passed:
                assert passed.getpeername() == waiting.sock.getsockname()
                host, port = waiting.sock.getsockname()
                assert payload == f"0\t1\t{host}\t{port}".encode()
                # the request is still in the socket, for whoever takes it
                assert passed.recv(100, socket.MSG_PEEK).startswith(b"GET / HTTP/1.1")
            assert slow.response()[0].status_code == 200


def thread_cpu_seconds(native_id: int) -> float:
    with open(f"/proc/self/task/{native_id}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0   # utime, stime in clock ticks


def test_a_full_worker_leaves_a_passed_connection_without_spinning(channel):
    """At worker_connections the channel stops being watched (it is level-triggered:
    a message left for a sibling would wake the loop again and again); once there is
    room, the next tick watches it again and the connection is served."""
    with running(app, handoff_channel=channel, multiprocess=True, worker_connections=1) as server:
        holder = Client.connect(server.port)
        holder.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert holder.response()[0].status_code == 200
        client, accepted = tcp_pair()
        with client, accepted:
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            socket.send_fds(channel[0], [b"0\t1\t192.0.2.7\t4242"], [accepted.fileno()])
            accepted.close()
            before = thread_cpu_seconds(server.thread.native_id)
            time.sleep(0.5)
            assert thread_cpu_seconds(server.thread.native_id) - before < 0.1, "the loop spun"
            holder.close()   # room again
            conn = Client(client)
            head, body = conn.response()
            assert head.status_code == 200 and body == b"192.0.2.7:4242"
