"""``fastwsgi.run`` in a process of its own, on a loopback socket bound to port 0.

    python -m support.apps.runner demo|slow|modules

prints the port, serves until a signal stops it, then prints ``stopped``.  ``slow``
sleeps for the seconds its query string gives before it answers; ``modules`` answers
with the names of the modules the process has imported, one a line; ``demo`` is
``fastwsgi.demo:app``.
"""
import socket
import sys
import time

import fastwsgi


def slow(environ, start_response):
    time.sleep(float(environ["QUERY_STRING"] or 0))
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "4")])
    return [b"done"]


def modules(environ, start_response):
    body = "\n".join(sorted(sys.modules)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def main() -> None:
    app = {"slow": slow, "modules": modules}.get(sys.argv[1]) or __import__("fastwsgi.demo", fromlist=["app"]).app
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    print(sock.getsockname()[1], flush=True)
    fastwsgi.run(app, sock=sock)
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
