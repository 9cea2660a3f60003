"""The servers a counted run starts under a counting tool (valgrind, strace):
fastwsgi, and nginx as the C ceiling.

A counted run is: start the server under the tool, send it a number of
requests (``callgrind_client``), let it exit, read what the tool counted.
Start-up and shutdown must cost the same whatever the number of requests, so
that the difference of two runs is the cost of the requests alone:

- fastwsgi (``callgrind_serve.py``) prints its port and stops by itself after
  its count (``max_requests``);
- nginx (``return 200 "Hello, World!"``, ``master_process off``, ``daemon off``,
  the configuration ``run.py`` measures it with, ``peerbench/peers.py``) listens
  on a port chosen here, is probed once until it accepts (the probe is in every
  run), and leaves on SIGQUIT, its graceful stop, once the client is done.
"""
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from peerbench import peers, processes  # noqa: E402
from peerbench.scenarios import SCENARIOS as PEER_SCENARIOS  # noqa: E402

SERVE = os.path.join(HERE, "callgrind_serve.py")
SERVERS = ("fastwsgi", "nginx")


def server_env():
    env = dict(os.environ)
    # Same hash seed and no .pyc writes: the two runs of a pair must do the
    # same start-up work, or its difference lands in the per-request figure.
    env.update(PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
    return env


def nginx_serves(scenario):
    """Whether nginx's `return 200` answers this scenario as fastwsgi's app does."""
    return scenario.app == "hello" and not scenario.tls and not scenario.options


class CountedServer:
    """One server process under a tool (`wrapper`, the tool's argv prefix)."""

    def __init__(self, proc, port, stop):
        self.proc, self.port, self._stop = proc, port, stop

    def finish(self, timeout):
        """Waits for the server to exit after the client's last request."""
        deadline = time.monotonic() + timeout
        while True:
            if self._stop is not None:
                # Again each second: under valgrind a signal that comes while the
                # server is starting to wait can stay pending there (seen with nginx).
                self._stop()
            try:
                _, err = self.proc.communicate(timeout=1 if self._stop is not None else timeout)
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline:
                    raise RuntimeError("server did not stop after its last request") from None
        if self.proc.returncode != 0:
            raise RuntimeError(f"server exited with code {self.proc.returncode}:\n{err[-2000:]}")

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.communicate()


def start(server, wrapper, python, scenario, options, requests, workdir, timeout):
    """`server` ("fastwsgi" or "nginx") under `wrapper`, ready for `requests` requests."""
    processes.raise_nofile()   # 1,000 connections on each side, and the tool's own descriptors
    if server == "fastwsgi":
        return _start_fastwsgi(wrapper, python, scenario, options, requests, workdir, timeout)
    if server == "nginx":
        return _start_nginx(wrapper, workdir, timeout)
    raise ValueError(f"unknown server {server!r}")


def _popen(cmd, workdir):
    return subprocess.Popen(cmd, cwd=workdir, env=server_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _start_fastwsgi(wrapper, python, scenario, options, requests, workdir, timeout):
    proc = _popen(wrapper + [python, SERVE, scenario.app, str(requests), json.dumps(options)],
                  workdir)
    try:
        return CountedServer(proc, _read_port(proc, time.monotonic() + timeout), None)
    except BaseException:
        CountedServer(proc, 0, None).kill()
        raise


def _read_port(proc, deadline):
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before listening:\n"
                               + proc.stderr.read()[-2000:])
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            if line.strip().isdigit():
                return int(line)
            raise RuntimeError(f"server did not print its port: {line!r}")
    raise RuntimeError("server did not listen in time")


def _start_nginx(wrapper, workdir, timeout):
    nginx = peers.Server("nginx", "nginx")
    nginx.nginx_dir = os.path.join(workdir, "nginx")
    port = processes.free_port()
    conf = nginx.write_nginx_conf(PEER_SCENARIOS["hello"], port)
    pid_file = os.path.join(nginx.nginx_dir, "nginx.pid")
    if os.path.exists(pid_file):
        os.unlink(pid_file)
    proc = _popen(wrapper + [nginx.nginx_bin(), "-p", nginx.nginx_dir, "-c", conf], workdir)

    pid = []

    def stop():
        # nginx's own pid (under strace it is the tool's child): SIGQUIT, its graceful stop
        if not pid:
            with open(pid_file) as f:
                pid.append(int(f.read()))
        try:
            os.kill(pid[0], signal.SIGQUIT)
        except ProcessLookupError:
            pass   # gone already: communicate() sees it

    server = CountedServer(proc, port, stop)
    try:
        _wait_accepting(proc, port, pid_file, time.monotonic() + timeout)
    except BaseException:
        server.kill()
        raise
    return server


def _wait_accepting(proc, port, pid_file, deadline):
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited with code {proc.returncode}:\n"
                               + proc.stderr.read()[-2000:])
        if os.path.exists(pid_file) and os.path.getsize(pid_file):
            try:
                socket.create_connection((processes.HOST, port), timeout=1).close()
                return
            except OSError:
                pass
        time.sleep(0.1)
    raise RuntimeError("nginx did not listen in time")
