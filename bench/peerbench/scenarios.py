"""The scenarios of the peer benchmark: the app, the request, the load and the server options of each row."""
from __future__ import annotations

import dataclasses

import apps  # bench/apps.py: the WSGI apps and expected bodies

FRAMEWORK_SERVERS = ("fastwsgi", "bjoern", "granian", "gunicorn", "waitress", "nginx")
THREADED_SERVERS = ("fastwsgi", "granian", "gunicorn", "waitress")
TLS_SERVERS = ("fastwsgi", "granian", "gunicorn", "nginx")


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    desc: str
    app: str                                  # "module:callable", the module under bench/
    expected_body: bytes                      # what the pre-flight request must get back
    conns: int = 50                           # wrk connections
    path: str = "/"
    content_type: str = "text/plain"          # of the response; nginx answers with it
    request_body: bytes | None = None         # None: GET; else a POST of these bytes
    script: str | None = None                 # wrk lua script under bench/
    script_args: tuple[str, ...] = ()
    threads: int | None = None                # worker threads; None: each server's default model
    tls: bool = False                         # HTTPS with a certificate made at run time
    servers: tuple[str, ...] | None = None    # the servers the row applies to; None: all
    app_cost: bool = False                    # measure the app in-process, and the limit it sets
    rss: bool = False                         # worker RSS at rest and after --rss-requests
    physical_limit: float | None = None       # req/s no server can pass (threads / app sleep)

    def applies_to(self, server: str) -> bool:
        return self.servers is None or server in self.servers

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"


_JSON_FLASK = b'{"message":"Hello, World!"}\n'    # Flask's jsonify: compact, newline-terminated
_JSON_DJANGO = b'{"message": "Hello, World!"}'    # Django's JsonResponse: json.dumps defaults


def _framework(name: str, app: str, desc: str, path: str, body: bytes, content_type: str) -> Scenario:
    return Scenario(name, desc, app, body, path=path, content_type=content_type,
                    servers=FRAMEWORK_SERVERS, app_cost=True, rss=True)


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("hello", "GET, 13-byte body, keep-alive, 50 connections", "apps:hello", apps.HELLO),
    Scenario("pipeline16", "GET hello, 16 requests pipelined per write, 50 connections",
             "apps:hello", apps.HELLO, script="pipeline.lua", script_args=("16",)),
    Scenario("body64k", "GET, 64 KiB response body, 50 connections",
             "apps:body_64k", apps.BODY_64K, content_type="application/octet-stream"),
    Scenario("body1m", "GET, 1 MiB response body, 50 connections",
             "apps:body_1m", apps.BODY_1M, content_type="application/octet-stream"),
    Scenario("post16k", "POST 16 KiB body, app reads wsgi.input fully, 50 connections",
             "apps:echo", str(apps.POST_SIZE).encode("ascii"), request_body=apps.POST_BODY,
             script="post.lua", script_args=(str(apps.POST_SIZE),)),
    Scenario("c1000", "GET hello, 1,000 concurrent keep-alive connections",
             "apps:hello", apps.HELLO, conns=1000),
    _framework("flask-hello", "flask_app:app", "Flask, GET / -> 'Hello, World!', 50 connections",
               "/", apps.HELLO, "text/html; charset=utf-8"),
    _framework("flask-json", "flask_app:app", "Flask, GET /json -> jsonify(message=...), 50 connections",
               "/json", _JSON_FLASK, "application/json"),
    _framework("django-hello", "django_app:application",
               "Django (7 middleware, URLconf), GET / -> HttpResponse, 50 connections",
               "/", apps.HELLO, "text/plain"),
    _framework("django-json", "django_app:application",
               "Django (7 middleware, URLconf), GET /json -> JsonResponse, 50 connections",
               "/json", _JSON_DJANGO, "application/json"),
    Scenario("blocking", "GET, the app sleeps 20 ms, 32 worker threads, 64 connections",
             "apps:blocking", apps.HELLO, conns=64, threads=32, servers=THREADED_SERVERS,
             physical_limit=32 / apps.BLOCKING_SECONDS),
    Scenario("hello-threads1", "GET hello, 1 worker thread, 50 connections",
             "apps:hello", apps.HELLO, threads=1, servers=THREADED_SERVERS),
    Scenario("hello-threads8", "GET hello, 8 worker threads, 50 connections",
             "apps:hello", apps.HELLO, threads=8, servers=THREADED_SERVERS),
    Scenario("hello-tls", "GET hello over TLS (HTTPS, self-signed certificate), keep-alive, 50 connections",
             "apps:hello", apps.HELLO, tls=True, servers=TLS_SERVERS),
)}

# Names --scenarios takes for several rows at once.
GROUPS: dict[str, tuple[str, ...]] = {
    "flask": ("flask-hello", "flask-json"),
    "django": ("django-hello", "django-json"),
    "threads": ("blocking", "hello-threads1", "hello-threads8"),
}


def expand(names: list[str]) -> list[str]:
    """Scenario names with the groups replaced by their rows, in table order."""
    wanted = set()
    for name in names:
        wanted.update(GROUPS.get(name, (name,)))
    return [name for name in SCENARIOS if name in wanted]


def app_module(scenario: Scenario) -> str:
    return scenario.app.split(":", 1)[0]


def app_callable(scenario: Scenario) -> str:
    return scenario.app.split(":", 1)[1]
