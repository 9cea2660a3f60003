"""Workers without threads pass keep-alive connections whose next request waits
behind a long app call to a free sibling (fastwsgi/loop/handoff.pxi), through the
master's shared channel: the request is answered by the sibling while the call
still runs, the connection stays open there, and a stop loses none in the channel.
gunicorn's sync worker closes after every request instead, so these are fastwsgi's."""
from __future__ import annotations

import os
import select
import signal
import time

import pytest

from support.wire import Client

GET_SLOW = b"GET /sleep?%s HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture
def serve_fastwsgi(serve):
    if serve.name != "fastwsgi":
        pytest.skip("gunicorn's sync worker closes every connection after its request")
    return serve


def answer_of(client: Client, method: bytes = b"GET") -> tuple[int, bytes]:
    head, body = client.response(method)
    return head.status_code, body


def worker_of(client: Client) -> bytes:
    """The pid of the worker that holds this connection (it answers /)."""
    client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    status, body = answer_of(client)
    assert status == 200
    return body.split()[1]


def on_the_same_worker(port: int, count: int) -> tuple[list[Client], bytes]:
    """``count`` keep-alive connections held by one worker (new ones are opened until
    enough land on the first one's worker; the others are closed)."""
    first = Client.connect(port)
    pid = worker_of(first)
    clients = [first]
    for _ in range(200):
        if len(clients) == count:
            return clients, pid
        client = Client.connect(port)
        if worker_of(client) == pid:
            clients.append(client)
        else:
            client.close()
    raise AssertionError("connections never landed on one worker")


def no_answer_yet(client: Client) -> bool:
    return not select.select([client.sock], [], [], 0)[0]


def test_a_request_waiting_behind_a_long_call_is_answered_by_a_free_worker(serve_fastwsgi):
    server = serve_fastwsgi("-b", "127.0.0.1:0", "-w", "2", "--log-level", "debug",
                            "webapp").wait_ready(workers=2)
    (slow, waiting), busy_pid = on_the_same_worker(server.port, 2)
    slow.send(GET_SLOW % b"3")
    time.sleep(0.3)   # the app call runs
    body = b"x" * 5000
    waiting.send(b"POST /peer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    status, answer = answer_of(waiting, b"POST")
    peer, pid, echoed = answer.split(b" ", 2)
    assert status == 200 and pid != busy_pid and echoed == body
    # the sibling knows the client as the worker that accepted it did
    local = waiting.sock.getsockname()
    assert peer == f"{local[0]}:{local[1]}".encode()
    assert no_answer_yet(slow), "answered while the 3 s call still ran"
    # the connection lives on at its new worker
    for _ in range(3):
        assert worker_of(waiting) == pid
    status, answer = answer_of(slow)
    assert status == 200 and answer.split()[1] == busy_pid
    assert worker_of(slow) == busy_pid   # the busy one kept its own
    assert "passed 1 waiting connection(s) to a free worker" in server.log


def test_a_connection_with_nothing_to_send_stays_where_it_is(serve_fastwsgi):
    server = serve_fastwsgi("-b", "127.0.0.1:0", "-w", "2", "webapp").wait_ready(workers=2)
    (slow, quiet), busy_pid = on_the_same_worker(server.port, 2)
    slow.send(GET_SLOW % b"1")
    assert answer_of(slow)[0] == 200
    # quiet sent nothing during the call: it was not moved
    assert worker_of(quiet) == busy_pid


def test_waiting_requests_passed_before_a_stop_are_answered(serve_fastwsgi):
    """Both workers busy: the waiting request sits in the channel when TERM comes,
    and a stopping worker takes it in before it exits."""
    server = serve_fastwsgi("-b", "127.0.0.1:0", "-w", "2", "--graceful-timeout", "10",
                            "--log-level", "debug", "webapp").wait_ready(workers=2)
    (slow, waiting), busy_pid = on_the_same_worker(server.port, 2)
    other = None
    for _ in range(200):
        other = Client.connect(server.port)
        if worker_of(other) != busy_pid:
            break
        other.close()
    slow.send(GET_SLOW % b"2")
    other.send(GET_SLOW % b"2")
    time.sleep(0.3)
    waiting.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.3)   # passed to the channel; no worker is free to take it
    server.signal(signal.SIGTERM)
    head, body = waiting.response()
    assert head.status_code == 200
    assert "passed 1 waiting connection(s) to a free worker" in server.log
    assert answer_of(slow)[0] == 200 and answer_of(other)[0] == 200
    assert server.wait_exit() == 0


def test_an_idle_worker_sleeps(serve_fastwsgi):
    """The watcher parks when no app call runs: an idle worker is not woken."""
    server = serve_fastwsgi("-b", "127.0.0.1:0", "-w", "2", "webapp").wait_ready(workers=2)
    # a call made while its worker holds two connections starts the watcher
    (first, second), _ = on_the_same_worker(server.port, 2)
    worker_of(first)
    time.sleep(0.5)
    pids = server.worker_pids()
    assert any("fastwsgi-watch" in thread_names(pid) for pid in pids)

    def switches():
        total = 0
        for pid in pids:
            for task in (f"/proc/{pid}/task/{tid}" for tid in os.listdir(f"/proc/{pid}/task")):
                with open(f"{task}/status") as status:
                    for line in status:
                        if line.startswith("voluntary_ctxt_switches"):
                            total += int(line.split()[1])
        return total

    before = switches()
    time.sleep(1.0)
    # each loop wakes once a second for its tick; nothing else may
    assert switches() - before <= 2 * len(pids) + 2


def thread_names(pid: int) -> set[str]:
    names = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as comm:
            names.add(comm.read().strip())
    return names
