"""Apps for the memory tests, served by a fastwsgi process of their own.

    python -m support.apps.memory stream_gib|count_upload|hello

prints the port, then serves that app until SIGTERM.
"""
import sys

CHUNK = b"m" * 65536
GIB = 1024 ** 3


def stream_gib(environ, start_response):
    """1 GiB, produced 64 KiB at a time, with a known length."""
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(GIB))])
    return (CHUNK for _ in range(GIB // len(CHUNK)))


def count_upload(environ, start_response):
    """Reads the whole body in 64 KiB pieces and answers with its size."""
    stream = environ["wsgi.input"]
    total = 0
    while True:
        piece = stream.read(65536)
        if not piece:
            break
        total += len(piece)
    body = str(total).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"hi"]


if __name__ == "__main__":
    from fastwsgi.options import ServerOptions
    from support.apps import listening_server

    # keep-alive long enough for the idle connections a test counts
    listening_server(globals()[sys.argv[1]], ServerOptions(io_timeout=20, keepalive=60),
                     backlog=1024).run()
