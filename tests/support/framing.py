"""A reference reading of request framing (RFC 9112 §6.3, §7.1), independent of the parser.

``reference_framing`` says how the fields a parser accepted frame the body,
``reference_body`` reads that body from the bytes, and ``assert_one_framing``
holds everything a parser accepted from a stream to that reading: no request
framed two ways, no body ending where the reference does not end it.
"""
import re

TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
QUOTED_STRING = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
# RFC 9112 §7.1.1: chunk-size [ chunk-ext ], with BWS around ";" and "=" (the line end not included).
CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]+)((?:[ \t]*;[ \t]*" + TOKEN + rb"(?:[ \t]*=[ \t]*(?:"
                        + TOKEN + rb"|" + QUOTED_STRING + rb"))?)*)")
TRAILER_LINE = re.compile(TOKEN + rb":[ \t\x21-\x7e\x80-\xff]*")
FORBIDDEN_TRAILERS = {b"host", b"content-length", b"transfer-encoding", b"trailer", b"te",
                      b"authorization"}
INCOMPLETE, INVALID = "incomplete", "invalid"
# Hex digits a chunk size may have, leading zeros included (the parser's rule; h11 allows 20).
MAX_CHUNK_SIZE_DIGITS = 16
# How the parser words a refusal for a limit (body, chunk-size line, trailer fields).
LIMIT_REASONS = ("too long", "too many", "larger than limit_request_body")


def reference_framing(headers, version):
    """(chunked, length) that the accepted fields call for, or INVALID (RFC 9112 §6)."""
    lengths = [value for name, value in headers if name.lower() == b"content-length"]
    codings = [coding.strip(b" \t").lower()
               for name, value in headers if name.lower() == b"transfer-encoding"
               for coding in value.split(b",") if coding.strip(b" \t")]
    te_present = any(name.lower() == b"transfer-encoding" for name, _ in headers)
    if te_present:
        if lengths or version == (1, 0) or codings[-1:] != [b"chunked"] or codings.count(b"chunked") != 1:
            return INVALID
        return True, None
    if not lengths:
        return False, 0
    if any(not re.fullmatch(rb"[0-9]+", value) for value in lengths) or len(set(map(int, lengths))) > 1:
        return INVALID
    return False, int(lengths[0])


def reference_body(data, pos, chunked, length):
    """(body, end) of the body starting at ``pos``, or INCOMPLETE / INVALID."""
    if not chunked:
        if len(data) - pos < length:
            return INCOMPLETE
        return data[pos:pos + length], pos + length
    body = b""
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return INCOMPLETE
        match = CHUNK_LINE.fullmatch(data[pos:eol])
        if not match or len(match.group(1)) > MAX_CHUNK_SIZE_DIGITS:
            return INVALID
        size = int(match.group(1), 16)
        pos = eol + 2
        if size == 0:
            break
        if len(data) < pos + size + 2:
            return INCOMPLETE
        body += data[pos:pos + size]
        if data[pos + size:pos + size + 2] != b"\r\n":
            return INVALID
        pos += size + 2
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return INCOMPLETE
        line, pos = data[pos:eol], eol + 2
        if not line:
            return body, pos
        if not TRAILER_LINE.fullmatch(line) or line.split(b":")[0].lower() in FORBIDDEN_TRAILERS:
            return INVALID


def assert_one_framing(data, outcome, limited=False, folded=False):
    """Every request accepted from ``data`` sits where the reference reading puts it.

    ``limited``: the parser had limits below its defaults, so it may refuse a body
    the reference (which has none) reads as good, and then only for a limit.
    ``folded``: obs-fold was permitted, and a folded head is rewritten in place
    (RFC 9112 §5.2), so only where it ends is compared.
    """
    cursor = 0
    for index, request in enumerate(outcome.parsed):
        head = request.head
        if folded:
            assert data[cursor + len(head) - 4:cursor + len(head)] == b"\r\n\r\n", "a head not where it ends"
        else:
            assert data[cursor:cursor + len(head)] == head, "a head not where the last body ended"
        framing = reference_framing(request.headers, request.version)
        assert framing is not INVALID, f"accepted a framing the reference refuses: {request.headers}"
        chunked, length = framing
        assert request.chunked == chunked
        assert request.content_length == length
        reference = reference_body(data, cursor + len(head), chunked, length)
        if outcome.complete[index]:
            assert reference not in (INCOMPLETE, INVALID), f"body ended where the reference says {reference}"
            body, cursor = reference
            assert outcome.bodies[index] == body
        else:
            assert index == len(outcome.parsed) - 1
            if outcome.error is None:
                assert reference == INCOMPLETE, reference
            else:
                # refused inside this body: the reference must not see a good one there
                for_a_limit = limited and any(words in outcome.error[1] for words in LIMIT_REASONS)
                assert reference in (INCOMPLETE, INVALID) or for_a_limit, "refused a body the reference accepts"
