#!/usr/bin/env python3
"""Micro-benchmark: request head parse + PEP 3333 environ build per second.

fastwsgi's HeadParser + EnvironBuilder against httptools (llhttp) used the same
way: parse one typical browser request (~500 bytes, 13 header fields), collect
the method, target and headers, and build a comparable environ dict (method,
percent-decoded PATH_INFO, QUERY_STRING, RAW_URI, protocol, remote and server
address, HTTP_* keys with repeats joined, CONTENT_TYPE / CONTENT_LENGTH).

Both sides are driven from the same Python loop, so the numbers include one
or two Python-level calls per request on each side.  The two take turns in
every repeat; the median of the repeats is reported, with the ratio
fastwsgi / httptools.

    python bench/parse_bench.py [--number N] [--repeat R] [--request browser|minimal|api] [--vary]

With --vary, 64 variants of the request take turns, differing in the path and
in every field value but Host, so no value repeats from one request to the
next (fastwsgi reuses the str of a common field's value while it repeats).

Not a test: timings depend on the machine.  httptools is taken from the
running interpreter (pip install httptools); without it only fastwsgi runs.
"""
import argparse
import os
import platform
import statistics
import sys
import time
from urllib.parse import unquote_to_bytes

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fastwsgi._environ import EnvironBuilder
from fastwsgi._parser import HeadParser

REQUESTS = {
    # What a current desktop browser sends for a page, with a session cookie.
    "browser": (
        b"GET /static/app/index.html?lang=en&v=3 HTTP/1.1\r\n"
        b"Host: www.example.com\r\n"
        b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
        b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
        b"Accept-Language: en-US,en;q=0.5\r\n"
        b"Accept-Encoding: gzip, deflate, br, zstd\r\n"
        b"Connection: keep-alive\r\n"
        b"Cookie: sessionid=k2h3j4k5l6m7n8b9v0c1x2z3; csrftoken=Hf83kLq0PzX2mN7vB4cR9tY1\r\n"
        b"Upgrade-Insecure-Requests: 1\r\n"
        b"Sec-Fetch-Dest: document\r\n"
        b"Sec-Fetch-Mode: navigate\r\n"
        b"Sec-Fetch-Site: none\r\n"
        b"Sec-Fetch-User: ?1\r\n"
        b"Priority: u=0, i\r\n"
        b"\r\n"
    ),
    # wrk's default request.
    "minimal": b"GET / HTTP/1.1\r\nHost: localhost:8000\r\n\r\n",
    # A JSON API call with a bearer token and a percent-encoded path.
    "api": (
        b"POST /api/v2/items/caf%C3%A9?dry_run=1 HTTP/1.1\r\n"
        b"Host: api.example.com\r\n"
        b"User-Agent: python-requests/2.32.3\r\n"
        b"Accept-Encoding: gzip, deflate\r\n"
        b"Accept: application/json\r\n"
        b"Connection: keep-alive\r\n"
        b"Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dBjftJeZ4CVP\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: 0\r\n"
        b"X-Request-Id: 9b2f5c1e-7a4d-4e0b-8f6a-2c3d4e5f6a7b\r\n"
        b"\r\n"
    ),
}

REMOTE_ADDR = "127.0.0.1"
REMOTE_PORT = "54321"


def variants(request, count):
    """``count`` versions of ``request``, each value but Host's changed by a counter."""
    head, _, _ = request.partition(b"\r\n\r\n")
    request_line, *fields = head.split(b"\r\n")
    method, target, version = request_line.split(b" ")
    out = []
    for i in range(count):
        tag = b"%02d" % i
        lines = [method + b" " + target.replace(b"/", b"/v" + tag, 1) + b" " + version]
        for field in fields:
            name, _, value = field.partition(b": ")
            if name.lower() in (b"host", b"content-length"):
                lines.append(field)
            else:
                lines.append(name + b": " + value[:-2] + tag if len(value) > 2 else field + tag)
        out.append(b"\r\n".join(lines) + b"\r\n\r\n")
    return out


def fastwsgi_runner(requests):
    head = HeadParser()
    builder = EnvironBuilder(server_name="127.0.0.1", server_port=8000)
    parse = head.parse_bytes
    build = builder.environ_from_head
    turns = len(requests)

    def run(number):
        for i in range(number):
            request = requests[i % turns]
            parse(request)
            environ = build(head, request, REMOTE_ADDR, REMOTE_PORT)
        return environ

    return run


def httptools_runner(requests):
    import httptools

    template = {
        "SCRIPT_NAME": "",
        "SERVER_SOFTWARE": "httptools",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.errors": sys.stderr,
        "wsgi.input_terminated": True,
    }
    # header name -> environ key, filled as names are seen (as a tuned server would)
    keys = {b"content-type": "CONTENT_TYPE", b"content-length": "CONTENT_LENGTH"}

    class Collector:
        __slots__ = ("complete", "headers", "url")

        def __init__(self):
            self.headers = []
            self.complete = False

        def on_url(self, url):
            self.url = url

        def on_header(self, name, value):
            self.headers.append((name, value))

        def on_headers_complete(self):
            self.complete = True

    collector = Collector()
    parser = httptools.HttpRequestParser(collector)
    parse_url = httptools.parse_url

    def build_environ():
        environ = template.copy()
        environ["REQUEST_METHOD"] = parser.get_method().decode("latin-1")
        url = collector.url
        parts = parse_url(url)
        path = parts.path or b""
        environ["RAW_URI"] = url.decode("latin-1")
        environ["PATH_INFO"] = (unquote_to_bytes(path) if b"%" in path else path).decode("latin-1")
        environ["QUERY_STRING"] = (parts.query or b"").decode("latin-1")
        environ["SERVER_PROTOCOL"] = "HTTP/" + parser.get_http_version()
        environ["REMOTE_ADDR"] = REMOTE_ADDR
        environ["REMOTE_PORT"] = REMOTE_PORT
        host = None
        for name, value in collector.headers:
            key = keys.get(name)
            if key is None:
                lowered = name.lower()
                key = keys[lowered] = keys.get(lowered) or (
                    "HTTP_" + lowered.decode("latin-1").upper().replace("-", "_"))
            value = value.decode("latin-1")
            if key == "HTTP_HOST":
                host = value
            if key in environ:
                value = environ[key] + ", " + value
            environ[key] = value
        if host:
            name, _, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
            if not name:
                name, port = host, ""
            environ["SERVER_NAME"] = name
            environ["SERVER_PORT"] = port or "80"
        else:
            environ["SERVER_NAME"] = "127.0.0.1"
            environ["SERVER_PORT"] = "8000"
        return environ

    turns = len(requests)

    def run(number):
        for i in range(number):
            collector.headers = []
            parser.feed_data(requests[i % turns])
            environ = build_environ()
        return environ

    return run


def measure(runs, number, repeat):
    """Median requests/s of each runner; the runners take turns within every repeat,
    so a machine busy for a while slows all of them alike."""
    for run in runs:
        run(max(1, number // 10))  # warm up
    rates = [[] for _ in runs]
    for _ in range(repeat):
        for run, samples in zip(runs, rates):
            start = time.perf_counter()
            run(number)
            samples.append(number / (time.perf_counter() - start))
    return [statistics.median(samples) for samples in rates]


def main():
    arguments = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    arguments.add_argument("--number", type=int, default=200_000, help="requests per repeat")
    arguments.add_argument("--repeat", type=int, default=7, help="repeats; the median is kept")
    arguments.add_argument("--request", choices=sorted(REQUESTS), default="browser")
    arguments.add_argument("--vary", action="store_true",
                           help="64 variants in turn: no field value repeats")
    options = arguments.parse_args()
    request = REQUESTS[options.request]
    requests = variants(request, 64) if options.vary else [request]
    fields = request.count(b"\r\n") - 2
    print(f"request: {options.request}{' (64 variants)' if options.vary else ''}, "
          f"{len(request)} bytes, {fields} header fields; "
          f"{options.repeat} x {options.number} requests, median")
    print(f"python {platform.python_version()} on {platform.machine()}")

    ours_environ = fastwsgi_runner(requests)(1)
    try:
        import httptools
    except ImportError:
        (ours,) = measure([fastwsgi_runner(requests)], options.number, options.repeat)
        print(f"fastwsgi HeadParser+EnvironBuilder: {ours:12,.0f} req/s  {1e9 / ours:7.0f} ns/req")
        print("httptools is not installed (pip install httptools): no comparison")
        return
    theirs_environ = httptools_runner(requests)(1)
    differing = sorted(key for key in set(ours_environ) | set(theirs_environ)
                       if key != "SERVER_SOFTWARE"
                       and ours_environ.get(key) != theirs_environ.get(key))
    if differing:
        sys.exit(f"the two environs differ in {differing}: not the same work")
    ours, theirs = measure([fastwsgi_runner(requests), httptools_runner(requests)],
                           options.number, options.repeat)
    print(f"fastwsgi HeadParser+EnvironBuilder: {ours:12,.0f} req/s  {1e9 / ours:7.0f} ns/req")
    print(f"httptools {httptools.__version__} (llhttp) + environ:  {theirs:12,.0f} req/s  "
          f"{1e9 / theirs:7.0f} ns/req")
    print(f"ratio fastwsgi / httptools: {ours / theirs:.2f}x")


if __name__ == "__main__":
    main()
