"""Concurrency settings as deployments write them, run as real processes: --threads,
gthread, the gevent/eventlet/tornado configs, and what --check-config says of them.

Where gunicorn runs the same configuration, the test runs it too (``serve`` is
parametrized over both commands): the behaviour users know is the reference.
"""
from __future__ import annotations

import concurrent.futures
import http.client
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

import pytest
from support import ROOT, apps
from support.processes import listening_port, python_env


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
    server.port = listening_port(server.pid)
    statuses, elapsed = parallel_gets(server, "/sleep?1", 8)
    assert statuses == [200] * 8
    assert elapsed < 3.0, f"8 concurrent 1-second requests took {elapsed:.2f} s"


def test_a_gevent_config_runs_as_many_requests_at_once_as_its_worker_connections(serve):
    """200 one-second requests at once on one gevent worker (worker_connections left at
    its 1,000): one round, as gevent serves them, not two rounds of 100. The threads
    are started as the requests come: none waits at rest."""
    if serve.name != "fastwsgi":
        pytest.skip("gunicorn needs gevent installed for this config")
    (serve.dir / "gunicorn.conf.py").write_text('worker_class = "gevent"\nworkers = 1\n')
    server = serve("-b", "127.0.0.1:0", "--backlog", "512", "webapp:application").wait_ready()
    worker, = server.worker_pids()
    assert thread_count(worker) <= 2, "app threads started before any request"
    statuses, elapsed = parallel_gets(server, "/sleep?1", 200)
    assert statuses == [200] * 200
    assert elapsed < 1.8, f"200 concurrent 1-second requests took {elapsed:.2f} s"
    assert thread_count(worker) <= 1 + 200


def thread_count(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("Threads:"))


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
    (["-k", "gevent"], 0, "gevent's concurrency is kept by 1000 threads per worker "
                          "(worker_connections=1000, at most 1000)"),
    (["-k", "gevent", "--worker-connections", "5000"], 0,
     "kept by 1000 threads per worker (worker_connections=5000, at most 1000)"),
    (["-k", "eventlet", "--worker-connections", "20"], 0, "kept by 20 threads per worker"),
    (["-k", "tornado", "--threads", "6"], 0, "kept by 6 threads per worker (threads=6)"),
    (["-k", "egg:gunicorn#gevent"], 0, "gevent's concurrency is kept by 1000 threads"),
    (["-k", "uvicorn.workers.UvicornWorker"], 1, "serves WSGI apps only"),
    (["-k", "asgi"], 1, "serves WSGI apps only"),
    (["-k", "geventwebsocket.gunicorn.workers.GeventWebSocketWorker"], 1,
     "Serve them on threads instead: --threads N (or -k gthread) with Flask-SocketIO's "
     "SocketIO(app, async_mode='threading')"),
    (["-k", "workers.MyUvicornWorker"], 1, "serves WSGI apps only"),
    (["-k", "workers.MyThreadWorker"], 0, "a subclass of gunicorn.workers.gthread.ThreadWorker: "
                                          "served as that class; its own code is not run"),
    (["-k", "workers.NotAWorker"], 1, "is not a worker class fastwsgi can run"),
    (["-k", "nowhere.Worker"], 1, "cannot be loaded"),
    (["--dirty-timeout", "10"], 0, "fastwsgi ignores these settings: dirty_timeout=10"),
]

@pytest.mark.parametrize("args, status, says", CHECK_CONFIG_CASES,
                         ids=[" ".join(case[0]) for case in CHECK_CONFIG_CASES])
def test_check_config_prints_every_remapped_setting_and_refuses_what_cannot_run(
        tmp_path, args, status, says):
    shutil.copytree(apps.APPS / "worker_classes", tmp_path, dirs_exist_ok=True)
    apps.install("hello", tmp_path)
    env = python_env(tmp_path, tmp_path / "gunicorn_stand_in", ROOT)
    done = subprocess.run([sys.executable, "-m", "fastwsgi", "--check-config", *args, "hello:app"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == status, done.stderr
    if says is None:
        assert done.stderr.strip() == "", done.stderr
    else:
        assert says in done.stderr, done.stderr


def websocket_server(serve, app_module: str):
    """The websockets library's client, and ``app_module``'s app served on one worker
    with 4 threads (gthread on gunicorn)."""
    connect = pytest.importorskip("websockets.sync.client").connect
    apps.install(app_module, serve.dir)
    worker_class = ["-k", "gthread"] if serve.name == "gunicorn" else []
    server = serve("-b", "127.0.0.1:0", "-w", "1", "--threads", "4", *worker_class,
                   f"{app_module}:app").wait_ready()
    return connect, server


def test_a_websocket_takes_the_connection_over_and_the_worker_serves_on(serve):
    """Flask-Sock finds environ["gunicorn.socket"], speaks the websocket protocol on it
    from the app's thread, and ends the exchange as gunicorn expects; a real client
    (the websockets library) talks to it while plain requests are answered."""
    pytest.importorskip("flask_sock")
    connect, server = websocket_server(serve, "websocket_echo")
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


def test_flask_socketio_events_over_a_websocket(serve):
    """Flask-SocketIO's threading mode, as fastwsgi's refusal of gevent-websocket's
    worker tells a user to run it: a Socket.IO client's event over a websocket gets
    the app's reply, while plain requests are answered beside it. The client speaks
    Socket.IO 5 over Engine.IO 4 as the JavaScript client does."""
    pytest.importorskip("flask_socketio")
    pytest.importorskip("simple_websocket")
    connect, server = websocket_server(serve, "socketio_events")
    url = f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket"
    with connect(url, open_timeout=10, close_timeout=5) as ws:
        opened = ws.recv(timeout=10)
        assert opened.startswith("0{") and '"sid"' in opened, opened
        ws.send("40")                               # Socket.IO connect, default namespace
        assert ws.recv(timeout=10).startswith("40{"), "no Socket.IO connect answer"
        for count in range(3):
            ws.send('42["test_event",{"data":"hello","count":%d}]' % count)
            assert ws.recv(timeout=10) == (
                '42["test_reply",{"data":"hello","count":%d}]' % (count + 1))
        status, body, _ = server.request("/hello")
        assert status == 200 and body.startswith(b"hello from ")
        ws.send("41")                               # Socket.IO disconnect
    assert server.request("/hello")[0] == 200
    assert "Traceback" not in server.log
