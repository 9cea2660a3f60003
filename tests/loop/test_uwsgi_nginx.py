"""nginx's uwsgi_pass in front of ``--protocol uwsgi``, fastwsgi and gunicorn 27 alike:
what the client sends reaches the app, bodies both ways come through whole, the
client's keep-alive to nginx holds, and garbage sent to the uwsgi port closes only
that connection."""
import hashlib
import http.client
import json
import socket

import pytest

from support import apps, uwsgi
from support.wire import read_all

pytestmark = pytest.mark.skipif(uwsgi.nginx_binary() is None,
                                reason="nginx is not installed (apt-get install nginx-light)")


@pytest.fixture
def front(serve, tmp_path):
    """nginx on a free port, uwsgi_pass to the server under test (``serve``)."""
    apps.install("uwsgiapp", serve.dir)
    server = serve("--protocol", "uwsgi", "-b", "127.0.0.1:0", "uwsgiapp:application").wait_ready()
    nginx = uwsgi.Nginx(tmp_path / "nginx", f"127.0.0.1:{server.port}")
    yield nginx, server
    nginx.close()


def client_of(nginx):
    return http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=10)


def test_get_with_query_reaches_the_app(front):
    nginx, _ = front
    client = client_of(nginx)
    client.request("GET", "/a%20b/c?x=1&y=%20z", headers={"X-Trace": "t1", "Accept": "a/b"})
    response = client.getresponse()
    assert response.status == 200
    environ = json.loads(response.read())
    assert environ["REQUEST_METHOD"] == "GET"
    assert environ["PATH_INFO"] == "/a b/c"
    assert environ["QUERY_STRING"] == "x=1&y=%20z"
    assert environ["HTTP_X_TRACE"] == "t1"
    assert environ["HTTP_ACCEPT"] == "a/b"
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert environ["wsgi.url_scheme"] == "http"


def test_post_bodies_of_200_kb_over_a_kept_alive_client_connection(front):
    nginx, _ = front
    client = client_of(nginx)
    for i in range(20):
        body = bytes([i]) * 200_000
        client.request("POST", f"/upload/{i}", body=body,
                       headers={"Content-Type": "application/octet-stream"})
        response = client.getresponse()
        assert response.status == 200
        assert response.getheader("Connection") != "close"
        environ = json.loads(response.read())
        assert environ["body_length"] == len(body)
        assert environ["body_sha256"] == hashlib.sha256(body).hexdigest()
        assert environ["CONTENT_TYPE"] == "application/octet-stream"
        assert environ["PATH_INFO"] == f"/upload/{i}"
    # one client connection carried every request
    assert client.sock is not None


def test_answers_of_every_framing_come_through(front):
    nginx, _ = front
    client = client_of(nginx)
    client.request("GET", "/large")
    response = client.getresponse()
    assert response.status == 200 and response.read() == b"L" * 1_000_000
    client.request("GET", "/stream")
    response = client.getresponse()
    assert response.status == 200
    assert response.read() == b"".join(b"chunk %d\n" % i for i in range(100))
    client.request("HEAD", "/")
    response = client.getresponse()
    assert response.status == 200 and response.read() == b""
    client.request("GET", "/empty")
    response = client.getresponse()
    assert response.status == 204 and response.read() == b""
    client.request("GET", "/after")
    response = client.getresponse()
    assert json.loads(response.read())["PATH_INFO"] == "/after"
    assert "upstream prematurely closed" not in nginx.errors


def test_garbage_on_the_uwsgi_port_closes_that_connection_only(front):
    nginx, server = front
    pids = server.worker_pids()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"\x05\x10\x00\x00" + b"\xff" * 16)
        answer = read_all(sock)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 ")
    client = client_of(nginx)
    client.request("GET", "/still")
    response = client.getresponse()
    assert response.status == 200
    assert json.loads(response.read())["PATH_INFO"] == "/still"
    assert server.worker_pids() == pids
