"""logger_class: a user's class is made as Logger(cfg) and called as gunicorn calls
it — access(resp, req, environ, request_time) for every request with gunicorn's
resp/req attributes — whether it subclasses fastwsgi's Logger or gunicorn's."""
from __future__ import annotations

import json

import pytest

LOGGERS = '''
import json
import os


class JsonAccess:
    """The JSON access log of many gunicorn deployments, one object a line."""

    def access(self, resp, req, environ, request_time):
        record = {
            "status": resp.status, "sent": resp.sent,
            "content_type": dict(resp.headers).get("Content-Type"),
            "method": req.method, "path": req.path, "query": req.query,
            "version": list(req.version), "remote": req.remote_addr,
            "agent": dict(req.headers).get("USER-AGENT"),
            "positive_time": request_time.total_seconds() > 0,
        }
        with open(os.path.join(os.getcwd(), "json-access.log"), "a") as out:
            out.write(json.dumps(record) + "\\n")
        if os.environ.get("ALSO_BUILT_IN"):
            super().access(resp, req, environ, request_time)


class AtomsAccess:
    """A class that formats its own line from gunicorn's Logger.atoms()."""

    def access(self, resp, req, environ, request_time):
        atoms = self.atoms(resp, req, environ, request_time)
        record = {name: atoms[name] for name in ("r", "s", "b", "B", "m", "U", "q", "H",
                                                 "{user-agent}i", "{content-type}o", "u")}
        with open(os.path.join(os.getcwd(), "json-access.log"), "a") as out:
            out.write(json.dumps(record) + "\\n")


try:
    from fastwsgi.glogging import Logger as FastwsgiLogger

    class FastwsgiJsonLogger(JsonAccess, FastwsgiLogger):
        pass

    class FastwsgiAtomsLogger(AtomsAccess, FastwsgiLogger):
        pass
except ImportError:
    pass

try:
    from gunicorn.glogging import Logger as GunicornLogger

    class GunicornJsonLogger(JsonAccess, GunicornLogger):
        pass

    class GunicornAtomsLogger(AtomsAccess, GunicornLogger):
        pass
except ImportError:
    pass
'''


@pytest.fixture
def project(serve):
    (serve.dir / "json_logging.py").write_text(LOGGERS)
    return serve


def records(project) -> list[dict]:
    path = project.dir / "json-access.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("base", ["FastwsgiJsonLogger", "GunicornJsonLogger"])
def test_a_custom_logger_class_gets_every_request(project, base):
    if base == "FastwsgiJsonLogger" and project.name == "gunicorn":
        pytest.skip("gunicorn runs its own Logger's subclasses")
    pytest.importorskip("gunicorn")
    server = project("-b", "127.0.0.1:0", "--logger-class", f"json_logging.{base}",
                     "webapp").wait_ready()
    status = server.request("/some/where?x=1", headers={"User-Agent": "probe/1"})[0]
    assert status == 200
    server.wait_until(lambda: records(project), message="for the JSON access line")
    record, = records(project)
    assert record == {
        "status": "200 OK", "sent": len(f"/some/where {server.worker_pids().pop()}"),
        "content_type": "text/plain", "method": "GET", "path": "/some/where", "query": "x=1",
        "version": [1, 1], "remote": ["127.0.0.1", record["remote"][1]], "agent": "probe/1",
        "positive_time": True,
    }
    # the error log still works through the class
    assert "Booting worker with pid" in server.log


def test_a_subclass_calling_the_built_in_access_writes_both(project):
    if project.name != "fastwsgi":
        pytest.skip("fastwsgi's Logger")
    server = project("-b", "127.0.0.1:0", "--logger-class", "json_logging.FastwsgiJsonLogger",
                     "--access-logfile", "-", "webapp", env={"ALSO_BUILT_IN": "1"}).wait_ready()
    assert server.request("/")[0] == 200
    server.wait_until(lambda: '"GET / HTTP/1.1" 200 ' in server.stdout_path.read_text(),
                      message="for the built-in access line")
    assert len(records(project)) == 1


def test_an_unloadable_logger_class_is_a_clear_error(project):
    if project.name != "fastwsgi":
        pytest.skip("the message is fastwsgi's")
    server = project("-b", "127.0.0.1:0", "--logger-class", "json_logging.Missing", "webapp")
    assert server.wait_exit() == 1
    assert "logger_class 'json_logging.Missing' cannot be loaded" in server.log


@pytest.mark.parametrize("base", ["FastwsgiAtomsLogger", "GunicornAtomsLogger"])
def test_a_custom_logger_class_formats_from_gunicorns_atoms(project, base):
    if base == "FastwsgiAtomsLogger" and project.name == "gunicorn":
        pytest.skip("gunicorn runs its own Logger's subclasses")
    pytest.importorskip("gunicorn")
    server = project("-b", "127.0.0.1:0", "--logger-class", f"json_logging.{base}",
                     "webapp").wait_ready()
    assert server.request("/a/b?x=1", headers={"User-Agent": "probe/1",
                                               "Authorization": "Basic YnJrMHY6"})[0] == 200
    server.wait_until(lambda: records(project), message="for the access line")
    record, = records(project)
    sent = len(f"/a/b {server.worker_pids().pop()}")
    assert record == {
        "r": "GET /a/b?x=1 HTTP/1.1", "s": "200", "b": str(sent), "B": sent, "m": "GET",
        "U": "/a/b", "q": "x=1", "H": "HTTP/1.1", "{user-agent}i": "probe/1",
        "{content-type}o": "text/plain", "u": "brk0v",
    }
