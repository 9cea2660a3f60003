"""The uwsgi packet fuzzer's harness (fuzz/uwsgi_fuzz.py): its seeds hold its
invariants, and its checks bite. fuzz/run.sh runs it under AddressSanitizer."""
import sys

import pytest
from support import ROOT, uwsgi

sys.path.insert(0, str(ROOT / "fuzz"))

import uwsgi_fuzz  # noqa: E402

SEEDS = uwsgi_fuzz.seeds()


def test_every_case_of_the_uwsgi_corpus_is_a_seed():
    assert len(SEEDS) == len(uwsgi.corpus("valid")) + len(uwsgi.corpus("invalid"))


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_seed_holds_the_invariants(name):
    for cut_seed in range(3):
        uwsgi_fuzz.test_one_input(bytes([cut_seed]) + SEEDS[name][1:])


def test_a_reader_that_disagrees_with_the_reference_is_caught(monkeypatch):
    monkeypatch.setattr(uwsgi_fuzz, "reference_reading", lambda data: None)
    with pytest.raises(AssertionError, match="disagrees with the reference"):
        uwsgi_fuzz.check_packet(uwsgi.packet(uwsgi.request_vars()))


def test_an_environ_that_loses_a_var_is_caught(monkeypatch):
    class Losing:
        def environ_from_uwsgi(self, data):
            return {"wsgi.url_scheme": "http", "PATH_INFO": "/"}
    monkeypatch.setattr(uwsgi_fuzz, "EnvironBuilder", Losing)
    with pytest.raises(KeyError):
        uwsgi_fuzz.check_packet(uwsgi.packet(uwsgi.request_vars()))
