"""Real frameworks and middleware served by the loop: Flask + ProxyFix, Django + WhiteNoise."""
from __future__ import annotations

import json
import os
import pathlib

import pytest
from support.harness import exchange, running
from support.wire import Client, headers_of

flask_app = pytest.importorskip("support.apps.frameworks.flask_app")


def test_flask_route_json_and_streaming():
    with running(flask_app.app) as server:
        client = Client(server.connect())
        client.send(b"GET /hello/world HTTP/1.1\r\nHost: x\r\n\r\n")
        response, body = client.response()
        assert response.status_code == 200 and body == b"Hello, world!"
        payload = json.dumps({"a": [1, 2, 3]}).encode()
        client.send(b"POST /json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(payload) + payload)
        response, body = client.response(b"POST")
        assert json.loads(body) == {"received": {"a": [1, 2, 3]}, "length": len(payload)}
        client.send(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        response, body = client.response()
        assert body == b"part0;part1;part2;"
        assert headers_of(response)["transfer-encoding"] == "chunked"


def test_flask_reads_a_chunked_json_body():
    payload = b'{"k": "v"}'
    with running(flask_app.app) as server:
        raw = exchange(server, b"POST /json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                               b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                               b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload))
        # werkzeug reports no content_length for a chunked request, but reads the body
        assert json.loads(raw.partition(b"\r\n\r\n")[2])["received"] == {"k": "v"}


def test_proxyfix_sees_the_forwarded_client():
    with running(flask_app.proxied) as server:
        raw = exchange(server, b"GET /whoami HTTP/1.1\r\nHost: internal:8000\r\n"
                               b"X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n"
                               b"X-Forwarded-Host: example.com\r\nConnection: close\r\n\r\n")
        seen = json.loads(raw.partition(b"\r\n\r\n")[2])
        assert seen == {"remote_addr": "203.0.113.7", "scheme": "https", "host": "example.com"}


django_app = pytest.importorskip("support.apps.frameworks.django_app")
pytest.importorskip("whitenoise")


def test_django_views_upload_and_streaming():
    with running(django_app.application) as server:
        client = Client(server.connect())
        client.send(b"GET /hello/django HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.response()[1] == b"Hello, django!"
        client.send(b"POST /upload?q=1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                    b"Content-Length: 5000\r\n\r\n" + b"u" * 5000)
        assert json.loads(client.response(b"POST")[1]) == {
            "size": 5000, "method": "POST", "path": "/upload", "query": "1"}
        client.send(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.response()[1] == b"line0\nline1\nline2\n"


def test_whitenoise_static_file_goes_out_with_sendfile(monkeypatch):
    import fastwsgi._loop  # noqa: F401  (the loop calls os.fstat before sendfile)

    expected = bytes(range(256)) * 4096
    (pathlib.Path(django_app.STATIC_ROOT) / "big.bin").write_bytes(expected)
    fstat_calls = []
    real_fstat = os.fstat
    monkeypatch.setattr(os, "fstat", lambda fd: fstat_calls.append(fd) or real_fstat(fd))
    with running(django_app.application) as server:
        client = Client(server.connect())
        client.send(b"GET /static/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        response, body = client.response()
        assert response.status_code == 200 and body == expected
        assert headers_of(response)["content-length"] == str(len(expected))
        # a second request on the same connection proves the framing held
        client.send(b"GET /hello/again HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.response()[1] == b"Hello, again!"
    assert fstat_calls, "the file_wrapper path (fstat → sendfile) was not taken"
