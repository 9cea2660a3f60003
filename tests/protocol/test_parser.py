"""The HTTP/1.1 request parser against RFC 9112, fed whole, split at every byte and bytewise.

Most rules are proved by the corpora in ``tests/requests`` (one file per
case, named after the rule); the tests here cover what is easier said in
code: generated sizes, option tables, the C-level entry points, and the
incremental state kept between calls.
"""
import pytest
from support.corpus import (
    corpus,
    expect_refused,
    expect_valid,
    feed_every_way,
    feed_pieces,
    splits,
)

from fastwsgi._parser import BodyDecoder, HeadParser, ParseError, RequestParser

VALID = corpus("valid")
INVALID = corpus("invalid")
HOST = b"Host: example.com\r\n"


@pytest.mark.parametrize("name, message, expectation", VALID, ids=[case[0] for case in VALID])
def test_valid_corpus(name, message, expectation):
    expect_valid(message, expectation)


@pytest.mark.parametrize("name, message, expectation", INVALID, ids=[case[0] for case in INVALID])
def test_invalid_corpus(name, message, expectation):
    expect_refused(message, expectation)


def test_corpora_are_not_empty():
    assert len(VALID) > 50 and len(INVALID) > 100


# -- the feeding helper itself ---------------------------------------------

def test_splits_cover_every_position_and_bytewise():
    ways = dict(splits(b"abcd"))
    assert ways["whole"] == [b"abcd"]
    assert [ways[f"split@{i}"] for i in (1, 2, 3)] == [
        [b"a", b"bcd"], [b"ab", b"cd"], [b"abc", b"d"]]
    assert ways["bytewise"] == [b"a", b"b", b"c", b"d"]


def test_outcome_differences_are_caught():
    # a body arrives in pieces, yet each way must report it whole
    message = b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 4\r\n\r\nbody"
    outcome = feed_every_way(message)
    assert outcome.bodies == [b"body"]


# -- incremental state ------------------------------------------------------

def test_incomplete_head_waits():
    outcome = feed_every_way(b"GET / HTTP/1.1\r\n" + HOST)
    assert outcome.requests == [] and outcome.error is None
    assert outcome.rest == b"GET / HTTP/1.1\r\n" + HOST


def test_incomplete_body_waits():
    outcome = feed_every_way(b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 10\r\n\r\nhalf")
    assert outcome.complete == [False]
    assert outcome.bodies == [b"half"]


def test_incomplete_chunked_body_waits():
    outcome = feed_every_way(b"POST / HTTP/1.1\r\n" + HOST
                             + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n")
    assert outcome.complete == [False]
    assert outcome.bodies == [b"hello"]


def test_lone_cr_may_still_end_a_full_head():
    # the head has exactly limit_request_fields fields; a lone CR arriving
    # alone is the start of the empty line, not one field too many
    message = b"GET / HTTP/1.1\r\n" + HOST + b"A: 1\r\n\r\n"
    outcome = feed_every_way(message, limit_request_fields=2)
    assert outcome.error is None and outcome.complete == [True]


def test_leading_empty_line_split_between_cr_and_lf():
    message = b"\r\nGET / HTTP/1.1\r\n" + HOST + b"\r\n"
    assert feed_pieces([b"\r", b"\n", message[2:]]).complete == [True]


def test_one_empty_line_between_pipelined_requests_is_ignored():
    message = (b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 1\r\n\r\nx\r\n"
               b"GET /next HTTP/1.1\r\n" + HOST + b"\r\n")
    outcome = feed_every_way(message)
    assert [r["target"] for r in outcome.requests] == ["/", "/next"]


def test_pipelined_requests_each_get_their_own_spans():
    message = b"".join(b"GET /%d HTTP/1.1\r\nHost: h%d\r\n\r\n" % (i, i) for i in range(5))
    outcome = feed_every_way(message)
    assert [request.path for request in outcome.parsed] == [b"/%d" % i for i in range(5)]
    assert [request.headers for request in outcome.parsed] == [
        [(b"Host", b"h%d" % i)] for i in range(5)]


def test_after_close_a_server_reads_no_further():
    message = (b"GET /first HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n"
               b"this is not HTTP\r\n\r\n")
    outcome = feed_every_way(message, stop_after_close=True)
    assert outcome.error is None and len(outcome.requests) == 1


def test_error_status_is_the_same_whichever_way_it_arrives():
    message = b"GET / HTTP/1.1\r\n" + HOST + b"X: " + b"y" * 100 + b"\r\n\r\n"
    outcome = feed_every_way(message, limit_request_field_size=50)
    assert outcome.error == (431, "header field too long")


# -- limits -----------------------------------------------------------------

@pytest.mark.parametrize("limit, length, status", [
    (4094, 4094, None), (4094, 4095, 414),
    (100, 100, None), (100, 101, 414),
    (0, 20000, None),            # 0 means unlimited
    (9000, 8190, None), (9000, 8191, 414),  # gunicorn's ceiling, 8190
    (-1, 8191, 414),
])
def test_request_line_limit(limit, length, status):
    target = b"/" + b"a" * (length - len(b"GET  HTTP/1.1") - 1)
    line = b"GET " + target + b" HTTP/1.1"
    assert len(line) == length
    message = line + b"\r\n" + HOST + b"\r\n"
    outcome = feed_every_way(message, every_position=False, extra=range(0, len(message), 97),
                             limit_request_line=limit)
    assert (outcome.error[0] if outcome.error else None) == status


@pytest.mark.parametrize("limit, line_length, status", [
    (8190, 8188, None), (8190, 8189, 431),   # the line and its CRLF count
    (0, 8188, None), (0, 8189, 431),         # 0 means gunicorn's default, 8190
    (20000, 19998, None), (20000, 19999, 431),
])
def test_field_size_limit(limit, line_length, status):
    field = b"X: " + b"v" * (line_length - 3)
    message = b"GET / HTTP/1.1\r\n" + HOST + field + b"\r\n\r\n"
    outcome = feed_every_way(message, every_position=False, extra=range(0, len(message), 211),
                             limit_request_field_size=limit)
    assert (outcome.error[0] if outcome.error else None) == status


@pytest.mark.parametrize("limit, fields, status", [
    (100, 100, None), (100, 101, 431),
    (0, 32768, None), (0, 32769, 431),   # 0 means gunicorn's maximum, 32768
    (40000, 32769, 431),
])
def test_field_count_limit(limit, fields, status):
    message = (b"GET / HTTP/1.1\r\n" + HOST
               + b"".join(b"X%d: %d\r\n" % (i, i) for i in range(fields - 1)) + b"\r\n")
    outcome = feed_pieces([message], limit_request_fields=limit)
    assert (outcome.error[0] if outcome.error else None) == status


@pytest.mark.parametrize("limit, length, status", [(0, 10**9, None), (10, 10, None), (10, 11, 413)])
def test_body_limit_for_content_length(limit, length, status):
    message = b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: %d\r\n\r\n" % length
    outcome = feed_every_way(message, limit_request_body=limit)
    assert (outcome.error[0] if outcome.error else None) == status


def test_body_limit_for_chunked_counts_every_chunk():
    message = (b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
               + b"4\r\nabcd\r\n" * 3 + b"0\r\n\r\n")
    assert feed_every_way(message, limit_request_body=12).error is None
    assert feed_every_way(message, limit_request_body=11).error[0] == 413


def test_oversized_line_is_refused_before_its_end_arrives():
    parser = RequestParser(limit_request_line=100)
    with pytest.raises(ParseError) as refused:
        parser.feed(b"GET /" + b"a" * 200)
    assert refused.value.status == 414
    parser = RequestParser(limit_request_field_size=100)
    with pytest.raises(ParseError) as refused:
        parser.feed(b"GET / HTTP/1.1\r\nX: " + b"a" * 200)
    assert refused.value.status == 431


def test_too_many_fields_refused_before_the_head_ends():
    parser = RequestParser(limit_request_fields=3)
    with pytest.raises(ParseError) as refused:
        parser.feed(b"GET / HTTP/1.1\r\n" + b"A: 1\r\n" * 4 + b"B")
    assert refused.value.status == 431


# -- keep-alive (RFC 9112 §9.3) ---------------------------------------------

@pytest.mark.parametrize("version, connection, keep_alive", [
    (b"1.1", None, True),
    (b"1.1", b"close", False),
    (b"1.1", b"Close", False),
    (b"1.1", b"keep-alive", True),
    (b"1.1", b"upgrade, close", False),
    (b"1.1", b"closed", True),           # a token, not a prefix
    (b"1.1", b"x-close", True),
    (b"1.0", None, False),
    (b"1.0", b"keep-alive", True),
    (b"1.0", b"KEEP-ALIVE", True),
    (b"1.0", b"te, keep-alive", True),
    (b"1.0", b"keep-alive, close", False),
    (b"1.0", b"keep-alives", False),
    # A list element is the whole text between commas: words inside one are not
    # separate options (the fuzzer's case, h11's reference reads it so).
    (b"1.0", b"keep-aliveX: keep-alive", False),
    (b"1.0", b"x keep-alive", False),
    (b"1.0", b" keep-alive \t, te", True),
    (b"1.1", b"x close", True),
    (b"1.1", b"te ,\tclose", False),
])
def test_keep_alive(version, connection, keep_alive):
    message = b"GET / HTTP/" + version + b"\r\n" + HOST
    if connection is not None:
        message += b"Connection: " + connection + b"\r\n"
    outcome = feed_every_way(message + b"\r\n")
    assert outcome.requests[0]["keep_alive"] is keep_alive


def test_connect_never_keeps_the_connection():
    message = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
    assert feed_every_way(message).requests[0]["keep_alive"] is False


# -- Expect (RFC 9110 §10.1.1) ------------------------------------------------

@pytest.mark.parametrize("version, value, expect_continue, status", [
    (b"1.1", b"100-continue", True, None),
    (b"1.1", b"100-CONTINUE", True, None),
    (b"1.0", b"100-continue", False, None),
    (b"1.1", b"200-ok", False, 417),
    (b"1.1", b"", False, 417),
    (b"1.0", b"something", False, 417),
])
def test_expect(version, value, expect_continue, status):
    message = (b"PUT / HTTP/" + version + b"\r\n" + HOST + b"Expect: " + value
               + b"\r\nContent-Length: 1\r\n\r\nx")
    outcome = feed_every_way(message)
    if status:
        assert outcome.error[0] == status
    else:
        assert outcome.requests[0]["expect_continue"] is expect_continue


# -- header_map (gunicorn): underscores never pose as hyphens -----------------

UNDERSCORES = (b"GET / HTTP/1.1\r\n" + HOST + b"X-Forwarded-For: 192.0.2.1\r\n"
               b"X_Forwarded_For: 127.0.0.1\r\n\r\n")


def test_header_map_drop_is_the_default():
    outcome = feed_every_way(UNDERSCORES)
    assert ["X_Forwarded_For", "127.0.0.1"] not in outcome.requests[0]["headers"]


def test_header_map_refuse():
    assert feed_every_way(UNDERSCORES, header_map="refuse").error[0] == 400


def test_header_map_dangerous_passes_the_field():
    outcome = feed_every_way(UNDERSCORES, header_map="dangerous")
    assert ["X_Forwarded_For", "127.0.0.1"] in outcome.requests[0]["headers"]


def test_header_map_rejects_unknown_modes():
    with pytest.raises(ValueError):
        HeadParser(header_map="maybe")


@pytest.mark.parametrize("header_map", ["drop", "dangerous"])
def test_underscore_framing_fields_never_frame(header_map):
    # Content_Length / Transfer_Encoding are other fields, whatever header_map says
    message = (b"POST / HTTP/1.1\r\n" + HOST + b"Content_Length: 5\r\n"
               b"Transfer_Encoding: chunked\r\n\r\nhello")
    outcome = feed_every_way(message, header_map=header_map)
    assert outcome.requests[0]["content_length"] == 0
    assert outcome.requests[0]["chunked"] is False
    assert outcome.rest == b"hello"


# -- the C-level entry points, seen from Python --------------------------------

def test_parse_bytes_returns_the_head_length_and_leaves_the_rest():
    head = b"GET / HTTP/1.1\r\n" + HOST + b"\r\n"
    parser = HeadParser()
    assert parser.parse_bytes(head + b"GET /next") == len(head)
    assert parser.parse_bytes(head[:-1]) == 0


def test_parse_bytes_raises_with_status_and_reason():
    parser = HeadParser()
    with pytest.raises(ParseError) as refused:
        parser.parse_bytes(b"GET / HTTP/3.0\r\n\r\n")
    assert (refused.value.status, refused.value.reason) == (505, "HTTP version not supported")
    assert parser.error == (505, "HTTP version not supported")
    assert str(refused.value) == "505 HTTP version not supported"


def test_parse_bytes_takes_a_bytearray():
    data = bytearray(b"GET / HTTP/1.1\r\n" + HOST + b"\r\n")
    assert HeadParser().parse_bytes(data) == len(data)


def test_obs_fold_is_rewritten_in_place_as_a_valid_head():
    data = bytearray(b"GET / HTTP/1.1\r\nLong: one\r\n two\r\n" + HOST + b"\r\n")
    length = HeadParser(permit_obsolete_folding=True).parse_bytes(data)
    assert length == len(data)
    # what is left parses again, without folding, to the same field
    assert HeadParser().parse_bytes(data) == length
    outcome = feed_every_way(bytes(data))
    assert outcome.requests[0]["headers"][0] == ["Long", "one two"]


def test_body_decoder_defaults():
    decoder = BodyDecoder()
    assert decoder is not None


def test_parser_is_reusable_after_reset_between_requests():
    parser = RequestParser()
    for i in range(3):
        events = parser.feed(b"GET /%d HTTP/1.1\r\n" % i + HOST + b"\r\n")
        assert [kind for kind, _ in events] == ["request", "end"]
        assert events[0][1].path == b"/%d" % i


def test_parse_error_keeps_the_events_before_it():
    parser = RequestParser()
    with pytest.raises(ParseError) as refused:
        parser.feed(b"GET /ok HTTP/1.1\r\n" + HOST + b"\r\nBAD\r\n\r\n")
    assert [kind for kind, _ in refused.value.events] == ["request", "end"]


def test_chunked_body_decodes_across_any_split():
    chunks = [b"a" * 1, b"b" * 15, b"c" * 16, b"d" * 255, b"e" * 4096]
    body = b"".join(b"%x;n=v\r\n" % len(c) + c + b"\r\n" for c in chunks) + b"0\r\nT: 1\r\n\r\n"
    message = b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n" + body
    outcome = feed_every_way(message, every_position=False,
                             extra=range(0, len(message), 7))
    assert outcome.bodies == [b"".join(chunks)]


def test_large_content_length_body_across_splits():
    body = bytes(range(256)) * 64
    message = b"PUT / HTTP/1.1\r\n" + HOST + b"Content-Length: %d\r\n\r\n" % len(body) + body
    outcome = feed_every_way(message, every_position=False, extra=range(0, len(message), 101))
    assert outcome.bodies == [body]


@pytest.mark.parametrize("size", [b"7fffffffffffffff", b"1" + b"0" * 16, b"f" * 40])
def test_chunk_size_overflow_is_refused(size):
    message = (b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
               + size + b"\r\n")
    assert feed_every_way(message).error == (400, "chunk size too large")


@pytest.mark.parametrize("digits", [17, 50])
def test_chunk_size_padded_past_sixteen_digits_is_refused(digits):
    # a size of 10, written with leading zeros: the fuzzer's find, which h11 refuses
    message = (b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
               + b"a".rjust(digits, b"0") + b"\r\n0123456789\r\n0\r\n\r\n")
    assert feed_every_way(message).error == (400, "chunk size has too many digits")


def test_chunk_size_of_sixteen_digits_is_read():
    message = (b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
               + b"a".rjust(16, b"0") + b"\r\n0123456789\r\n0\r\n\r\n")
    assert feed_every_way(message).bodies == [b"0123456789"]


@pytest.mark.parametrize("length", [b"1152921504606846977", b"9" * 19, b"1" + b"0" * 30])
def test_content_length_overflow_is_refused(length):
    # above 2**60, and never wrapping around int64 on the way
    message = b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: " + length + b"\r\n\r\n"
    assert feed_every_way(message).error == (400, "Content-Length too large")


# -- field values are scanned eight bytes at a time: every offset counts ------

@pytest.mark.parametrize("offset", range(0, 19))
@pytest.mark.parametrize("byte, allowed", [
    (b"\t", True), (b"\x80", True), (b"\xff", True), (b"~", True), (b" ", True),
    (b"\x00", False), (b"\x01", False), (b"\x1f", False), (b"\x7f", False), (b"\r", False),
    (b"\n", False),
])
def test_field_value_byte_at_every_offset(offset, byte, allowed):
    value = b"v" * offset + byte + b"w" * (18 - offset)
    message = b"GET / HTTP/1.1\r\n" + HOST + b"X: " + value + b"\r\n\r\n"
    outcome = feed_pieces([message])
    if allowed:
        assert outcome.error is None
        # OWS at either end is not part of the value
        assert outcome.requests[0]["headers"][1] == ["X", value.strip(b" \t").decode("latin-1")]
    else:
        assert outcome.error is not None and outcome.error[0] == 400


# -- limits: gunicorn's settings, their defaults from settings.py ---------------

def test_a_parser_without_limits_takes_the_settings_defaults():
    from fastwsgi.settings import BY_NAME
    line_limit = BY_NAME["limit_request_line"].default
    target = b"/" * (line_limit - len(b"GET  HTTP/1.1"))
    assert HeadParser().parse_bytes(b"GET " + target + b" HTTP/1.1\r\n" + HOST + b"\r\n")
    with pytest.raises(ParseError) as refused:
        HeadParser().parse_bytes(b"GET /" + target + b" HTTP/1.1\r\n" + HOST + b"\r\n")
    assert refused.value.status == 414
    fields = BY_NAME["limit_request_fields"].default
    head = b"GET / HTTP/1.1\r\n" + HOST + b"A: 1\r\n" * (fields - 1)
    assert HeadParser().parse_bytes(head + b"\r\n")
    with pytest.raises(ParseError) as refused:
        HeadParser().parse_bytes(head + b"A: 1\r\n\r\n")
    assert refused.value.status == 431


def test_a_field_size_limit_of_zero_means_the_settings_default():
    from fastwsgi.settings import BY_NAME
    field_size = BY_NAME["limit_request_field_size"].default
    field = b"X: " + b"a" * (field_size - len(b"X: \r\n")) + b"\r\n"
    head = b"GET / HTTP/1.1\r\n" + HOST + field + b"\r\n"
    assert HeadParser(limit_request_field_size=0).parse_bytes(head) == len(head)
    with pytest.raises(ParseError) as refused:
        HeadParser(limit_request_field_size=0).parse_bytes(head.replace(b"X: ", b"X: a"))
    assert refused.value.status == 431


def test_an_unknown_limit_is_refused_by_name():
    with pytest.raises(TypeError, match="limit_request_lines"):
        RequestParser(limit_request_lines=10)


# -- the request line, parsed when its line ends (RFC 9112 §3) ------------------

@pytest.mark.parametrize("request_line, status", [
    (b"GET / HTTP/2.0\r\n", 505),
    (b"GET / HTTP/1.1 \r\n", 400),
    (b"GET  / HTTP/1.1\r\n", 400),
    (b"GET * HTTP/1.1\r\n", 400),
])
def test_a_malformed_request_line_is_refused_before_the_head_ends(request_line, status):
    for _, pieces in splits(request_line + HOST + b"X: unfinished"):
        parser = RequestParser()
        with pytest.raises(ParseError) as refused:
            for piece in pieces:
                parser.feed(piece)
        assert refused.value.status == status
