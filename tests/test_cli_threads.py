"""Concurrency settings as deployments write them, run as real processes: --threads,
gthread, the gevent/eventlet/tornado configs, and what --check-config says of them.

Where gunicorn runs the same configuration, the test runs it too (``serve`` is
parametrized over both commands): the behaviour users know is the reference.
"""
from __future__ import annotations

import concurrent.futures
import http.client
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

def parallel_gets(server, path: str, count: int) -> tuple[list, float]:
    """`count` requests at once, each on its own connection: their statuses, and the time."""
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(count) as clients:
        statuses = list(clients.map(lambda _: server.request(path, timeout=20)[0], range(count)))
    return statuses, time.monotonic() - started


def test_cloud_run_config_serves_blocking_requests_side_by_side(serve):
    """Google Cloud Run's sample: --workers 1 --threads 8 --timeout 0."""
    server = serve("-b", "127.0.0.1:0", "--workers", "1", "--threads", "8", "--timeout", "0",
                   "webapp:application").wait_ready()
    statuses, elapsed = parallel_gets(server, "/sleep?1", 8)
    assert statuses == [200] * 8
    # One at a time would take 8 s.
    assert elapsed < 3.0, f"8 concurrent 1-second requests took {elapsed:.2f} s"


def test_a_gevent_config_keeps_its_concurrency(serve):
    """A gevent deployment's config, with the warning level above WARNING."""
    if serve.name != "fastwsgi":
        pytest.skip("gunicorn needs gevent installed for this config")
    (serve.dir / "gunicorn.conf.py").write_text(
        'worker_class = "gevent"\nworkers = 1\nloglevel = "error"\nworker_connections = 50\n')
    server = serve("-b", "127.0.0.1:0", "webapp:application")
    server.wait_until(lambda: server.proc.poll() is not None or len(server.worker_pids()) == 1,
                      timeout=15, message="for the worker")
    # loglevel error hides the start-up lines: find the port from the socket itself.
    server.port = _listening_port(server.pid)
    statuses, elapsed = parallel_gets(server, "/sleep?1", 8)
    assert statuses == [200] * 8
    assert elapsed < 3.0, f"8 concurrent 1-second requests took {elapsed:.2f} s"


def _listening_port(pid: int) -> int:
    """The TCP port a process listens on (from /proc), for a server that logs nothing."""
    import os
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    with open(f"/proc/{pid}/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:   # 0A: LISTEN
                return int(fields[1].split(":")[1], 16)
    raise AssertionError("the server listens on no TCP port")


def test_sigterm_lets_busy_threads_finish(serve):
    server = serve("-b", "127.0.0.1:0", "--threads", "4", "--graceful-timeout", "10",
                   "webapp:application").wait_ready()
    with concurrent.futures.ThreadPoolExecutor(4) as clients:
        answers = [clients.submit(server.request, "/sleep?1", timeout=20) for _ in range(4)]
        time.sleep(0.4)   # the four are in the app
        server.signal(signal.SIGTERM)
        statuses = [answer.result()[0] for answer in answers]
    assert statuses == [200] * 4
    assert server.wait_exit() == 0


def test_no_head_of_line_blocking_behind_a_slow_request(serve):
    """-w 4 --threads 4; eight keep-alive clients make fast requests while one client
    keeps calling a 2-second endpoint. Without threads, a fast request whose
    connection sits in the slow request's worker waits up to 2 s."""
    if serve.name != "fastwsgi":
        pytest.skip("the latency figure is fastwsgi's; gunicorn gthread is measured in bench/")
    server = serve("-b", "127.0.0.1:0", "-w", "4", "--threads", "4", "webapp:application")
    server.wait_ready(workers=4)
    stop = threading.Event()
    latencies: list[float] = []
    lock = threading.Lock()

    def slow_client():
        while not stop.is_set():
            server.request("/sleep?2", timeout=20)

    def fast_client():
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
        try:
            while not stop.is_set():
                started = time.monotonic()
                conn.request("GET", "/fast")
                response = conn.getresponse()
                response.read()
                assert response.status == 200
                with lock:
                    latencies.append(time.monotonic() - started)
                time.sleep(0.005)
        finally:
            conn.close()

    slow = threading.Thread(target=slow_client)
    slow.start()
    time.sleep(0.2)
    with concurrent.futures.ThreadPoolExecutor(8) as clients:
        fast = [clients.submit(fast_client) for _ in range(8)]
        time.sleep(4.5)
        stop.set()
        for future in fast:
            future.result(30)
    slow.join(30)
    p99 = statistics.quantiles(latencies, n=100)[98]
    # A fast request held behind the slow one waits up to 2 s; a quarter of that
    # leaves room for a loaded test machine and still tells the two apart.
    assert p99 < 0.5, f"p99 of {len(latencies)} fast requests: {p99 * 1000:.0f} ms"


CHECK_CONFIG_CASES = [
    # (arguments, exit status, what stderr says)
    (["-k", "gthread", "--threads", "4"], 0, None),
    (["--threads", "8"], 0, None),
    (["-k", "gevent"], 0, "gevent's concurrency is kept by 100 threads per worker "
                          "(worker_connections=1000, at most 100)"),
    (["-k", "eventlet", "--worker-connections", "20"], 0, "kept by 20 threads per worker"),
    (["-k", "tornado", "--threads", "6"], 0, "kept by 6 threads per worker (threads=6)"),
    (["-k", "egg:gunicorn#gevent"], 0, "gevent's concurrency is kept by 100 threads"),
    (["-k", "uvicorn.workers.UvicornWorker"], 1, "serves WSGI apps only"),
    (["-k", "asgi"], 1, "serves WSGI apps only"),
    (["-k", "workers.MyUvicornWorker"], 1, "serves WSGI apps only"),
    (["-k", "workers.MyThreadWorker"], 0, "a subclass of gunicorn.workers.gthread.ThreadWorker: "
                                          "served as that class; its own code is not run"),
    (["-k", "workers.NotAWorker"], 1, "is not a worker class fastwsgi can run"),
    (["-k", "nowhere.Worker"], 1, "cannot be loaded"),
    (["--spew"], 0, "fastwsgi ignores these settings: spew=True"),
]

# Stand-ins with the module paths of uvicorn's and gthread's worker classes, so the
# resolution by base class is checked without installing either.
FAKE_WORKER_MODULES = {
    "uvicorn/__init__.py": "",
    "uvicorn/workers.py": "class UvicornWorker:\n    pass\n",
    "gunicorn_stub/gunicorn/__init__.py": "",
    "gunicorn_stub/gunicorn/workers/__init__.py": "",
    "gunicorn_stub/gunicorn/workers/gthread.py": "class ThreadWorker:\n    pass\n",
    "workers.py": (
        "from uvicorn.workers import UvicornWorker\n"
        "from gunicorn.workers.gthread import ThreadWorker\n"
        "class MyUvicornWorker(UvicornWorker):\n    pass\n"
        "class MyThreadWorker(ThreadWorker):\n    pass\n"
        "class NotAWorker:\n    pass\n"),
}


@pytest.mark.parametrize("args, status, says", CHECK_CONFIG_CASES,
                         ids=[" ".join(case[0]) for case in CHECK_CONFIG_CASES])
def test_check_config_prints_every_remapped_setting_and_refuses_what_cannot_run(
        tmp_path, args, status, says):
    for name, text in FAKE_WORKER_MODULES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "hello.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [])\n"
        "    return [b'hi']\n")
    env = {"PYTHONPATH": f"{tmp_path}:{tmp_path / 'gunicorn_stub'}:{ROOT}",
           "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "fastwsgi", "--check-config", *args, "hello:app"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == status, done.stderr
    if says is None:
        assert done.stderr.strip() == "", done.stderr
    else:
        assert says in done.stderr, done.stderr


WEBSOCKET_APP = '''
import os
from flask import Flask
from flask_sock import Sock

app = Flask(__name__)
sock = Sock(app)


@app.route("/hello")
def hello():
    return f"hello from {os.getpid()}"


@sock.route("/echo")
def echo(ws):
    while True:
        message = ws.receive()
        if message == "bye":
            ws.close()
            return
        ws.send(f"echo: {message}")
'''


def test_a_websocket_takes_the_connection_over_and_the_worker_serves_on(serve):
    """Flask-Sock finds environ["gunicorn.socket"], speaks the websocket protocol on it
    from the app's thread, and ends the exchange as gunicorn expects; a real client
    (the websockets library) talks to it while plain requests are answered."""
    pytest.importorskip("flask_sock")
    connect = pytest.importorskip("websockets.sync.client").connect
    (serve.dir / "wsapp.py").write_text(WEBSOCKET_APP)
    worker_class = ["-k", "gthread"] if serve.name == "gunicorn" else []
    server = serve("-b", "127.0.0.1:0", "-w", "1", "--threads", "4", *worker_class,
                   "wsapp:app").wait_ready()
    with connect(f"ws://127.0.0.1:{server.port}/echo", open_timeout=10, close_timeout=5) as ws:
        for text in ("one", "two", "three"):
            ws.send(text)
            assert ws.recv(timeout=10) == f"echo: {text}"
        # The worker's loop serves other clients while the app holds the socket.
        status, body, _ = server.request("/hello")
        assert status == 200 and body.startswith(b"hello from ")
        ws.send("bye")
        with pytest.raises(Exception) as closed:
            ws.recv(timeout=10)
        assert type(closed.value).__name__.startswith("ConnectionClosed")
    # The exchange ended without a stray HTTP response on the websocket's bytes,
    # and the worker is still whole.
    assert server.request("/hello")[0] == 200
    assert "Traceback" not in server.log
