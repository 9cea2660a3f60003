"""Apps for the memory tests, served by a fastwsgi process of their own."""
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


if __name__ == "__main__":
    import socket
    import signal

    from fastwsgi._loop import Server
    from fastwsgi.options import ServerOptions

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    server = Server(globals()[sys.argv[1]], [sock], ServerOptions(io_timeout=20))
    signal.signal(signal.SIGTERM, lambda *_: server.stop(graceful=False))
    print(sock.getsockname()[1], flush=True)
    server.run()
