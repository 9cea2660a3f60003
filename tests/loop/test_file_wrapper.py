"""wsgi.file_wrapper: sendfile(2) for regular files, iteration for anything else."""
from __future__ import annotations

import io

import pytest
from support.harness import exchange, running
from support.wire import Client, headers_of

CONTENT = bytes(range(256)) * 1024  # 256 KiB


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(CONTENT)
    return path


def _file_app(path, offset=0, headers=(), opener=None):
    closed = []

    def app(environ, start_response):
        handle = opener() if opener else open(path, "rb")
        handle.seek(offset)
        original_close = handle.close

        def close():
            closed.append(True)
            original_close()

        handle.close = close
        start_response("200 OK", [("Content-Type", "application/octet-stream"), *headers])
        return environ["wsgi.file_wrapper"](handle, 32768)

    return app, closed


def test_regular_file_is_sent_whole_with_its_length(data_file):
    app, closed = _file_app(data_file)
    with running(app) as server:
        client = Client(server.connect())
        for _ in range(2):
            client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            response, body = client.response()
            assert headers_of(response)["content-length"] == str(len(CONTENT))
            assert body == CONTENT
    assert closed == [True, True]


def test_file_position_is_where_sending_starts(data_file):
    app, _ = _file_app(data_file, offset=1000)
    with running(app) as server:
        raw = exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert raw.partition(b"\r\n\r\n")[2] == CONTENT[1000:]


def test_app_content_length_limits_what_is_sent(data_file):
    app, _ = _file_app(data_file, headers=[("Content-Length", "100")])
    with running(app) as server:
        client = Client(server.connect())
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.response()[1] == CONTENT[:100]
        assert client.response()[1] == CONTENT[:100]


def test_head_sends_no_file_bytes(data_file):
    app, closed = _file_app(data_file)
    with running(app) as server:
        client = Client(server.connect())
        client.send(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        response, body = client.response(b"HEAD")
        assert body == b"" and headers_of(response)["content-length"] == str(len(CONTENT))
        assert client.response()[1] == CONTENT
    assert len(closed) == 2


@pytest.mark.parametrize("sendfile", [True, False])
def test_file_like_without_descriptor_is_iterated(sendfile):
    app, closed = _file_app(None, opener=lambda: io.BytesIO(CONTENT))
    with running(app, sendfile=sendfile) as server:
        raw = exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head, _, body = raw.partition(b"\r\n\r\n")
        assert b"Transfer-Encoding: chunked" in head
        assert body.endswith(b"0\r\n\r\n") and len(body) > len(CONTENT)
    assert closed == [True]
