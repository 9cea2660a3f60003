"""Feeding the request parser every which way, and reading the request corpora.

``feed_every_way`` is the heart of the parser tests: a message must give the
same outcome fed whole, split in two at every position, and one byte at a
time.  The corpora in ``tests/requests`` are data: ``NAME.http`` holds the
bytes (escaped, see ``load_http``), ``NAME.json`` what the parser must make of
them.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from fastwsgi._parser import ParseError, RequestParser
from support import TESTS

REQUESTS_DIR = TESTS / "requests"

_ESCAPES = {ord("r"): b"\r", ord("n"): b"\n", ord("t"): b"\t", ord("0"): b"\0", ord("\\"): b"\\"}


def load_http(path: Path) -> bytes:
    """The message a ``.http`` file describes.

    Line breaks in the file are layout only; the bytes are written with
    escapes: ``\\r`` ``\\n`` ``\\t`` ``\\0`` ``\\\\`` and ``\\xHH``.
    """
    raw = path.read_bytes()
    if b"\r" in raw:
        raise ValueError(f"{path.name}: a raw CR; write \\r")
    return unescape(raw.replace(b"\n", b""), path.name)


def unescape(raw: bytes, name: str) -> bytes:
    """Bytes written with load_http's escapes."""
    out = bytearray()
    i = 0
    while i < len(raw):
        byte = raw[i]
        if byte != 0x5C:
            out.append(byte)
            i += 1
            continue
        escape = raw[i + 1]
        if escape in _ESCAPES:
            out += _ESCAPES[escape]
            i += 2
        elif escape == ord("x"):
            out.append(int(raw[i + 2:i + 4], 16))
            i += 4
        else:
            raise ValueError(f"{name}: unknown escape \\{chr(escape)}")
    return bytes(out)


def corpus(kind: str) -> list[tuple[str, bytes, dict]]:
    """(name, message, expectation) for every case of ``requests/<kind>``."""
    cases = []
    for http in sorted((REQUESTS_DIR / kind).glob("*.http")):
        expectation = json.loads(http.with_suffix(".json").read_text())
        cases.append((http.stem, load_http(http), expectation))
    return cases


def latin1(data: bytes) -> str:
    return data.decode("latin-1")


def describe_request(request) -> dict:
    """A ParsedRequest as the plain values the corpora spell out."""
    return {
        "method": latin1(request.method),
        "target": latin1(request.target),
        "path": latin1(request.path),
        "query": latin1(request.query),
        "version": f"1.{request.version[1]}",
        "headers": [[latin1(name), latin1(value)] for name, value in request.headers],
        "keep_alive": request.keep_alive,
        "expect_continue": request.expect_continue,
        "upgrade": request.upgrade,
        "chunked": request.chunked,
        "content_length": request.content_length,
    }


@dataclass
class Outcome:
    """What the parser made of a byte stream.

    ``requests`` pairs each ParsedRequest's description with its whole body;
    ``complete`` tells, per request, whether its body ended.  ``error`` is
    (status, reason) if the stream was refused; ``rest`` the bytes left over.
    """

    requests: list = field(default_factory=list)
    bodies: list = field(default_factory=list)
    complete: list = field(default_factory=list)
    parsed: list = field(default_factory=list)
    error: tuple | None = None
    rest: bytes = b""

    def comparable(self):
        if self.error is not None:
            # body bytes decoded in the call that failed are not reported; how
            # many that is depends on the split, and the request is refused anyway
            return (self.requests, self.error)
        return (self.requests, self.bodies, self.complete, self.error, self.rest)


def _apply(outcome: Outcome, events: Iterable, stop_after_close: bool) -> bool:
    """Adds events to ``outcome``; True once a closing request ended (with stop_after_close)."""
    for kind, value in events:
        if kind == "request":
            outcome.requests.append(describe_request(value))
            outcome.parsed.append(value)
            outcome.bodies.append(b"")
            outcome.complete.append(False)
        elif kind == "body":
            outcome.bodies[-1] += value
        else:
            outcome.complete[-1] = True
            if stop_after_close and not outcome.requests[-1]["keep_alive"]:
                return True
    return False


def feed_pieces(pieces: Iterable[bytes], stop_after_close: bool = False, **options) -> Outcome:
    """Feeds ``pieces`` to a new RequestParser in turn.

    With ``stop_after_close``, reading stops once a request that does not keep
    the connection alive has ended, as a server would: what follows is not
    looked at (``rest`` is then None).
    """
    parser = RequestParser(**options)
    outcome = Outcome()
    for piece in pieces:
        error = None
        try:
            events = parser.feed(piece)
        except ParseError as refused:
            events, error = refused.events, refused
        if _apply(outcome, events, stop_after_close):
            outcome.rest = None
            return outcome
        if error is not None:
            outcome.error = (error.status, error.reason)
            return outcome
    outcome.rest = parser.buffered
    return outcome


def splits(data: bytes, every_position: bool = True, extra: Iterable[int] = ()):
    """The ways one message is cut: whole, at each position (or some), byte by byte."""
    yield "whole", [data]
    positions = range(1, len(data)) if every_position else sorted(set(extra))
    for position in positions:
        if 0 < position < len(data):
            yield f"split@{position}", [data[:position], data[position:]]
    yield "bytewise", [data[i:i + 1] for i in range(len(data))]


def feed_every_way(data: bytes, every_position: bool = True, extra: Iterable[int] = (),
                   stop_after_close: bool = False, **options) -> Outcome:
    """Feeds ``data`` whole, split in two at every position, and one byte at a time.

    Asserts that every way gives the same outcome, and returns it.
    """
    reference = None
    for way, pieces in splits(data, every_position, extra):
        outcome = feed_pieces(pieces, stop_after_close=stop_after_close, **options)
        if reference is None:
            reference = outcome
            reference_way = way
        else:
            assert outcome.comparable() == reference.comparable(), (
                f"fed {way} the parser disagrees with {reference_way}")
    return reference


def expect_valid(data: bytes, expectation: dict, **feed_options) -> Outcome:
    """Checks a valid corpus case: every way of feeding gives the expected requests."""
    options = expectation.get("options", {})
    outcome = feed_every_way(data, **feed_options, **options)
    assert outcome.error is None, f"refused: {outcome.error}"
    expected = expectation["requests"]
    assert len(outcome.requests) == len(expected)
    for got, body, complete, want in zip(outcome.requests, outcome.bodies, outcome.complete,
                                         expected):
        for key, value in want.items():
            if key in ("body", "environ"):
                continue
            assert got[key] == value, f"{key}: {got[key]!r} != {value!r}"
        assert body == want.get("body", "").encode("latin-1")
        assert complete
    if outcome.rest is not None:
        assert outcome.rest == expectation.get("rest", "").encode("latin-1")
    return outcome


def expect_refused(data: bytes, expectation: dict, **feed_options) -> Outcome:
    """Checks an invalid corpus case: every way of feeding refuses it alike."""
    options = expectation.get("options", {})
    outcome = feed_every_way(data, **feed_options, **options)
    assert outcome.error is not None, "accepted"
    status, reason = outcome.error
    assert status == expectation["status"], f"{status} {reason}"
    assert expectation.get("reason", "") in reason, f"{status} {reason}"
    assert len(outcome.requests) == expectation.get("requests_before", 0)
    return outcome
