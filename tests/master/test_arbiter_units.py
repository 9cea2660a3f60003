"""The master's parts on their own: heartbeat, pid file, reloader, worker settings, back-off."""
from __future__ import annotations

import os
import time

import pytest
from support.processes import ServerProcess

from fastwsgi import config as config_module
from fastwsgi.heartbeat import Heartbeat
from fastwsgi.hook_views import RequestView, ResponseView
from fastwsgi.pidfile import Pidfile
from fastwsgi.reloader import Reloader
from fastwsgi.worker import server_options


def test_heartbeat_reports_monotonic_time_after_notify(tmp_path):
    beat = Heartbeat(str(tmp_path))
    try:
        assert not os.listdir(tmp_path), "the file is unlinked at once"
        assert beat.last_update() > time.monotonic() + 1000, "never 'silent' before the first beat"
        beat.notify()
        assert abs(beat.last_update() - time.monotonic()) < 1
    finally:
        beat.close()


def test_heartbeat_needs_an_existing_directory(tmp_path):
    with pytest.raises(RuntimeError, match="doesn't exist. Can't create workertmp."):
        Heartbeat(str(tmp_path / "nope"))


def test_pidfile_lifecycle(tmp_path):
    path = tmp_path / "app.pid"
    pidfile = Pidfile(str(path))
    pidfile.create(os.getpid())
    assert path.read_text() == f"{os.getpid()}\n"
    pidfile.unlink()
    assert not path.exists()


def test_pidfile_refuses_a_live_owner_and_replaces_a_stale_one(tmp_path):
    path = tmp_path / "app.pid"
    path.write_text("1\n")  # pid 1 is alive
    with pytest.raises(RuntimeError, match="Already running on PID 1"):
        Pidfile(str(path)).create(12345)
    path.write_text("999999999\n")
    Pidfile(str(path)).create(os.getpid())
    assert path.read_text().strip() == str(os.getpid())


def test_reloader_sees_a_changed_extra_file(tmp_path):
    watched = tmp_path / "settings.toml"
    watched.write_text("a")
    reloader = Reloader([str(watched)])
    assert reloader.changed() is None
    later = time.time() + 5
    os.utime(watched, (later, later))
    assert reloader.changed() == str(watched)
    assert reloader.changed() is None


def test_server_options_from_settings(project):
    cfg, _ = config_module.load(["--keep-alive", "5", "--limit-request-line", "100", "--no-sendfile",
                                 "--forwarded-allow-ips", "10.0.0.0/8", "--proxy-protocol", "v1",
                                 "--header-map", "refuse", "hello"], environ={})
    options = server_options(cfg, max_requests=7)
    assert (options.keepalive, options.limit_request_line, options.sendfile) == (5.0, 100, False)
    assert options.max_requests == 7
    assert options.forwarded_allow_ips == ("10.0.0.0/8",)
    assert options.proxy_protocol is True and options.header_map == "refuse"


def test_hook_views_carry_gunicorns_attributes():
    req = RequestView({"REQUEST_METHOD": "POST", "PATH_INFO": "/x", "QUERY_STRING": "a=1", "RAW_URI": "/x?a=1",
                       "SERVER_PROTOCOL": "HTTP/1.0", "HTTP_X_TOKEN": "t"})
    assert (req.method, req.path, req.query, req.uri, req.version) == ("POST", "/x", "a=1", "/x?a=1", (1, 0))
    assert req.headers == [("X-TOKEN", "t")]
    resp = ResponseView("404 Not Found", [("A", "b")], 12)
    assert (resp.status_code, resp.sent) == (404, 12)


def test_boot_loop_backs_off(tmp_path):
    # A worker that dies during import (not an import error: no exit 3) is respawned,
    # but with a growing pause instead of a fork storm.
    (tmp_path / "dying.py").write_text("import os\nos._exit(1)\n")
    server = ServerProcess("fastwsgi", ["-b", "127.0.0.1:0", "dying"], tmp_path)
    try:
        server.wait_for_log(r"next worker in 0\.8s", timeout=10)
        time.sleep(1.0)
        boots = server.log.count("Booting worker with pid:")
        assert 4 <= boots <= 7
    finally:
        server.close()
