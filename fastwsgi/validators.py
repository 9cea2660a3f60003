"""Validators for settings: each takes a raw value (from argv, env or a config file)
and returns the typed value, or raises with gunicorn's message for the same mistake.

They accept strings (command line) as well as typed values (a Python config file),
because both sources feed the same setting.
"""
from __future__ import annotations

import glob
import grp
import inspect
import ipaddress
import os
import pwd
import re
import sys
import warnings
from typing import Any, Callable

from .errors import ConfigError


def boolean(val: Any) -> bool | None:
    if val is None:
        return None
    if isinstance(val, bool):
        return val
    if not isinstance(val, str):
        raise TypeError(f"Invalid type for casting: {val}")
    text = val.lower().strip()
    if text == "true":
        return True
    if text == "false":
        return False
    raise ValueError(f"Invalid boolean: {val}")


def pos_int(val: Any) -> int:
    # int(x, 0) so that "0o22" and "0x10" work from the command line as in gunicorn.
    number = int(val) if isinstance(val, int) else int(val, 0)
    if number < 0:
        raise ValueError(f"Value must be positive: {number}")
    return number


def pos_number(val: Any) -> float:
    """Seconds: a non-negative int or float, or its text."""
    number = float(val)
    if not number >= 0:  # also refuses NaN
        raise ValueError(f"Value must be positive: {val}")
    return number


def octal_int(val: Any) -> int:
    """umask: a leading 0 means octal ("022"), as shells and gunicorn read it."""
    if isinstance(val, str) and re.match(r"0\d", val):
        val = "0o" + val[1:]
    return pos_int(val)


def string(val: Any) -> str | None:
    if val is None:
        return None
    if not isinstance(val, str):
        raise TypeError(f"Not a string: {val}")
    return val.strip()


def statsd_address(val: Any) -> tuple[str, int] | str | None:
    """--statsd-host as gunicorn's cfg.statsd_host holds it: ("host", port) or a unix path."""
    if isinstance(val, tuple):
        return val  # already read (a Config copied or reloaded)
    val = string(val)
    if val is None:
        return None
    from .statsd import parse_statsd_address
    try:
        return parse_statsd_address(val)
    except (RuntimeError, ValueError):
        raise TypeError("Value must be one of ('host:port', 'unix://PATH')") from None


def string_list(val: Any) -> list[str]:
    if not val:
        return []
    # A bare string in a config file (bind = "0.0.0.0:80") means a list of one.
    if isinstance(val, str):
        val = [val]
    return [string(item) for item in val]


def comma_list(val: Any) -> list[str]:
    if isinstance(val, (list, tuple)):
        return [string(item) for item in val]
    text = string(val)
    if not text:
        return []
    return [item.strip() for item in text.split(",") if item]


def address_list(val: Any) -> list[str]:
    """forwarded_allow_ips / proxy_allow_ips: '*' or IPs/CIDR networks."""
    addresses = comma_list(val)
    for address in addresses:
        if address != "*":
            ipaddress.ip_network(address)
    return addresses


def dictionary(val: Any) -> dict:
    if not isinstance(val, dict):
        raise TypeError(f"Value is not a dictionary: {val} ")
    return val


def file_list(val: Any) -> list[str]:
    """reload_extra_files: literal paths must exist; glob patterns are re-expanded later."""
    entries = []
    for entry in string_list(val):
        if not glob.has_magic(entry):
            if not os.path.exists(entry):
                raise ValueError(f"File {entry} does not exists.")
        elif not glob.glob(entry, recursive=True):
            # As gunicorn: legitimate (files created later are picked up), so only a
            # RuntimeWarning on stderr, in gunicorn's words.
            warnings.warn(f"Pattern {entry} currently matches no files.", RuntimeWarning, stacklevel=2)
        entries.append(entry)
    return entries


def choice(*allowed: str, none_means: str | None = None) -> Callable[[Any], str | None]:
    def check(val: Any) -> str | None:
        if val is None:
            return none_means
        if not isinstance(val, str):
            raise TypeError(f"Invalid type for casting: {val}")
        text = val.lower().strip()
        if text not in allowed:
            raise ValueError(f"Invalid value {val!r}: expected one of {', '.join(allowed)}")
        return text

    return check


# ssl.PROTOCOL_TLS (an IntEnum equal to it), gunicorn's default ssl_version: the
# number, so that a server without TLS never loads ssl and OpenSSL.
PROTOCOL_TLS = 2


def ssl_version(val: Any) -> Any:
    # Deprecated and ignored, as in gunicorn, which says so on stderr in these words.
    if val != PROTOCOL_TLS:
        sys.stderr.write("Warning: option `ssl_version` is deprecated and it is ignored. "
                         "Use ssl_context instead.\n")
    return val


def reload_engine(val: Any) -> str:
    # gunicorn's own check and message (a ConfigError, not a ValueError).
    if val not in ("auto", "poll", "inotify"):
        raise ConfigError(f"Invalid reload_engine: {val!r}")
    return val


def proxy_protocol(val: Any) -> str:
    if val is None:
        return "off"
    if isinstance(val, bool):
        return "auto" if val else "off"
    if not isinstance(val, str):
        raise TypeError("proxy_protocol must be string or bool")
    modes = {"false": "off", "off": "off", "0": "off", "none": "off",
             "true": "auto", "auto": "auto", "1": "auto", "v1": "v1", "v2": "v2"}
    text = val.lower().strip()
    if text not in modes:
        raise ValueError("proxy_protocol must be: off, v1, v2, or auto")
    return modes[text]


def worker_class(val: Any) -> Any:
    # A class or a factory from a config file is kept as given: we only report it.
    if inspect.isfunction(val) or inspect.ismethod(val):
        val = val()
    if inspect.isclass(val):
        return val
    return string(val)


def user(val: Any) -> int:
    if val is None:
        return os.geteuid()
    if isinstance(val, int):
        return val
    if val.isdigit():
        return int(val)
    try:
        return pwd.getpwnam(val).pw_uid
    except KeyError:
        raise ConfigError(f"No such user: '{val}'") from None


def group(val: Any) -> int:
    if val is None:
        return os.getegid()
    if isinstance(val, int):
        return val
    if val.isdigit():
        return int(val)
    try:
        return grp.getgrnam(val).gr_gid
    except KeyError:
        raise ConfigError(f"No such group: '{val}'") from None


def chdir(val: Any) -> str:
    path = os.path.abspath(os.path.normpath(os.path.join(os.getcwd(), string(val))))
    if not os.path.exists(path):
        raise ConfigError(f"can't chdir to {val!r}")
    return path


def arity(func: Callable) -> int:
    """Number of positional parameters a hook declares (gunicorn checks hooks by arity)."""
    params = inspect.signature(func).parameters.values()
    return sum(1 for p in params
               if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def _resolve_dotted(val: str) -> Any:
    try:
        module_name, attr = val.rsplit(".", 1)
    except ValueError:
        raise TypeError(f"Value '{val}' is not import string. "
                        "Format: module[.submodules...].object") from None
    try:
        module = __import__(module_name, fromlist=[attr])
        return getattr(module, attr)
    except ImportError as e:
        raise TypeError(str(e)) from e
    except AttributeError:
        raise TypeError(f"Can not load '{attr}' from '{module_name}'") from None


def hook(expected_arity: int) -> Callable[[Any], Callable]:
    """A server hook: a callable (or 'pkg.mod.func') taking exactly `expected_arity` args."""

    def check(val: Any) -> Callable:
        if isinstance(val, str):
            val = _resolve_dotted(val)
        if not callable(val):
            raise TypeError(f"Value is not callable: {val}")
        if expected_arity != -1 and arity(val) != expected_arity:
            raise TypeError(f"Value must have an arity of: {expected_arity}")
        return val

    return check


def post_request_hook(val: Any) -> Callable:
    """post_request may take 2, 3 or 4 args; it is always called with 4."""
    func = hook(-1)(val)
    declared = arity(func)
    if declared == 4:
        return func
    if declared == 3:
        return lambda worker, req, environ, _resp: func(worker, req, environ)
    if declared == 2:
        return lambda worker, req, _environ, _resp: func(worker, req)
    raise TypeError("Value must have an arity of: 4")
