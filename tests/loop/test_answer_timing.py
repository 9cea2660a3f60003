"""When answers leave, without threads (the app runs inside the loop's round): those
made in one epoll round leave together at its end, unless the round spends time in
the app — an answer made never waits for the app calls of other clients
(Server.answers_overdue); and at a graceful stop every request already in is
answered, or refused with a 503 once the graceful timeout is nearly spent, never
left to the master's SIGKILL. Through the real command."""
from __future__ import annotations

import re
import signal
import threading
import time

import pytest
from support.wire import Client

SLEEP = 0.3
CLIENTS = 10


def keep_alive_clients(port: int, count: int) -> list[Client]:
    """``count`` connections, each with one answer behind it, idle now."""
    clients = []
    for _ in range(count):
        client = Client.connect(port)
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.response()[0].status_code == 200
        clients.append(client)
    return clients


def send_together(clients: list[Client], path: bytes) -> tuple[float, list]:
    """Every client sends GET ``path`` at once; the start, and per client the
    (seconds after it, status) of its answer (None if none came)."""
    results: list = [None] * len(clients)
    barrier = threading.Barrier(len(clients) + 1)
    began = [0.0]

    def one(index: int, client: Client) -> None:
        barrier.wait()
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path)
        try:
            head, _ = client.response()
        except (ConnectionError, OSError):
            return
        results[index] = (time.monotonic() - began[0], head.status_code)

    threads = [threading.Thread(target=one, args=(i, c)) for i, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    began[0] = time.monotonic()
    barrier.wait()
    for thread in threads:
        thread.join(30)
    return began[0], results


def term_while_answering(server, clients: list[Client], path: bytes, signum=signal.SIGTERM) -> list:
    """send_together(), with TERM (or ``signum``) to the master 0.3 s after the
    requests went; the clients are closed after."""
    timer = threading.Timer(0.3, server.signal, args=(signum,))
    timer.start()
    try:
        return send_together(clients, path)[1]
    finally:
        timer.join()
        for client in clients:
            client.close()


def test_each_answer_leaves_when_its_app_call_ends(serve):
    """10 keep-alive clients send a slow request at the same moment to one worker:
    the answers come one app call apart (0.3, 0.6, … 3 s), not all at the end."""
    if serve.name != "fastwsgi":
        pytest.skip("gunicorn's sync worker has no keep-alive connections to hold answers on")
    server = serve("-b", "127.0.0.1:0", "-w", "1", "--keep-alive", "30", "webapp:application").wait_ready()
    clients = keep_alive_clients(server.port, CLIENTS)
    try:
        _, results = send_together(clients, b"/sleep?%g" % SLEEP)
    finally:
        for client in clients:
            client.close()
    assert all(result is not None and result[1] == 200 for result in results), results
    arrivals = sorted(result[0] for result in results)
    for k, arrival in enumerate(arrivals, start=1):
        # the k-th answer needed k app calls; a margin for the machine, far below
        # the (CLIENTS - k) * SLEEP it would wait held to the end of the round
        assert arrival < k * SLEEP + 0.25, arrivals


def test_an_answer_made_before_a_slow_call_of_its_round_leaves_during_the_call(serve):
    """Two requests read in one round, a fast one first and then a 2 s one: the fast
    answer, held for the round's end, leaves while the slow call runs (the app
    watcher sends it), not 2 s later."""
    if serve.name != "fastwsgi":
        pytest.skip("gunicorn's sync worker has no keep-alive connections to hold answers on")
    server = serve("-b", "127.0.0.1:0", "-w", "1", "--keep-alive", "30", "webapp:application").wait_ready()
    busy, fast, slow = keep_alive_clients(server.port, 3)
    try:
        busy.send(b"GET /sleep?0.3 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.1)
        # both arrive while the worker is busy: its next round reads them together
        fast.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.02)
        slow.send(b"GET /sleep?2 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert busy.response()[0].status_code == 200
        assert fast.response()[0].status_code == 200
        answered_at = time.monotonic()
        assert slow.response()[0].status_code == 200
        assert time.monotonic() - answered_at > 1.0, "the fast answer waited for the slow call"
    finally:
        for client in (busy, fast, slow):
            client.close()


def test_a_request_sent_during_long_app_calls_outlives_the_keep_alive_time(serve):
    """Keep-alive clients send while the worker is in app calls that last past their
    keep-alive time: each request came in time, and is answered, not lost to the
    keep-alive sweep that follows the calls before the loop has read it."""
    if serve.name != "fastwsgi":
        pytest.skip("gunicorn's sync worker has no keep-alive connections to sweep")
    server = serve("-b", "127.0.0.1:0", "-w", "1", "--keep-alive", "1", "webapp:application").wait_ready()
    clients = keep_alive_clients(server.port, 3)
    first, *slow = clients
    late = keep_alive_clients(server.port, 3)
    try:
        first.send(b"GET /sleep?0.3 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.1)
        # two requests come during that call: the worker takes both in one round
        for client in slow:
            client.send(b"GET /sleep?1 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.5)
        # these come during the first of those two calls, in time for their keep-alive
        for client in late:
            client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert [client.response()[0].status_code for client in clients] == [200] * 3
        assert [client.response()[0].status_code for client in late] == [200] * 3
    finally:
        for client in clients + late:
            client.close()


def test_term_serves_every_request_already_in_without_threads(serve):
    """TERM with 20 in-flight requests on two workers without threads: every one is
    answered within the graceful timeout, the two workers share those still queued
    in the listener, and the master exits cleanly."""
    if serve.name != "fastwsgi":
        pytest.skip("gunicorn's sync worker leaves the requests still in the backlog unserved")
    server = serve("-b", "127.0.0.1:0", "-w", "2", "--graceful-timeout", "20",
                   "webapp:application").wait_ready(workers=2)
    results = term_while_answering(server, [Client.connect(server.port) for _ in range(20)], b"/sleep?0.5")
    assert [result and result[1] for result in results] == [200] * 20, results
    # Each answer leaves when its app call ends: the k-th of them needed at most
    # k half-second calls ...
    arrivals = sorted(result[0] for result in results)
    for k, arrival in enumerate(arrivals, start=1):
        assert arrival < k * 0.5 + 1.0, arrivals
    # ... and two workers serve side by side: ten calls each, not one worker's 17
    # after it took the whole queue at the TERM
    assert arrivals[-1] < 10 * 0.5 + 1.5, arrivals
    assert server.wait_exit(10) == 0, server.log


def test_hup_serves_the_queue_with_old_and_new_workers(serve):
    """HUP with 20 in-flight requests on two workers without threads: the old
    workers take no more than their share of the queue, the new ones serve the
    rest, and every request is answered once."""
    if serve.name != "fastwsgi":
        pytest.skip("gunicorn's sync workers at HUP are not what is tested here")
    server = serve("-b", "127.0.0.1:0", "-w", "2", "--graceful-timeout", "20",
                   "webapp:application").wait_ready(workers=2)
    results = term_while_answering(server, [Client.connect(server.port) for _ in range(20)],
                                   b"/sleep?0.5", signal.SIGHUP)
    assert [result and result[1] for result in results] == [200] * 20, results
    # four workers for a while: well under the 10 x 0.5 s two would need
    assert max(result[0] for result in results) < 10 * 0.5 + 1.0, results
    assert len(re.findall(r"Booting worker with pid", server.log)) == 4, server.log
    server.signal(signal.SIGTERM)
    assert server.wait_exit(10) == 0, server.log


def test_term_refuses_what_the_graceful_timeout_cannot_cover(serve):
    """TERM with 8 one-second requests in one worker and a 3 s graceful timeout: those
    it has time for are served, the others get a prompt 503 with Connection: close,
    and the worker exits by itself before the master would kill it."""
    if serve.name != "fastwsgi":
        pytest.skip("gunicorn's sync worker leaves the requests still in the backlog unserved")
    server = serve("-b", "127.0.0.1:0", "-w", "1", "--graceful-timeout", "3",
                   "webapp:application").wait_ready()
    clients = keep_alive_clients(server.port, 8)
    began = time.monotonic()
    results = term_while_answering(server, clients, b"/sleep?1")
    statuses = sorted(result[1] for result in results if result)
    assert len(statuses) == 8, results
    assert 2 <= statuses.count(200) <= 3 and statuses.count(503) == 8 - statuses.count(200), results
    assert max(result[0] for result in results) < 3.5, results
    assert server.wait_exit(10) == 0, server.log
    assert time.monotonic() - began < 5
    assert "SIGKILL" not in server.log and "graceful timeout" not in server.log, server.log
