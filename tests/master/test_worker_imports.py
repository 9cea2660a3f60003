"""A worker at rest holds the modules serving needs, not those of features it was not
given: a worker is a fork of its master, so whatever the master imports before the
fork is resident in every worker (bench/worker_rss.py measures that memory)."""
from __future__ import annotations

import pytest

# Each is imported where its feature is used, never by a plain worker:
FEATURE_MODULES = {
    "logging.config": "--log-config, --log-config-dict, --log-config-json",
    "logging.handlers": "logging.config's handlers",
    "socketserver": "logging.config's listener",
    "pickle": "logging.handlers' socket handlers",
    "json": "--log-config-json",
    "configparser": "a paste ini's [loggers]",
    "ctypes": "nothing: the process title goes through /proc/self/comm",
    "fastwsgi.metrics": "--metrics-bind",
    "mmap": "--metrics-bind's shared counters",
    "fastwsgi.control": "the control socket, which the master opens after the first fork",
    "fastwsgi.control_commands": "the control socket's commands",
}

CONFIG = '''
import sys

def post_worker_init(worker):
    with open({listing!r}, "w") as out:
        out.write("\\n".join(sorted(sys.modules)))
'''


def test_a_plain_worker_imports_no_module_of_a_feature_it_was_not_given(serve):
    if serve.name != "fastwsgi":
        pytest.skip("gunicorn's master imports logging.config, json and its control socket before forking")
    listing = serve.dir / "worker_modules.txt"
    (serve.dir / "modules_conf.py").write_text(CONFIG.format(listing=str(listing)))
    server = serve("-b", "127.0.0.1:0", "-w", "1", "-c", "modules_conf.py", "webapp",
                   control_socket=True).wait_ready()
    assert server.request("/")[0] == 200
    server.wait_for_log(r"Control socket listening at")
    modules = set(listing.read_text().split())
    assert "fastwsgi._loop" in modules   # the listing is the serving worker's
    resident = {name: feature for name, feature in FEATURE_MODULES.items() if name in modules}
    assert resident == {}, f"imported by a plain worker (module: its feature): {resident}"


def test_a_worker_given_a_log_config_imports_it(serve):
    if serve.name != "fastwsgi":
        pytest.skip("gunicorn's workers import logging.config whatever their settings")
    listing = serve.dir / "worker_modules.txt"
    (serve.dir / "modules_conf.py").write_text(
        CONFIG.format(listing=str(listing)) + "logconfig_dict = {'root': {'level': 'INFO'}}\n")
    server = serve("-b", "127.0.0.1:0", "-w", "1", "-c", "modules_conf.py", "webapp").wait_ready()
    assert server.request("/")[0] == 200
    assert "logging.config" in listing.read_text().split()
