"""The parser fuzzer's harness (fuzz/): its seeds hold its invariants, and its checks bite.

The coverage-guided run itself (atheris, an instrumented build) is fuzz/run.sh,
which CI runs for a bounded time; these tests need neither.
"""
import sys

import pytest
from support import ROOT

FUZZ = ROOT / "fuzz"
sys.path.insert(0, str(FUZZ))

import invariants
import parser_fuzz
import seeds
from support.corpus import REQUESTS_DIR, Outcome, feed_pieces
from support.wire import ReferenceReading, SeenRequest

SEEDS = seeds.seeds()
GOOD = b"POST /a?b HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\n\r\nhello"


def test_every_case_of_the_corpora_is_a_seed():
    names = {name.rsplit("-", 1)[0] for name in SEEDS}
    corpus = {f"{kind}-{path.stem}" for kind in ("valid", "invalid")
              for path in (REQUESTS_DIR / kind).glob("*.http")}
    assert names == corpus


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_seed_holds_the_invariants(name):
    parser_fuzz.test_one_input(SEEDS[name])


@pytest.mark.parametrize("options", invariants.OPTION_SETS, ids=str)
def test_control_bytes_reach_every_option_set(options):
    chosen, seed, stream = parser_fuzz.split_input(bytes([parser_fuzz.control_for(options), 7]) + GOOD)
    assert (chosen, seed, stream) == (options, 7, GOOD)


def test_a_parser_that_answers_by_the_reads_is_caught(monkeypatch):
    def by_the_reads(pieces, **options):
        outcome = feed_pieces(pieces, **options)
        return outcome if len(pieces) == 1 else Outcome(error=(400, "cut"))
    monkeypatch.setattr(invariants, "feed_pieces", by_the_reads)
    with pytest.raises(AssertionError, match="disagrees with the whole"):
        invariants.check_stream(GOOD, {})


def test_a_request_h11_reads_otherwise_is_caught(monkeypatch):
    other = ReferenceReading([SeenRequest(b"POST", b"/a?c", b"1.1", b"hello", [])], "eof")
    monkeypatch.setattr(invariants, "reference_requests", lambda data: other)
    with pytest.raises(AssertionError, match="h11 reads"):
        invariants.check_stream(GOOD, {})


def test_a_request_h11_refuses_is_caught_unless_a_documented_leniency(monkeypatch):
    refused = ReferenceReading([], "error", "conflicting Content-Length headers", 400, GOOD)
    monkeypatch.setattr(invariants, "reference_requests", lambda data: refused)
    with pytest.raises(AssertionError, match="h11 says error"):
        invariants.check_stream(GOOD, {})
    spelled_twice = GOOD.replace(b"Content-Length: 5\r\n", b"Content-Length: 5\r\nContent-Length: 05\r\n")
    invariants.check_stream(spelled_twice, {})


def test_replay_reports_each_broken_input(tmp_path, monkeypatch, capsys):
    (tmp_path / "good").write_bytes(b"\0\0" + GOOD)
    (tmp_path / "broken").write_bytes(b"\0\0" + GOOD.replace(b"hello", b"broke"))

    def check(stream, options, seed):
        if b"broke" in stream:
            raise AssertionError("broken on purpose")
    monkeypatch.setattr(parser_fuzz, "check_stream", check)
    assert parser_fuzz.replay([str(tmp_path / "good"), str(tmp_path / "broken")]) == 1
    assert "broken on purpose" in capsys.readouterr().err
