"""What gunicorn's request hooks receive, rebuilt from the environ.

``pre_request(worker, req)`` and ``post_request(worker, req, environ, resp)`` hooks
written for gunicorn read ``req.method``, ``req.path``, ``req.headers``,
``resp.status``, ``resp.headers``... These views give them those attributes
without the loop ever building gunicorn's objects.
"""
from __future__ import annotations

from .glogging import raw_uri, request_headers


class RequestView:
    def __init__(self, environ: dict) -> None:
        self.environ = environ
        self.method = environ.get("REQUEST_METHOD")
        self.uri = raw_uri(environ)
        self.path = environ.get("PATH_INFO", "")
        self.query = environ.get("QUERY_STRING", "")
        self.fragment = ""
        self.scheme = environ.get("wsgi.url_scheme", "http")
        protocol = environ.get("SERVER_PROTOCOL", "HTTP/1.1")
        major, _, minor = protocol.partition("/")[2].partition(".")
        self.version = (int(major or 1), int(minor or 0))
        # gunicorn keeps header names upper-cased.
        self.headers = [(name.upper(), value) for name, value in request_headers(environ)]
        # gunicorn's is the peer's socket address: (host, port) over TCP
        address, port = environ.get("REMOTE_ADDR"), environ.get("REMOTE_PORT")
        self.remote_addr = (address, int(port)) if port else address

    def __repr__(self) -> str:
        return f"<RequestView {self.method} {self.uri}>"


class ResponseView:
    def __init__(self, status: str, headers: list, sent: int | None) -> None:
        self.status = status
        try:
            self.status_code: int | None = int(status.split(None, 1)[0])
        except (ValueError, AttributeError, IndexError):
            self.status_code = None
        self.headers = headers
        self.sent = sent
        self.response_length = sent

    def __repr__(self) -> str:
        return f"<ResponseView {self.status}>"
