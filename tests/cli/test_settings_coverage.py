"""Every setting of gunicorn 27 is in fastwsgi's table and in docs/settings.md, and none
is ignored silently: an ignored one says in the docs why ignoring it is harmless, and a
refused one stops the server at start with a message that names it."""
from __future__ import annotations

import pytest
from support import ROOT
from support.processes import ServerProcess

from fastwsgi.settings import BY_NAME, IGNORED, REFUSED, SETTINGS

gunicorn_config = pytest.importorskip("gunicorn.config")

DOCS = (ROOT / "docs" / "settings.md").read_text()

# A value gunicorn acts on, for each refused setting (flags as a gunicorn user passes them).
REFUSED_FLAGS = {
    "http_protocols": ["--http-protocols", "h1,h2"],
    "dirty_apps": ["--dirty-app", "webapp:application", "--dirty-workers", "1"],
    "dirty_workers": ["--dirty-workers", "2", "--dirty-app", "webapp:application"],
}


def gunicorn_setting_names() -> list[str]:
    return [setting.name for setting in gunicorn_config.KNOWN_SETTINGS]


def docs_row(name: str) -> str:
    rows = [line for line in DOCS.splitlines() if line.startswith(f"| `{name}` |")]
    assert len(rows) == 1, f"docs/settings.md has {len(rows)} rows for {name}"
    return rows[0]


def test_gunicorn_lists_its_settings():
    # KNOWN_SETTINGS holds one entry per Setting subclass of gunicorn's config module.
    subclasses = {cls.name for cls in vars(gunicorn_config).values()
                  if isinstance(cls, type) and issubclass(cls, gunicorn_config.Setting)
                  and getattr(cls, "name", None)}
    assert subclasses == set(gunicorn_setting_names())
    assert len(subclasses) > 100


@pytest.mark.parametrize("name", gunicorn_setting_names())
def test_in_the_table_and_the_docs(name):
    assert name in BY_NAME
    row = docs_row(name)
    assert BY_NAME[name].support in row


def _params(support: str) -> list:
    return [pytest.param(s.name, id=s.name) for s in SETTINGS if s.support == support]


@pytest.mark.parametrize("name", _params(IGNORED))
def test_ignored_says_why_it_is_harmless(name):
    note = BY_NAME[name].note
    assert note, f"{name} is ignored without saying why that is harmless"
    assert f"{IGNORED} ({note})" in docs_row(name)


def test_every_refused_setting_has_a_value_to_try():
    assert {s.name for s in SETTINGS if s.support == REFUSED} <= set(REFUSED_FLAGS)


@pytest.mark.parametrize("name", _params(REFUSED))
def test_refused_says_what_to_do_instead(name):
    note = BY_NAME[name].note
    assert note, f"{name} is refused without saying what to do instead"
    assert f"{REFUSED} ({note})" in docs_row(name)


@pytest.mark.parametrize("name", sorted(s.name for s in SETTINGS if s.support == REFUSED))
def test_refused_stops_the_start_naming_it(name, tmp_path):
    setting = BY_NAME[name]
    (tmp_path / "webapp.py").write_text(
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [])\n"
        "    return [b'']\n")
    server = ServerProcess("fastwsgi", ["-b", "127.0.0.1:0"] + REFUSED_FLAGS[name]
                           + ["webapp:application"], tmp_path)
    try:
        assert server.wait_exit() == 1
    finally:
        server.close()
    error = next(line for line in server.log.splitlines() if "fastwsgi does not support" in line)
    # dirty_apps and dirty_workers are refused together: the message names the pair
    assert name in error and (setting.note or setting.doc) in error
    assert "Listening at" not in server.log


@pytest.mark.parametrize("flags", [["--dirty-app", "webapp:application"], ["--dirty-workers", "2"]])
def test_dirty_setting_alone_starts_no_dirty_arbiter(flags, tmp_path):
    """gunicorn starts its dirty arbiter only with both set; one alone changes nothing."""
    (tmp_path / "webapp.py").write_text(
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [])\n"
        "    return [b'']\n")
    server = ServerProcess("fastwsgi", ["-b", "127.0.0.1:0"] + flags + ["webapp:application"], tmp_path)
    try:
        server.wait_ready()
        assert server.request("/")[0] == 200
    finally:
        server.close()
