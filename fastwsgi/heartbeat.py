"""A worker's heartbeat: the mtime of an unlinked temporary file.

The worker touches it from the loop's tick; the master reads it with fstat.
Both sides use CLOCK_MONOTONIC values, so wall-clock jumps never kill a worker.
A file (not a pipe) means the master never blocks and a worker's death needs no
cleanup: the fd is closed and the inode goes away.
"""
from __future__ import annotations

import os
import tempfile
import time


class Heartbeat:
    def __init__(self, directory: str | None = None, umask: int = 0,
                 uid: int | None = None, gid: int | None = None) -> None:
        if directory and not os.path.isdir(directory):
            raise RuntimeError(f"{directory} doesn't exist. Can't create workertmp.")
        old_umask = os.umask(umask)
        try:
            fd, name = tempfile.mkstemp(prefix="wfastwsgi-", dir=directory)
        finally:
            os.umask(old_umask)
        try:
            # A worker that switched to another user must still be able to touch it.
            if uid is not None and gid is not None and (uid != os.geteuid() or gid != os.getegid()):
                os.chown(name, uid, gid)
            os.unlink(name)
        except BaseException:
            os.close(fd)
            raise
        self._fd: int | None = fd

    def notify(self) -> None:
        now = time.monotonic()
        os.utime(self._fd, (now, now))

    def last_update(self) -> float:
        """Monotonic time of the last notify; the wall-clock creation time before any
        (far in the future on the monotonic scale, so a booting worker is never "silent")."""
        return os.fstat(self._fd).st_mtime

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None
