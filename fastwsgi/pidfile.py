"""The master's pid file: written atomically, refused while another live process owns it."""
from __future__ import annotations

import errno
import os
import tempfile


class Pidfile:
    def __init__(self, fname: str) -> None:
        self.fname = fname
        self.pid: int | None = None

    def create(self, pid: int) -> None:
        running = self.validate()
        if running:
            if running == os.getpid():
                return
            raise RuntimeError(f"Already running on PID {running} (or pid file '{self.fname}' is stale)")
        self.pid = pid
        directory = os.path.dirname(self.fname)
        if directory and not os.path.isdir(directory):
            raise RuntimeError(f"{directory} doesn't exist. Can't create pidfile.")
        # Written beside the target and renamed over it: readers never see half a pid.
        fd, tmpname = tempfile.mkstemp(dir=directory or None)
        try:
            os.write(fd, f"{pid}\n".encode())
        finally:
            os.close(fd)
        os.rename(tmpname, self.fname)
        os.chmod(self.fname, 0o644)

    def rename(self, path: str) -> None:
        self.unlink()
        self.fname = path
        self.create(self.pid)

    def unlink(self) -> None:
        """Remove the file, but only while it still names us (a new master may own it)."""
        try:
            with open(self.fname) as f:
                if int(f.read() or 0) == self.pid:
                    os.unlink(self.fname)
        except (OSError, ValueError):
            pass

    def validate(self) -> int | None:
        """The pid in the file if that process is alive, else None (stale or absent)."""
        try:
            with open(self.fname) as f:
                pid = int(f.read())
        except FileNotFoundError:
            return None
        except ValueError:
            return None
        try:
            os.kill(pid, 0)
        except OSError as e:
            if e.errno == errno.EPERM:
                return pid
            if e.errno == errno.ESRCH:
                return None
            raise
        return pid
