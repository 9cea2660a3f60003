"""Settings: one table, loaded with gunicorn's precedence and messages."""
from __future__ import annotations

import os
import re

import pytest

from fastwsgi import config
from fastwsgi.errors import ConfigError
from fastwsgi.settings import IGNORED, REFUSED, SETTINGS, SUPPORTED


def load(argv, env=None):
    return config.load(argv, environ=env or {}, prog="fastwsgi")


def test_defaults_are_gunicorns(project):
    cfg, app = load(["hello:app"])
    assert app == "hello:app"
    assert cfg.bind == ["127.0.0.1:8000"]
    assert (cfg.workers, cfg.backlog, cfg.timeout, cfg.graceful_timeout, cfg.keepalive) == (1, 2048, 30, 30, 2)
    assert (cfg.limit_request_line, cfg.limit_request_fields, cfg.limit_request_field_size) == (4094, 100, 8190)
    assert cfg.access_log_format == '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
    assert cfg.errorlog == "-" and cfg.accesslog is None and cfg.loglevel == "info"
    assert cfg.proc_name == "hello:app"
    assert cfg.forwarded_allow_ips == ["127.0.0.1", "::1"]
    assert cfg.sendfile is True


def test_every_gunicorn_flag_is_declared_once():
    names = [s.name for s in SETTINGS]
    flags = [flag for s in SETTINGS for flag in s.cli]
    assert len(names) == len(set(names))
    assert len(flags) == len(set(flags))
    assert {s.support for s in SETTINGS} <= {SUPPORTED, IGNORED, REFUSED}


def test_repeated_bind_and_short_flags(project):
    cfg, _ = load(["-b", "127.0.0.1:0", "--bind", "unix:/run/x.sock", "-w", "3", "-t", "5", "hello"])
    assert cfg.bind == ["127.0.0.1:0", "unix:/run/x.sock"]
    assert cfg.address == [("127.0.0.1", 0), "/run/x.sock"]
    assert (cfg.workers, cfg.timeout) == (3, 5)


def test_no_app_is_an_error(project):
    with pytest.raises(ConfigError, match="No application module specified."):
        load([])


def test_wsgi_app_from_config_file(project):
    project.write("gunicorn.conf.py", "wsgi_app = 'hello:app'\n")
    assert load([])[1] == "hello:app"


def test_web_concurrency_and_port_set_defaults(project, monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    monkeypatch.setenv("PORT", "5000")
    cfg, _ = load(["hello"])
    assert cfg.workers == 4 and cfg.bind == ["0.0.0.0:5000"]


def test_precedence_file_then_env_then_cli(project):
    project.write("gunicorn.conf.py", "workers = 2\ntimeout = 7\nbackend = 'not a setting'\nkeepalive = 9\n")
    env = {"GUNICORN_CMD_ARGS": "--workers 3 --timeout 8"}
    cfg, _ = load(["--workers", "5", "hello"], env)
    assert cfg.workers == 5       # command line beats env var beats file
    assert cfg.timeout == 8       # env var beats file
    assert cfg.keepalive == 9     # file beats default


def test_fastwsgi_cmd_args_overrides_gunicorn_cmd_args(project):
    env = {"GUNICORN_CMD_ARGS": "-w 2 -t 3", "FASTWSGI_CMD_ARGS": "-w 4"}
    cfg, _ = load(["hello"], env)
    assert (cfg.workers, cfg.timeout) == (4, 3)


def test_fastwsgi_conf_py_takes_precedence_over_gunicorn_conf_py(project):
    project.write("gunicorn.conf.py", "workers = 2\n")
    project.write("fastwsgi.conf.py", "workers = 6\n")
    assert load(["hello"])[0].workers == 6


def test_config_named_on_cli_or_in_env(project):
    project.write("a.py", "workers = 2\n")
    project.write("b.py", "workers = 3\n")
    project.write("gunicorn.conf.py", "workers = 9\n")
    assert load(["-c", "a.py", "hello"], {"GUNICORN_CMD_ARGS": "-c b.py"})[0].workers == 2
    assert load(["hello"], {"GUNICORN_CMD_ARGS": "-c b.py"})[0].workers == 3
    assert load(["-c", "file:a.py", "hello"])[0].workers == 2


def test_missing_config_file(project):
    with pytest.raises(RuntimeError, match="'nope.py' doesn't exist"):
        load(["-c", "nope.py", "hello"])


def test_config_file_syntax_error_exits_1(project, capsys):
    project.write("bad.py", "workers = (\n")
    with pytest.raises(SystemExit) as exit_info:
        load(["-c", "bad.py", "hello"])
    assert exit_info.value.code == 1
    assert "Failed to read config file:" in exit_info.value.detail
    assert "SyntaxError" in exit_info.value.detail


def test_invalid_value_in_config_file(project, capsys):
    project.write("bad.py", "workers = -2\n")
    with pytest.raises(ValueError, match="Value must be positive: -2"):
        load(["-c", "bad.py", "hello"])
    assert "Invalid value for workers: -2" in capsys.readouterr().err


def test_argparse_errors_exit_2(project):
    with pytest.raises(SystemExit) as exit_info:
        load(["--workers", "many", "hello"])
    assert exit_info.value.code == 2


def test_hooks_from_config_file_are_checked_for_arity(project):
    project.write("hooks.py", "def when_ready(server):\n    pass\ndef post_request(worker, req):\n    pass\n")
    cfg, _ = load(["-c", "hooks.py", "hello"])
    assert cfg.when_ready.__name__ == "when_ready"
    cfg.post_request("w", "r", {}, "resp")  # adapted to gunicorn's four arguments
    project.write("bad_hooks.py", "def when_ready():\n    pass\n")
    with pytest.raises(TypeError, match="Value must have an arity of: 1"):
        load(["-c", "bad_hooks.py", "hello"])


@pytest.mark.parametrize("value, expected", [("022", 0o22), ("0o077", 0o77), ("18", 18)])
def test_umask_reads_octal(project, value, expected):
    assert load(["-m", value, "hello"])[0].umask == expected


def test_raw_env_and_sendfile_and_root_path(project, monkeypatch):
    cfg, _ = load(["-e", "A=1", "--env", "B=x=y", "--no-sendfile", "hello"])
    assert cfg.env == {"A": "1", "B": "x=y"}
    assert cfg.sendfile is False
    monkeypatch.setenv("SCRIPT_NAME", "/app")
    assert load(["hello"])[0].root_path == "/app"
    assert load(["--root-path", "/x", "hello"])[0].root_path == "/x"


def test_proxy_protocol_flag_without_value_means_auto(project):
    assert load(["hello", "--proxy-protocol"])[0].proxy_protocol == "auto"
    assert load(["--proxy-protocol", "v2", "hello"])[0].proxy_protocol == "v2"


def test_chdir_applies_after_the_config_file_is_found(project):
    # As in gunicorn, ./gunicorn.conf.py is looked up before --chdir takes effect.
    project.write("gunicorn.conf.py", "workers = 2\n")
    project.write("sub/gunicorn.conf.py", "workers = 3\n")
    cfg, _ = load(["--chdir", "sub", "hello"])
    assert cfg.chdir == str(project.path / "sub") and cfg.workers == 2
    assert os.getcwd() == cfg.chdir
    with pytest.raises(ConfigError, match="can't chdir to 'nowhere'"):
        load(["--chdir", "nowhere", "hello"])


def test_other_worker_models_are_named_in_a_warning(project):
    cfg, _ = load(["-k", "gevent", "--threads", "4", "--dirty-timeout", "10",
                   "--statsd-host", "localhost:8125", "hello"])
    warning = cfg.unsupported_warning()
    assert "fastwsgi runs worker_class='gevent'" in warning
    assert "kept by 4 threads per worker (threads=4)" in warning
    assert "fastwsgi ignores these settings: dirty_timeout=10" in warning
    assert "statsd" not in warning  # honoured, so not named
    assert load(["-k", "sync", "hello"])[0].unsupported_warning() is None
    assert load(["-k", "gthread", "--threads", "8", "hello"])[0].unsupported_warning() is None


def test_tls_settings_are_read_as_gunicorn_names_them(project):
    cfg, _ = load(["--certfile", "cert.pem", "--keyfile", "key.pem", "--ca-certs", "ca.pem",
                   "--cert-reqs", "2", "--ciphers", "ECDHE+AESGCM", "hello"])
    assert cfg.is_ssl
    assert (cfg.certfile, cfg.keyfile, cfg.ca_certs, cfg.cert_reqs, cfg.ciphers) == (
        "cert.pem", "key.pem", "ca.pem", 2, "ECDHE+AESGCM")
    assert cfg.unsupported_warning() is None
    assert "ssl_version" in load(["--ssl-version", "TLSv1_2", "hello"])[0].unsupported_warning()


def test_print_config_lists_every_setting(project):
    text = str(load(["-w", "3", "hello"])[0])
    assert re.search(r"^workers +  = 3$", text, re.MULTILINE)
    # gunicorn prints its default hooks by their Setting classes' qualified names
    assert re.search(r"^when_ready +  = <WhenReady.when_ready\(\)>$", text, re.MULTILINE)
    assert re.search(r"^ssl_version +  = 2$", text, re.MULTILINE)
    assert len(text.splitlines()) == len(SETTINGS)


def test_markdown_table_has_a_row_per_setting():
    table = config.markdown_table()
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert len(rows) == len(SETTINGS)
    assert "| `worker_class` | `-k`, `--worker-class` |" in table


def test_docs_settings_md_is_up_to_date():
    docs = config.__file__.rsplit("/", 2)[0] + "/docs/settings.md"
    with open(docs) as f:
        assert f.read() == config.markdown_table(), "run: python -m fastwsgi.config --markdown > docs/settings.md"


@pytest.mark.parametrize("worker_class", ["uvicorn.workers.UvicornWorker", "asgi"])
def test_asgi_worker_classes_are_refused(project, worker_class):
    with pytest.raises(ConfigError, match="serves WSGI apps only"):
        load(["-k", worker_class, "hello"])


def test_settings_view_like_gunicorns(project):
    cfg, _ = load(["-w", "2", "hello"])
    assert cfg.settings["workers"].value == 2 and cfg.settings["workers"].get() == 2


def test_settings_entries_read_as_gunicorns(project):
    """cfg.settings[name] as config files and hooks use it in gunicorn: .value, .get(),
    .validator, and a repr naming the value."""
    cfg = load(["-w", "5", "hello"])[0]
    entry = cfg.settings["workers"]
    assert (entry.value, entry.get(), entry.validator("7")) == (5, 5, 7)
    assert repr(entry).endswith(" with value 5>")


def test_an_unknown_reload_engine_is_refused_in_gunicorns_words(project):
    with pytest.raises(ConfigError, match=r"^Invalid reload_engine: 'fsevents'$"):
        load(["--reload-engine", "fsevents", "hello"])


def test_statsd_host_reads_as_gunicorns(project):
    cfg = config.Config()
    assert cfg.statsd_host is None
    for value, address in [("localhost", ("localhost", 8125)), ("statsd:7777", ("statsd", 7777)),
                           ("unix:///path/to.sock", "/path/to.sock"), ("unix:7777", ("unix", 7777)),
                           ("unix://some.socket", "some.socket")]:
        cfg.set("statsd_host", value)
        assert cfg.statsd_host == address
    with pytest.raises(TypeError):
        cfg.set("statsd_host", "host:string")
