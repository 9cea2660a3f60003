"""The embedding API: gunicorn's StandaloneApplication pattern, from gunicorn's own
documentation (docs/custom.rst), run with fastwsgi by changing its import line."""
from __future__ import annotations

import signal
import sys

import pytest
from support.processes import ServerProcess, available

# gunicorn's docs/custom.rst example; only the bind port and the control socket differ.
STANDALONE = '''
import multiprocessing

import {server}.app.base


def number_of_workers():
    return (multiprocessing.cpu_count() * 2) + 1


def handler_app(environ, start_response):
    response_body = b'Works fine'
    status = '200 OK'

    response_headers = [
        ('Content-Type', 'text/plain'),
    ]

    start_response(status, response_headers)

    return [response_body]


class StandaloneApplication({server}.app.base.BaseApplication):

    def __init__(self, app, options=None):
        self.options = options or {{}}
        self.application = app
        super().__init__()

    def load_config(self):
        config = {{key: value for key, value in self.options.items()
                  if key in self.cfg.settings and value is not None}}
        for key, value in config.items():
            self.cfg.set(key.lower(), value)

    def load(self):
        return self.application


if __name__ == '__main__':
    options = {{
        'bind': '%s:%s' % ('127.0.0.1', '0'),
        'workers': number_of_workers(),
        'control_socket_disable': True,
    }}
    StandaloneApplication(handler_app, options).run()
'''

# The command-line flavour: argv, env and config file are read as the command reads them.
WITH_ARGV = '''
import {server}.app.base


def handler_app(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [environ.get('HTTP_X_WHO', 'argv').encode()]


class ArgvApplication({server}.app.base.Application):

    def init(self, parser, opts, args):
        return {{'workers': 2}}

    def load(self):
        return handler_app


ArgvApplication().run()
'''


@pytest.fixture(params=["fastwsgi", "gunicorn"])
def server_name(request):
    if not available(request.param):
        pytest.skip(f"{request.param} is not installed")
    return request.param


def _start(tmp_path, name, source, args=()):
    script = tmp_path / "embedded.py"
    script.write_text(source.format(server=name))
    return ServerProcess(name, list(args), tmp_path, program=[sys.executable, str(script)])


def test_standalone_application_from_gunicorns_docs(tmp_path, server_name):
    import multiprocessing
    server = _start(tmp_path, server_name, STANDALONE)
    try:
        server.wait_ready(workers=multiprocessing.cpu_count() * 2 + 1)
        status, body, _ = server.request("/")
        assert (status, body) == (200, b"Works fine")
        server.signal(signal.SIGHUP)
        server.wait_for_log(r"Handling signal: hup")
        assert server.request("/")[:2] == (200, b"Works fine")
        server.signal(signal.SIGTERM)
        assert server.wait_exit() == 0
    finally:
        server.close()


def test_application_reads_argv_and_init(tmp_path, server_name):
    server = _start(tmp_path, server_name, WITH_ARGV, ["-b", "127.0.0.1:0", "--no-control-socket"])
    try:
        server.wait_ready(workers=2)
        assert server.request("/", headers={"X-Who": "embedded"})[:2] == (200, b"embedded")
        assert len(server.worker_pids()) == 2
    finally:
        server.close()


def test_broken_settings_exit_1_with_the_error(tmp_path, server_name):
    source = STANDALONE.replace("'workers': number_of_workers(),", "'workers': -3,")
    server = _start(tmp_path, server_name, source)
    try:
        assert server.wait_exit() == 1
        assert "Error: " in server.log
    finally:
        server.close()


FROM_FILE = '''
import json

import {server}.app.base


def handler_app(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'from file']


class FileConfigured({server}.app.base.BaseApplication):

    def load_config(self):
        with open('options.json') as f:
            for key, value in json.load(f).items():
                self.cfg.set(key, value)

    def load(self):
        return handler_app


FileConfigured().run()
'''


def test_hup_with_failing_load_config_keeps_the_running_settings(tmp_path, server_name):
    if server_name == "gunicorn":
        pytest.skip("gunicorn's BaseApplication exits when load_config raises on HUP")
    options = tmp_path / "options.json"
    options.write_text('{"bind": "127.0.0.1:0", "workers": 1, "control_socket_disable": true}')
    server = _start(tmp_path, server_name, FROM_FILE)
    try:
        server.wait_ready()
        workers = server.worker_pids()
        options.write_text('{"bind": ')
        server.signal(signal.SIGHUP)
        server.wait_for_log(r"\[ERROR\] Reload failed, keeping the current configuration")
        assert server.proc.poll() is None and server.worker_pids() == workers
        assert server.request("/")[:2] == (200, b"from file")
        options.write_text('{"bind": "127.0.0.1:0", "workers": 2, "control_socket_disable": true}')
        server.signal(signal.SIGHUP)
        server.wait_until(lambda: len(server.worker_pids() - workers) == 2, timeout=15,
                          message="for two new workers")
    finally:
        server.close()
