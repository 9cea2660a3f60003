"""A worker's memory at rest: fastwsgi's command line against bjoern and gunicorn.

Each server serves one app with one worker; the worker's memory is read after one
request ("at rest") and again after ``--requests`` more (10,000), from
``/proc/PID/status`` (VmRSS, and its anonymous and file-backed parts) and
``/proc/PID/smaps_rollup`` (PSS, and USS: the pages no other process maps).

    python bench/worker_rss.py                                   # hello and flask, all servers
    python bench/worker_rss.py --apps flask --servers fastwsgi,bjoern --requests 0

The servers, each started the way its users start it:

- ``fastwsgi``: ``fastwsgi -w 1 APP`` (``python -m fastwsgi``), the command line with
  its master; the worker is the master's child.
- ``fastwsgi.run``: ``fastwsgi.run(app, host, port)``, one process, no master (how
  ``bench/run.py`` starts ours on the framework rows).
- ``bjoern``: ``bjoern.run(app, host, port)``, one process (it has no master).
- ``gunicorn``: ``gunicorn -w 1 APP``, its sync worker, the master's child.
- ``python``: the interpreter with the app imported and nothing serving: the floor
  under every server's figure.

Every server runs on one interpreter, the peers' venv (``--python``), which has
bjoern, gunicorn and Flask; ours is imported from this source tree (its extensions
built in place, ``pip install -e .``), so all of them start with the same
``site-packages``. Ours's own venv would not do: the hook of an editable install
(a ``.pth`` file) imports pathlib and importlib's machinery into every process of
that venv, about 2 MiB that an installed fastwsgi does not carry.

A worker forked from its master shares the master's pages until it writes them:
they count in its RSS, are split in its PSS and are left out of its USS. File pages
(the interpreter's and the extensions' code) count in a forked worker's RSS only
once the worker itself touches them.

The requests are ``GET /`` over HTTP/1.1 keep-alive, one connection at a time,
opening a new one whenever the server closes (gunicorn's sync worker closes every
connection).

Every server loads compiled bytecode, as an installed package does: the servers run
with ``PYTHONPYCACHEPREFIX`` set to a directory of this run's, filled by one
unmeasured start of each server and app first. Compiling a module from source
(a source tree run with ``PYTHONDONTWRITEBYTECODE``) leaves the compiler's peak
allocations resident, 1 to 2 MiB on these rows that no installed server carries.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
HOST = "127.0.0.1"
DEFAULT_PYTHON = os.path.expanduser("~/.cache/fastwsgi-bench/peers/bin/python")
APPS = {"hello": "apps:hello", "flask": "flask_app:app"}
SERVERS = ("fastwsgi", "fastwsgi.run", "bjoern", "gunicorn", "python")
STARTUP_SECONDS = 20.0
SETTLE_SECONDS = 0.5   # after the last request: let the worker finish its bookkeeping

# The fields of /proc/PID/status and /proc/PID/smaps_rollup that are read, in KiB.
STATUS_FIELDS = ("VmRSS", "RssAnon", "RssFile")
ROLLUP_FIELDS = ("Pss", "Private_Clean", "Private_Dirty")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def proc_fields(path: str, names: tuple[str, ...]) -> dict[str, int]:
    found = {}
    with open(path) as lines:
        for line in lines:
            name, _, rest = line.partition(":")
            if name in names:
                found[name] = int(rest.split()[0])
    return found


def memory_kib(pid: int) -> dict[str, int]:
    """The process's resident memory: rss (anon + file), pss, uss."""
    status = proc_fields(f"/proc/{pid}/status", STATUS_FIELDS)
    rollup = proc_fields(f"/proc/{pid}/smaps_rollup", ROLLUP_FIELDS)
    return {"rss": status["VmRSS"], "anon": status["RssAnon"], "file": status["RssFile"],
            "pss": rollup["Pss"], "uss": rollup["Private_Clean"] + rollup["Private_Dirty"]}


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as listing:
            return [int(child) for child in listing.read().split()]
    except OSError:
        return []


def server_command(server: str, app: str, port: int, python: str) -> list[str]:
    module, _, name = app.partition(":")
    if server == "fastwsgi":
        return [python, "-m", "fastwsgi", "-w", "1", "-b", f"{HOST}:{port}",
                "--log-level", "warning", app]
    if server == "fastwsgi.run":
        return [python, "-c", f"import {module}, fastwsgi; fastwsgi.run({module}.{name}, {HOST!r}, {port})"]
    if server == "bjoern":
        return [python, "-c", f"import {module}, bjoern; bjoern.run({module}.{name}, {HOST!r}, {port})"]
    if server == "gunicorn":
        return [python, "-m", "gunicorn", "-w", "1", "-b", f"{HOST}:{port}",
                "--log-level", "warning", app]
    if server == "python":
        return [python, "-c", f"import time, {module}; print('ready', flush=True); time.sleep(600)"]
    raise ValueError(f"unknown server {server!r}")


def python_version(python: str) -> str:
    return subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                          capture_output=True, text=True, check=True).stdout.strip()


def check_ours(python: str) -> None:
    """Ours imports from the source tree with that interpreter, or the script stops."""
    probe = subprocess.run([python, "-c", "import fastwsgi._loop"], cwd=REPO, capture_output=True, text=True,
                           check=False)
    if probe.returncode:
        sys.exit(f"{python} cannot import fastwsgi._loop from {REPO} (build it in place: "
                 f"pip install -e .):\n{probe.stderr.strip()}")


class Client:
    """GET / over keep-alive, reconnecting whenever the server closes."""

    REQUEST = f"GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None

    def get(self) -> int:
        if self.sock is None:
            self.sock = socket.create_connection((HOST, self.port), timeout=10)
        self.sock.sendall(self.REQUEST)
        data = b""
        while b"\r\n\r\n" not in data:
            data += self.receive()
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            body += self.receive()
        if headers.get("connection", "").lower() == "close" or lines[0].startswith("HTTP/1.0"):
            self.close()
        return int(lines[0].split()[1])

    def receive(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed in the middle of a response")
        return chunk

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def wait_ready(proc: subprocess.Popen, server: str, port: int) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{server} exited with code {proc.returncode}")
        if server == "python":
            if proc.stdout.readline().strip() == "ready":
                return
            continue
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{server} was not ready within {STARTUP_SECONDS:.0f} s")


def worker_of(proc: subprocess.Popen, server: str) -> int:
    """The serving process: the master's one child, or the process itself."""
    if server in ("fastwsgi.run", "bjoern", "python"):
        return proc.pid
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        found = children(proc.pid)
        if found:
            return found[0]
        time.sleep(0.05)
    raise RuntimeError(f"{server} started no worker")


def stop(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=10)
            break
        except subprocess.TimeoutExpired:
            continue
    try:   # a worker may outlive its master
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def server_env(server: str, workdir: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPYCACHEPREFIX=os.path.join(workdir, "pycache"),
               PYTHONPATH=os.pathsep.join([HERE, REPO]) if server.startswith("fastwsgi") else HERE)
    env.pop("PYTHONHOME", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def measure(server: str, app: str, requests: int, python: str, workdir: str) -> dict:
    port = free_port()
    env = server_env(server, workdir)
    proc = subprocess.Popen(server_command(server, app, port, python), cwd=workdir, env=env,
                            stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdout=subprocess.PIPE if server == "python" else subprocess.DEVNULL,
                            text=True, start_new_session=True)
    try:
        wait_ready(proc, server, port)
        pid = worker_of(proc, server)
        row = {"server": server, "app": app}
        if server == "python":
            time.sleep(SETTLE_SECONDS)
            row["at_rest"] = memory_kib(pid)
            return row
        client = Client(port)
        try:
            status = client.get()
            if status != 200:
                raise RuntimeError(f"{server} answered {status}")
            time.sleep(SETTLE_SECONDS)
            row["at_rest"] = memory_kib(pid)
            if pid != proc.pid:
                row["master"] = memory_kib(proc.pid)
            if requests:
                deadline = time.monotonic() + 300
                for _ in range(requests):
                    client.get()
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{server}: {requests} requests took over 300 s")
                time.sleep(SETTLE_SECONDS)
                row["after"] = memory_kib(pid)
        finally:
            client.close()
        return row
    finally:
        stop(proc)


def mib(kib: int | None) -> str:
    return "" if kib is None else f"{kib / 1024:.1f}"


def table(rows: list[dict]) -> str:
    head = "| app | server | RSS MiB | anon | file | PSS | USS | master RSS | RSS after | USS after |"
    lines = [head, "|---|---|" + "---:|" * 8]
    for row in rows:
        rest, after, master = row["at_rest"], row.get("after", {}), row.get("master", {})
        lines.append(f"| {row['app']} | {row['server']} | {mib(rest['rss'])} | {mib(rest['anon'])} "
                     f"| {mib(rest['file'])} | {mib(rest['pss'])} | {mib(rest['uss'])} "
                     f"| {mib(master.get('rss'))} | {mib(after.get('rss'))} | {mib(after.get('uss'))} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--apps", default=",".join(APPS), help=f"of {', '.join(APPS)}")
    parser.add_argument("--servers", default=",".join(SERVERS), help=f"of {', '.join(SERVERS)}")
    parser.add_argument("--requests", type=int, default=10_000,
                        help="requests after the first one, before the second reading (0: none)")
    parser.add_argument("--python", default=DEFAULT_PYTHON,
                        help="the interpreter of every server (the peers' venv)")
    args = parser.parse_args()
    servers = args.servers.split(",")
    check_ours(args.python)
    print(f"Python {python_version(args.python)} ({args.python}), worker memory after one request "
          f"and after {args.requests:,} more", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="worker-rss-") as workdir:
        for app in args.apps.split(","):
            for server in servers:
                measure(server, APPS[app], 0, args.python, workdir)   # writes the bytecode
        for app in args.apps.split(","):
            for server in servers:
                rows.append(measure(server, APPS[app], args.requests, args.python, workdir))
                print(f"  {app} {server}: {mib(rows[-1]['at_rest']['rss'])} MiB", file=sys.stderr, flush=True)
    print(table(rows))


if __name__ == "__main__":
    main()
