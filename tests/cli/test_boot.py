"""The command as a user runs it, against fastwsgi and gunicorn alike: start-up lines,
bad app specs and their exit codes, --version, --check-config, several binds."""
from __future__ import annotations

import re

import pytest
from support import apps
from support.processes import ServerProcess, available


def test_startup_lines(serve):
    server = serve("-b", "127.0.0.1:0", "webapp").wait_ready()
    log = server.log
    name = serve.name
    assert re.search(rf"^\[\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{{4}}\] \[{server.pid}\] \[INFO\] "
                     rf"Starting {name} \S+$", log, re.MULTILINE)
    assert f"[INFO] Listening at: http://127.0.0.1:{server.port} ({server.pid})" in log
    assert re.search(r"\[INFO\] Using worker: \S+$", log, re.MULTILINE)
    worker = server.worker_pids().pop()
    assert f"[{worker}] [INFO] Booting worker with pid: {worker}" in log
    status, body, _ = server.request("/hello")
    assert status == 200 and body.startswith(b"/hello ")


@pytest.mark.parametrize("spec, message, exit_code, reason", [
    ("nosuchmodule", "No module named 'nosuchmodule'", 3, "Worker failed to boot."),
    ("webapp:nope", "Failed to find attribute 'nope' in 'webapp'.", 4, "App failed to load."),
    ("webapp:not_callable", "Application object must be callable.", 4, "App failed to load."),
    ("webapp:create_app(x)", "Failed to parse arguments as literal values: 'create_app(x)'", 4,
     "App failed to load."),
    ("webapp:1+", "Failed to parse '1+' as an attribute name or function call.", 4, "App failed to load."),
])
def test_bad_app_spec(serve, spec, message, exit_code, reason):
    server = serve("-b", "127.0.0.1:0", spec)
    assert server.wait_exit() == exit_code
    assert message in server.log
    assert "[ERROR] Worker (pid:" in server.log and f"exited with code {exit_code}." in server.log
    assert "[ERROR] Shutting down: Master" in server.log
    assert f"[ERROR] Reason: {reason}" in server.log


def test_factory_with_literal_arguments(serve):
    server = serve("-b", "127.0.0.1:0", "webapp:create_app('howdy')").wait_ready()
    assert server.request("/")[1] == b"howdy"


def test_no_app_module(serve):
    server = serve("-b", "127.0.0.1:0")
    assert server.wait_exit() == 1
    assert "\nError: No application module specified.\n" in server.log


def test_version(serve):
    server = serve("--version")
    assert server.wait_exit() == 0
    assert re.fullmatch(r"\S+ \(version [\d.]+\)\n\n?", server.out)


def test_check_config(serve):
    assert serve("--check-config", "webapp").wait_exit() == 0
    bad = serve("--check-config", "webapp:nope")
    assert bad.wait_exit() == 1
    assert "Error while loading the application:" in bad.log


def test_print_config(serve):
    server = serve("--print-config", "-w", "3", "webapp")
    assert server.wait_exit() == 0
    assert re.search(r"^workers +  = 3$", server.out, re.MULTILINE)


def test_invalid_flag_value_exits_2(serve):
    server = serve("--workers", "lots", "webapp")
    assert server.wait_exit() == 2
    assert "invalid int value: 'lots'" in server.log


def test_tcp_and_unix_binds_at_once(serve):
    sock = str(serve.dir / "app.sock")
    server = serve("-b", "127.0.0.1:0", "-b", f"unix:{sock}", "webapp").wait_ready()
    assert re.search(rf"Listening at: http://127\.0\.0\.1:\d+,unix:{re.escape(sock)} \(", server.log)
    assert server.request("/tcp")[0] == 200
    assert server.request("/unix", unix=sock)[0] == 200
    server.signal(15)
    assert server.wait_exit() == 0
    import os
    assert not os.path.exists(sock), "the unix socket is removed on shutdown"


def test_env_var_args_and_web_concurrency(serve):
    server = serve("webapp", env={"GUNICORN_CMD_ARGS": "-b 127.0.0.1:0", "WEB_CONCURRENCY": "2"})
    server.wait_ready(workers=2)
    assert len(server.worker_pids()) == 2


@pytest.mark.parametrize("workers,expected", [("1", b"False"), ("2", b"True")])
def test_wsgi_multiprocess_follows_the_worker_count(serve, workers, expected):
    server = serve("-b", "127.0.0.1:0", "-w", workers, "webapp").wait_ready(workers=int(workers))
    assert server.request("/multiprocess")[1] == expected


def _printed_settings(text: str) -> dict[str, str]:
    return dict(re.match(r"^(\w+) += (.*)$", line).groups() for line in text.splitlines()
                if re.match(r"^\w+ += ", line))


@pytest.mark.parametrize("config", ["", "wsgi_app = 'webapp'\n"], ids=["app-spec", "wsgi_app"])
def test_print_config_prints_gunicorns_values(tmp_path, config):
    """Every setting both servers have is printed as gunicorn prints it: default hooks
    by their qualified names, ssl_version, default_proc_name with or without a spec."""
    if not available("gunicorn"):
        pytest.skip("gunicorn is not installed")
    apps.install("webapp", tmp_path)
    (tmp_path / "gunicorn.conf.py").write_text(config)
    spec = [] if config else ["webapp"]
    printed = {}
    for name in ("fastwsgi", "gunicorn"):
        server = ServerProcess(name, ["--no-control-socket", "--print-config", *spec], tmp_path)
        try:
            assert server.wait_exit() == 0, server.log
        finally:
            server.close()
        printed[name] = _printed_settings(server.out)
    ours, theirs = printed["fastwsgi"], printed["gunicorn"]
    assert set(theirs) <= set(ours)
    assert {name: (ours[name], value) for name, value in theirs.items() if ours[name] != value} == {}


def test_ssl_version_is_ignored_with_gunicorns_warning(serve):
    server = serve("--check-config", "--ssl-version", "TLSv1_2", "webapp")
    assert server.wait_exit() == 0
    assert ("Warning: option `ssl_version` is deprecated and it is ignored. "
            "Use ssl_context instead.") in server.log
