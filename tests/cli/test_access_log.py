"""The access log line fastwsgi writes is byte-identical to gunicorn's for the same request."""
from __future__ import annotations

import re

import pytest
from support import apps
from support.processes import ServerProcess, available

# Every atom whose value does not depend on the clock or the pid.
FORMAT = ('%(h)s %(l)s %(u)s "%(r)s" %(s)s %(m)s %(U)s %(q)s %(H)s %(b)s %(B)s "%(f)s" "%(a)s" '
          '%({x-request-id}i)s %({content-type}o)s %({nosuch}o)s %({REQUEST_METHOD}e)s')
DEFAULT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'


def _lines(tmp_path, name, fmt):
    apps.install("webapp", tmp_path)
    access = tmp_path / "access.log"
    server = ServerProcess(name, ["--no-control-socket", "-b", "127.0.0.1:0", "--access-logfile", str(access),
                                  "--access-logformat", fmt, "webapp"], tmp_path)
    try:
        server.wait_ready()
        headers = {"User-Agent": "drop-in/1.0", "Referer": "http://example.test/from",
                   "X-Request-Id": "r-42", "Authorization": "Basic dXNlcjpwdw=="}
        server.request("/path/x%20y?a=1&b=%22q%22", headers=headers)
        server.request("/missing?", method="HEAD")
        server.wait_until(lambda: access.exists() and access.read_text().count("\n") >= 2,
                          message="for two access log lines")
        return access.read_text().splitlines()
    finally:
        server.close()


@pytest.mark.parametrize("fmt", [FORMAT, DEFAULT], ids=["every-atom", "default"])
def test_access_log_identical_to_gunicorn(tmp_path, fmt):
    if not available("gunicorn"):
        pytest.skip("gunicorn is not installed")
    ours_dir, theirs_dir = tmp_path / "fastwsgi", tmp_path / "gunicorn"
    ours_dir.mkdir()
    theirs_dir.mkdir()
    ours = _lines(ours_dir, "fastwsgi", fmt)
    theirs = _lines(theirs_dir, "gunicorn", fmt)
    clock = re.compile(r"\[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]")
    assert [clock.sub("[T]", line) for line in ours] == [clock.sub("[T]", line) for line in theirs]
