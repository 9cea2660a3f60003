"""Server mechanics a deployment relies on: captured output, --reload, --daemon (+ WINCH),
--user/--group and the warning for settings fastwsgi does not honour."""
from __future__ import annotations

import os
import pwd
import re
import signal
import time

import pytest
from support.processes import alive, children


def test_settings_of_other_worker_models_are_named_at_startup(serve):
    if serve.name != "fastwsgi":
        pytest.skip("fastwsgi's own warning")
    server = serve("-b", "127.0.0.1:0", "-k", "gevent", "--threads", "4", "--dirty-timeout", "10",
                   "webapp").wait_ready()
    assert ("[WARNING] fastwsgi runs worker_class='gevent': gevent's concurrency is kept by "
            "4 threads per worker (threads=4); nothing is monkey-patched") in server.log
    assert "fastwsgi ignores these settings: dirty_timeout=10" in server.log
    assert server.request("/")[0] == 200


def test_capture_output_sends_prints_to_the_error_log(serve):
    errors = serve.dir / "error.log"
    server = serve("-b", "127.0.0.1:0", "--capture-output", "--error-logfile", str(errors), "webapp")
    server.wait_until(lambda: errors.exists() and "Booting worker" in errors.read_text(), timeout=15,
                      message="for the worker to boot")
    port = int(errors.read_text().split("Listening at: http://127.0.0.1:")[1].split()[0])
    server.port = port
    server.request("/print")
    server.wait_until(lambda: "printed by the app" in errors.read_text(), message="for the print")


def test_reload_restarts_workers_when_the_code_changes(serve):
    server = serve("-b", "127.0.0.1:0", "--reload", "webapp:versioned").wait_ready()
    assert server.request("/")[1] == b"one"
    source = serve.dir / "webapp.py"
    time.sleep(1.1)  # a new mtime even on one-second timestamp file systems
    source.write_text(source.read_text().replace("VERSION = 'one'", "VERSION = 'two'"))
    server.wait_for_log(r"Worker reloading: \S*webapp\.py modified", timeout=15)

    def serves_two():
        try:
            return server.request("/", timeout=2)[1] == b"two"
        except OSError:
            return False

    server.wait_until(serves_two, timeout=15, message="for the new code")


def test_daemon_detaches_and_winch_stops_its_workers(serve):
    pidfile = serve.dir / "daemon.pid"
    errors = serve.dir / "error.log"
    launcher = serve("-D", "-b", "127.0.0.1:0", "-p", str(pidfile), "--error-logfile", str(errors), "webapp")
    assert launcher.wait_exit() == 0, "the command returns once the daemon is started"
    launcher.wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), message="for the pid file")
    daemon = int(pidfile.read_text())
    try:
        assert os.getsid(daemon) != os.getsid(0), "the daemon left our session"
        launcher.wait_until(lambda: "Booting worker" in errors.read_text(), message="for a worker")
        os.kill(daemon, signal.SIGWINCH)
        launcher.wait_until(lambda: "graceful stop of workers" in errors.read_text(), message="for WINCH")
        launcher.wait_until(lambda: not children(daemon), message="for the workers to stop")
        os.kill(daemon, signal.SIGTERM)
        launcher.wait_until(lambda: not alive(daemon), message="for the daemon to exit")
        assert not pidfile.exists()
    finally:
        if alive(daemon):
            os.kill(daemon, signal.SIGKILL)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")
def test_workers_run_as_user_and_group(serve):
    nobody = pwd.getpwnam("nobody")
    # --preload: the master (root) imports the app; pytest's tmp dirs are closed to nobody.
    server = serve("-b", "127.0.0.1:0", "-u", "nobody", "-g", str(nobody.pw_gid), "--preload",
                   "webapp").wait_ready()
    assert server.request("/whoami")[1] == f"{nobody.pw_uid} {nobody.pw_gid}".encode()
    assert os.stat(f"/proc/{server.pid}").st_uid == 0, "the master keeps its user"



@pytest.mark.parametrize("permit", [False, True], ids=["default", "permitted"])
def test_unconventional_methods_are_refused_unless_permitted(serve, permit):
    """gunicorn's default: a method of 3 to 20 characters, no lower case and no '#'
    (400 otherwise); --permit-unconventional-http-method lets every RFC 9110 token in."""
    flags = ["--permit-unconventional-http-method"] if permit else []
    server = serve("-b", "127.0.0.1:0", *flags, "webapp").wait_ready()
    for method in ("get", "GE#T", "GT", "A" * 21, "M-SEARCH.v2"):
        status = server.request("/", method=method)[0]
        assert status == (200 if permit else 400), (method, status)
    assert server.request("/", method="PROPFIND")[0] == 200
    assert server.request("/", method="A" * 20)[0] == 200


def test_spew_traces_the_apps_lines_in_the_worker(serve):
    """--spew: gunicorn's line tracer, installed in the master and inherited by the
    workers, prints each line the app runs to stdout as module:line: source."""
    server = serve("-b", "127.0.0.1:0", "--spew", "webapp").wait_ready()
    assert server.request("/")[0] == 200
    server.wait_until(lambda: "webapp:9:     path = environ[\"PATH_INFO\"]" in server.out,
                      message="for the app's first line in the trace")
    assert re.search(r"^webapp:\d+:     start_response\(", server.out, re.MULTILINE)


def test_without_spew_nothing_is_traced(serve):
    server = serve("-b", "127.0.0.1:0", "webapp").wait_ready()
    assert server.request("/")[0] == 200
    assert "webapp:9:" not in server.out


def test_a_reload_pattern_matching_nothing_is_a_warning(serve):
    """gunicorn keeps a glob that matches no file yet (files made later are watched)
    and says so with a RuntimeWarning; a pattern that matches, or a file, says nothing."""
    (serve.dir / "templates").mkdir()
    (serve.dir / "templates" / "page.html").write_text("<p>")
    server = serve("--check-config", "--reload", "--reload-extra-file", "missing/*.txt",
                   "--reload-extra-file", "templates/*.html", "--reload-extra-file", "webapp.py",
                   "webapp")
    assert server.wait_exit() == 0
    assert "RuntimeWarning: Pattern missing/*.txt currently matches no files." in server.log
    assert server.log.count("currently matches no files") == 1
