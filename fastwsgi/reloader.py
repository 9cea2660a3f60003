"""--reload: notice changed source files by polling their mtimes.

Polled from the serving loop's tick (about once a second), so no thread runs
beside the Cython loop and the check costs one stat per watched file.
"""
from __future__ import annotations

import glob
import os
import sys
from collections.abc import Iterable


class Reloader:
    def __init__(self, extra_files: Iterable[str] = ()) -> None:
        self.extra_files = list(extra_files)
        self._mtimes: dict[str, float] = {}
        self.changed()  # record the starting point

    def _watched(self) -> set[str]:
        files = set()
        for module in list(sys.modules.values()):
            path = getattr(module, "__file__", None)
            if path:
                files.add(path[:-1] if path.endswith(".pyc") else path)
        for entry in self.extra_files:
            files.update(glob.glob(entry, recursive=True) if glob.has_magic(entry) else [entry])
        return files

    def changed(self) -> str | None:
        """The first watched file modified since the last call, if any."""
        for path in self._watched():
            try:
                mtime = os.stat(path).st_mtime
            except OSError:
                continue
            previous = self._mtimes.setdefault(path, mtime)
            if mtime > previous:
                self._mtimes[path] = mtime
                return path
        return None
