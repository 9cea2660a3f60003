"""The ``fastwsgi`` command: argv → Config → Arbiter, with gunicorn's messages and exit codes.

Exit codes: 0 normal stop, 1 configuration error, 2 bad command line (argparse),
3 a worker failed to boot, 4 the app failed to load.
"""
from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any, Callable

from . import config as config_module
from .app import AppLoader, add_pythonpath
from .config import Config
from .debug import install_line_tracer
from .errors import ConfigError, ConfigFileError


class Application:
    """What the arbiter serves: the settings and the app, reloadable on HUP."""

    def __init__(self, argv: Sequence[str], prog: str | None = None) -> None:
        self.argv = list(argv)
        self.prog = prog
        # Resolved now: --chdir moves the working directory while loading the config.
        self._restart_args = self._command_line()
        self.cfg: Config
        self.app_uri: str
        self.load_config()

    def load_config(self) -> None:
        self.cfg, self.app_uri = config_module.load(self.argv, prog=self.prog)
        self.loader = AppLoader(self.app_uri, paste=self.cfg.paste is not None,
                                global_conf=self.cfg.paste_global_conf)

    def reload(self) -> None:
        # Modules stay imported in the master: new code reaches new workers only
        # when the app is not preloaded (as in gunicorn).
        self.load_config()
        if self.cfg.spew:
            install_line_tracer()

    def wsgi(self) -> Callable:
        return self.loader.wsgi()

    def restart_args(self) -> list[str]:
        """The command that starts this master again (USR2)."""
        return list(self._restart_args)

    def _command_line(self) -> list[str]:
        main_module = sys.modules.get("__main__")
        spec = getattr(main_module, "__spec__", None)
        if spec is not None and spec.name in ("fastwsgi.__main__", "fastwsgi"):
            return [sys.executable, "-m", "fastwsgi", *self.argv]
        return [sys.executable, os.path.abspath(sys.argv[0]), *self.argv]


def _print_error(message: str) -> None:
    print(f"\nError: {message}", file=sys.stderr)
    sys.stderr.flush()


def check_app(application: Application) -> int:
    """--check-config / --print-config: the app must load; exit 0, or 1 with the traceback.
    What the start-up warning would say (settings served differently) is printed too."""
    warning = application.cfg.unsupported_warning()
    if warning:
        print(warning, file=sys.stderr)
    if application.cfg.is_ssl:
        from .tls import ssl_context
        try:
            ssl_context(application.cfg)
        except ConfigError as e:
            _print_error(str(e))
            return 1
    try:
        application.wsgi()
    except Exception:
        print("\nError while loading the application:\n", file=sys.stderr)
        traceback.print_exc()
        sys.stderr.flush()
        return 1
    return 0


def run(argv: Sequence[str], prog: str | None = None) -> int:
    try:
        application = Application(argv, prog=prog)
    except ConfigFileError as e:
        sys.stderr.write(e.detail)
        sys.stderr.flush()
        return 1
    except SystemExit:
        raise
    except Exception as e:
        _print_error(str(e))
        return 1
    return serve(application)


def serve(application: Any) -> int:
    """Runs the master for a loaded application (the command's, or an embedding
    one: fastwsgi.app.base); returns the exit status."""
    cfg = application.cfg

    if cfg.print_config:
        print(cfg)
    if cfg.print_config or cfg.check_config:
        add_pythonpath(cfg.pythonpath)
        return check_app(application)

    if cfg.daemon:
        if os.environ.get("NOTIFY_SOCKET"):
            print("Warning: you shouldn't specify `daemon = True` when launching by systemd "
                  "with `Type = notify`", file=sys.stderr, flush=True)
        # A USR2 re-exec inherits the old master's session: no second detach.
        from .arbiter import ENV_MASTER_PID
        if ENV_MASTER_PID not in os.environ:
            from .process import daemonize
            daemonize(cfg.enable_stdio_inheritance)

    add_pythonpath(cfg.pythonpath)
    if cfg.spew:
        # As gunicorn: in the master, before the arbiter runs; workers inherit it.
        install_line_tracer()

    from .arbiter import Arbiter  # after daemonizing: nothing forked or opened before
    try:
        Arbiter(application).run()
    except (RuntimeError, ConfigError) as e:
        _print_error(f"{e}\n")
        return 1
    return 0


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> Any:
    sys.exit(run(sys.argv[1:] if argv is None else argv, prog=prog))
