"""``fastwsgic``: the control socket's client, with gunicornc's options and output.

    fastwsgic                      interactive (the default socket)
    fastwsgic -s PATH              interactive, another socket
    fastwsgic -c "show workers"    one command, then exit (0, or 1 on an error)
    fastwsgic -c "show stats" -j   the answer's data as JSON

It speaks to a fastwsgi master and to a gunicorn 27 one alike (the protocol is in
``control_protocol.py``); the default socket is gunicorn's (``settings.py``).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import sys
from typing import Any, Callable

from . import __version__, control_protocol
from .settings import default_control_socket

HISTORY_FILE = "~/.fastwsgic_history"


class ControlError(Exception):
    """Not connected, the connection broke, or the server answered an error."""


class ControlClient:
    """One connection to a control socket; send() a command line, get its data."""

    def __init__(self, path: str, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.last_id = 0

    def connect(self) -> None:
        if self.sock is not None:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError as e:
            sock.close()
            raise ControlError(f"Failed to connect to {self.path}: {e}") from None
        self.sock = sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def send(self, command: str) -> dict:
        self.connect()
        self.last_id += 1
        try:
            self.sock.sendall(control_protocol.encode(control_protocol.request(self.last_id, command)))
            reply = control_protocol.read_message(self.sock)
        except (OSError, control_protocol.ProtocolError) as e:
            self.close()
            raise ControlError(f"Communication error: {e}") from None
        if not isinstance(reply, dict):
            raise ControlError("Communication error: the answer is not a JSON object")
        if reply.get("status") == "error":
            raise ControlError(reply.get("error", "Unknown error"))
        return reply.get("data", {})

    def __enter__(self) -> ControlClient:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def command_line(line: str) -> str:
    """A typed line as one command string, its words split as a shell would."""
    return " ".join(shlex.split(line))


# --- what a human reads (the layout gunicornc prints) ---------------------------------

def _heartbeat(worker: dict) -> str:
    beat = worker.get("last_heartbeat")
    return "n/a" if beat is None else f"{beat}s ago"


def _worker_rows(workers: list[dict], indent: str = "") -> list[str]:
    with_requests = any("requests" in w for w in workers)
    header = f"{indent}{'PID':<10} {'AGE':<6} {'BOOTED':<8} {'LAST_BEAT':<12}"
    rows = [(header + (" REQUESTS" if with_requests else "")).rstrip(), indent + "-" * (40 - len(indent))]
    for w in workers:
        row = (f"{indent}{w.get('pid', '?'):<10} {w.get('age', '?'):<6} "
               f"{'yes' if w.get('booted') else 'no':<8} {_heartbeat(w):<12}")
        if with_requests:
            row += f" {w.get('requests', '')}"
        rows.append(row.rstrip())
    return rows


def show_workers(data: dict) -> str:
    workers = data.get("workers", [])
    if not workers:
        return "No workers running"
    return "\n".join(_worker_rows(workers) + ["", f"Total: {data.get('count', len(workers))} workers"])


def _duration(seconds: float | None) -> str:
    if not seconds:
        return "unknown"
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


STAT_LINES = [("Workers current", "workers_current"), ("Workers target", "workers_target"),
              ("Workers spawned", "workers_spawned"), ("Workers killed", "workers_killed"),
              ("Reloads", "reloads")]
# fastwsgi's, with --metrics-bind.
REQUEST_LINES = [("Requests", "requests"), ("In flight", "requests_in_flight"),
                 ("Connections open", "connections_open")]


def show_stats(data: dict) -> str:
    lines = [f"{'Uptime:':<18}{_duration(data.get('uptime'))}",
             f"{'PID:':<18}{data.get('pid', 'unknown')}"]
    lines += [f"{label + ':':<18}{data.get(key, 0)}" for label, key in STAT_LINES]
    if data.get("dirty_arbiter_pid"):
        lines.append(f"{'Dirty arbiter:':<18}{data['dirty_arbiter_pid']}")
    lines += [f"{label + ':':<18}{data[key]}" for label, key in REQUEST_LINES if key in data]
    return "\n".join(lines)


def show_listeners(data: dict) -> str:
    listeners = data.get("listeners", [])
    if not listeners:
        return "No listeners bound"
    lines = [f"{'ADDRESS':<40} {'TYPE':<8} FD", "-" * 55]
    lines += [f"{l.get('address', '?'):<40} {l.get('type', '?'):<8} {l.get('fd', '?')}" for l in listeners]
    return "\n".join(lines + ["", f"Total: {data.get('count', len(listeners))} listeners"])


def show_config(data: dict) -> str:
    def text(value: Any) -> str:
        return ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    return "\n".join(f"{key}: {text(data[key])}" for key in sorted(data))


def show_dirty(data: dict) -> str:
    if not data.get("enabled"):
        return "Dirty arbiter not running"
    lines = [f"Dirty arbiter PID: {data.get('pid')}"]
    for w in data.get("workers", []):
        lines.append(f"{w.get('pid', '?'):<10} {w.get('age', '?'):<6} {', '.join(w.get('apps', []))[:30]:<30} "
                     f"{_heartbeat(w)}")
    return "\n".join(lines)


def show_all(data: dict) -> str:
    web = data.get("web_workers", [])
    lines = ["ARBITER (master)", f"  PID: {data.get('arbiter', {}).get('pid', '?')}", "",
             f"WEB WORKERS ({data.get('web_worker_count', 0)})"]
    lines += _worker_rows(web, indent="  ") if web else ["  (none)"]
    lines += ["", "DIRTY ARBITER"]
    dirty = data.get("dirty_arbiter")
    lines.append(f"  PID: {dirty.get('pid', '?')}" if dirty else "  (not running)")
    return "\n".join(lines)


def show_help(data: dict) -> str:
    commands = data.get("commands", {})
    width = max(map(len, commands), default=0) + 2
    return "\n".join(["Available commands:", ""] +
                     [f"  {name:<{width}} {text}" for name, text in sorted(commands.items())])


FORMATS: dict[str, Callable[[dict], str]] = {
    "show all": show_all, "show workers": show_workers, "show dirty": show_dirty,
    "show stats": show_stats, "show listeners": show_listeners, "show config": show_config,
    "help": show_help,
}


def readable(command: str, data: dict) -> str:
    """The answer to ``command`` as gunicornc prints it: a table for the "show"
    commands and help, the data as indented JSON for the others ("OK" when empty)."""
    format_data = FORMATS.get(" ".join(command.lower().split()))
    if format_data is not None:
        return format_data(data)
    return json.dumps(data, indent=2) if data else "OK"


def printed(command: str, data: dict, as_json: bool) -> str:
    return json.dumps(data, indent=2) if as_json else readable(command, data)


# --- the two modes ---------------------------------------------------------------------

def run_one(path: str, line: str, as_json: bool) -> int:
    try:
        command = command_line(line)
        with ControlClient(path) as client:
            print(printed(command, client.send(command), as_json))
    except (ControlError, ValueError) as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def run_interactive(path: str, as_json: bool) -> int:
    client = ControlClient(path)
    try:
        client.connect()
    except ControlError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    history = _load_history()
    print(f"Connected to {path}")
    print("Type 'help' for available commands, 'quit' to exit.")
    print()
    try:
        return _prompt_loop(client, as_json)
    except KeyboardInterrupt:
        print()
        return 130
    finally:
        client.close()
        if history is not None:
            try:
                history.write_history_file(os.path.expanduser(HISTORY_FILE))
            except OSError:
                pass


def _prompt_loop(client: ControlClient, as_json: bool) -> int:
    while True:
        try:
            line = input("fastwsgi> ").strip()
        except EOFError:
            print()
            return 0
        if not line:
            continue
        if line.lower() in ("quit", "exit", "q"):
            return 0
        try:
            command = command_line(line)
            print(printed(command, client.send(command), as_json))
        except ValueError as e:
            print(f"Error: {e}")
        except ControlError as e:
            print(f"Error: {e}")
            # The master may have closed an idle connection, or restarted: once more.
            client.close()
            try:
                client.connect()
            except ControlError:
                print("Connection lost. Exiting.")
                return 1
        print()


def _load_history() -> Any:
    try:
        import readline
    except ImportError:
        return None
    try:
        readline.read_history_file(os.path.expanduser(HISTORY_FILE))
    except OSError:
        pass
    return readline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="fastwsgic", description="fastwsgi (and gunicorn 27) control interface",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='examples:\n  fastwsgic -c "show workers"\n  fastwsgic -c "worker add 2"\n'
               '  fastwsgic -s /run/app.ctl -c "show stats" -j')
    parser.add_argument("-s", "--socket", default=default_control_socket(),
                        help="control socket path (default: $XDG_RUNTIME_DIR/gunicorn.ctl, "
                             "else ~/.gunicorn/gunicorn.ctl)")
    parser.add_argument("-c", "--command", help="run one command and exit")
    parser.add_argument("-j", "--json", action="store_true", help="print the answer as JSON")
    parser.add_argument("-v", "--version", action="store_true", help="print the version and exit")
    args = parser.parse_args(argv)
    if args.version:
        print(f"fastwsgic (fastwsgi {__version__})")
        return 0
    path = os.path.abspath(args.socket)
    if args.command is not None:
        return run_one(path, args.command, args.json)
    return run_interactive(path, args.json)


if __name__ == "__main__":
    sys.exit(main())
