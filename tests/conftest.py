"""Shared test set-up: the repository and tests/ on sys.path, and the fixtures."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT), str(Path(__file__).resolve().parent)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from cli_fixtures import APPS, command_name, project, serve  # noqa: E402,F401
