"""TLS as gunicorn deployments configure it (--certfile, --keyfile, --ca-certs,
--cert-reqs, the ssl_context hook), run as real processes and reached by real
clients: curl and the ssl module. Where gunicorn serves the same configuration,
the test runs it too."""
from __future__ import annotations

import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest
from support.wire import read_all

trustme = pytest.importorskip("trustme")


@pytest.fixture
def pki(tmp_path):
    """A CA, a server certificate for 127.0.0.1 and a client one, as PEM files."""
    ca = trustme.CA()
    files = {"ca": tmp_path / "ca.pem", "cert": tmp_path / "cert.pem", "key": tmp_path / "key.pem"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.cert_chain_pems[0].write_to_path(str(files["cert"]))
    server.private_key_pem.write_to_path(str(files["key"]))
    files["issue"] = ca
    return files


def client_context(pki) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki["ca"]))
    return context


def https_get(port: int, context: ssl.SSLContext, path: str = "/") -> tuple[bytes, str]:
    """One request over a new TLS connection: the answer, and the TLS version spoken."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
        version = sock.version()
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        answer = read_all(sock)
    return answer, version


def serial_of(port: int, context: ssl.SSLContext) -> int:
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
        der = sock.getpeercert(binary_form=True)
    from cryptography import x509
    return x509.load_der_x509_certificate(der).serial_number


def test_certfile_and_keyfile_serve_https_to_curl(serve, pki):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    server = serve("-b", "127.0.0.1:0", "--certfile", str(pki["cert"]), "--keyfile", str(pki["key"]),
                   "webapp:application").wait_ready()
    assert f"Listening at: https://127.0.0.1:{server.port}" in server.log
    done = subprocess.run(["curl", "-sS", "--cacert", str(pki["ca"]), "-D", "-",
                           f"https://127.0.0.1:{server.port}/curl"],
                          capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(b"HTTP/1.1 200 OK\r\n")
    assert done.stdout.endswith(b"/curl %d" % server.worker_pids().pop())


def test_curl_refuses_a_certificate_its_ca_did_not_sign(serve, pki, tmp_path):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    server = serve("-b", "127.0.0.1:0", "--certfile", str(pki["cert"]), "--keyfile", str(pki["key"]),
                   "webapp:application").wait_ready()
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    done = subprocess.run(["curl", "-sS", "--cacert", str(other), f"https://127.0.0.1:{server.port}/"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 60, done.stderr   # curl: peer certificate cannot be authenticated


def test_client_certificates_required_with_cert_reqs_2(serve, pki, tmp_path):
    server = serve("-b", "127.0.0.1:0", "--certfile", str(pki["cert"]), "--keyfile", str(pki["key"]),
                   "--ca-certs", str(pki["ca"]), "--cert-reqs", "2", "webapp:application").wait_ready()
    with_cert = client_context(pki)
    pki["issue"].issue_cert("client@example.com").configure_cert(with_cert)
    answer, _ = https_get(server.port, with_cert, "/authenticated")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        answer, _ = https_get(server.port, client_context(pki), "/anonymous")
        if not answer:
            raise ConnectionError("closed without an answer")


def test_the_ssl_context_hook_shapes_the_context(serve, pki):
    """gunicorn's documented use: the hook starts from the default and tightens it."""
    (serve.dir / "gunicorn.conf.py").write_text(
        "import ssl\n"
        "def ssl_context(conf, default_ssl_context_factory):\n"
        "    context = default_ssl_context_factory()\n"
        "    context.minimum_version = ssl.TLSVersion.TLSv1_3\n"
        "    return context\n")
    server = serve("-b", "127.0.0.1:0", "--certfile", str(pki["cert"]), "--keyfile", str(pki["key"]),
                   "webapp:application").wait_ready()
    tls12 = client_context(pki)
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError):
        https_get(server.port, tls12)
    answer, version = https_get(server.port, client_context(pki))
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and version == "TLSv1.3"


def test_hup_serves_renewed_certificate_files(serve, pki):
    server = serve("-b", "127.0.0.1:0", "--certfile", str(pki["cert"]), "--keyfile", str(pki["key"]),
                   "webapp:application").wait_ready()
    context = client_context(pki)
    before = serial_of(server.port, context)
    renewed = pki["issue"].issue_cert("127.0.0.1", "localhost")
    renewed.cert_chain_pems[0].write_to_path(str(pki["cert"]))
    renewed.private_key_pem.write_to_path(str(pki["key"]))
    old_workers = server.worker_pids()
    server.signal(signal.SIGHUP)
    server.wait_until(lambda: server.worker_pids() and not (server.worker_pids() & old_workers),
                      timeout=15, message="for the new workers")
    deadline = time.monotonic() + 10
    while serial_of(server.port, context) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert serial_of(server.port, context) != before


def test_hup_with_broken_certificate_files_keeps_serving(serve, pki):
    if serve.name != "fastwsgi":
        pytest.skip("gunicorn's workers fail on each connection instead")
    server = serve("-b", "127.0.0.1:0", "--certfile", str(pki["cert"]), "--keyfile", str(pki["key"]),
                   "webapp:application").wait_ready()
    pki["cert"].write_text("not a certificate\n")
    server.signal(signal.SIGHUP)
    server.wait_for_log(r"Reload failed, keeping the current configuration: cannot set up TLS")
    answer, _ = https_get(server.port, client_context(pki))
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")


def resumed_get(port: int, context: ssl.SSLContext, session) -> tuple[bytes, bool, ssl.SSLSession]:
    """One request over a new connection offering `session`: the answer, whether the
    server resumed it, and the session to offer next (its TLS 1.3 tickets arrive with
    the answer)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with context.wrap_socket(raw, server_hostname="127.0.0.1", session=session) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        answer = read_all(sock)
        return answer, sock.session_reused, sock.session


def test_a_session_resumes_on_every_worker_of_a_generation(serve, pki):
    """The workers inherit the master's context and so its ticket keys: a session one
    worker began resumes on its sibling, with no full handshake."""
    if serve.name != "fastwsgi":
        pytest.skip("gunicorn makes a context, and so ticket keys, per connection")
    server = serve("-w", "2", "-b", "127.0.0.1:0", "--certfile", str(pki["cert"]),
                   "--keyfile", str(pki["key"]), "webapp:application").wait_ready(workers=2)
    context = client_context(pki)
    answer, reused, session = resumed_get(server.port, context, None)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and not reused
    first_worker = answer.rsplit(b" ", 1)[1]
    # Both workers wait on the listener; whichever wakes first accepts, so the other
    # one answers within a few connections.
    answered_by = set()
    for _ in range(100):
        answer, reused, session = resumed_get(server.port, context, session)
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and reused
        answered_by.add(answer.rsplit(b" ", 1)[1])
        if answered_by - {first_worker}:
            break
    assert answered_by - {first_worker}, "every connection reached the first worker"


def test_a_missing_certificate_file_is_a_start_up_error(serve, tmp_path):
    if serve.name != "fastwsgi":
        pytest.skip("gunicorn starts and fails each connection")
    server = serve("-b", "127.0.0.1:0", "--certfile", str(tmp_path / "missing.pem"), "webapp:application")
    assert server.wait_exit() == 1
    assert "cannot set up TLS from certfile=" in server.log


def test_check_config_reads_the_certificate_files(serve, pki, tmp_path):
    if serve.name != "fastwsgi":
        pytest.skip("gunicorn's --check-config does not read them")
    good = serve("--check-config", "--certfile", str(pki["cert"]), "--keyfile", str(pki["key"]),
                 "webapp:application")
    assert good.wait_exit() == 0, good.log
    bad = serve("--check-config", "--certfile", str(tmp_path / "missing.pem"), "webapp:application")
    assert bad.wait_exit() == 1
    assert "cannot set up TLS" in bad.log


def test_a_failed_handshake_is_an_invalid_request_warning(serve, pki):
    """gunicorn hands the handshake's SSLError to handle_error: a WARNING
    'Invalid request from ip=...: [SSL: ...]'; a client that just closes is no warning."""
    server = serve("-b", "127.0.0.1:0", "--certfile", str(pki["cert"]), "--keyfile", str(pki["key"]),
                   "webapp:application").wait_ready()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        # a handshake record whose message is not a ClientHello
        sock.sendall(b"\x16\x03\x01\x00\x08" + b"\x0f\x00\x00\x04\x00\x00\x00\x00")
        read_all(sock)
    server.wait_for_log(r"\[WARNING\] Invalid request from ip=127\.0\.0\.1: \[SSL: [A-Z_]+\] ")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10):
        pass
    answer, _ = https_get(server.port, client_context(pki))
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert server.log.count("Invalid request from") == 1
