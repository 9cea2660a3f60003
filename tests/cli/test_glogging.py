"""Error and access log lines, compared with gunicorn's own logger where it is installed."""
from __future__ import annotations

import datetime
import logging
import os
import re
import socket
import types

import pytest

from fastwsgi import glogging
from fastwsgi.config import Config

ENVIRON = {
    "REQUEST_METHOD": "GET",
    "RAW_URI": "/a%20b/c?x=1&y=\"q\"",
    "PATH_INFO": "/a b/c",
    "QUERY_STRING": 'x=1&y="q"',
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "127.0.0.1",
    "HTTP_USER_AGENT": "curl/8.0",
    "HTTP_REFERER": "http://example.test/",
    "HTTP_X_REQUEST_ID": "abc",
    "HTTP_AUTHORIZATION": "Basic dXNlcjpwYXNz",
    "CONTENT_TYPE": "text/plain",
    "wsgi.url_scheme": "http",
}
HEADERS = [("Content-Type", "text/plain"), ("X-Served-By", "w1")]
SIMPLE_ATOMS = ["h", "l", "u", "r", "s", "m", "U", "q", "H", "b", "B", "f", "a", "T", "D", "M", "L"]
EVERY_ATOM = " ".join("%(" + a + ")s" for a in SIMPLE_ATOMS) + \
    " %({x-request-id}i)s %({X-Served-By}o)s %({wsgi.url_scheme}e)s %({missing}i)s"


def config(tmp_path, **values) -> Config:
    cfg = Config(prog="fastwsgi")
    for name, value in values.items():
        cfg.set(name, value)
    return cfg


def access_line(tmp_path, fmt, status="200 OK", sent=1234, seconds=1.5) -> str:
    path = tmp_path / "access.log"
    logger = glogging.Logger(config(tmp_path, accesslog=str(path), access_log_format=fmt))
    logger.access_line(ENVIRON, status, HEADERS, sent, seconds)
    logger.flush()
    return path.read_text()


def test_default_access_line(tmp_path):
    line = access_line(tmp_path, Config().access_log_format)
    assert re.fullmatch(
        r'127\.0\.0\.1 - user \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] '
        r'"GET /a%20b/c\?x=1&y=\\"q\\" HTTP/1\.1" 200 1234 "http://example\.test/" "curl/8\.0"\n', line)


def test_every_atom(tmp_path):
    line = access_line(tmp_path, EVERY_ATOM, status="404 Not Found", sent=0, seconds=2.000345)
    assert line == ('127.0.0.1 - user GET /a%20b/c?x=1&y=\\"q\\" HTTP/1.1 404 GET /a b/c x=1&y=\\"q\\" '
                    'HTTP/1.1 0 0 http://example.test/ curl/8.0 2 2000345 2000 2.000345 abc w1 http -\n')


def test_pid_atom_and_missing_sent(tmp_path):
    assert access_line(tmp_path, "%(p)s %(b)s %(B)s", sent=None) == f"<{os.getpid()}> - None\n"


def test_no_access_log_by_default(tmp_path, capsys):
    logger = glogging.Logger(config(tmp_path))
    logger.access_line(ENVIRON, "200 OK", HEADERS, 1, 0.1)
    assert capsys.readouterr().out == ""


def test_raw_uri_is_rebuilt_when_the_loop_gives_none():
    environ = {"SCRIPT_NAME": "/app", "PATH_INFO": "/a b", "QUERY_STRING": "q=1"}
    assert glogging.raw_uri(environ) == "/app/a%20b?q=1"


def test_error_log_format(tmp_path):
    path = tmp_path / "error.log"
    logger = glogging.Logger(config(tmp_path, errorlog=str(path), loglevel="debug"))
    logger.info("Starting fastwsgi %s", "0.1.0")
    logger.debug("quiet")
    logger.flush()
    lines = path.read_text().splitlines()
    stamp = r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\]"
    assert re.fullmatch(rf"{stamp} \[{os.getpid()}\] \[INFO\] Starting fastwsgi 0\.1\.0", lines[0])
    assert lines[1].endswith("[DEBUG] quiet")


def test_log_level_filters(tmp_path):
    path = tmp_path / "error.log"
    logger = glogging.Logger(config(tmp_path, errorlog=str(path), loglevel="warning"))
    logger.info("hidden")
    logger.warning("shown")
    logger.flush()
    assert "hidden" not in path.read_text() and "[WARNING] shown" in path.read_text()


def test_reopen_files_after_rotation(tmp_path):
    path = tmp_path / "error.log"
    logger = glogging.Logger(config(tmp_path, errorlog=str(path)))
    logger.info("before")
    os.rename(path, tmp_path / "error.log.1")
    logger.reopen_files()
    logger.info("after")
    logger.flush()
    assert "after" in path.read_text() and "before" not in path.read_text()


def test_logconfig_dict_is_merged_over_defaults(tmp_path):
    path = tmp_path / "custom.log"
    # Merged shallowly, as gunicorn merges: "handlers" replaces the default handlers.
    logger = glogging.Logger(config(tmp_path, logconfig_dict={
        "root": {"level": "INFO", "handlers": []},
        "handlers": {"file": {"class": "logging.FileHandler", "filename": str(path), "formatter": "generic"}},
        "loggers": {"gunicorn.error": {"level": "INFO", "handlers": ["file"], "propagate": False}},
    }))
    try:
        logger.info("via dictConfig")
        logger.flush()
        assert re.search(r"\[INFO\] via dictConfig$", path.read_text().strip())
    finally:
        logging.getLogger("gunicorn.error").handlers.clear()


def test_setup_twice_does_not_duplicate_lines(tmp_path):
    path = tmp_path / "error.log"
    cfg = config(tmp_path, errorlog=str(path))
    logger = glogging.Logger(cfg)
    logger.setup(cfg)
    logger.info("once")
    logger.flush()
    assert path.read_text().count("once") == 1


def test_access_line_matches_gunicorn_byte_for_byte(tmp_path):
    gunicorn_glogging = pytest.importorskip("gunicorn.glogging")
    gunicorn_config = pytest.importorskip("gunicorn.config")
    gcfg = gunicorn_config.Config()
    fmt = EVERY_ATOM + ' "%(f)s" "%(a)s"'
    request_time = datetime.timedelta(seconds=2, microseconds=345)
    resp = types.SimpleNamespace(status="201 Created", sent=77, headers=HEADERS)
    req = types.SimpleNamespace(headers=[(k, v) for k, v in glogging.request_headers(ENVIRON)])
    theirs = gunicorn_glogging.SafeAtoms(gunicorn_glogging.Logger(gcfg).atoms(resp, req, ENVIRON, request_time))
    ours = glogging.SafeAtoms(glogging.access_atoms(ENVIRON, "201 Created", HEADERS, 77, request_time))
    time_free = fmt  # %(t)s is left out: the two calls may straddle a second
    assert time_free % ours == time_free % theirs


@pytest.mark.parametrize("fmt", [
    EVERY_ATOM,
    Config().access_log_format,
    '%(h)s %(nosuch)s %(T)s %(D)s %(M)s %(L)s %(p)s "%(r)s"',
    "%({X-REQUEST-ID}i)s %(s)s %({content-type}i)s %({REMOTE_ADDR}e)s",
    "no atoms at all",
], ids=["every-atom", "default", "durations-unknown", "fields", "no-atoms"])
@pytest.mark.parametrize("environ", [ENVIRON, {"REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.0"}],
                         ids=["full", "sparse"])
def test_compiled_format_renders_as_every_atom_does(fmt, environ):
    """The line built from the named atoms only equals the one built from all of them."""
    clock = re.compile(r"\[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]")
    compiled = glogging.AccessFormat(fmt)
    ours = fmt % compiled.atoms(environ, "201 Created", HEADERS, 77, 1.250001)
    reference = fmt % glogging.SafeAtoms(glogging.access_atoms(
        environ, "201 Created", HEADERS, 77, datetime.timedelta(seconds=1.250001)))
    assert clock.sub("[T]", ours) == clock.sub("[T]", reference)


FAILING_APP = '''
def application(environ, start_response):
    if environ["PATH_INFO"] == "/before":
        raise RuntimeError("before the headers")
    start_response("200 OK", [("Content-Type", "text/plain")])

    def body():
        yield b"first part"
        raise RuntimeError("after the headers")
    return body()
'''


@pytest.mark.parametrize("flags", [[], ["--threads", "2"]], ids=["sync", "gthread"])
def test_app_error_lines_name_the_request_until_headers_are_out(serve, flags):
    """gunicorn's line names method and target while a 500 can still be sent,
    and only says "Error handling request" once the headers went out."""
    (serve.dir / "failing.py").write_text(FAILING_APP)
    server = serve("-b", "127.0.0.1:0", *flags, "failing:application").wait_ready()
    assert server.request("/before?q=1")[0] == 500
    server.wait_for_log(r"\[ERROR\] Error handling request GET /before\?q=1$")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert b"first part" in received
    server.wait_for_log(r"\[ERROR\] Error handling request$")
    assert "RuntimeError: after the headers" in server.log
