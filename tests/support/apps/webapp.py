"""The app the command tests serve, copied into each scratch project as ``webapp.py``:
one path per behaviour a test provokes (sleep, hang, crash, print, ...), a factory,
and ``versioned``, whose VERSION line the reload test rewrites in its copy."""
import os
import time


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/sleep":
        time.sleep(float(environ.get("QUERY_STRING") or 1))
    elif path == "/hang":
        while True:
            time.sleep(0.1)
    elif path == "/crash":
        os._exit(7)
    elif path == "/print":
        print("printed by the app", flush=True)
    elif path == "/multiprocess":
        body = str(environ["wsgi.multiprocess"]).encode()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]
    elif path == "/peer":
        # who the server says the client is, who answers, and the body it read
        body = (f"{environ['REMOTE_ADDR']}:{environ['REMOTE_PORT']} {os.getpid()} ".encode()
                + environ["wsgi.input"].read())
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    elif path == "/whoami":
        body = f"{os.getuid()} {os.getgid()}".encode()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]
    body = f"{path} {os.getpid()}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def create_app(greeting="hi"):
    def made(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [greeting.encode()]
    return made


VERSION = 'one'


def versioned(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [VERSION.encode()]


not_callable = 3
