"""A gunicorn config file whose server hooks record each call, with what it was
called with, in ``hooks.log`` beside it; installed as ``gunicorn.conf.py``."""
import os


def record(*words):
    with open(os.path.join(os.path.dirname(__file__), "hooks.log"), "a") as f:
        f.write(" ".join(str(w) for w in words) + "\n")


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
