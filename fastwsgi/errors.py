"""Exceptions shared by the configuration, app loading and master layers."""
from __future__ import annotations


class ConfigError(Exception):
    """A setting cannot be honoured; the CLI prints it as ``Error: ...`` and exits 1."""


class ConfigFileError(SystemExit):
    """A config file raised while it was read. Exits 1 at start (gunicorn prints
    ``detail`` and exits); a HUP logs it and keeps the running config."""

    def __init__(self, detail: str) -> None:
        super().__init__(1)
        self.detail = detail


class AppImportError(ImportError):
    """The app spec names nothing callable; a worker exits with APP_LOAD_ERROR (4)."""


class HaltServer(BaseException):
    """Raised inside the master to stop it with a reason and an exit status.

    A BaseException so that a broad ``except Exception`` in a hook cannot swallow it.
    """

    def __init__(self, reason: str, exit_status: int = 1) -> None:
        super().__init__(reason, exit_status)
        self.reason = reason
        self.exit_status = exit_status

    def __str__(self) -> str:
        return f"<HaltServer {self.reason!r} {self.exit_status}>"
