"""gunicorn's embedding contract, for programs that start the server themselves.

gunicorn's documentation shows this pattern; with ``import fastwsgi.app.base`` in
place of ``import gunicorn.app.base`` it runs the same pre-fork master as the
``fastwsgi`` command::

    class StandaloneApplication(fastwsgi.app.base.BaseApplication):
        def __init__(self, app, options=None):
            self.options = options or {}
            self.application = app
            super().__init__()

        def load_config(self):
            for key, value in self.options.items():
                if key in self.cfg.settings and value is not None:
                    self.cfg.set(key.lower(), value)

        def load(self):
            return self.application

    StandaloneApplication(app, {"bind": "127.0.0.1:8080", "workers": 4}).run()
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import Any, Callable, NoReturn

from .. import config as config_module
from ..config import Config


class BaseApplication:
    """Subclasses give ``load_config`` (settings into ``self.cfg``) and ``load``
    (returns the WSGI callable); ``run()`` serves until the master stops."""

    def __init__(self, usage: str | None = None, prog: str | None = None) -> None:
        self.usage = usage
        self.cfg: Config | None = None
        self.callable: Callable | None = None
        self.prog = prog
        self.logger = None
        self.do_load_config()

    def do_load_config(self) -> None:
        try:
            self.load_default_config()
            self.load_config()
            self.cfg.validate()
        except Exception as e:
            print(f"\nError: {e}", file=sys.stderr)
            sys.stderr.flush()
            sys.exit(1)

    def load_default_config(self) -> None:
        self.cfg = Config(self.usage, prog=self.prog)

    def init(self, parser: argparse.ArgumentParser, opts: argparse.Namespace, args: list) -> Any:
        raise NotImplementedError

    def load(self) -> Callable:
        raise NotImplementedError

    def load_config(self) -> None:
        raise NotImplementedError

    def reload(self) -> None:
        """HUP: the settings again. A failure raises, and the master keeps the
        running config (gunicorn's BaseApplication would exit)."""
        running = self.cfg
        try:
            self.load_default_config()
            self.load_config()
            self.cfg.validate()
        except BaseException:
            self.cfg = running
            raise
        if self.cfg.spew:
            from ..debug import install_line_tracer
            install_line_tracer()

    def wsgi(self) -> Callable:
        if self.callable is None:
            self.callable = self.load()
        return self.callable

    def restart_args(self) -> list[str]:
        """The command that starts this program again (USR2)."""
        return [sys.executable, os.path.abspath(sys.argv[0]), *sys.argv[1:]]

    def run(self) -> NoReturn:
        from ..cli import serve  # the command's own start-up, late: cli imports this package
        sys.exit(serve(self))


class Application(BaseApplication):
    """An application configured like the command: argv, GUNICORN_CMD_ARGS /
    FASTWSGI_CMD_ARGS and a config file, plus what ``init`` returns."""

    def chdir(self) -> None:
        config_module.apply_chdir(self.cfg)

    def get_config_from_filename(self, filename: str) -> dict[str, Any]:
        return config_module.read_config_file(filename)

    def get_config_from_module_name(self, module_name: str) -> dict[str, Any]:
        return config_module.read_config_file("python:" + module_name)

    def load_config_from_module_name_or_filename(self, location: str) -> dict[str, Any]:
        values = config_module.read_config_file(location)
        config_module.apply_config_values(self.cfg, values)
        return values

    def load_config_from_file(self, filename: str) -> dict[str, Any]:
        return self.load_config_from_module_name_or_filename(filename)

    def load_config(self) -> None:
        parser = config_module.build_parser(self.cfg.prog, self.cfg.usage)
        args = parser.parse_args()
        extra = self.init(parser, args, args.args)
        self.chdir()
        for name, value in (extra or {}).items():
            self.cfg.set(name.lower(), value)
        env_layers = [parser.parse_args(shlex.split(os.environ[var]))
                      for var in config_module.CMD_ARGS_VARS if var in os.environ]
        location = args.config
        for layer in reversed(env_layers):
            location = location or layer.config
        location = location or config_module.find_default_config_file()
        if location:
            self.load_config_from_file(location)
        for layer in env_layers + [args]:
            for name, value in config_module.given_settings(layer):
                self.cfg.set(name, value)
        self.chdir()
