"""The master's control socket, driven by gunicorn 27's own client (``gunicornc``) and
by ``fastwsgic``, against fastwsgi and against gunicorn 27 itself: every command's
answer is checked against what the processes really are (/proc, the pids the
workers answer with, the files they log to).
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support import ROOT
from support.processes import ServerProcess, alive, python_env

BIN = Path(sys.executable).parent
CLIENTS = ["gunicornc", "fastwsgic"]


def client_command(client: str) -> list[str]:
    if client == "fastwsgic" and not (BIN / "fastwsgic").exists():
        return [sys.executable, "-m", "fastwsgi.control_client"]
    return [str(BIN / client)]


@pytest.fixture(params=CLIENTS)
def client(request):
    if not (BIN / request.param).exists() and request.param == "gunicornc":
        pytest.skip("gunicornc is not installed")
    return request.param


# gunicorn's control thread stops before every fork and binds the path anew after it,
# so a client may find no socket there, or be reset, for a moment (fastwsgi's socket
# stays bound); against gunicorn such a failure is tried again.
REBOUND_AROUND_FORKS: set[str] = set()


def ctl(client: str, path: Path | None, command: str, as_json: bool = True, env: dict | None = None,
        check: bool = True) -> subprocess.CompletedProcess:
    argv = client_command(client) + (["-s", str(path)] if path else []) + ["-c", command]
    deadline = time.monotonic() + 5
    while True:
        done = subprocess.run(argv + (["-j"] if as_json else []), capture_output=True, text=True, timeout=20,
                              env=python_env(ROOT, env=env), check=False)
        refused = "Failed to connect" in done.stderr or "Connection reset by peer" in done.stderr
        if str(path) not in REBOUND_AROUND_FORKS or not refused or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if check:
        assert done.returncode == 0, f"{client} -c {command!r}: {done.returncode}\n{done.stdout}{done.stderr}"
    return done


def data(client: str, path: Path, command: str) -> dict:
    return json.loads(ctl(client, path, command).stdout)


def start(serve, *args: str, workers: int = 2, **kwargs) -> tuple[ServerProcess, Path]:
    path = serve.dir / "ctl.sock"
    server = serve("-w", str(workers), "-b", "127.0.0.1:0", "--control-socket", str(path), *args,
                   "webapp:application", control_socket=True, **kwargs)
    server.wait_ready(workers=workers)
    server.wait_until(path.exists, message="for the control socket")
    if serve.name == "gunicorn":
        REBOUND_AROUND_FORKS.add(str(path))
    return server, path


def shown_pids(client: str, path: Path) -> set[int]:
    return {w["pid"] for w in data(client, path, "show workers")["workers"]}


def wait_for_workers(server: ServerProcess, client: str, path: Path, count: int,
                     timeout: float = 15.0) -> set[int]:
    """Until the master reports ``count`` workers, those are its children, all live."""
    def settled() -> bool:
        shown = shown_pids(client, path)
        return len(shown) == count and shown == server.worker_pids()
    server.wait_until(settled, timeout, f"for {count} workers shown as the master's children")
    return server.worker_pids()


def pids_serving(server: ServerProcess, concurrent: int) -> set[int]:
    """The pids that answer ``concurrent`` simultaneous slow requests (a sync worker
    takes one at a time, so every idle worker gets one)."""
    found: set[int] = set()

    def slow() -> None:
        status, body, _ = server.request("/sleep?0.4", timeout=10)
        assert status == 200
        found.add(int(body.split()[1]))
    threads = [threading.Thread(target=slow) for _ in range(concurrent)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    return found


# --- show ------------------------------------------------------------------------------

def test_show_workers_lists_the_masters_children(serve, client):
    server, path = start(serve)
    children = wait_for_workers(server, client, path, 2)
    workers = data(client, path, "show workers")
    assert workers["count"] == 2
    assert [w["age"] for w in workers["workers"]] == sorted(w["age"] for w in workers["workers"])
    assert all(w["aborted"] is False for w in workers["workers"])
    # The pids the workers themselves answer with are among those shown.
    answered = {int(server.request("/")[1].split()[1]) for _ in range(4)}
    assert answered <= children
    printed = ctl(client, path, "show workers", as_json=False).stdout
    assert "Total: 2 workers" in printed
    for pid in children:
        assert re.search(rf"^{pid}\s+\d+\s+(yes|no)\s", printed, re.MULTILINE), printed


def test_show_stats_counts_the_masters_work(serve, client):
    server, path = start(serve)
    wait_for_workers(server, client, path, 2)
    stats = data(client, path, "show stats")
    assert stats["pid"] == server.pid
    assert (stats["workers_current"], stats["workers_target"], stats["workers_spawned"]) == (2, 2, 2)
    assert (stats["workers_killed"], stats["reloads"]) == (0, 0)
    assert stats["uptime"] > 0
    printed = ctl(client, path, "show stats", as_json=False).stdout
    assert re.search(rf"^PID:\s+{server.pid}$", printed, re.MULTILINE), printed
    assert re.search(r"^Workers current:\s+2$", printed, re.MULTILINE), printed


def test_show_workers_and_stats_count_requests_with_metrics(serve):
    if serve.name == "gunicorn":
        pytest.skip("gunicorn reports no request counts")
    server, path = start(serve, "--metrics-bind", "127.0.0.1:0")
    wait_for_workers(server, "gunicornc", path, 2)
    for _ in range(7):
        assert server.request("/")[0] == 200
    def counted() -> bool:
        return data("gunicornc", path, "show stats")["requests"] == 7
    server.wait_until(counted, message="for 7 requests counted")
    workers = data("gunicornc", path, "show workers")["workers"]
    assert sum(w["requests"] for w in workers) == 7
    printed = ctl("fastwsgic", path, "show workers", as_json=False).stdout
    assert "REQUESTS" in printed.splitlines()[0]


def test_show_config_is_the_effective_configuration(serve, client):
    _, path = start(serve, "--timeout", "17", "--graceful-timeout", "9", "--max-requests", "100")
    config = data(client, path, "show config")
    assert config["bind"] == ["127.0.0.1:0"]
    assert (config["workers"], config["timeout"], config["graceful_timeout"]) == (2, 17, 9)
    assert (config["max_requests"], config["threads"], config["keepalive"]) == (100, 1, 2)
    assert config["control_socket"] == str(path)
    assert config["control_socket_disable"] is False
    assert config["proc_name"] == "webapp:application"
    assert "timeout: 17" in ctl(client, path, "show config", as_json=False).stdout.splitlines()


def test_show_listeners_are_the_bound_sockets(serve, client):
    unix_path = serve.dir / "http.sock"
    server, path = start(serve, "-b", f"unix:{unix_path}")
    listeners = data(client, path, "show listeners")
    assert listeners["count"] == 2
    by_type = {lnr["type"]: lnr for lnr in listeners["listeners"]}
    assert by_type["tcp"]["address"] == f"http://127.0.0.1:{server.port}"
    assert by_type["unix"]["address"] == f"unix:{unix_path}"
    # The fd is the master's socket at that address.
    inode = os.readlink(f"/proc/{server.pid}/fd/{by_type['unix']['fd']}")
    assert inode.startswith("socket:[")
    assert server.request("/", unix=str(unix_path))[0] == 200
    assert f"http://127.0.0.1:{server.port}" in ctl(client, path, "show listeners", as_json=False).stdout


def test_show_all_dirty_and_help(serve, client):
    server, path = start(serve)
    children = wait_for_workers(server, client, path, 2)
    overview = data(client, path, "show all")
    assert overview["arbiter"] == {"pid": server.pid, "type": "arbiter", "role": "master"}
    assert {w["pid"] for w in overview["web_workers"]} == children
    assert overview["dirty_arbiter"] is None and overview["dirty_worker_count"] == 0
    assert data(client, path, "show dirty") == {"enabled": False, "pid": None, "workers": [], "apps": []}
    assert data(client, path, "dirty add") == {"success": False, "error": "Dirty arbiter not running"}
    assert set(data(client, path, "help")["commands"]) >= {
        "show workers", "show stats", "show config", "show listeners", "worker add [N]",
        "worker remove [N]", "worker kill <PID>", "reload", "reopen", "shutdown [graceful|quick]"}


# --- worker add / remove / kill ------------------------------------------------------------

def test_worker_add_serves_and_remove_stops_the_oldest(serve, client):
    server, path = start(serve)
    before = wait_for_workers(server, client, path, 2)
    assert data(client, path, "worker add") == {"added": 1, "previous": 2, "total": 3}
    three = wait_for_workers(server, client, path, 3)
    (new_pid,) = three - before
    deadline = time.monotonic() + 10
    while new_pid not in pids_serving(server, 6):
        assert time.monotonic() < deadline, f"the new worker {new_pid} answered nothing"
    oldest = min(data(client, path, "show workers")["workers"], key=lambda w: w["age"])["pid"]
    assert data(client, path, "worker remove") == {"removed": 1, "previous": 3, "total": 2}
    assert wait_for_workers(server, client, path, 2) == three - {oldest}
    # As TTOU: never below one.
    assert data(client, path, "worker remove 5") == {"removed": 1, "previous": 2, "total": 1}
    wait_for_workers(server, client, path, 1)
    assert data(client, path, "worker add 2") == {"added": 2, "previous": 1, "total": 3}
    wait_for_workers(server, client, path, 3)
    assert data(client, path, "show stats")["workers_target"] == 3


def test_worker_kill_is_replaced(serve, client):
    server, path = start(serve)
    before = wait_for_workers(server, client, path, 2)
    victim = min(before)
    assert data(client, path, f"worker kill {victim}") == {"success": True, "killed": victim}
    server.wait_until(lambda: not alive(victim), message=f"for {victim} to exit")
    after = wait_for_workers(server, client, path, 2)
    assert victim not in after and len(after - before) == 1
    assert data(client, path, "worker kill 1") == {"success": False, "error": "Worker 1 not found"}


# --- reload / reopen / shutdown ----------------------------------------------------------------

def test_reload_replaces_every_worker(serve, client):
    server, path = start(serve)
    before = wait_for_workers(server, client, path, 2)
    assert data(client, path, "reload") == {"status": "reloading"}
    server.wait_until(lambda: not (shown_pids(client, path) & before), 20, "for the old workers to go")
    after = wait_for_workers(server, client, path, 2)
    assert not after & before
    assert data(client, path, "show stats")["reloads"] == 1
    assert int(server.request("/")[1].split()[1]) in after


def test_reopen_reopens_the_access_log(serve, client):
    server, path = start(serve, "--access-logfile", "access.log")
    log = serve.dir / "access.log"
    server.request("/before")
    server.wait_until(lambda: log.exists() and "/before" in log.read_text(), message="for the access line")
    log.rename(serve.dir / "access.log.1")
    assert data(client, path, "reopen") == {"status": "reopening"}

    def lands_in_the_new_file() -> bool:
        server.request("/after")
        return log.exists() and "/after" in log.read_text()
    server.wait_until(lands_in_the_new_file, message="for a line in the reopened access.log")
    assert "/before" not in log.read_text()


@pytest.mark.parametrize("mode, signal_name", [("graceful", "term"), ("quick", "int")])
def test_shutdown_stops_the_master_and_removes_the_socket(serve, client, mode, signal_name):
    server, path = start(serve)
    children = wait_for_workers(server, client, path, 2)
    assert data(client, path, f"shutdown {mode}") == {"status": "shutting_down", "mode": mode}
    assert server.wait_exit() == 0
    assert f"Handling signal: {signal_name}" in server.log
    assert not path.exists()
    assert not any(alive(pid) for pid in children)


def test_errors_are_answered_as_gunicorn_answers_them(serve, client):
    _, path = start(serve)
    for command, message in [("bogus", "Invalid argument: Unknown command: bogus"),
                             ("show", ("Invalid argument: Missing show target "
                                       "(all|workers|dirty|config|stats|listeners)")),
                             ("show nothing", "Invalid argument: Unknown show target: nothing"),
                             ("worker", "Invalid argument: Missing worker action (add|remove|kill)"),
                             ("worker kill", "Invalid argument: Missing PID for worker kill"),
                             ("worker add x", "Invalid argument: invalid literal for int() with base 10: 'x'")]:
        done = ctl(client, path, command, check=False)
        assert (done.returncode, done.stderr.strip()) == (1, f"Error: {message}"), command
    assert data(client, path, "show stats")["workers_current"] == 2


# --- the two clients ---------------------------------------------------------------------------

def _timeless(text: str) -> str:
    return re.sub(r"\d+(\.\d+)?s ago|^Uptime:.*$", "T", text, flags=re.MULTILINE)


def test_fastwsgic_prints_what_gunicornc_prints(serve):
    server, path = start(serve)
    wait_for_workers(server, "gunicornc", path, 2)
    for command in ["show workers", "show stats", "show config", "show listeners", "show all",
                    "show dirty", "help", "worker kill 1", "bogus"]:
        ours = ctl("fastwsgic", path, command, as_json=False, check=False)
        theirs = ctl("gunicornc", path, command, as_json=False, check=False)
        assert (ours.returncode, _timeless(ours.stdout), ours.stderr) == \
               (theirs.returncode, _timeless(theirs.stdout), theirs.stderr), command


def test_interactive_session(serve, client, tmp_path):
    server, path = start(serve)
    children = wait_for_workers(server, client, path, 2)
    session = subprocess.run(client_command(client) + ["-s", str(path)],
                             input="show workers\nbogus\nshow stats\nquit\n",
                             capture_output=True, text=True, timeout=20, check=False,
                             env=python_env(ROOT, env={"HOME": str(tmp_path)}))
    assert session.returncode == 0, session.stderr
    assert f"Connected to {path}" in session.stdout
    assert all(str(pid) in session.stdout for pid in children)
    assert "Error: Invalid argument: Unknown command: bogus" in session.stdout
    assert re.search(rf"^PID:\s+{server.pid}$", session.stdout, re.MULTILINE)


def test_default_path_is_gunicorns(serve, client, tmp_path):
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    server = serve("-w", "1", "-b", "127.0.0.1:0", "webapp:application", control_socket=True,
                   env={"XDG_RUNTIME_DIR": str(runtime)})
    server.wait_ready()
    default = runtime / "gunicorn.ctl"
    server.wait_until(default.exists, message="for the default control socket")
    # Neither client is told where: both find it as gunicornc does.
    done = ctl(client, None, "show stats", env={"XDG_RUNTIME_DIR": str(runtime)})
    assert json.loads(done.stdout)["pid"] == server.pid


# --- the socket file ---------------------------------------------------------------------------

def test_socket_is_owner_only_by_default(serve):
    _, path = start(serve)
    assert stat.S_ISSOCK(path.stat().st_mode)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_socket_mode_is_honoured(serve):
    _, path = start(serve, "--control-socket-mode", "0660")
    assert stat.S_IMODE(path.stat().st_mode) == 0o660


def test_no_control_socket_makes_none(serve):
    path = serve.dir / "ctl.sock"
    server = serve("-w", "1", "-b", "127.0.0.1:0", "--control-socket", str(path), "--no-control-socket",
                   "webapp:application", control_socket=True)
    server.wait_ready()
    assert server.request("/")[0] == 200
    time.sleep(1.0)   # gunicorn starts its socket a moment after the workers
    assert not path.exists()
    assert "Control socket listening" not in server.log


def _control_socket_inode(path: Path) -> str:
    """The inode /proc/net/unix gives the socket listening at ``path``."""
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[7] == str(path):
            return fields[6]
    raise AssertionError(f"nothing listens at {path}")


def _holds_socket(pid: int, inode: str) -> bool:
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                return True
        except OSError:
            pass
    return False


def test_workers_do_not_hold_the_control_socket(serve):
    server, path = start(serve)
    children = wait_for_workers(server, "gunicornc", path, 2)
    inode = _control_socket_inode(path)
    assert _holds_socket(server.pid, inode)
    assert not any(_holds_socket(pid, inode) for pid in children)


# --- clients that misbehave ------------------------------------------------------------------

def _connect(path: Path) -> socket.socket:
    """A connection, once the server has room in its accept queue (a Unix socket's
    connect fails at once, EAGAIN, while the queue is full)."""
    deadline = time.monotonic() + 5
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(5)
        try:
            sock.connect(str(path))
            return sock
        except BlockingIOError:
            sock.close()
            assert time.monotonic() < deadline, f"{path} accepts no connection"
            time.sleep(0.01)


def _closed_by_server(sock: socket.socket, timeout: float = 5.0) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def _frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def test_misbehaving_clients_stall_nothing(serve):
    server, path = start(serve)
    wait_for_workers(server, "gunicornc", path, 2)
    silent = [_connect(path) for _ in range(40)]
    half_length = _connect(path)
    half_length.sendall(b"\x00\x00")
    half_payload = _connect(path)
    half_payload.sendall(_frame(b'{"command": "show workers"}')[:10])
    oversized = _connect(path)
    oversized.sendall(b"\xff\xff\xff\xff" + b"x" * 1000)
    garbage = _connect(path)
    garbage.sendall(_frame(b"\x80not json"))
    not_an_object = _connect(path)
    not_an_object.sendall(_frame(b"[1, 2]"))
    too_deep = _connect(path)   # json.loads cannot parse this: RecursionError
    too_deep.sendall(_frame(b"[" * 60000))
    # Asks for answers and never reads them: far more than a socket buffer holds.
    deaf = _connect(path)
    deaf.setblocking(False)
    request = _frame(json.dumps({"id": 1, "command": "show config", "args": []}).encode())
    try:
        for _ in range(20000):
            deaf.send(request)
    except BlockingIOError:
        pass

    started = time.monotonic()
    assert server.request("/", timeout=5)[0] == 200
    assert data("gunicornc", path, "show stats")["pid"] == server.pid
    assert data("fastwsgic", path, "show workers")["count"] == 2
    assert time.monotonic() - started < 5.0
    for sock in (oversized, garbage, not_an_object, too_deep):
        assert _closed_by_server(sock)
    for sock in [*silent, half_length, half_payload, oversized, garbage, not_an_object, too_deep, deaf]:
        sock.close()
    assert data("gunicornc", path, "show workers")["count"] == 2
    assert server.proc.poll() is None


def test_a_client_that_stops_midway_is_dropped(serve):
    if serve.name == "gunicorn":
        pytest.skip("gunicorn waits five minutes for the rest of a message")
    _, path = start(serve, workers=1)
    stalled = _connect(path)
    stalled.sendall(b"\x00\x00\x00\x20{")
    assert _closed_by_server(stalled, timeout=10)
    stalled.close()
    assert data("gunicornc", path, "show workers")["count"] == 1


# --- a path already taken ----------------------------------------------------------------------

def test_a_dead_masters_socket_is_replaced(serve):
    path = serve.dir / "ctl.sock"
    left = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    left.bind(str(path))
    left.close()   # the file stays, nobody listens: what a killed master leaves
    server, path = start(serve)
    assert data("gunicornc", path, "show stats")["pid"] == server.pid


def test_a_live_socket_is_not_stolen(serve):
    if serve.name == "gunicorn":
        pytest.skip("gunicorn unlinks whatever is at the path and binds its own")
    first, path = start(serve, workers=1)
    second = serve("-w", "1", "-b", "127.0.0.1:0", "--control-socket", str(path), "webapp:application",
                   control_socket=True)
    second.wait_ready()
    second.wait_for_log(r"Failed to start control socket: .* is in use by a running server")
    assert second.request("/")[0] == 200
    assert data("gunicornc", path, "show stats")["pid"] == first.pid
    second.signal(15)
    second.wait_exit()
    assert data("gunicornc", path, "show stats")["pid"] == first.pid


def test_a_file_that_is_not_a_socket_is_left_alone(serve):
    if serve.name == "gunicorn":
        pytest.skip("gunicorn unlinks whatever is at the path")
    path = serve.dir / "ctl.sock"
    path.write_text("not a socket")
    server = serve("-w", "1", "-b", "127.0.0.1:0", "--control-socket", str(path), "webapp:application",
                   control_socket=True)
    server.wait_ready()
    server.wait_for_log(r"Failed to start control socket: .* is not a socket")
    assert path.read_text() == "not a socket"
    assert server.request("/")[0] == 200


def test_a_usr2_master_takes_the_socket_once_the_old_one_is_gone(serve):
    if serve.name == "gunicorn":
        pytest.skip("gunicorn's new master unlinks the old one's socket, whose exit then unlinks the new one's")
    old, path = start(serve, workers=1)
    old.signal(signal.SIGUSR2)
    starts = old.wait_for_log(r"\[(\d+)\] \[INFO\] Starting \S+ \S+$", count=2, timeout=15)
    new_master = int(starts[1].group(1))
    old.wait_for_log(rf"Listening at: \S+ \({new_master}\)")
    assert data("gunicornc", path, "show stats")["pid"] == old.pid
    old.signal(signal.SIGTERM)
    assert old.wait_exit() == 0
    old.wait_for_log(rf"\[{new_master}\] \[INFO\] Control socket listening at ", require_alive=False)
    assert data("gunicornc", path, "show stats")["pid"] == new_master
    assert data("fastwsgic", path, "shutdown") == {"status": "shutting_down", "mode": "graceful"}
    old.wait_until(lambda: not alive(new_master), message="for the new master to stop")
    assert not path.exists()
