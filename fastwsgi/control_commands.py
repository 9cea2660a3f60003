"""What the control socket's commands do: a fixed table, gunicorn 27's commands
(``gunicorn/ctl/server.py`` and ``handlers.py``), their arguments, answer shapes and
error texts, so that ``gunicornc`` reads fastwsgi's answers as it reads gunicorn's.

Nothing here runs code a client sends: a command line is split into words and the
words choose a handler; numbers are parsed with ``int``. The handlers run in the
master's loop (``control.py`` calls them from it), so they read the arbiter's state
directly and change it as the signals do: ``worker add/remove`` change the target
count that ``manage_workers`` then meets (TTIN/TTOU); ``reload``, ``reopen`` and
``shutdown`` send the master the signal gunicorn's handlers send it (HUP, USR1,
TERM or INT), which the loop handles on its next turn, after the answer is out.

Where gunicorn's answer is known to be wrong for its own workers, fastwsgi's is
true instead: ``booted`` says whether the worker has loaded the app (gunicorn's
master always reports ``false``), and ``last_heartbeat`` is ``null`` until then.
With ``--metrics-bind`` the workers' shared counters add request counts to
``show workers`` and ``show stats`` (gunicornc ignores keys it does not know).
"""
from __future__ import annotations

import os
import shlex
import signal
import socket
import time
from collections.abc import Sequence
from typing import Any, Callable

from . import control_protocol
from .metrics import IN_FLIGHT, METHODS, OPEN_CONNECTIONS, REQUESTS, STATUS_CLASSES

# gunicorn's "show config" keys, in its order.
CONFIG_KEYS = (
    "bind", "workers", "worker_class", "threads", "timeout", "graceful_timeout", "keepalive",
    "max_requests", "max_requests_jitter", "worker_connections", "preload_app", "daemon",
    "pidfile", "proc_name", "reload", "dirty_workers", "dirty_apps", "dirty_timeout",
    "control_socket", "control_socket_disable",
)

HELP = {
    "show all": "Show all processes (arbiter, web workers, dirty workers)",
    "show workers": "List HTTP workers with their status",
    "show dirty": "List dirty workers and apps",
    "show config": "Show current effective configuration",
    "show stats": "Show server statistics",
    "show listeners": "Show bound sockets",
    "worker add [N]": "Spawn N workers (default 1)",
    "worker remove [N]": "Remove N workers (default 1)",
    "worker kill <PID>": "Gracefully terminate specific worker",
    "dirty add [N]": "Spawn N dirty workers (default 1)",
    "dirty remove [N]": "Remove N dirty workers (default 1)",
    "reload": "Graceful reload (HUP)",
    "reopen": "Reopen log files (USR1)",
    "shutdown [graceful|quick]": "Shutdown server (TERM/INT)",
    "help": "Show this help message",
}

SHUTDOWN_SIGNALS = {"graceful": signal.SIGTERM, "quick": signal.SIGINT}
NO_DIRTY_ARBITER = {"success": False, "error": "Dirty arbiter not running"}


class CommandError(ValueError):
    """A command line that names no command, or a bad argument (gunicorn answers
    these "Invalid argument: ...")."""


def execute(arbiter: Any, message: Any) -> dict:
    """The answer to one decoded request.  Raises ProtocolError for a message that is
    not a request at all (gunicorn then closes the connection without an answer)."""
    if not isinstance(message, dict):
        raise control_protocol.ProtocolError("A request is a JSON object")
    request_id = message.get("id", 0)
    command, args = message.get("command", ""), message.get("args", [])
    if not isinstance(command, str) or not isinstance(args, list):
        raise control_protocol.ProtocolError("command is a string and args a list")
    if not command.strip():
        return control_protocol.error(request_id, "Empty command")
    try:
        words = shlex.split(command) + [str(arg) for arg in args]
        return control_protocol.answer(request_id, Commands(arbiter).run(words))
    except ValueError as e:   # CommandError, int("x"), shlex's unclosed quote
        return control_protocol.error(request_id, f"Invalid argument: {e}")
    except Exception as e:
        arbiter.log.exception("Command error")
        return control_protocol.error(request_id, f"Command failed: {e}")


class Commands:
    """The handlers, over the arbiter's live state."""

    def __init__(self, arbiter: Any) -> None:
        self.arbiter = arbiter

    def run(self, words: list[str]) -> dict:
        verb, rest = words[0].lower(), words[1:]
        table: dict[str, Callable[[list[str]], dict]] = {
            "show": self.show, "worker": self.worker, "dirty": self.dirty,
            "reload": lambda _: self._signal_master(signal.SIGHUP, status="reloading"),
            "reopen": lambda _: self._signal_master(signal.SIGUSR1, status="reopening"),
            "shutdown": self.shutdown, "help": lambda _: {"commands": dict(HELP)},
        }
        if verb not in table:
            raise CommandError(f"Unknown command: {verb}")
        return table[verb](rest)

    # --- show ----------------------------------------------------------------------
    def show(self, args: list[str]) -> dict:
        targets = {"all": self.show_all, "workers": self.show_workers, "dirty": self.show_dirty,
                   "config": self.show_config, "stats": self.show_stats,
                   "listeners": self.show_listeners}
        if not args:
            raise CommandError("Missing show target (all|workers|dirty|config|stats|listeners)")
        target = args[0].lower()
        if target not in targets:
            raise CommandError(f"Unknown show target: {target}")
        return targets[target]()

    def show_workers(self) -> dict:
        workers = [self._worker_status(pid, worker) for pid, worker in self._by_age()]
        return {"workers": workers, "count": len(workers)}

    def show_all(self) -> dict:
        web = [{"pid": pid, "type": "web", "age": worker.age, **_liveness(worker)}
               for pid, worker in self._by_age()]
        return {
            "arbiter": {"pid": self.arbiter.pid, "type": "arbiter", "role": "master"},
            "web_workers": web, "web_worker_count": len(web),
            "dirty_arbiter": None, "dirty_workers": [], "dirty_worker_count": 0,
        }

    def show_dirty(self) -> dict:
        # fastwsgi runs no dirty arbiter (its settings are accepted and ignored).
        return {"enabled": False, "pid": None, "workers": [], "apps": []}

    def show_config(self) -> dict:
        cfg = self.arbiter.cfg
        return {key: _json_value(getattr(cfg, key)) for key in CONFIG_KEYS}

    def show_stats(self) -> dict:
        counts = self.arbiter.counts
        stats = {
            "uptime": round(time.time() - counts.started_at, 2) if counts.started_at else None,
            "pid": self.arbiter.pid,
            "workers_current": len(self.arbiter.workers),
            "workers_target": self.arbiter.num_workers,
            "workers_spawned": counts.workers_spawned,
            "workers_killed": counts.workers_killed,
            "reloads": counts.reloads,
            "dirty_arbiter_pid": None,
        }
        metrics = self.arbiter.metrics
        if metrics is not None:
            totals = metrics.totals()
            stats.update(requests=_requests(totals), requests_in_flight=totals[IN_FLIGHT],
                         connections_open=totals[OPEN_CONNECTIONS])
        return stats

    def show_listeners(self) -> dict:
        listeners = [{"address": str(listener), "fd": listener.fileno(), "type": _kind(listener.family)}
                     for listener in self.arbiter.listeners]
        return {"listeners": listeners, "count": len(listeners)}

    # --- worker --------------------------------------------------------------------
    def worker(self, args: list[str]) -> dict:
        if not args:
            raise CommandError("Missing worker action (add|remove|kill)")
        action, rest = args[0].lower(), args[1:]
        if action == "add":
            return self.worker_add(_count(rest))
        if action == "remove":
            return self.worker_remove(_count(rest))
        if action == "kill":
            if not rest:
                raise CommandError("Missing PID for worker kill")
            return self.worker_kill(int(rest[0]))
        raise CommandError(f"Unknown worker action: {action}")

    def worker_add(self, count: int) -> dict:
        previous = self.arbiter.num_workers
        self.arbiter.num_workers = previous + count   # manage_workers spawns them (TTIN)
        return {"added": count, "previous": previous, "total": self.arbiter.num_workers}

    def worker_remove(self, count: int) -> dict:
        # As TTOU: never below one worker; manage_workers stops the oldest.
        previous = self.arbiter.num_workers
        total = max(1, previous - count)
        self.arbiter.num_workers = total
        return {"removed": previous - total, "previous": previous, "total": total}

    def worker_kill(self, pid: int) -> dict:
        if pid not in self.arbiter.workers:
            return {"success": False, "error": f"Worker {pid} not found"}
        try:
            # A graceful stop (TERM); the master replaces the worker when it is reaped.
            os.kill(pid, signal.SIGTERM)
        except OSError as e:
            return {"success": False, "error": str(e)}
        return {"success": True, "killed": pid}

    # --- dirty, reload, reopen, shutdown ---------------------------------------------
    def dirty(self, args: list[str]) -> dict:
        if not args:
            raise CommandError("Missing dirty action (add|remove)")
        action = args[0].lower()
        if action not in ("add", "remove"):
            raise CommandError(f"Unknown dirty action: {action}")
        _count(args[1:])
        return dict(NO_DIRTY_ARBITER)

    def shutdown(self, args: list[str]) -> dict:
        mode = args[0].lower() if args else "graceful"
        if mode not in SHUTDOWN_SIGNALS:
            # gunicorn stops gracefully whatever the word; a typo is refused instead.
            raise CommandError(f"Unknown shutdown mode: {mode} (graceful|quick)")
        os.kill(self.arbiter.pid, SHUTDOWN_SIGNALS[mode])
        return {"status": "shutting_down", "mode": mode}

    def _signal_master(self, sig: int, status: str) -> dict:
        os.kill(self.arbiter.pid, sig)
        return {"status": status}

    # --- helpers -------------------------------------------------------------------
    def _by_age(self) -> list[tuple[int, Any]]:
        return sorted(self.arbiter.workers.items(), key=lambda item: item[1].age)

    def _worker_status(self, pid: int, worker: Any) -> dict:
        status = {"pid": pid, "age": worker.age, **_liveness(worker), "aborted": worker.aborted}
        counters = self.arbiter.metrics.worker_counters(pid) if self.arbiter.metrics else None
        if counters is not None:
            status["requests"] = _requests(counters)
        return status


def _liveness(worker: Any) -> dict:
    """booted, and seconds since the last heartbeat (None before the app is loaded:
    the heartbeat file then holds its wall-clock creation time, see heartbeat.py)."""
    try:
        last_update = worker.tmp.last_update()
    except (OSError, ValueError, TypeError):
        return {"booted": False, "last_heartbeat": None}
    now = time.monotonic()
    if last_update > now + 1.0:
        return {"booted": False, "last_heartbeat": None}
    return {"booted": True, "last_heartbeat": round(max(0.0, now - last_update), 2)}


def _requests(counters: Sequence[int]) -> int:
    """Requests answered by the app: the sum of the method × status-class counters."""
    return sum(counters[REQUESTS:REQUESTS + len(METHODS) * len(STATUS_CLASSES)])


def _count(args: list[str]) -> int:
    """``worker add [N]``: at least one, as gunicorn reads it."""
    return max(1, int(args[0])) if args else 1


def _kind(family: int) -> str:
    return {socket.AF_UNIX: "unix", socket.AF_INET: "tcp", socket.AF_INET6: "tcp6"}.get(family, "unknown")


def _json_value(value: Any) -> Any:
    """A setting as JSON: plain values as they are, anything else (a class) as str()."""
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    if isinstance(value, (list, tuple)):
        return [_json_value(item) for item in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return str(value)
