"""Settings loaded as gunicorn loads them, from the one table in ``settings.py``.

Precedence, lowest first (gunicorn's): defaults, the config file, GUNICORN_CMD_ARGS
(then its twin FASTWSGI_CMD_ARGS), the command line.  The config file is the one
named by ``-c`` on the command line, else by ``-c`` in the env var, else
``./fastwsgi.conf.py`` or ``./gunicorn.conf.py`` when present.

``python -m fastwsgi.config --markdown`` prints the settings table for the README.
"""
from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import inspect
import os
import re
import shlex
import sys
import traceback
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from . import __version__
from .concurrency import WorkerModel, worker_model
from .errors import ConfigError, ConfigFileError
from .settings import BY_NAME, IGNORED, REFUSED, SETTINGS, Setting
from .sockets import Address, parse_address
from .validators import octal_int

CMD_ARGS_VARS = ("GUNICORN_CMD_ARGS", "FASTWSGI_CMD_ARGS")
DEFAULT_CONFIG_FILES = ("fastwsgi.conf.py", "gunicorn.conf.py")
USAGE = "%(prog)s [OPTIONS] [APP_MODULE]"


class Config:
    """Resolved values of every setting, read as attributes (``cfg.workers``) the way
    gunicorn's hooks read ``server.cfg``."""

    def __init__(self, usage: str | None = USAGE, prog: str | None = None) -> None:
        self.usage = usage
        self.prog = prog or os.path.basename(sys.argv[0])
        self.env_orig = os.environ.copy()
        self._values: dict[str, Any] = {s.name: s.initial() for s in SETTINGS}
        self._defaults = dict(self._values)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"No configuration setting for: {name}") from None

    def set(self, name: str, value: Any) -> None:
        if name not in BY_NAME:
            raise AttributeError(f"No configuration setting for: {name}")
        self._values[name] = BY_NAME[name].validator(value)

    def get(self, name: str) -> Any:
        return self._values[name]

    def __str__(self) -> str:
        width = max(len(name) for name in self._values)
        lines = []
        for name in sorted(self._values):
            value = self._values[name]
            if callable(value):
                value = f"<{value.__qualname__}()>"
            lines.append(f"{name:{width}} = {value}")
        return "\n".join(lines)

    # Derived values, named as gunicorn's Config names them (hooks use these).
    @property
    def address(self) -> list[Address]:
        return [parse_address(spec) for spec in self._values["bind"]]

    @property
    def uid(self) -> int:
        return self._values["user"]

    @property
    def gid(self) -> int:
        return self._values["group"]

    @property
    def proc_name(self) -> str:
        return self._values["proc_name"] or self._values["default_proc_name"]

    @property
    def worker_model(self) -> WorkerModel:
        """What the worker class and the concurrency settings become (concurrency.py)."""
        return worker_model(self._values["worker_class"], self._values["threads"],
                            self._values["worker_connections"])

    @property
    def worker_class_str(self) -> str:
        # gunicorn logs the worker it runs; fastwsgi's loop runs the app as one of these two.
        return "gthread" if self.worker_model.threads > 1 else "sync"

    @property
    def is_ssl(self) -> bool:
        return bool(self._values["certfile"] or self._values["keyfile"])

    @property
    def env(self) -> dict[str, str]:
        env = {}
        for item in self._values["raw_env"]:
            try:
                key, value = item.split("=", 1)
            except ValueError:
                raise RuntimeError(f"environment setting {item!r} invalid") from None
            env[key] = value
        return env

    @property
    def paste_global_conf(self) -> dict[str, str] | None:
        """raw_paste_global_conf as PasteDeploy's global_conf (``\\=`` escapes a '=')."""
        raw = self._values["raw_paste_global_conf"]
        if not raw:
            return None
        conf = {}
        for item in raw:
            parts = re.split(r"(?<!\\)=", item, maxsplit=1)
            if len(parts) != 2:
                raise RuntimeError(f"environment setting {item!r} invalid")
            conf[parts[0].replace("\\=", "=")] = parts[1].replace("\\=", "=")
        return conf

    @property
    def sendfile(self) -> bool:
        # --no-sendfile wins; else the SENDFILE env var may turn it off; else on.
        if self._values["sendfile"] is not None:
            return False
        if "SENDFILE" in os.environ:
            return os.environ["SENDFILE"].lower() in ("y", "1", "yes", "true")
        return True

    @property
    def root_path(self) -> str:
        # gunicorn takes the SCRIPT_NAME environment variable as the mount prefix too.
        return self._values["root_path"] or os.environ.get("SCRIPT_NAME", "")

    def unsupported(self) -> list[tuple[Setting, Any]]:
        """Settings whose current value fastwsgi does not honour, in table order."""
        found = []
        for setting in SETTINGS:
            value = self._values[setting.name]
            if setting.refused_with is not None:
                honoured = not setting.refused_with(self._values)
            elif setting.honoured is not None:
                honoured = setting.honoured(value)
            elif setting.support in (IGNORED, REFUSED):
                honoured = value == self._defaults[setting.name]
            else:
                honoured = True
            if not honoured:
                found.append((setting, value))
        return found

    @property
    def settings(self) -> dict[str, SettingValue]:
        """gunicorn's ``cfg.settings[name].value``, which some config files read."""
        return {name: SettingValue(BY_NAME[name], value) for name, value in self._values.items()}

    def validate(self) -> None:
        """Refuse what cannot be served safely; a ConfigError exits 1 before binding."""
        _ = self.worker_model  # raises ConfigError for a worker class fastwsgi cannot run
        for setting, value in self.unsupported():
            if setting.support == REFUSED:
                raise ConfigError(f"fastwsgi does not support {setting.name}={value!r}: "
                                  f"{setting.note or setting.doc}")

    def unsupported_warning(self) -> str | None:
        """The start-up warning: settings served differently from gunicorn, one a line."""
        lines = []
        note = self.worker_model.note
        if note:
            lines.append(f"fastwsgi runs worker_class={_shown(self._values['worker_class'])}: {note}")
        ignored = [(s, v) for s, v in self.unsupported() if s.support != REFUSED]
        if ignored:
            parts = [f"{setting.name}={_shown(value)}" + (f" ({setting.note})" if setting.note else "")
                     for setting, value in ignored]
            lines.append("fastwsgi ignores these settings: " + ", ".join(parts))
        return "\n".join(lines) or None


def _shown(value: Any) -> str:
    if inspect.isclass(value):
        return f"{value.__module__}.{value.__qualname__}"
    return f"<{value.__qualname__}()>" if callable(value) else repr(value)


class SettingValue:
    """One entry of ``Config.settings``: the setting's record and its current value."""

    def __init__(self, setting: Setting, value: Any) -> None:
        self.setting = setting
        self.name = setting.name
        self.section = setting.section
        self.validator = setting.validator
        self.value = value

    def get(self) -> Any:
        return self.value

    def __repr__(self) -> str:
        # gunicorn's Setting repr, which config files and tests print
        return f"<{type(self).__module__}.{type(self).__name__} object at {id(self):x} with value {self.value!r}>"


# --- argv and environment -------------------------------------------------

def build_parser(prog: str, usage: str | None = USAGE) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, usage=usage)
    parser.add_argument("-v", "--version", action="version", default=argparse.SUPPRESS,
                        version=f"%(prog)s (version {__version__})\n",
                        help="show program's version number and exit")
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    for setting in SETTINGS:
        if setting.cli:
            _add_option(parser, setting)
    return parser


def _add_option(parser: argparse.ArgumentParser, setting: Setting) -> None:
    shown_default = setting.default_factory() if setting.default_factory else setting.default
    kwargs: dict[str, Any] = {
        "dest": setting.name,
        "action": setting.action,
        # None marks "not given", so that only given flags override lower layers.
        "default": None,
        "help": f"{setting.doc} [{shown_default}]".replace("%", "%%"),
    }
    if setting.action == "store":
        kwargs["type"] = setting.cli_type or str
    if setting.meta is not None:
        kwargs["metavar"] = setting.meta
    if setting.nargs is not None:
        kwargs["nargs"] = setting.nargs
    if setting.const is not None:
        kwargs["const"] = setting.const
    parser.add_argument(*setting.cli, **kwargs)


def given_settings(namespace: argparse.Namespace) -> Iterable[tuple[str, Any]]:
    """The settings a parsed command line gives (flags left out are None)."""
    return ((k, v) for k, v in vars(namespace).items() if v is not None and k != "args")


def find_default_config_file(cwd: str | None = None) -> str | None:
    for name in DEFAULT_CONFIG_FILES:
        path = os.path.join(os.path.abspath(cwd or os.getcwd()), name)
        if os.path.exists(path):
            return path
    return None


def read_config_file(location: str) -> dict[str, Any]:
    """The module namespace of a config file (PATH, file:PATH) or python:MODULE."""
    if location.startswith("python:"):
        return vars(importlib.import_module(location[len("python:"):]))
    filename = location.removeprefix("file:")
    if not os.path.exists(filename):
        raise RuntimeError(f"{filename!r} doesn't exist")
    try:
        module_name = "__config__"
        loader = None
        if os.path.splitext(filename)[1] not in (".py", ".pyc"):
            sys.stderr.write("!!!\n!!! WARNING: configuration file should have a valid Python extension.\n!!!\n\n")
            loader = importlib.machinery.SourceFileLoader(module_name, filename)
        spec = importlib.util.spec_from_file_location(module_name, filename, loader=loader)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    except (Exception, SystemExit):
        # A config file calling sys.exit() is a broken config file too.
        raise ConfigFileError(f"Failed to read config file: {filename}\n{traceback.format_exc()}") from None
    return vars(module)


def apply_config_file(cfg: Config, location: str) -> None:
    apply_config_values(cfg, read_config_file(location))


def apply_config_values(cfg: Config, values: Mapping[str, Any]) -> None:
    for name, value in values.items():
        # A config file is a Python module: its imports and helpers are not settings.
        if name not in BY_NAME:
            continue
        try:
            cfg.set(name.lower(), value)
        except Exception:
            print(f"Invalid value for {name}: {value}\n", file=sys.stderr)
            sys.stderr.flush()
            raise


def apply_chdir(cfg: Config) -> None:
    os.chdir(cfg.chdir)
    if cfg.chdir not in sys.path:
        sys.path.insert(0, cfg.chdir)


def load(argv: Sequence[str], environ: Mapping[str, str] | None = None,
         prog: str | None = None) -> tuple[Config, str | None]:
    """argv (without the program name) → (Config, app spec).

    Exits 2 on an argparse error and 0 for --version/--help, as argparse does;
    raises for anything else (the CLI prints it as gunicorn does).
    """
    environ = os.environ if environ is None else environ
    cfg = Config(prog=prog)
    parser = build_parser(cfg.prog, cfg.usage)
    cli_args = parser.parse_args(list(argv))
    app_uri = cli_args.args[0] if cli_args.args else None
    if app_uri is not None:
        cfg.set("default_proc_name", app_uri)

    apply_chdir(cfg)
    env_layers = [parser.parse_args(shlex.split(environ[var])) for var in CMD_ARGS_VARS if var in environ]

    config_location = cli_args.config
    for layer in reversed(env_layers):
        config_location = config_location or layer.config
    config_location = config_location or find_default_config_file()
    if config_location:
        apply_config_file(cfg, config_location)

    for layer in env_layers + [cli_args]:
        for name, value in given_settings(layer):
            cfg.set(name, value)

    # The config file or the flags may have moved the working directory.
    apply_chdir(cfg)

    if cfg.paste is not None:
        # As gunicorn: the ini names the app (and wins over a spec), its file the
        # process, and its logging sections, if any, the log configuration.
        app_uri = os.path.abspath(cfg.paste)
        ini_file = app_uri.split("#")[0]
        if not os.path.exists(ini_file):
            raise ConfigError(f"{ini_file!r} not found")
        cfg.set("default_proc_name", ini_file)
        if has_logging_config(ini_file):
            cfg.set("logconfig", ini_file)
    if app_uri is None:
        app_uri = cfg.wsgi_app
        if app_uri is None:
            # A refused setting that names the app some other way (--paste) says so
            # rather than that no app was given.
            cfg.validate()
            raise ConfigError("No application module specified.")
    cfg.validate()
    return cfg, app_uri


def has_logging_config(ini_file: str) -> bool:
    """Whether a PasteDeploy ini configures logging (a [loggers] section)."""
    import configparser  # only for a paste app: not resident in every worker
    parser = configparser.ConfigParser()
    parser.read([ini_file])
    return parser.has_section("loggers")


# --- documentation ----------------------------------------------------------

def _markdown_default(setting: Setting) -> str:
    if setting.default_factory is not None:
        return "see description"
    default = setting.default
    if callable(default):
        return "no-op" if setting.name != "pre_request" else "logs the request at debug"
    if setting.validator is octal_int and default:
        return f"`0{default:o}`"   # permission bits read as they are written
    return f"`{default!r}`"


def markdown_table() -> str:
    """The settings table, as included by the README (docs/settings.md)."""
    lines = [
        "# Settings",
        "",
        "Generated by `python -m fastwsgi.config --markdown` from `fastwsgi/settings.py`. "
        "Every gunicorn setting is accepted under its gunicorn name and flags.",
        "",
        "| Setting | Command line | Default | fastwsgi | Description |",
        "| --- | --- | --- | --- | --- |",
    ]
    for setting in SETTINGS:
        flags = ", ".join(f"`{flag}`" for flag in setting.cli) or "config file"
        support = setting.support
        if setting.note:
            support = f"{support} ({setting.note})"
        cells = [f"`{setting.name}`", flags, _markdown_default(setting), support, setting.doc]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastwsgi.config")
    parser.add_argument("--markdown", action="store_true", help="print the settings table")
    args = parser.parse_args(argv)
    if args.markdown:
        sys.stdout.write(markdown_table())
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
