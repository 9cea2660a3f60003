"""Sends 103 Early Hints (``wsgi.early_hints``) before its response; ``/bad`` tries a
header injection through them."""


def application(environ, start_response):
    hints = environ["wsgi.early_hints"]
    if environ["PATH_INFO"] == "/bad":
        try:
            hints([("Link", "</a.css>\r\nX-Injected: 1")])
        except Exception:
            body = b"raised"
        else:
            body = b"sent"
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    hints([("Link", "</style.css>; rel=preload; as=style"), (b"Link", b"</app.js>; rel=preload; as=script")])
    hints([("X-Second", "  two\t")])
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    hints([("Link", "</late.css>; rel=preload")])  # before the headers are sent: still allowed
    return [b"ok"]
