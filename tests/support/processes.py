"""Processes the tests start, and always stop: the command (``ServerProcess``), a Python
module that serves and prints its port (``PortProcess``), and what /proc says of them.

Every wait is bounded.  Standard library only at import (see ``support/__init__.py``).
"""
from __future__ import annotations

import ctypes
import http.client
import importlib.util
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from support import ROOT, TESTS

# Variables that would change what the command reads; no test inherits them.
COMMAND_ENV = ("GUNICORN_CMD_ARGS", "FASTWSGI_CMD_ARGS", "WEB_CONCURRENCY", "PORT")


def free_port() -> int:
    """A loopback TCP port nothing listens on now (for a server that takes a fixed --bind)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- /proc ---------------------------------------------------------------------------

def children(pid: int) -> list[int]:
    """The children of ``pid`` (of its main thread), zombies included; [] once it is gone."""
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return _stat(pid)[0] != "Z"
    except OSError:
        return False


def listening_port(pid: int) -> int:
    """The TCP port ``pid`` listens on, from /proc (for a server whose log is silenced)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as lines:
            for line in lines.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:   # 0A: TCP_LISTEN
                    return int(fields[1].rsplit(":", 1)[1], 16)
    raise AssertionError(f"process {pid} listens on no TCP port")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time ``pid`` has used."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name, from the state on (proc(5))."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def become_subreaper() -> None:
    """Orphans of the servers we start (a daemonized master, the new master of a USR2
    upgrade) are re-parented to this process instead of pid 1, so the test can reap them."""
    PR_SET_CHILD_SUBREAPER = 36
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def reap_orphans(tracked: set) -> None:
    """Kills and reaps our children that run fastwsgi or gunicorn and are not in ``tracked``."""
    for pid in children(os.getpid()):
        if pid in tracked:
            continue  # Popen reaps its own
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"fastwsgi" not in cmdline and b"gunicorn" not in cmdline and cmdline:
            continue  # not one of ours
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def python_env(*paths, env: dict | None = None) -> dict:
    """This process's environment without COMMAND_ENV, with PYTHONPATH set to ``paths``."""
    full_env = {k: v for k, v in os.environ.items() if k not in COMMAND_ENV}
    full_env["PYTHONPATH"] = os.pathsep.join(str(path) for path in paths)
    full_env.update(env or {})
    return full_env


# --- the command ---------------------------------------------------------------------

def command(name: str) -> list[str]:
    if name == "gunicorn":
        return [sys.executable, "-m", "gunicorn"]
    return [sys.executable, "-m", "fastwsgi"]


def available(name: str) -> bool:
    if name == "gunicorn":
        return importlib.util.find_spec("gunicorn") is not None
    return True


# Signals that mean a process crashed (a worker killed by one is logged by its master).
CRASH_SIGNALS = ("SIGSEGV", "SIGBUS", "SIGABRT", "SIGILL", "SIGFPE")
CRASH_LINE = re.compile(r"was sent (%s)" % "|".join(CRASH_SIGNALS))
# Every process a test started, for the check after it (fixtures.no_crashed_process).
STARTED: list = []


def crashes(process) -> list[str]:
    """What says ``process`` (a ServerProcess or PortProcess) or one of its workers
    crashed: its master's log lines, or its own exit status."""
    found = []
    code = process.proc.poll()
    if code is not None and code < 0 and signal.Signals(-code).name in CRASH_SIGNALS:
        found.append(f"{process} exited by {signal.Signals(-code).name}")
    log_path = getattr(process, "stderr_path", None)
    if log_path is not None and log_path.exists():
        found += [line for line in log_path.read_text(errors="replace").splitlines()
                  if CRASH_LINE.search(line)]
    return found


class ServerProcess:
    """The real command (fastwsgi or gunicorn) run as a user would, in a session of its own."""

    def __init__(self, name: str, args: list[str], cwd: Path, env: dict | None = None,
                 extra_fds: tuple = (), preexec=None, wrapper: list[str] | None = None,
                 program: list[str] | None = None) -> None:
        """``program`` replaces the command (``python -m NAME``), e.g. a script that embeds it."""
        self.name = name
        self.cwd = cwd
        self.stdout_path = cwd / f"{name}.stdout"
        self.stderr_path = cwd / f"{name}.stderr"
        # XDG_RUNTIME_DIR: a control socket at its default path lands in the scratch
        # directory, not in a directory every test (and the user) shares.
        full_env = python_env(ROOT, cwd, env={"PYTHONUNBUFFERED": "1", "XDG_RUNTIME_DIR": str(cwd),
                                              **(env or {})})
        argv = (wrapper or []) + (program or command(name)) + args
        self.proc = subprocess.Popen(
            argv, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL,
            stdout=open(self.stdout_path, "wb"), stderr=open(self.stderr_path, "wb"),
            start_new_session=True, pass_fds=extra_fds, preexec_fn=preexec)
        self.pid = self.proc.pid
        self.port: int | None = None
        STARTED.append(self)

    def __str__(self) -> str:
        return f"{self.name} (pid {self.pid})"

    # --- output --------------------------------------------------------------------
    @property
    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    @property
    def out(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def wait_for_log(self, pattern: str, timeout: float = 10.0, count: int = 1,
                     require_alive: bool = True) -> list[re.Match]:
        deadline = time.monotonic() + timeout
        while True:
            matches = list(re.finditer(pattern, self.log, re.MULTILINE))
            if len(matches) >= count:
                return matches
            exited = self.proc.poll() is not None
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: no {count}x {pattern!r} within {timeout}s; log:\n{self.log}")
            # Re-read: the last lines may have landed between the read and the poll.
            if require_alive and exited and len(list(re.finditer(pattern, self.log, re.MULTILINE))) < count:
                raise AssertionError(f"{self.name} exited {self.proc.returncode} before {pattern!r}:\n{self.log}")
            time.sleep(0.05)

    def wait_ready(self, workers: int = 1, timeout: float = 15.0) -> ServerProcess:
        match = self.wait_for_log(r"Listening at: (\S+) \((\d+)\)", timeout)[0]
        first = match.group(1).split(",")[0]
        tcp = re.match(r"https?://(?:\[[^\]]+\]|[^:]+):(\d+)", first)
        if tcp:
            self.port = int(tcp.group(1))
        self.wait_for_log(r"Booting worker with pid: \d+", timeout, count=workers)
        self.wait_until(lambda: len(self.worker_pids()) >= workers, timeout)
        return self

    def wait_until(self, predicate, timeout: float = 10.0, message: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: timed out waiting {message}; log:\n{self.log}")
            time.sleep(0.05)

    def wait_exit(self, timeout: float = 15.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} did not exit within {timeout}s; log:\n{self.log}") from None

    # --- processes -------------------------------------------------------------------
    def worker_pids(self) -> set[int]:
        return {pid for pid in children(self.pid) if alive(pid)}

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    # --- requests ---------------------------------------------------------------------
    def request(self, path: str = "/", method: str = "GET", headers: dict | None = None,
                timeout: float = 10.0, unix: str | None = None) -> tuple[int, bytes, dict]:
        if unix:
            conn = http.client.HTTPConnection("localhost", timeout=timeout)
            sock = socket.socket(socket.AF_UNIX)
            sock.settimeout(timeout)
            sock.connect(unix)
            conn.sock = sock
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read(), dict(response.getheaders())
        finally:
            conn.close()

    def close(self) -> None:
        """TERM, then KILL the whole group: nothing we started outlives the test."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass


# --- a module that serves and prints its port ----------------------------------------------

class PortProcess:
    """``python -m MODULE ARGS`` (a module of ``support.apps``) that prints the port it
    listens on, on 127.0.0.1, as its first line; its stdout stays readable as text."""

    def __init__(self, module: str, *args: str, preexec=None, timeout: float = 30.0) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", module, *args], stdout=subprocess.PIPE,
                                     env=python_env(ROOT, TESTS), text=True, preexec_fn=preexec)
        self.pid = self.proc.pid
        self.module = module
        STARTED.append(self)
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.close()
            raise AssertionError(f"{module} printed no port within {timeout}s")
        line = self.proc.stdout.readline()
        if not line.strip():
            self.close()
            raise AssertionError(f"{module} exited ({self.proc.returncode}) without printing its port")
        self.port = int(line)

    def __str__(self) -> str:
        return f"{self.module} (pid {self.pid})"

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, and its exit status within ``timeout``; killed if it is still running."""
        self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        finally:
            self.close()

    def close(self) -> None:
        """KILL it if it still runs: nothing we started outlives the test."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
