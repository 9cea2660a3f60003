"""The loop's access line writer (loop/access_log.pxi) writes the line the logging
path writes, byte for byte, and hands over to logging when logging is changed."""
from __future__ import annotations

import logging
import os
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastwsgi import glogging
from fastwsgi._loop import AccessLineWriter
from fastwsgi.config import Config

CLOCK = re.compile(r"\[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]")
DEFAULT = Config().access_log_format
EVERY_ATOM = ('%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(m)s %(U)s %(q)s %(H)s %(b)s %(B)s "%(f)s" "%(a)s" '
              '%(T)s %(D)s %(M)s %(L)s %(p)s %({x-request-id}i)s %({X-Served-By}o)s %({content-type}i)s '
              '%({wsgi.url_scheme}e)s %({missing}i)s %({missing}o)s %({x_under}i)s %(nosuch)s 100%%')
ENVIRON = {
    "REQUEST_METHOD": "GET", "RAW_URI": '/a%20b/c?x=1&y="q"', "PATH_INFO": "/a b/c",
    "QUERY_STRING": 'x=1&y="q"', "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
    "HTTP_USER_AGENT": 'curl/8.0 "quoted"', "HTTP_REFERER": "http://example.test/caf\xe9",
    "HTTP_X_REQUEST_ID": "abc", "HTTP_AUTHORIZATION": "Basic dXNlcjpwYXNz",
    "CONTENT_TYPE": "text/plain", "wsgi.url_scheme": "http",
}
HEADERS = [("Content-Type", "text/plain"), ("X-Served-By", "w1"), ("x-served-by", "w2")]


@pytest.fixture(autouse=True)
def clean_access_logger():
    """gunicorn.access is process-wide: what other tests left on it (a handler of a
    logconfig, a filter) would send these lines the logging way."""
    log = logging.getLogger(glogging.ACCESS_LOGGER)
    saved = (log.handlers[:], log.filters[:], log.disabled)
    log.handlers.clear()
    log.filters.clear()
    log.disabled = False
    yield
    for handler in log.handlers[:]:
        log.removeHandler(handler)
        try:
            handler.close()
        except ValueError:
            pass  # its stream was closed by the test itself
    log.handlers[:], log.filters[:], log.disabled = saved


def make_logger(path, fmt=DEFAULT) -> glogging.Logger:
    cfg = Config(prog="fastwsgi")
    cfg.set("accesslog", str(path))
    cfg.set("access_log_format", fmt)
    logger = glogging.Logger(cfg)
    # pytest's log capture hands its handlers to loggers other tests' dictConfig
    # touched; this logger's lines are these tests' alone.
    logger.access_log.handlers[:] = [logger.access_buffer]
    return logger


def logging_line(fmt, environ, status, headers, sent, seconds) -> str:
    """The line as the logging path makes it (Logger.access_line)."""
    return fmt % glogging.AccessFormat(fmt).atoms(environ, status, headers, sent, seconds) + "\n"


def writer_line(tmp_path, fmt, environ, status="200 OK", headers=HEADERS, sent=1234,
                seconds=0.25) -> str:
    path = tmp_path / "access.log"
    if path.exists():
        path.unlink()
    logger = make_logger(path, fmt)
    writer, flush = logger.access_hooks()
    assert isinstance(writer, AccessLineWriter)
    writer(environ, status, headers, sent, seconds)
    flush()
    return path.read_bytes().decode("utf-8")


def same_line(ours: str, theirs: str) -> None:
    # %(t)s of the two may straddle a second.
    assert CLOCK.sub("[T]", ours) == CLOCK.sub("[T]", theirs)


@pytest.mark.parametrize("fmt", [DEFAULT, EVERY_ATOM, "%(s)s", "%%(h)s %(h)s%%", "plain text %(l)s"],
                         ids=["default", "every-atom", "status", "percent", "text"])
@pytest.mark.parametrize("environ", [
    ENVIRON,
    {"REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.0"},  # no RAW_URI, no REMOTE_ADDR
    dict(ENVIRON, REMOTE_ADDR=None, HTTP_USER_AGENT=42, QUERY_STRING=b"x"),  # a middleware's values
    dict(ENVIRON, HTTP_AUTHORIZATION="Bearer token", RAW_URI="/\xe9\"\""),
    dict(ENVIRON, HTTP_AUTHORIZATION=""),
], ids=["full", "sparse", "odd-types", "latin-1", "empty-auth"])
@pytest.mark.parametrize("status", ["200 OK", "404", "201 Created\tx", b"200 OK"],
                         ids=["ok", "code-only", "tab", "bytes"])
def test_writer_line_equals_the_logging_line(tmp_path, fmt, environ, status):
    same_line(writer_line(tmp_path, fmt, environ, status),
              logging_line(fmt, environ, status, HEADERS, 1234, 0.25))


@settings(max_examples=150, deadline=None)
@given(value=st.text(st.characters(max_codepoint=255, blacklist_categories=("Cs",)), max_size=40),
       seconds=st.floats(min_value=0, max_value=86000, allow_nan=False),
       sent=st.integers(min_value=0, max_value=2 ** 62))
def test_any_latin1_value_and_duration(tmp_path_factory, value, seconds, sent):
    """Environ values are latin-1 str (PEP 3333): quotes escaped, the rest as UTF-8;
    the durations rounded as timedelta rounds them."""
    environ = dict(ENVIRON, HTTP_USER_AGENT=value, RAW_URI="/" + value, REMOTE_ADDR=value)
    fmt = DEFAULT + " %(T)s %(D)s %(M)s %(L)s"
    tmp_path = tmp_path_factory.mktemp("line")
    same_line(writer_line(tmp_path, fmt, environ, sent=sent, seconds=seconds),
              logging_line(fmt, environ, "200 OK", HEADERS, sent, seconds))


@pytest.mark.parametrize("fmt", ["%(h)20s", "%(B)d", "%s", "no atoms"])
def test_formats_it_does_not_render_stay_with_logging(tmp_path, fmt):
    logger = make_logger(tmp_path / "access.log", fmt)
    assert logger.access_hooks() == (logger.access_line, logger.flush_access)


def test_a_handler_or_filter_of_the_users_keeps_the_logging_path(tmp_path):
    logger = make_logger(tmp_path / "access.log")
    logger.access_log.addFilter(lambda record: True)
    try:
        assert logger.access_hooks()[0] == logger.access_line
    finally:
        logger.access_log.filters.clear()


def test_lines_go_through_logging_once_a_handler_is_added(tmp_path):
    """An app that adds its own handler after the worker started: within a second its
    handler sees every line, the file too, none twice."""
    path = tmp_path / "access.log"
    logger = make_logger(path)
    writer, flush = logger.access_hooks()
    writer(ENVIRON, "200 OK", HEADERS, 1, 0.1)
    flush()
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    extra = Collect()
    logger.access_log.addHandler(extra)
    calls = 2  # the next line's sent, and one more than the lines so far
    try:
        deadline = time.monotonic() + 3
        while len(seen) < 2 and time.monotonic() < deadline:
            writer(ENVIRON, "200 OK", HEADERS, calls, 0.1)
            calls += 1
            flush()
            time.sleep(0.05)
        assert len(seen) >= 2
    finally:
        logger.access_log.removeHandler(extra)
    lines = path.read_text().splitlines()
    sent = [int(re.search(r'HTTP/1\.1" 200 (\d+) ', line).group(1)) for line in lines]
    assert sent == list(range(1, calls))
    assert lines[-len(seen):] == seen


def test_reopen_files_moves_the_lines_to_the_new_file(tmp_path):
    path = tmp_path / "access.log"
    logger = make_logger(path)
    writer, flush = logger.access_hooks()
    writer(dict(ENVIRON, HTTP_X_REQUEST_ID="before"), "200 OK", HEADERS, 1, 0.1)
    flush()
    os.rename(path, tmp_path / "access.log.1")
    logger.reopen_files()
    writer(ENVIRON, "204 No Content", HEADERS, 0, 0.1)
    flush()
    assert '" 204 0 ' in path.read_text()
    assert '" 204 ' not in (tmp_path / "access.log.1").read_text()


def test_a_closed_stream_loses_nothing_already_written(tmp_path):
    """The handler's stream closed behind the writer's back (logging.shutdown): the
    writer's own descriptor still names the same file, never another one."""
    path = tmp_path / "access.log"
    logger = make_logger(path)
    writer, flush = logger.access_hooks()
    writer(ENVIRON, "200 OK", HEADERS, 1, 0.1)
    flush()
    logger.access_buffer.target.stream.close()
    other = open(tmp_path / "other", "w")  # may take the closed descriptor's number
    try:
        writer(ENVIRON, "201 Created", HEADERS, 1, 0.1)
        flush()
    finally:
        other.close()
    assert (tmp_path / "other").read_text() == ""
    assert path.read_text().count("\n") >= 1


def test_stdout_lines_follow_what_the_app_printed(serve):
    """--access-logfile -: the line comes after the app's print() of the same request,
    as it does when logging writes it."""
    (serve.dir / "printing.py").write_text(
        "def application(environ, start_response):\n"
        "    print('app says ' + environ['PATH_INFO'])\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'ok']\n")
    server = serve("-b", "127.0.0.1:0", "--access-logfile", "-", "printing:application").wait_ready()
    for n in range(3):
        assert server.request(f"/r{n}")[0] == 200
    server.wait_until(lambda: '"GET /r2 HTTP/1.1" 200 2 ' in server.out, message="the third line")
    order = re.findall(r"app says /r\d|GET /r\d", server.out)
    assert order == ["app says /r0", "GET /r0", "app says /r1", "GET /r1", "app says /r2", "GET /r2"]
