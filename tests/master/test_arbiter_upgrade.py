"""Sockets handed over: systemd socket activation (LISTEN_FDS) and the USR2 binary upgrade."""
from __future__ import annotations

import os
import re
import signal
import socket

from support.processes import alive


def test_systemd_socket_activation(serve):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    fd = sock.fileno()

    def as_fd_3():
        os.dup2(fd, 3)

    # sd_listen_fds(3): LISTEN_PID must be the server's own pid, known only after exec.
    server = serve("webapp", env={"LISTEN_FDS": "1"}, extra_fds=(3,), preexec=as_fd_3,
                   wrapper=["/bin/sh", "-c", 'LISTEN_PID=$$ exec "$@"', "sh"])
    try:
        server.wait_ready()
        assert server.port == port
        assert server.request("/activated")[0] == 200
    finally:
        sock.close()


def test_usr2_starts_a_new_master_on_the_same_sockets(serve):
    pidfile = serve.dir / "app.pid"
    server = serve("-b", "127.0.0.1:0", "-p", str(pidfile), "webapp").wait_ready()
    server.signal(signal.SIGUSR2)
    starts = server.wait_for_log(r"\[(\d+)\] \[INFO\] Starting \S+ \S+$", count=2, timeout=15)
    new_master = int(starts[1].group(1))
    assert new_master != server.pid
    server.wait_for_log(rf"Listening at: http://127\.0\.0\.1:{server.port} \({new_master}\)")
    server.wait_until(lambda: (serve.dir / "app.pid.2").exists(), message="for app.pid.2")
    assert (serve.dir / "app.pid.2").read_text().strip() == str(new_master)
    assert server.request("/")[0] == 200

    # Retire the old master: the new one is promoted and takes the pid file's name.
    server.signal(signal.SIGTERM)
    assert server.wait_exit() == 0
    server.wait_for_log(rf"\[{new_master}\] \[INFO\] Master has been promoted\.", timeout=10,
                        require_alive=False)
    server.wait_until(lambda: pidfile.exists() and pidfile.read_text().strip() == str(new_master),
                      message="for the renamed pid file")
    statuses = {server.request("/")[0] for _ in range(3)}
    assert statuses == {200}
    os.kill(new_master, signal.SIGTERM)
    server.wait_until(lambda: not alive(new_master), message="for the new master to stop")
    assert not re.search(r"Traceback", server.log)

