"""Signals for a main loop, the self-pipe way: the C-level handler writes each
signal's number into a pipe (signal.set_wakeup_fd), and the loop reads them when
it is ready, where logging and forking are safe. The master's loop waits on it."""
from __future__ import annotations

import os
import select
import signal
from typing import Any, Iterable


def _written_to_the_pipe(sig: int, frame: Any) -> None:
    # Nothing to do: the C-level handler already wrote the signal number to the pipe.
    pass


class SignalPipe:
    def __init__(self) -> None:
        self.read_fd = self.write_fd = -1

    def install(self, signals: Iterable[int]) -> None:
        """Routes ``signals`` into the pipe (made once, non-blocking at both ends)."""
        if self.read_fd < 0:
            self.read_fd, self.write_fd = os.pipe()
            for fd in (self.read_fd, self.write_fd):
                os.set_blocking(fd, False)
        signal.set_wakeup_fd(self.write_fd, warn_on_full_buffer=False)
        for sig in signals:
            signal.signal(sig, _written_to_the_pipe)

    def wait(self, timeout: float, others: list) -> tuple[list[int], list]:
        """The signals that came within ``timeout`` seconds, and which of ``others``
        (objects with a fileno) became readable meanwhile."""
        try:
            ready, _, _ = select.select([self.read_fd] + others, [], [], timeout)
        except InterruptedError:
            ready = [self.read_fd]
        readable = [other for other in others if other in ready]
        if self.read_fd not in ready:
            return [], readable
        try:
            return list(os.read(self.read_fd, 4096)), readable
        except BlockingIOError:
            return [], readable

    def close(self) -> None:
        """In a forked child: the pipe is the master's."""
        signal.set_wakeup_fd(-1)
        for fd in (self.read_fd, self.write_fd):
            os.close(fd)
