"""--paste: the app a PasteDeploy ini names, its local and global variables, the
ini's logging sections, and the errors of a missing file or a missing PasteDeploy,
on fastwsgi and gunicorn alike."""
from __future__ import annotations

import pytest
from support.processes import listening_port

pytest.importorskip("paste.deploy")

FACTORY = '''
import os


def make_app(global_conf, greeting="hello", **local_conf):
    stage = global_conf.get("stage", "none")

    def app(environ, start_response):
        body = f"{greeting} {stage} {os.getpid()}".encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    return app
'''

INI = '''[app:main]
use = call:paste_factory:make_app
greeting = bonjour

[app:other]
use = call:paste_factory:make_app
greeting = hola
'''

LOGGING = '''
[loggers]
keys = root, error

[handlers]
keys = file

[formatters]
keys = plain

[logger_root]
level = INFO
handlers = file

[logger_error]
level = INFO
handlers = file
propagate = 0
qualname = gunicorn.error

[handler_file]
class = FileHandler
args = ('%(here)s/from-ini.log',)
formatter = plain

[formatter_plain]
format = ini-configured %(message)s
'''


@pytest.fixture
def project(serve):
    (serve.dir / "paste_factory.py").write_text(FACTORY)
    (serve.dir / "production.ini").write_text(INI)
    return serve


def test_paste_serves_the_ini_app_with_its_variables(project):
    server = project("-b", "127.0.0.1:0", "--paste", "production.ini",
                     "--paste-global", "stage=prod").wait_ready()
    status, body = server.request("/")[:2]
    assert status == 200
    assert body.split()[:2] == [b"bonjour", b"prod"]


def test_paste_names_an_app_of_the_ini(project):
    server = project("-b", "127.0.0.1:0", "--paste", "production.ini#other").wait_ready()
    status, body = server.request("/")[:2]
    assert status == 200 and body.split()[:2] == [b"hola", b"none"]


def test_paste_from_the_config_file_wins_over_nothing(project):
    (project.dir / "gunicorn.conf.py").write_text('paste = "production.ini"\n')
    if project.name == "gunicorn":
        pytest.skip("gunicorn reads --paste from the command line only")
    server = project("-b", "127.0.0.1:0").wait_ready()
    assert server.request("/")[1].split()[0] == b"bonjour"


def test_the_ini_logging_sections_configure_the_logs(project):
    (project.dir / "production.ini").write_text(INI + LOGGING)
    server = project("-b", "127.0.0.1:0", "--paste", "production.ini")
    log_file = project.dir / "from-ini.log"
    server.wait_until(lambda: log_file.exists() and "ini-configured Booting worker" in log_file.read_text(),
                      message="for the ini's log file")
    # the start-up lines went to the ini's file: find the port from the socket itself
    server.port = listening_port(server.pid)
    assert server.request("/")[0] == 200


def test_a_missing_ini_is_an_error(project):
    server = project("-b", "127.0.0.1:0", "--paste", "missing.ini")
    assert server.wait_exit() == 1
    assert "missing.ini' not found" in server.log


def test_without_pastedeploy_the_error_names_the_extra(project):
    """PasteDeploy made unimportable in the server's processes (sitecustomize)."""
    if project.name != "fastwsgi":
        pytest.skip("the message names fastwsgi's extra")
    (project.dir / "sitecustomize.py").write_text('import sys\nsys.modules["paste.deploy"] = None\n')
    server = project("-b", "127.0.0.1:0", "--paste", "production.ini")
    assert server.wait_exit() == 4
    assert "pip install 'fastwsgi[paste]'" in server.log
