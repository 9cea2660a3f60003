"""The loop's options take gunicorn's defaults from the one table, settings.py."""
from __future__ import annotations

import dataclasses

import pytest

from fastwsgi import settings
from fastwsgi.config import Config
from fastwsgi.options import ServerOptions
from fastwsgi.worker import server_options


@pytest.fixture
def no_settings_from_the_environment(monkeypatch):
    for name in ("FORWARDED_ALLOW_IPS", "WEB_CONCURRENCY", "SENDFILE", "PORT"):
        monkeypatch.delenv(name, raising=False)


def test_the_default_options_are_what_the_default_settings_map_to(no_settings_from_the_environment):
    # run() with no options serves as the command line with no settings does.
    from_settings = server_options(Config(), Config().max_requests)
    assert dataclasses.asdict(ServerOptions()) == dataclasses.asdict(from_settings)


@pytest.mark.parametrize("name", ["limit_request_line", "limit_request_fields",
                                  "limit_request_field_size", "limit_request_body",
                                  "header_map", "strip_header_spaces", "permit_obsolete_folding"])
def test_a_parser_setting_has_one_default(name):
    assert getattr(ServerOptions(), name) == settings.BY_NAME[name].default


def test_each_options_object_has_its_own_secure_scheme_headers():
    first, second = ServerOptions(), ServerOptions()
    first.secure_scheme_headers["X-Mine"] = "yes"
    assert "X-Mine" not in second.secure_scheme_headers
    assert "X-Mine" not in settings.BY_NAME["secure_scheme_headers"].default
