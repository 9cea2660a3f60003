"""Echoes the request body (or says hello); ``/slow?SECONDS`` sleeps first and
``/missing`` is a 404: the requests the metrics tests count."""
import time


def application(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep(float(environ["QUERY_STRING"] or 0.3))
    body = environ["wsgi.input"].read() or b"hello"
    status = "404 Not Found" if environ["PATH_INFO"] == "/missing" else "200 OK"
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
