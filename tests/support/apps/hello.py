"""The smallest WSGI app, for tests that only need one to load."""


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hi"]
