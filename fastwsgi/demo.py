"""A demo WSGI app: ``fastwsgi fastwsgi.demo:app`` serves it.

Like wsgiref's demo_app, it greets and echoes what the request looked like,
so a first ``curl`` shows the server works end to end.
"""
from __future__ import annotations

from typing import Callable, Iterable


def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
    """Hello for GET; POST bodies are echoed back with their length."""
    from . import __version__

    body_in = environ["wsgi.input"].read() if environ["REQUEST_METHOD"] == "POST" else b""
    lines = [
        f"Hello from fastwsgi {__version__}!",
        "",
        f"{environ['REQUEST_METHOD']} {environ.get('RAW_URI', environ['PATH_INFO'])} "
        f"{environ['SERVER_PROTOCOL']}",
        f"PATH_INFO: {environ['PATH_INFO']}",
        f"QUERY_STRING: {environ['QUERY_STRING']}",
        f"REMOTE_ADDR: {environ.get('REMOTE_ADDR', '')}",
    ]
    if body_in:
        lines.append(f"received {len(body_in)} body bytes")
    body = ("\n".join(lines) + "\n").encode("utf-8") + body_in
    start_response(
        "200 OK",
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]
