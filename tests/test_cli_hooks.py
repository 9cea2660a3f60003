"""Server hooks from a config file, called at gunicorn's moments with gunicorn's arguments."""
from __future__ import annotations

import signal

HOOKS = '''
import os

def record(*words):
    with open(os.path.join(os.path.dirname(__file__), "hooks.log"), "a") as f:
        f.write(" ".join(str(w) for w in words) + "\\n")

bind = "127.0.0.1:0"
workers = 2

def on_starting(server):
    record("on_starting", os.getpid() == server.pid if hasattr(server, "pid") else "master")

def when_ready(server):
    record("when_ready", len(server.LISTENERS))

def pre_fork(server, worker):
    record("pre_fork", worker.age)

def post_fork(server, worker):
    record("post_fork", worker.pid == os.getpid())

def post_worker_init(worker):
    record("post_worker_init", worker.pid == os.getpid())

def pre_request(worker, req):
    record("pre_request", req.method, req.path)

def post_request(worker, req, environ, resp):
    record("post_request", req.method, environ["PATH_INFO"], str(resp.status).split()[0])

def nworkers_changed(server, new_value, old_value):
    record("nworkers_changed", new_value, old_value)

def worker_int(worker):
    record("worker_int")

def child_exit(server, worker):
    record("child_exit", worker.pid != os.getpid())

def worker_exit(server, worker):
    record("worker_exit", worker.pid == os.getpid())

def on_reload(server):
    record("on_reload")

def on_exit(server):
    record("on_exit")
'''


def test_hooks_run_at_their_moments(serve):
    (serve.dir / "gunicorn.conf.py").write_text(HOOKS)
    server = serve("webapp").wait_ready(workers=2)
    assert server.request("/hooked")[0] == 200
    log = serve.dir / "hooks.log"
    server.wait_until(lambda: "post_request GET /hooked 200" in log.read_text(), message="for post_request")
    server.signal(signal.SIGHUP)
    server.wait_until(lambda: "on_reload" in log.read_text(), message="for on_reload")
    server.signal(signal.SIGTERM)
    assert server.wait_exit() == 0
    lines = log.read_text().splitlines()
    assert lines[0] == "nworkers_changed 2 None"
    assert lines.index("when_ready 1") < lines.index("pre_fork 1")
    assert lines.count("post_fork True") >= 4 and lines.count("post_worker_init True") >= 4
    assert "pre_request GET /hooked" in lines
    assert lines.count("worker_exit True") >= 4
    assert lines.count("child_exit True") >= 4
    assert lines[-1] == "on_exit"
