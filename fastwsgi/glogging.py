"""The error log and the access log, line for line as gunicorn writes them.

Error log:  ``[2024-01-02 03:04:05 +0000] [1234] [INFO] Starting fastwsgi 0.1.0``
Access log: gunicorn's ``access_log_format`` with every atom (h l u t r s m U q H
b B f a T D M L p, {header}i, {header}o, {var}e), built from the environ and the
response the serving loop reports.

The loggers keep gunicorn's names, ``gunicorn.error`` and ``gunicorn.access``, so
that an existing ``logconfig_dict`` or Django LOGGING entry for them keeps working.
"""
from __future__ import annotations

import base64
import binascii
import codecs
import datetime
import importlib
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from .log_format import DATE_FORMAT, ERROR_FORMAT
from .statsd import LogCounter, Statsd

ERROR_LOGGER = "gunicorn.error"
ACCESS_LOGGER = "gunicorn.access"

LOG_LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}

# The base that logconfig_dict / logconfig_json are merged over (gunicorn's).
CONFIG_DEFAULTS: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": "INFO", "handlers": ["console"]},
    "loggers": {
        ERROR_LOGGER: {"level": "INFO", "handlers": ["error_console"], "propagate": True,
                       "qualname": ERROR_LOGGER},
        ACCESS_LOGGER: {"level": "INFO", "handlers": ["console"], "propagate": True,
                        "qualname": ACCESS_LOGGER},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "generic", "stream": "ext://sys.stdout"},
        "error_console": {"class": "logging.StreamHandler", "formatter": "generic",
                          "stream": "ext://sys.stderr"},
    },
    "formatters": {
        "generic": {"format": ERROR_FORMAT, "datefmt": DATE_FORMAT, "class": "logging.Formatter"},
    },
}

# The atoms a format names: "%(h)s", "%({x-request-id}i)s".
ATOM_NAME = re.compile(r"%\(([^)]*)\)")

# Handlers we install carry this attribute, so a reload replaces only ours.
_OURS = "_fastwsgi"


class BatchingHandler(logging.Handler):
    """Access lines are formatted at once and written at the end of the serving
    loop's iteration that produced them (or per 64 KiB): under load one write(2)
    carries the lines of every request answered in that iteration, and on an idle
    server each line reaches the file right after its response, so a worker killed
    with SIGKILL loses none of the requests it finished."""

    flush_at_bytes = 64 * 1024

    def __init__(self, target: logging.StreamHandler) -> None:
        super().__init__()
        self.target = target
        self._lines: list[str] = []
        self._size = 0

    def setFormatter(self, fmt: logging.Formatter | None) -> None:  # noqa: N802 (logging's name)
        super().setFormatter(fmt)
        self.target.setFormatter(fmt)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.add_line(line)

    def add_line(self, line: str) -> None:
        """A formatted line; the logger's fast path calls this without a LogRecord."""
        line += self.target.terminator
        self._lines.append(line)
        self._size += len(line)
        if self._size >= self.flush_at_bytes:
            self.flush()

    def flush(self) -> None:
        self.acquire()
        try:
            if self._lines and self.target.stream is not None:
                self.target.stream.write("".join(self._lines))
                self.target.flush()
            self._lines.clear()
            self._size = 0
        except Exception:
            self._lines.clear()
            self._size = 0
        finally:
            self.release()

    def write_encoded(self, data: bytes) -> None:
        """Lines the loop's writer rendered (UTF-8, each ending in a newline), when it
        cannot reach the stream's descriptor itself."""
        self.acquire()
        try:
            self.flush()
            if self.target.stream is not None:
                self.target.stream.write(data.decode("utf-8"))
                self.target.flush()
        except Exception:
            pass  # lost, as flush() loses what it cannot write
        finally:
            self.release()

    def close(self) -> None:
        self.flush()
        self.target.close()
        super().close()


class SafeAtoms(dict):
    """Atoms for ``format % atoms``: quotes escaped, {..} keys case-insensitive,
    anything unknown rendered as '-' (gunicorn's rules)."""

    def __init__(self, atoms: dict[str, Any]) -> None:
        super().__init__()
        for key, value in atoms.items():
            self[key] = value.replace('"', '\\"') if isinstance(value, str) else value

    def __getitem__(self, key: str) -> Any:
        if key.startswith("{"):
            key = key.lower()
        return super().__getitem__(key) if key in self else "-"


def request_headers(environ: dict) -> list[tuple[str, str]]:
    """Request header fields recovered from the environ (HTTP_X_Y → x-y)."""
    headers = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers.append((key[5:].replace("_", "-").lower(), value))
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            headers.append((key.replace("_", "-").lower(), value))
    return headers


def raw_uri(environ: dict) -> str:
    """The request-target as sent; the loop gives RAW_URI, else rebuild it."""
    if "RAW_URI" in environ:
        return environ["RAW_URI"]
    uri = quote(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""), safe="/;=,:@&+$!*'()~")
    if environ.get("QUERY_STRING"):
        uri += "?" + environ["QUERY_STRING"]
    return uri


def _remote_user(environ: dict) -> str | None:
    # gunicorn shows the Basic-auth user name in %(u)s.
    auth = environ.get("HTTP_AUTHORIZATION")
    if not auth:
        return None
    scheme, _, credentials = auth.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip()).decode("utf-8")
    except (TypeError, binascii.Error, UnicodeDecodeError):
        return None
    return decoded.split(":", 1)[0] if ":" in decoded else None


def access_atoms(environ: dict, status: str, response_headers: Iterable[tuple[str, str]],
                 sent: int | None, request_time: datetime.timedelta,
                 fields: bool = True) -> dict[str, Any]:
    """gunicorn's atoms; ``fields=False`` leaves out the {name}i/o/e ones, which
    cost a pass over the environ and the headers."""
    method = environ.get("REQUEST_METHOD")
    protocol = environ.get("SERVER_PROTOCOL")
    atoms: dict[str, Any] = {
        "h": environ.get("REMOTE_ADDR", "-"),
        "l": "-",
        "u": _remote_user(environ) or "-",
        "t": time.strftime("[%d/%b/%Y:%H:%M:%S %z]"),
        "r": f"{method} {raw_uri(environ)} {protocol}",
        "s": status.split(None, 1)[0] if isinstance(status, str) else status,
        "m": method,
        "U": environ.get("PATH_INFO"),
        "q": environ.get("QUERY_STRING"),
        "H": protocol,
        "b": str(sent) if sent is not None else "-",
        "B": sent,
        "f": environ.get("HTTP_REFERER", "-"),
        "a": environ.get("HTTP_USER_AGENT", "-"),
        "T": request_time.seconds,
        "D": request_time.seconds * 1000000 + request_time.microseconds,
        "M": request_time.seconds * 1000 + int(request_time.microseconds / 1000),
        "L": f"{request_time.seconds}.{request_time.microseconds:06d}",
        "p": f"<{os.getpid()}>",
    }
    if not fields:
        return atoms
    atoms.update({f"{{{name.lower()}}}i": value for name, value in request_headers(environ)})
    atoms.update({f"{{{name.lower()}}}o": value for name, value in response_headers})
    atoms.update({f"{{{key.lower()}}}e": value for key, value in environ.items()})
    return atoms


def _clock_atom() -> str:
    """%(t)s, formatted once a second rather than once a line."""
    now = int(time.time())
    if now != _clock_cache[0]:
        _clock_cache[0] = now
        _clock_cache[1] = time.strftime("[%d/%b/%Y:%H:%M:%S %z]", time.localtime(now))
    return _clock_cache[1]


_clock_cache: list[Any] = [None, ""]


def _duration_atom(name: str, request_time: datetime.timedelta) -> Any:
    if name == "T":
        return request_time.seconds
    if name == "D":
        return request_time.seconds * 1000000 + request_time.microseconds
    if name == "M":
        return request_time.seconds * 1000 + int(request_time.microseconds / 1000)
    return f"{request_time.seconds}.{request_time.microseconds:06d}"


# The format's parts, for AccessFormat.plan: "%%", "%(name)s", or a "%" of any
# other kind (a width, another conversion), which the plan leaves to "fmt % atoms".
FORMAT_PART = re.compile(r"%%|%\(([^()]*)\)s|%")

# One function per simple atom: (environ, status, sent) -> value, as access_atoms has it.
SIMPLE_ATOMS: dict[str, Any] = {
    "h": lambda environ, status, sent: environ.get("REMOTE_ADDR", "-"),
    "l": lambda environ, status, sent: "-",
    "u": lambda environ, status, sent: _remote_user(environ) or "-",
    "t": lambda environ, status, sent: _clock_atom(),
    "r": lambda environ, status, sent: (f"{environ.get('REQUEST_METHOD')} {raw_uri(environ)} "
                                        f"{environ.get('SERVER_PROTOCOL')}"),
    "s": lambda environ, status, sent: status.split(None, 1)[0] if isinstance(status, str) else status,
    "m": lambda environ, status, sent: environ.get("REQUEST_METHOD"),
    "U": lambda environ, status, sent: environ.get("PATH_INFO"),
    "q": lambda environ, status, sent: environ.get("QUERY_STRING"),
    "H": lambda environ, status, sent: environ.get("SERVER_PROTOCOL"),
    "b": lambda environ, status, sent: str(sent) if sent is not None else "-",
    "B": lambda environ, status, sent: sent,
    "f": lambda environ, status, sent: environ.get("HTTP_REFERER", "-"),
    "a": lambda environ, status, sent: environ.get("HTTP_USER_AGENT", "-"),
    "p": lambda environ, status, sent: f"<{os.getpid()}>",
}
DURATION_ATOMS = frozenset("TDML")


def _line_function(atom: Any) -> Any:
    """A SIMPLE_ATOMS function as the writer calls it: with the line's five arguments."""
    return lambda environ, status, headers, sent, seconds: atom(environ, status, sent)


def _environ_field(key: str) -> Any:
    """{key}e: the value of the environ key whose lower case is ``key``, the last one."""
    def value(environ: dict, status: str, headers: Any, sent: int, seconds: float) -> Any:
        found = "-"
        for name, item in environ.items():
            if name.lower() == key:
                found = item
        return found
    return value


def _request_field(name: str) -> Any:
    """{name}i, from the environ's fields as request_headers recovers them."""
    def value(environ: dict, status: str, headers: Any, sent: int, seconds: float) -> Any:
        found = "-"
        for field, item in request_headers(environ):
            if field == name:
                found = item
        return found
    return value


# The atoms the writer renders itself: (kind, argument, default). The rest of
# SIMPLE_ATOMS it renders through their functions.
_PLANNED_ATOMS: dict[str, tuple[str, Any, Any]] = {
    "h": ("environ", "REMOTE_ADDR", "-"),
    "l": ("text", "-", None),
    "t": ("clock", _clock_atom, None),
    "m": ("environ", "REQUEST_METHOD", None),
    "U": ("environ", "PATH_INFO", None),
    "q": ("environ", "QUERY_STRING", None),
    "H": ("environ", "SERVER_PROTOCOL", None),
    "b": ("sent", None, None),
    "B": ("sent", None, None),
    "f": ("environ", "HTTP_REFERER", "-"),
    "a": ("environ", "HTTP_USER_AGENT", "-"),
    "p": ("pid", None, None),
    "T": ("T", None, None),
    "D": ("D", None, None),
    "M": ("M", None, None),
    "L": ("L", None, None),
}
# Atoms with a fast path in the writer and a function for the rare case.
_ATOMS_WITH_FUNCTION = {"u": "user", "r": "request_line", "s": "status"}


def _plan_atom(name: str) -> tuple[str, Any, Any]:
    if name in _PLANNED_ATOMS:
        return _PLANNED_ATOMS[name]
    if name in _ATOMS_WITH_FUNCTION:
        return (_ATOMS_WITH_FUNCTION[name], _line_function(SIMPLE_ATOMS[name]), None)
    if not (name.startswith("{") and len(name) > 3 and name[-2] == "}" and name[-1] in "ioe"):
        return ("text", "-", None)  # unknown: "-", as SafeAtoms has it
    field, kind = name[1:-2].lower(), name[-1]
    if kind == "o":
        return ("response_header", field, "-")
    if kind == "e":
        return ("python", _environ_field(field), None)
    if (field.isascii() and "_" not in field
            and field not in ("content-type", "content-length")):
        # request_headers names HTTP_X_Y "x-y": this is the key it came from.
        return ("environ", "HTTP_" + field.upper().replace("-", "_"), "-")
    return ("python", _request_field(field), None)


class AccessFormat:
    """An access_log_format compiled once: each line computes only the atoms the
    format names (access_atoms computes them all, the {name}e ones alone one per
    environ key), under SafeAtoms' rules; the line is the same."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.names = tuple(dict.fromkeys(ATOM_NAME.findall(fmt)))
        self.simple = tuple((name, SIMPLE_ATOMS[name]) for name in self.names if name in SIMPLE_ATOMS)
        self.durations = tuple(name for name in self.names if name in DURATION_ATOMS)
        self.fields = tuple(name for name in self.names if name.startswith("{"))
        self.unknown = tuple(name for name in self.names if name not in SIMPLE_ATOMS
                             and name not in DURATION_ATOMS and not name.startswith("{"))
        # A format with no named atom is rendered the general way (gunicorn's).
        self.general = not self.names

    def plan(self) -> list[tuple[str, Any, Any]] | None:
        """The format as the loop's AccessLineWriter renders it: (kind, argument,
        default) per segment; None for a format only "fmt % atoms" renders the same
        (a width, another conversion than s, or no atom at all)."""
        if self.general:
            return None
        segments: list[tuple[str, Any, Any]] = []
        text: list[str] = []
        at = 0
        for part in FORMAT_PART.finditer(self.fmt):
            text.append(self.fmt[at:part.start()])
            at = part.end()
            if part.group(0) == "%%":
                text.append("%")
                continue
            name = part.group(1)
            if name is None:
                return None
            segment = _plan_atom(name)
            if segment[0] == "text":
                text.append(segment[1])
                continue
            if text:
                segments.append(("text", "".join(text), None))
                text = []
            segments.append(segment)
        text.append(self.fmt[at:])
        if "".join(text):
            segments.append(("text", "".join(text), None))
        return segments

    def atoms(self, environ: dict, status: str, response_headers: Iterable[tuple[str, str]],
              sent: int | None, request_seconds: float) -> dict[str, Any]:
        if self.general or self.fields:
            every = access_atoms(environ, status, response_headers, sent,
                                 datetime.timedelta(seconds=request_seconds), bool(self.fields))
            if self.general:
                return SafeAtoms(every)
            named = {name: every.get(name.lower() if name.startswith("{") else name, "-")
                     for name in self.names}
        else:
            named = {name: atom(environ, status, sent) for name, atom in self.simple}
            if self.durations:
                request_time = datetime.timedelta(seconds=request_seconds)
                for name in self.durations:
                    named[name] = _duration_atom(name, request_time)
            for name in self.unknown:
                named[name] = "-"
        for name, value in named.items():
            if isinstance(value, str) and '"' in value:
                named[name] = value.replace('"', '\\"')
        return named


class Logger:
    """gunicorn's Logger interface (``server.log`` / ``worker.log`` in hooks)."""

    error_fmt = ERROR_FORMAT
    datefmt = DATE_FORMAT
    access_fmt = "%(message)s"

    def __init__(self, cfg: Any) -> None:
        self.error_log = logging.getLogger(ERROR_LOGGER)
        self.error_log.propagate = False
        self.access_log = logging.getLogger(ACCESS_LOGGER)
        self.access_log.propagate = False
        self.logfile = None
        self.statsd: Statsd | None = None
        self.access_buffer: BatchingHandler | None = None
        self.line_writer: Any = None  # the loop's AccessLineWriter, once access_hooks made it
        self.lock = threading.Lock()
        self.cfg = cfg
        self.setup(cfg)

    def setup(self, cfg: Any) -> None:
        self.cfg = cfg
        self.loglevel = LOG_LEVELS.get(cfg.loglevel.lower(), logging.INFO)
        self.error_log.setLevel(self.loglevel)
        self.access_log.setLevel(logging.INFO)
        self.access_buffer = None
        self.line_writer = None
        for log in (self.error_log, self.access_log):
            for handler in [h for h in log.handlers if getattr(h, _OURS, False)]:
                log.removeHandler(handler)
                handler.close()
        if self.statsd is not None:
            self.statsd.close()
            self.statsd = None
        if cfg.statsd_host:
            self.statsd = Statsd(cfg.statsd_host, cfg.statsd_prefix, cfg.dogstatsd_tags)
            counter = LogCounter(self.statsd)
            setattr(counter, _OURS, True)
            self.error_log.addHandler(counter)

        if cfg.capture_output and cfg.errorlog != "-":
            self._capture_output()
        self._add_handler(self.error_log, cfg.errorlog, logging.Formatter(self.error_fmt, self.datefmt),
                          sys.stderr)
        if cfg.accesslog is not None:
            self._add_handler(self.access_log, cfg.accesslog, logging.Formatter(self.access_fmt),
                              sys.stdout, batched=True)
        if cfg.syslog:
            self._add_syslog(self.error_log, cfg, "error")
            if not cfg.disable_redirect_access_to_syslog:
                self._add_syslog(self.access_log, cfg, "access")
        self.access_enabled = bool(cfg.accesslog or cfg.logconfig or cfg.logconfig_dict
                                   or cfg.logconfig_json
                                   or (cfg.syslog and not cfg.disable_redirect_access_to_syslog))
        self.access_format = AccessFormat(cfg.access_log_format)

        if cfg.logconfig_dict:
            self._dict_config(cfg.logconfig_dict)
        elif cfg.logconfig_json:
            if os.path.exists(cfg.logconfig_json):
                import json
                try:
                    with open(cfg.logconfig_json) as f:
                        self._dict_config(json.load(f))
                except json.JSONDecodeError as exc:
                    raise RuntimeError(str(exc)) from exc
        elif cfg.logconfig:
            if not os.path.exists(cfg.logconfig):
                raise RuntimeError(f"Error: log config '{cfg.logconfig}' not found")
            import copy
            from logging.config import fileConfig
            defaults = dict(copy.deepcopy(CONFIG_DEFAULTS), __file__=cfg.logconfig,
                            here=os.path.dirname(cfg.logconfig))
            fileConfig(cfg.logconfig, defaults=defaults, disable_existing_loggers=False)

    def _dict_config(self, overrides: dict) -> None:
        # logging.config (with logging.handlers, socketserver, pickle, queue) only
        # when a log config is given: a worker forked without it stays smaller.
        import copy
        from logging.config import dictConfig
        config = copy.deepcopy(CONFIG_DEFAULTS)
        config.update(overrides)
        try:
            dictConfig(config)
        except (AttributeError, ImportError, ValueError, TypeError) as exc:
            raise RuntimeError(str(exc)) from exc

    def _capture_output(self) -> None:
        # print() and C-level writes from the app land in the error log file.
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        if self.logfile is not None:
            self.logfile.close()
        self.logfile = open(self.cfg.errorlog, "a+")
        os.dup2(self.logfile.fileno(), sys.stdout.fileno())
        os.dup2(self.logfile.fileno(), sys.stderr.fileno())

    def _add_syslog(self, log: logging.Logger, cfg: Any, name: str) -> None:
        from .syslog_handler import syslog_handler  # only when asked for
        handler = syslog_handler(cfg, name)
        setattr(handler, _OURS, True)
        log.addHandler(handler)

    def _add_handler(self, log: logging.Logger, output: str | None, fmt: logging.Formatter,
                     stream: Any, batched: bool = False) -> None:
        if output is None:
            return
        if output == "-":
            handler: logging.Handler = logging.StreamHandler(stream)
        else:
            try:
                with open(output, "a"):
                    pass
            except OSError as e:
                raise RuntimeError(f"Error: '{output}' isn't writable [{e!r}]") from e
            handler = logging.FileHandler(output)
            try:
                # Workers may run as another user and must be able to reopen it (USR1).
                os.chown(handler.baseFilename, self.cfg.user, self.cfg.group)
            except OSError:
                pass
        if batched:
            handler = BatchingHandler(handler)
            self.access_buffer = handler
        handler.setFormatter(fmt)
        setattr(handler, _OURS, True)
        log.addHandler(handler)

    # --- gunicorn's logger methods -------------------------------------------
    def critical(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.error_log.critical(msg, *args, **kwargs)

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.error_log.error(msg, *args, **kwargs)

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.error_log.warning(msg, *args, **kwargs)

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.log(logging.INFO, msg, *args, **kwargs)

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.log(logging.DEBUG, msg, *args, **kwargs)

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.error_log.exception(msg, *args, **kwargs)

    def log(self, lvl: Any, msg: str, *args: Any, **kwargs: Any) -> None:
        if isinstance(lvl, str):
            lvl = LOG_LEVELS.get(lvl.lower(), logging.INFO)
        if self.statsd is not None and "extra" in kwargs:
            self._metric(kwargs["extra"])
        if msg or self.statsd is None:  # gunicorn's Statsd logger drops empty lines
            self.error_log.log(lvl, msg, *args, **kwargs)

    # gunicorn's Statsd logger methods, for hooks that send their own metrics
    # (worker.log.increment(...)). Without --statsd-host there is nowhere to send.
    def gauge(self, name: str, value: Any) -> None:
        if self.statsd is not None:
            self.statsd.gauge(name, value)

    def increment(self, name: str, value: Any, sampling_rate: float = 1.0) -> None:
        if self.statsd is not None:
            self.statsd.increment(name, value, sampling_rate)

    def decrement(self, name: str, value: Any, sampling_rate: float = 1.0) -> None:
        if self.statsd is not None:
            self.statsd.decrement(name, value, sampling_rate)

    def timer(self, name: str, value: Any) -> None:
        if self.statsd is not None:
            self.statsd.timer(name, value)

    def histogram(self, name: str, value: Any) -> None:
        if self.statsd is not None:
            self.statsd.histogram(name, value)

    def _metric(self, extra: Any) -> None:
        """gunicorn's Statsd logger: a log call can carry a metric, whatever its level."""
        try:
            metric, value, mtype = extra.get("metric"), extra.get("value"), extra.get("mtype")
            if metric and value is not None and mtype:
                self.statsd.metric(metric, value, mtype)
        except Exception:
            self.error_log.warning("Failed to log to statsd", exc_info=True)

    def access(self, resp: Any, req: Any, environ: dict, request_time: datetime.timedelta) -> None:
        """gunicorn's signature, for a logger_class that overrides it and calls it
        (the loop itself calls access_line, without building resp and req)."""
        if not self.access_enabled:
            return  # as gunicorn: resp and req are not even read
        self.access_line(environ, resp.status, resp.headers, getattr(resp, "sent", None),
                         request_time.total_seconds())

    def atoms(self, resp: Any, req: Any, environ: dict, request_time: datetime.timedelta) -> dict:
        """gunicorn's Logger.atoms, for a logger_class that formats its own lines: every
        atom of access_log_format, with the {name}i ones from ``req.headers`` (or ``req``,
        pairs or a mapping), {name}o from ``resp.headers`` and {name}e from the environ."""
        atoms = access_atoms(environ, resp.status, (), getattr(resp, "sent", None), request_time,
                             fields=False)
        for headers, kind in ((getattr(req, "headers", req), "i"), (resp.headers, "o"),
                              (environ, "e")):
            pairs = headers.items() if hasattr(headers, "items") else headers or ()
            atoms.update({f"{{{name.lower()}}}{kind}": value for name, value in pairs})
        return atoms

    def access_line(self, environ: dict, status: str, response_headers: list, sent: int | None,
                    request_seconds: float) -> None:
        """One access log line; the signature of ServerHooks.access_log."""
        if not self.access_enabled:
            return
        try:
            atoms = self.access_format.atoms(environ, status, response_headers, sent, request_seconds)
            log = self.access_log
            buffer = self.access_buffer
            if (buffer is not None and log.handlers == [buffer] and not log.filters
                    and not buffer.filters and log.isEnabledFor(logging.INFO)):
                # Only our handler, formatting "%(message)s": the LogRecord would
                # change nothing in the line, and costs more than building it.
                buffer.add_line(self.access_format.fmt % atoms)
            else:
                log.info(self.access_format.fmt, atoms)
        except Exception:
            self.exception("Error writing the access log line")

    def access_hooks(self) -> tuple[Any, Any]:
        """(access_log, flush_access_log) for the serving loop's hooks, or (None, None)
        when no access log is asked for: the loop's own line writer when the line
        may skip the logging module, else access_line and flush_access."""
        if not self.access_enabled:
            return None, None
        writer = self._line_writer()
        if writer is not None:
            return writer, writer.flush
        return self.access_line, self.flush_access

    def _line_writer(self) -> Any:
        """A fastwsgi._loop.AccessLineWriter, when a LogRecord would change nothing
        in the file: our handler alone on the access logger, no filter, the format
        one the writer renders, the stream UTF-8, access_line not overridden."""
        log, buffer = self.access_log, self.access_buffer
        if (buffer is None or type(self).access_line is not Logger.access_line
                or log.handlers != [buffer] or log.filters or buffer.filters
                or not log.isEnabledFor(logging.INFO)):
            return None
        plan = self.access_format.plan()
        if plan is None or not _encodes_utf8(buffer.target.stream):
            return None
        from ._loop import AccessLineWriter
        self.line_writer = AccessLineWriter(plan, log, buffer, self.access_line)
        return self.line_writer

    def flush_access(self) -> None:
        """Write out the access lines the serving loop's last iteration produced."""
        if self.access_buffer is not None:
            self.access_buffer.flush()

    def reopen_files(self) -> None:
        """USR1: reopen every log file (after logrotate moved it)."""
        self.flush()
        if self.cfg.capture_output and self.cfg.errorlog != "-":
            with self.lock:
                self._capture_output()
        for handler in _file_handlers():
            handler.acquire()
            try:
                if handler.stream:
                    handler.close()
                    handler.stream = handler._open()
            finally:
                handler.release()
        if self.line_writer is not None:
            self.line_writer.stream_changed()

    def close_on_exec(self) -> None:
        for handler in _file_handlers():
            if handler.stream:
                os.set_inheritable(handler.stream.fileno(), False)

    def flush(self) -> None:
        """Write out batched access lines (the worker calls this on every loop tick)."""
        for log in _all_loggers():
            for handler in log.handlers:
                try:
                    handler.flush()
                except Exception:
                    pass


def _encodes_utf8(stream: Any) -> bool:
    try:
        return codecs.lookup(stream.encoding).name == "utf-8"
    except (AttributeError, LookupError, TypeError):
        return False


# logger_class values that name this module's Logger (gunicorn's default and "simple").
BUILT_IN_LOGGER_NAMES = ("gunicorn.glogging.Logger", "simple", "fastwsgi.glogging.Logger")


def logger_class(value: Any) -> type:
    """The class logger_class names, loaded as gunicorn loads it: a class, or
    "package.module.Class"; gunicorn's default and "simple" are this module's Logger.
    The class is made with the config, as Logger(cfg), and given gunicorn's Logger
    interface calls (access(resp, req, environ, request_time), error, warning, info,
    debug, exception, critical, reopen_files, close_on_exec)."""
    if isinstance(value, type):
        return value
    if value in BUILT_IN_LOGGER_NAMES:
        return Logger
    module_name, _, class_name = str(value).rpartition(".")
    if not module_name:
        raise RuntimeError(f"logger_class {value!r} is not a 'package.module.Class' path")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise RuntimeError(f"logger_class {value!r} cannot be loaded: {exc}") from exc
    if not isinstance(cls, type):
        raise RuntimeError(f"logger_class {value!r} is not a class")
    return cls


def _all_loggers() -> list[logging.Logger]:
    names = list(logging.root.manager.loggerDict)
    return [logging.root] + [logging.getLogger(name) for name in names]


def _file_handlers() -> list[logging.FileHandler]:
    """Every FileHandler, including those a BatchingHandler writes through."""
    found = []
    for log in _all_loggers():
        for handler in log.handlers:
            target = getattr(handler, "target", handler)
            if isinstance(target, logging.FileHandler):
                found.append(target)
    return found
