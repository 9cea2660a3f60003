"""A burst of slow requests is spread over the workers, as gunicorn's sync workers spread it."""
from __future__ import annotations

import collections
import socket

from support.wire import read_all


def test_a_burst_of_slow_requests_is_shared_by_the_workers(serve):
    server = serve("-b", "127.0.0.1:0", "-w", "2", "webapp").wait_ready(workers=2)
    # All connected before any request is sent: the burst waits in the shared backlog.
    burst = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(16)]
    for sock in burst:
        sock.sendall(b"GET /sleep?0.25 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    pids = [read_all(sock, timeout=30).rsplit(b" ", 1)[1] for sock in burst]
    for sock in burst:
        sock.close()
    served = collections.Counter(pids)
    assert len(served) == 2 and min(served.values()) >= 4, served
