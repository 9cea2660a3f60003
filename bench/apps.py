"""WSGI applications used by the benchmark scenarios (bench/run.py).

Plain WSGI, standard library only, so the same module is imported unchanged by
every server under test (ours, the peers venv, the pypi-fastwsgi venv).
Response bodies are built once at import time so the apps measure the server,
not the application.
"""

import time

HELLO = b"Hello, World!"
BLOCKING_SECONDS = 0.020  # what the blocking app waits per request, as on a database or an API


def _pattern(size):
    """Deterministic, non-constant bytes (a server must not get away with
    sending the wrong slice of a buffer)."""
    block = bytes(range(33, 127)) + b"\n"  # printable ASCII, 95 bytes
    return (block * (size // len(block) + 1))[:size]


BODY_64K = _pattern(64 * 1024)
BODY_1M = _pattern(1024 * 1024)

POST_SIZE = 16 * 1024
POST_BODY = b"p" * POST_SIZE  # what wrk sends in the post16k scenario


def _fixed(body, content_type=b"text/plain"):
    headers = [
        ("Content-Type", content_type.decode("latin-1")),
        ("Content-Length", str(len(body))),
    ]
    chunks = [body]

    def app(environ, start_response):
        start_response("200 OK", headers)
        return chunks

    return app


hello = _fixed(HELLO)
body_64k = _fixed(BODY_64K, b"application/octet-stream")
body_1m = _fixed(BODY_1M, b"application/octet-stream")


_HELLO_HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))]


def blocking(environ, start_response):
    """hello after a 20 ms wait that holds its thread, as a call to a database would."""
    time.sleep(BLOCKING_SECONDS)
    start_response("200 OK", _HELLO_HEADERS)
    return [HELLO]


def echo(environ, start_response):
    """Consume the request body fully and answer with its length in bytes."""
    stream = environ["wsgi.input"]
    total = 0
    try:
        remaining = int(environ.get("CONTENT_LENGTH") or -1)
    except ValueError:
        remaining = -1
    if remaining >= 0:
        while remaining > 0:
            chunk = stream.read(min(remaining, 65536))
            if not chunk:
                break
            total += len(chunk)
            remaining -= len(chunk)
    else:  # chunked / unknown length: read to EOF of the request body
        while True:
            chunk = stream.read(65536)
            if not chunk:
                break
            total += len(chunk)
    body = str(total).encode("ascii")
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
    )
    return [body]


# name -> (app, expected response body for the harness's pre-flight check)
APPS = {
    "hello": (hello, HELLO),
    "body_64k": (body_64k, BODY_64K),
    "body_1m": (body_1m, BODY_1M),
    "echo": (echo, str(POST_SIZE).encode("ascii")),
    "blocking": (blocking, HELLO),
}
