"""Start the real command (fastwsgi or gunicorn) as a user would, and always stop it.

Every wait is bounded; ``close()`` kills the whole process group it started.
"""
from __future__ import annotations

import http.client
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def command(name: str) -> list[str]:
    if name == "gunicorn":
        return [sys.executable, "-m", "gunicorn"]
    return [sys.executable, "-m", "fastwsgi"]


def available(name: str) -> bool:
    if name == "gunicorn":
        return importlib.util.find_spec("gunicorn") is not None
    return True


class ServerProcess:
    def __init__(self, name: str, args: list[str], cwd: Path, env: dict | None = None,
                 extra_fds: tuple = (), preexec=None, wrapper: list[str] | None = None,
                 program: list[str] | None = None) -> None:
        """``program`` replaces the command (``python -m NAME``), e.g. a script that embeds it."""
        self.name = name
        self.cwd = cwd
        self.stdout_path = cwd / f"{name}.stdout"
        self.stderr_path = cwd / f"{name}.stderr"
        full_env = {k: v for k, v in os.environ.items()
                    if k not in ("GUNICORN_CMD_ARGS", "FASTWSGI_CMD_ARGS", "WEB_CONCURRENCY", "PORT")}
        full_env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(cwd)])
        full_env["PYTHONUNBUFFERED"] = "1"
        full_env.update(env or {})
        argv = (wrapper or []) + (program or command(name)) + args
        self.proc = subprocess.Popen(
            argv, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL,
            stdout=open(self.stdout_path, "wb"), stderr=open(self.stderr_path, "wb"),
            start_new_session=True, pass_fds=extra_fds, preexec_fn=preexec)
        self.pid = self.proc.pid
        self.port: int | None = None

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
        tcp = re.match(r"http://(?:\[[^\]]+\]|[^:]+):(\d+)", first)
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
        try:
            text = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text()
        except OSError:
            return set()
        pids = set()
        for pid in map(int, text.split()):
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z":
                pids.add(pid)
        return pids

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


def which(name: str) -> str | None:
    return shutil.which(name)
