"""Descriptors the worker shares: an app that forks (a multiprocessing Pool, subprocess
with close_fds=False) or keeps environ["gunicorn.socket"] holds client descriptors
open after the worker closed its own. epoll watches the open file description, so a
registration left behind would deliver events for a connection that is gone: the
worker must drop it before every close, and nothing the worker opens may reach a
program the app executes. Both servers, through the real command."""
from __future__ import annotations

import re
import socket
import time

import pytest
from support import apps
from support.wire import Client

GRACE = 15.0


def start(serve, *args):
    apps.install("forking", serve.dir)
    server = serve("-b", "127.0.0.1:0", "-w", "1", *args, "forking:app").wait_ready()
    return server, server.worker_pids()


def get(port: int, path: str) -> tuple[int, bytes]:
    with Client.connect(port) as client:
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
        head, body = client.response()
        return head.status_code, body


def idle_keep_alive(port: int) -> Client:
    """A connection that has had one answer and now sits idle."""
    client = Client.connect(port)
    client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _ = client.response()
    assert head.status_code == 200
    return client


def assert_worker_survived(server, workers: set) -> None:
    status, body = get(server.port, "/")
    assert status == 200
    assert server.worker_pids() == workers, server.log
    assert not re.search(r"was sent SIG|exited with code", server.log), server.log


def stop(server) -> None:
    server.signal(15)
    if server.name == "gunicorn":
        # gunicorn's sync worker may hang at its exit in multiprocessing's exit
        # handler while a fork Pool lives in it, until its master kills it after
        # graceful_timeout: not what is compared here (that it serves the app).
        # The fixture stops whatever is left.
        return
    assert server.wait_exit(GRACE) == 0, server.log
    assert not re.search(r"was sent SIG|exited with code", server.log), server.log


def test_a_fork_pool_made_on_a_request_does_not_crash_the_worker(serve):
    server, workers = start(serve, "--keep-alive", "1")
    held = idle_keep_alive(server.port)
    assert get(server.port, "/pool") == (200, b"285")   # the children inherit `held`
    # The worker ends the idle connection at its keep-alive time, then the client goes:
    # the description lives on in the Pool's children.
    assert held.closed_by_server()
    held.close()
    time.sleep(0.5)
    for _ in range(20):
        assert get(server.port, "/pool") == (200, b"285")
    assert_worker_survived(server, workers)
    stop(server)


def test_a_kept_connection_socket_does_not_crash_the_worker(serve):
    server, workers = start(serve, "--threads", "4", "--keep-alive", "1")
    client = Client.connect(server.port)
    client.send(b"GET /keep HTTP/1.1\r\nHost: x\r\n\r\n")
    head, body = client.response()
    assert (head.status_code, body) == (200, b"kept")
    assert client.closed_by_server()     # the app had the socket: not reused
    client.close()
    time.sleep(0.5)
    for _ in range(10):
        assert get(server.port, "/")[0] == 200
    assert_worker_survived(server, workers)
    stop(server)


def test_many_connections_closed_while_a_fork_pool_holds_them(serve):
    """The soak's shape in small: a Pool made at the first request, then connections
    opened, served and dropped (some reset) while its children hold every one.
    (fastwsgi's keep-alive loop is what is tested: gunicorn's sync worker serves one
    connection at a time and closes each after its answer.)"""
    if serve.name != "fastwsgi":
        pytest.skip("the keep-alive event loop is fastwsgi's")
    server, workers = start(serve, "--keep-alive", "1")
    assert get(server.port, "/pool") == (200, b"285")
    for _ in range(8):
        clients = [idle_keep_alive(server.port) for _ in range(10)]
        assert get(server.port, "/pool") == (200, b"285")
        for number, client in enumerate(clients):
            client.close(reset=number % 2 == 0)
    assert_worker_survived(server, workers)
    stop(server)


def test_a_program_the_app_runs_inherits_no_descriptor_of_the_worker(serve):
    server, _ = start(serve, "--threads", "2")
    held = idle_keep_alive(server.port)
    status, body = get(server.port, "/fds")
    held.close()
    assert status == 200
    # stdin, stdout and stderr, and the descriptor the child's listdir() opened
    assert body.split() == [b"0", b"1", b"2", b"3"], body
    stop(server)
