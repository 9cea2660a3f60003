"""The app the uwsgi protocol tests serve (behind nginx's uwsgi_pass, or packets sent
by hand): the environ it was given as JSON, with the body's length and digest; a
streamed body without a Content-Length; a large one with it."""
import hashlib
import json


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/stream":
        # no Content-Length: the body ends when the connection does
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (b"chunk %d\n" % i for i in range(100))
    if path == "/large":
        body = b"L" * 1_000_000
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if path == "/empty":
        start_response("204 No Content", [])
        return []
    body = environ["wsgi.input"].read()
    seen = {key: value for key, value in environ.items() if isinstance(value, str)}
    seen["body_length"] = len(body)
    seen["body_sha256"] = hashlib.sha256(body).hexdigest()
    out = json.dumps(seen, sort_keys=True).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(out)))])
    return [out]
