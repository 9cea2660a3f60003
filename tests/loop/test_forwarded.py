"""What a front end says of a request (forwarded_allow_ips, secure_scheme_headers,
forwarder_headers), served through a real socket as gunicorn 27 serves it: believed
from trusted peers only, refused (400) when it contradicts itself, and a SCRIPT_NAME
it sends mounts the app (500 for a path outside it)."""
from __future__ import annotations

import pytest
from support.harness import exchange, running

SEEN = {}


def recording_app(environ, start_response):
    SEEN.clear()
    SEEN.update(environ)
    body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def request(path: str, headers: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: example.com\r\n{headers}Connection: close\r\n\r\n".encode()


@pytest.mark.parametrize("trusted", [True, False], ids=["trusted", "untrusted"])
def test_the_scheme_from_a_trusted_front_end_only(trusted):
    allowed = ("127.0.0.1",) if trusted else ("192.0.2.1",)
    with running(recording_app, forwarded_allow_ips=allowed) as server:
        answer = exchange(server, request("/", "X-Forwarded-Proto: https\r\n"))
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert SEEN["wsgi.url_scheme"] == ("https" if trusted else "http")
    assert SEEN["HTTP_X_FORWARDED_PROTO"] == "https"


@pytest.mark.parametrize("allowed, trusted", [
    (("127.0.0.0/8",), True), (("10.0.0.0/8", "::1/128"), False), (("127.0.0.1/32",), True),
], ids=["network-with-peer", "networks-without", "one-address-network"])
def test_a_network_in_forwarded_allow_ips_trusts_its_addresses(allowed, trusted):
    # gunicorn 27 takes CIDR networks here (a cluster's pod range, say).
    with running(recording_app, forwarded_allow_ips=allowed) as server:
        exchange(server, request("/", "X-Forwarded-Proto: https\r\n"))
    assert SEEN["wsgi.url_scheme"] == ("https" if trusted else "http")


def test_contradictory_scheme_headers_are_refused_with_gunicorns_400():
    with running(recording_app) as server:
        answer = exchange(server, request("/", "X-Forwarded-Proto: https\r\nX-Forwarded-Ssl: off\r\n"))
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"Connection: close\r\n" in answer
    assert answer.endswith(b"Contradictory scheme headers\n")
    # From a peer that is not trusted they are only headers.
    with running(recording_app, forwarded_allow_ips=("192.0.2.1",)) as server:
        answer = exchange(server, request("/", "X-Forwarded-Proto: https\r\nX-Forwarded-Ssl: off\r\n"))
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")


def test_a_trusted_front_ends_script_name_mounts_the_app():
    with running(recording_app) as server:
        answer = exchange(server, request("/shop/cart", "SCRIPT_NAME: /shop\r\n"))
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert (SEEN["SCRIPT_NAME"], SEEN["PATH_INFO"]) == ("/shop", "/cart")
        outside = exchange(server, request("/other", "SCRIPT_NAME: /shop\r\n"))
    assert outside.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")


def test_forwarder_headers_from_other_peers_follow_header_map():
    with running(recording_app, forwarded_allow_ips=("192.0.2.1",)) as server:
        exchange(server, request("/shop/cart", "SCRIPT_NAME: /shop\r\n"))
        assert (SEEN["SCRIPT_NAME"], SEEN["PATH_INFO"]) == ("", "/shop/cart")
        assert "HTTP_SCRIPT_NAME" not in SEEN
    with running(recording_app, forwarded_allow_ips=("192.0.2.1",), header_map="refuse") as server:
        answer = exchange(server, request("/shop/cart", "SCRIPT_NAME: /shop\r\n"))
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")


def test_remote_user_when_listed():
    with running(recording_app, forwarder_headers=("SCRIPT_NAME", "PATH_INFO", "REMOTE_USER")) as server:
        exchange(server, request("/", "Remote_User: alice\r\n"))
        assert SEEN["HTTP_REMOTE_USER"] == "alice"
    with running(recording_app) as server:
        exchange(server, request("/", "Remote_User: alice\r\n"))
        assert "HTTP_REMOTE_USER" not in SEEN
