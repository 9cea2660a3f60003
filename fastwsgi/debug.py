"""--spew: gunicorn's line tracer (gunicorn/debug.py), installed the way gunicorn
installs it.

gunicorn calls ``sys.settrace`` in the master just before the arbiter runs (and again
when a HUP reloads the settings); the trace function survives fork(), so every
worker traces the app's lines too. Each executed line of Python code is printed to
stdout as ``module:lineno: source``. Code compiled by Cython (fastwsgi's loop and
parser) has no Python lines, so what is traced is the app, the hooks and the master's
Python code. Threads started after it (the app threads of --threads) are not traced,
as in gunicorn: sys.settrace covers the calling thread only.
"""
from __future__ import annotations

import inspect
import linecache
import sys
from types import FrameType
from typing import Any


class LineTracer:
    """A sys.settrace function printing each executed line, as gunicorn's Spew does
    with its defaults (every module, no variable values)."""

    def __call__(self, frame: FrameType, event: str, arg: Any) -> LineTracer:
        if event == "line":
            print(f"{self._module(frame)}:{frame.f_lineno}: {self._source(frame).rstrip()}")
        return self

    @staticmethod
    def _module(frame: FrameType) -> str:
        return frame.f_globals["__name__"] if "__file__" in frame.f_globals else "[unknown]"

    @staticmethod
    def _source(frame: FrameType) -> str:
        filename = frame.f_globals.get("__file__")
        if filename:
            if filename.endswith((".pyc", ".pyo")):
                filename = filename[:-1]
            return linecache.getline(filename, frame.f_lineno)
        # Code without a module file (exec'd strings): its source if inspect finds it.
        try:
            lines, start = inspect.getsourcelines(frame)
            return lines[frame.f_lineno - start]
        except (OSError, IndexError, TypeError):
            return f"Unknown code named [{frame.f_code.co_name}].  VM instruction #{frame.f_lasti}"


def install_line_tracer() -> None:
    sys.settrace(LineTracer())
