"""An app that forks, as apps do (a multiprocessing Pool with the fork start method,
subprocess with close_fds=False), and one that keeps the connection's socket
(environ["gunicorn.socket"]) after its request: each child or duplicate holds the
worker's client descriptors open after the worker has closed its own.

GET /pool       sums squares on a global fork Pool, made by the first such request
GET /fds        the descriptors a child started with close_fds=False has, one per line
GET /keep       keeps environ["gunicorn.socket"] (taking it over) and answers
GET /           hello
"""
import multiprocessing
import os
import subprocess
import sys

POOL = None
KEPT = []
LIST_FDS = "import os; print(' '.join(sorted(os.listdir('/proc/self/fd'), key=int)))"


def square(x):
    return x * x


def app(environ, start_response):
    global POOL
    path = environ["PATH_INFO"]
    if path == "/pool":
        if POOL is None:
            POOL = multiprocessing.get_context("fork").Pool(2)
        body = str(sum(POOL.map(square, range(10)))).encode()
    elif path == "/fds":
        child = subprocess.run([sys.executable, "-c", LIST_FDS], close_fds=False,
                               stdout=subprocess.PIPE, check=True)
        body = child.stdout
    elif path == "/keep":
        sock = environ["gunicorn.socket"]
        sock.fileno()   # takes the connection's socket over (a duplicate of it)
        KEPT.append(sock)
        body = b"kept"
    else:
        body = b"hello pid %d" % os.getpid()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
