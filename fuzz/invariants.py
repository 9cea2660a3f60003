"""What must hold for any byte stream fed to the request parser.

``check_stream`` raises AssertionError, with what broke, when one of these fails:

* only the parser's refusal (ParseError, a 4xx/5xx status and a reason) comes
  out, never another exception;
* the stream fed whole, one byte at a time, and cut at random points gives the
  same requests, bodies and refusal; HeadParser.parse_bytes on a bytes object of
  the stream's exact size takes the same first head;
* every request accepted has one framing only (tests/support/framing.py): no
  Content-Length with Transfer-Encoding, no two Content-Length values, chunked
  last and once, no Transfer-Encoding in HTTP/1.0, each body where the reference
  reading ends it, and no bare CR or LF in a head;
* a request accepted with the default field handling is one h11 (server mode)
  reads from the same bytes, with the same method, target, version, fields and
  body, or the difference is one of ``LENIENCIES``.
"""
from __future__ import annotations

import random
import re
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from support.corpus import feed_pieces
from support.framing import assert_one_framing
from support.wire import reference_requests

from fastwsgi._parser import HeadParser, ParseError

# RequestParser keywords each input may be parsed with: gunicorn's defaults first,
# then each option that changes what a head may hold, then limits small enough
# for short inputs to reach.
OPTION_SETS = [
    {},
    {"permit_obsolete_folding": True},
    {"header_map": "dangerous"},
    {"header_map": "refuse"},
    {"strip_header_spaces": True},
    {"limit_request_line": 64, "limit_request_fields": 4, "limit_request_field_size": 48,
     "limit_request_body": 16},
]
# The option sets under which fields reach the app as h11 reads them.
H11_COMPARABLE = ({}, {"header_map": "dangerous"}, {"header_map": "refuse"})

BARE_CR_OR_LF = re.compile(rb"\r(?!\n)|(?<!\r)\n")


def _same_decimal_lengths(request) -> bool:
    values = [value for name, value in request.headers if name.lower() == b"content-length"]
    return len(values) > 1 and len({int(value) for value in values}) == 1 and len(set(values)) > 1


# Where fastwsgi accepts what h11 refuses, on purpose: (words of h11's refusal,
# the test that the request is that case, why it is accepted). None of them
# changes where a message ends.
LENIENCIES = [
    ("conflicting Content-Length", _same_decimal_lengths,
     ("repeated Content-Length fields with the same decimal value spelled differently (5 and 05):"
      " RFC 9110 §8.6 lets a recipient take the value; h11 compares the spelling")),
]


def leniency_for(h11_error: str, request) -> str | None:
    for words, applies, why in LENIENCIES:
        if words in h11_error and applies(request):
            return why
    return None


def cuts(data: bytes, seed: int) -> list[list[bytes]]:
    """The ways to feed ``data`` besides whole: byte by byte, and at random cuts from ``seed``."""
    ways = [[data[i:i + 1] for i in range(len(data))]]
    draw = random.Random(seed)
    for _ in range(2):
        positions = sorted({draw.randrange(len(data) + 1) for _ in range(draw.randint(1, 4))})
        ways.append([data[a:b] for a, b in zip([0] + positions, positions + [len(data)])])
    return ways


def check_stream(data: bytes, options: dict, seed: int = 0) -> None:
    whole = feed_pieces([data], **options)   # any exception but ParseError escapes
    if whole.error is not None:
        status, reason = whole.error
        assert 400 <= status <= 599 and reason, f"refusal without a 4xx/5xx and a reason: {whole.error}"
    for pieces in cuts(data, seed):
        other = feed_pieces(pieces, **options)
        assert other.comparable() == whole.comparable(), (
            f"fed in {len(pieces)} pieces the parser disagrees with the whole:"
            f" {other.comparable()!r} != {whole.comparable()!r}")
    check_head_alone(data, options, whole)
    for request in whole.parsed:
        bare = BARE_CR_OR_LF.search(request.head)
        assert bare is None, f"accepted a head with a bare CR or LF at {bare.start()}: {request.head!r}"
    assert_one_framing(data, whole, limited=any(name.startswith("limit_") for name in options),
                       folded=options.get("permit_obsolete_folding", False))
    if options in H11_COMPARABLE:
        check_against_h11(data, whole, drop_underscores=not options)


def check_head_alone(data: bytes, options: dict, whole) -> None:
    """HeadParser.parse_bytes on a bytes object of the stream's exact size: the same first head.

    RequestParser reads from a bytearray that may hold spare room past its end;
    a bytes object ends where the stream does (and its NUL), so under ASan with
    PYTHONMALLOC=malloc a read past the end of the stream is caught here.
    """
    parser = HeadParser(**options)
    own = bytes(bytearray(data))  # the head is rewritten in place where obs-fold is permitted
    try:
        consumed = parser.parse_bytes(own)
    except ParseError as refused:
        assert not whole.parsed and whole.error == (refused.status, refused.reason), (
            f"parse_bytes refused {refused} where RequestParser made {whole.comparable()!r}")
        return
    if whole.parsed:
        assert consumed == len(whole.parsed[0].head), f"parse_bytes took {consumed} bytes"
    else:
        assert consumed == 0 and whole.error is None, f"parse_bytes took {consumed} bytes"


def _fields(headers, drop_underscores: bool) -> list:
    """Fields as h11 hands them on: names lowercased, one Content-Length, no Transfer-Encoding.

    h11 keeps one of identical Content-Length fields, and the reference rewrites
    ``gzip, chunked`` to ``chunked`` (support.wire.EQUIVALENTS); framing itself
    is compared through the body.
    """
    fields, seen_length = [], False
    for name, value in headers:
        name = name.lower()
        if name == b"transfer-encoding" or (drop_underscores and b"_" in name):
            continue
        if name == b"content-length":
            if seen_length:
                continue
            seen_length = True
        fields.append((name, value))
    return fields


def check_against_h11(data: bytes, outcome, drop_underscores: bool) -> None:
    ours = []
    for request, body, complete in zip(outcome.parsed, outcome.bodies, outcome.complete):
        if not complete:
            break
        ours.append((request, body))
        if not request.keep_alive:
            break
    if not ours:
        return
    theirs = reference_requests(data)
    for index, (request, body) in enumerate(ours):
        if index >= len(theirs.requests):
            why = leniency_for(theirs.error, request)
            assert why is not None, (
                f"request {index} accepted ({request.method!r} {request.target!r}), h11 says"
                f" {theirs.outcome}: {theirs.error}")
            return
        seen = theirs.requests[index]
        assert (seen.method, seen.target, seen.version, seen.body) == (
            request.method, request.target, b"1.%d" % request.version[1], body), (
            f"request {index}: h11 reads {seen.framing()!r}")
        ours_fields = _fields(request.headers, False)
        theirs_fields = _fields(seen.headers, drop_underscores)
        assert ours_fields == theirs_fields, f"request {index}: fields {ours_fields!r} != h11 {theirs_fields!r}"
