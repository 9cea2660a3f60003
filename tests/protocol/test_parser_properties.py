"""Properties of the parser over generated and mutated messages (hypothesis).

* Requests built from random parts parse back to those parts, however split.
* Any split of any message gives the same outcome as feeding it whole.
* Mutated valid messages never crash the parser, and whatever it accepts has
  one framing only: every byte it consumed is accounted for by a simple
  reference reading of the fields it accepted (RFC 9112 §6.3, §7.1).
"""
import re

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.corpus import corpus, feed_pieces
from support.framing import (
    INCOMPLETE,
    INVALID,
    assert_one_framing,
    reference_body,
    reference_framing,
)

PROPERTY = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

TCHARS = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def assert_same_whichever_split(data, cuts, **options):
    whole = feed_pieces([data], **options)
    bytewise = feed_pieces([data[i:i + 1] for i in range(len(data))], **options)
    positions = sorted({cut % (len(data) + 1) for cut in cuts})
    pieces = [data[a:b] for a, b in zip([0] + positions, positions + [len(data)])]
    split = feed_pieces(pieces, **options)
    for other in (bytewise, split):
        assert other.requests == whole.requests
        assert (other.error is None) == (whole.error is None), (other.error, whole.error)
        if whole.error is None:
            assert other.comparable() == whole.comparable()
        else:
            assert [c for c in other.complete] == whole.complete
    return whole


# -- requests built from parts -----------------------------------------------------------

tokens = st.text(alphabet=TCHARS.decode(), min_size=1, max_size=12).map(str.encode)
field_names = tokens.filter(lambda name: b"_" not in name and name.lower() not in (
    b"host", b"content-length", b"transfer-encoding", b"connection", b"expect", b"content-type"))
value_chars = st.sampled_from([bytes([c]) for c in list(range(0x21, 0x7F)) + [0x80, 0xE9, 0xFF]])
field_values = st.lists(st.one_of(value_chars, st.just(b" ")), max_size=20).map(
    lambda parts: b"".join(parts).strip(b" "))
segments = st.text(alphabet="abcXYZ019-._~%!$&'()*+,;=:@", max_size=8).map(str.encode)
chunk_extensions = st.lists(st.tuples(tokens, st.one_of(st.none(), tokens, st.just(b'"q v"'))),
                            max_size=2).map(lambda exts: b"".join(
                                b";" + name + (b"=" + value if value else b"")
                                for name, value in exts))


@st.composite
def built_request(draw):
    method = draw(st.one_of(st.sampled_from([b"GET", b"POST", b"PUT", b"PATCH", b"DELETE"]),
                            tokens.filter(lambda t: t not in (b"CONNECT", b"OPTIONS"))))
    path = b"/" + b"/".join(draw(st.lists(segments, max_size=4)))
    query = draw(st.one_of(st.none(), segments))
    target = path + (b"?" + query if query is not None else b"")
    version = draw(st.sampled_from([(1, 1), (1, 0)]))
    headers = [(b"Host", b"example.com")] if version == (1, 1) else []
    headers += draw(st.lists(st.tuples(field_names, field_values), max_size=6))
    body = draw(st.binary(max_size=64))
    framing = draw(st.sampled_from(["length", "chunked"] if version == (1, 1) else ["length"]))
    if framing == "length":
        wire_body = body
        if body or draw(st.booleans()):
            headers.append((b"Content-Length", b"%d" % len(body)))
    else:
        headers.append((b"Transfer-Encoding", b"chunked"))
        cuts = sorted(set(draw(st.lists(st.integers(0, len(body)), max_size=4))) - {0, len(body)})
        pieces = [body[a:b] for a, b in zip([0] + cuts, cuts + [len(body)]) if b > a]
        wire_body = b"".join(b"%x" % len(piece) + draw(chunk_extensions) + b"\r\n" + piece + b"\r\n"
                             for piece in pieces)
        wire_body += b"0\r\n" + b"".join(name + b": " + value + b"\r\n" for name, value in
                                         draw(st.lists(st.tuples(field_names, field_values),
                                                       max_size=2))) + b"\r\n"
    close = draw(st.booleans())
    if close:
        headers.append((b"Connection", b"close"))
    order = draw(st.permutations(range(len(headers))))
    headers = [headers[i] for i in order]
    wire = (method + b" " + target + b" HTTP/%d.%d\r\n" % version
            + b"".join(name + b": " + value + b"\r\n" for name, value in headers) + b"\r\n"
            + wire_body)
    expected = {
        "method": method, "target": target, "path": path, "query": query or b"",
        "version": version, "headers": headers, "body": body,
        "keep_alive": not close and version == (1, 1),
    }
    return wire, expected


@PROPERTY
@given(st.lists(built_request(), min_size=1, max_size=3), st.lists(st.integers(0, 10**6), max_size=5))
def test_built_requests_parse_back_to_their_parts(requests, cuts):
    # every request but the last keeps the connection, so all of them are read
    requests = [(wire, expected) for wire, expected in requests[:-1] if expected["keep_alive"]] + requests[-1:]
    data = b"".join(wire for wire, _ in requests)
    # any RFC 9110 token is a method once gunicorn's narrower default is lifted
    outcome = assert_same_whichever_split(data, cuts, permit_unconventional_http_method=True)
    assert outcome.error is None, outcome.error
    assert len(outcome.parsed) == len(requests)
    for request, body, (_, expected) in zip(outcome.parsed, outcome.bodies, requests):
        assert (request.method, request.target, request.path, request.query) == (
            expected["method"], expected["target"], expected["path"], expected["query"])
        assert request.version == expected["version"]
        assert request.headers == expected["headers"]
        assert body == expected["body"]
        assert request.keep_alive == expected["keep_alive"]
    assert outcome.complete == [True] * len(requests)
    assert outcome.rest == b""
    assert_one_framing(data, outcome)


# -- splits of the corpus ------------------------------------------------------------------

CORPUS = [(message, expectation.get("options", {}))
          for _, message, expectation in corpus("valid") + corpus("invalid")
          if len(message) < 2000]


@PROPERTY
@given(st.sampled_from(CORPUS), st.lists(st.integers(0, 10**6), min_size=1, max_size=8))
def test_any_split_of_the_corpus_gives_the_same_outcome(case, cuts):
    message, options = case
    assert_same_whichever_split(message, cuts, **options)


# -- mutations -----------------------------------------------------------------------------

BASES = [message for _, message, expectation in corpus("valid")
         if not expectation.get("options") and len(message) < 700]
# framing is what mutations are after: chunked and HTTP/1.0 messages weigh more
BASES += [message for message in BASES if b"chunked" in message.lower()] * 3
BASES += [message for message in BASES if b" HTTP/1.0\r\n" in message]
INTERESTING = [b"\r", b"\n", b"\r\n", b" ", b"\t", b":", b",", b";", b"=", b'"', b"0", b"5",
               b"a", b"F", b"-", b"_", b"\x00", b"\x7f", b"\x80", b"\xff", b"\r\n\r\n"]
FRAMING_LINES = [b"Content-Length: 0", b"Content-Length: 5", b"Content-Length: 05", b"Content-Length: 3",
                 b"Content-Length: 5, 5", b"Content-Length: -1", b"Content-Length:  7 ",
                 b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip, chunked",
                 b"Transfer-Encoding: chunked, gzip", b"Transfer-Encoding: identity",
                 b"Transfer-Encoding:  chunked ", b"transfer-encoding: CHUNKED",
                 b"Transfer_Encoding: chunked", b"Content_Length: 3", b"Host: other",
                 b"Connection: close", b"Expect: 100-continue", b" folded", b"X: y"]


def _head_line_starts(data):
    head_end = data.find(b"\r\n\r\n")
    head_end = len(data) if head_end < 0 else head_end + 2
    return [m.end() for m in re.finditer(rb"\r\n", data[:head_end])]


SIZE_LINE_START = re.compile(rb"\r\n[0-9A-Fa-f]+")


def _chunk_size_ends(data):
    # just after the hex digits that start a body line: where chunk-size lines go wrong
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        return []
    return [m.end() for m in SIZE_LINE_START.finditer(data, head_end + 2)]


@st.composite
def mutated(draw):
    """A valid message, changed a few times; most changes aim at framing."""
    data = bytearray(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 4))):
        operation = draw(st.sampled_from(["framing", "framing", "framing", "chunk", "chunk",
                                          "replace", "insert", "delete", "repeat", "case",
                                          "truncate"]))
        position = draw(st.integers(0, len(data)))
        if operation == "framing":
            # a framing-related field line where the head has a line start
            starts = _head_line_starts(bytes(data))
            if starts:
                start = draw(st.sampled_from(starts))
                data[start:start] = draw(st.sampled_from(FRAMING_LINES)) + b"\r\n"
        elif operation == "chunk":
            ends = _chunk_size_ends(bytes(data))
            if ends:
                at = draw(st.sampled_from(ends))
                data[at:at] = draw(st.sampled_from(INTERESTING))
        elif operation == "replace" and position < len(data):
            data[position:position + 1] = draw(st.sampled_from(INTERESTING))
        elif operation == "insert":
            data[position:position] = draw(st.sampled_from(INTERESTING))
        elif operation == "delete":
            del data[position:position + draw(st.integers(1, 4))]
        elif operation == "repeat":
            data.extend(bytes(data))
        elif operation == "case" and position < len(data):
            data[position:position + 1] = bytes(data[position:position + 1]).swapcase()
        elif operation == "truncate":
            del data[position:]
    return bytes(data)


@settings(PROPERTY, max_examples=400)
@given(mutated(), st.lists(st.integers(0, 10**6), min_size=1, max_size=6))
def test_mutations_never_crash_and_never_frame_two_ways(data, cuts):
    outcome = assert_same_whichever_split(data, cuts)   # only ParseError may come out
    if outcome.error is not None:
        assert 400 <= outcome.error[0] <= 599 and outcome.error[1]
    assert_one_framing(data, outcome)


@PROPERTY
@given(mutated(), st.sampled_from([{"header_map": "dangerous"}, {"permit_obsolete_folding": True},
                                   {"limit_request_field_size": 40, "limit_request_fields": 4},
                                   {"strip_header_spaces": True}]))
def test_mutations_with_options_stay_consistent(data, options):
    assert_same_whichever_split(data, [len(data) // 3, len(data) // 2], **options)


# -- framing grammars, explored directly ----------------------------------------------------

# Good spellings weigh three times the bad ones, so that most bodies have one fault at most.
AFTER_SIZE = [b"", b";a", b" ;a", b"\t; a = b", b';a="x y"', b';a="\\"'] * 3 + [
    b" ", b"\t", b";", b";a=", b"; =b", b"x", b" 1", b"\r", b"\n", b";a b", b';a="x', b";a=b ",
    b";\x01", b"; a ", b";a=b;"]
LINE_ENDS = [b"\r\n"] * 12 + [b"\n", b"\r", b"\r\r\n", b"\n\r"]
DATA_ENDS = [b"\r\n"] * 12 + [b"\n", b"", b"!\r\n", b"\r", b"\n\n"]
TRAILERS = [b"", b"T: 1\r\n", b"T:\r\n", b"X-A: b c\r\nY: z\r\n"] * 3 + [
    b"T : 1\r\n", b" T: 1\r\n", b"T: 1\n", b"Host: h\r\n", b"TE: x\r\n", b"T: \x01\r\n",
    b"X\r\n", b"Content-Length: 1\r\n"]
NEXT_REQUEST = b"GET /next HTTP/1.1\r\nHost: example.com\r\n\r\n"
CHUNKED_HEAD = b"POST /c HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n"


@st.composite
def chunked_body(draw):
    """A chunked body whose every joint is drawn from good and bad spellings."""
    body = b""
    for data in draw(st.lists(st.sampled_from([b"x", b"hello", b"\r\n0\r\n", b"abcdefghijk"]),
                              max_size=3)):
        size = draw(st.sampled_from([b"%x", b"%X", b"0%x", b"%x0"])) % len(data)
        body += (size + draw(st.sampled_from(AFTER_SIZE)) + draw(st.sampled_from(LINE_ENDS))
                 + data + draw(st.sampled_from(DATA_ENDS)))
    body += (draw(st.sampled_from([b"0", b"000"])) + draw(st.sampled_from(AFTER_SIZE))
             + draw(st.sampled_from(LINE_ENDS)) + draw(st.sampled_from(TRAILERS))
             + draw(st.sampled_from(LINE_ENDS)))
    return body


@settings(PROPERTY, max_examples=500)
@given(chunked_body(), st.lists(st.integers(0, 10**6), max_size=3))
def test_chunked_bodies_frame_as_the_reference_reads_them(body, cuts):
    data = CHUNKED_HEAD + body + NEXT_REQUEST
    outcome = assert_same_whichever_split(data, cuts)
    assert_one_framing(data, outcome)
    reference = reference_body(data, len(CHUNKED_HEAD), True, None)
    if reference not in (INCOMPLETE, INVALID):
        # what the reference reads as a good body, the parser reads too
        assert outcome.complete[:1] == [True], outcome.error
        assert outcome.bodies[0] == reference[0]


FIELD_LINES = [b"Content-Length: 0", b"Content-Length: 5", b"Content-Length: 05",
               b"Content-Length: 11", b"Content-Length: 5, 5", b"Content-Length: +5",
               b"Content-Length:  5 ", b"Content-Length: 5 5", b"Transfer-Encoding: chunked",
               b"Transfer-Encoding: gzip, chunked", b"Transfer-Encoding: chunked, gzip",
               b"Transfer-Encoding: identity", b"Transfer-Encoding:  chunked ",
               b"transfer-encoding: CHUNKED", b"Transfer-Encoding: gzip", b"Transfer-Encoding:",
               b"Transfer_Encoding: chunked", b"Content_Length: 3", b"X-Other: 5"]


@settings(PROPERTY, max_examples=600)
@given(st.sampled_from([b"1.0", b"1.1"]), st.lists(st.sampled_from(FIELD_LINES), max_size=4),
       st.lists(st.integers(0, 10**6), max_size=3))
def test_framing_fields_frame_as_the_reference_reads_them(version, lines, cuts):
    head = (b"POST /f HTTP/" + version + b"\r\nHost: example.com\r\n"
            + b"".join(line + b"\r\n" for line in lines) + b"\r\n")
    data = head + b"5\r\nhello\r\n0\r\n\r\n" + NEXT_REQUEST
    outcome = assert_same_whichever_split(data, cuts)
    assert_one_framing(data, outcome)
    # the fields the parser keeps: those without '_' (header_map=drop)
    kept = [tuple(line.split(b":", 1)) for line in lines if b"_" not in line.split(b":")[0]]
    kept = [(name, value.strip(b" \t")) for name, value in kept]
    if reference_framing(kept, (1, int(version[-1:]))) is not INVALID:
        assert outcome.parsed, f"refused a framing the reference accepts: {outcome.error}"
