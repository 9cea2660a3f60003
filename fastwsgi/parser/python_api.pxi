# The parser seen from Python, for tests, tools and bench/parse_bench.py: a
# RequestParser that feeds bytes and yields events, the ParsedRequest it makes,
# and the character classes as bytes. The loop uses the C-level parsers.
# Included into _parser.pyx.


cdef class ParsedRequest:
    """A complete request head, as Python values (for tests and tools; the loop reads spans)."""

    @property
    def method(self):
        return self._span(self.head_parser.method)

    @property
    def target(self):
        return self._span(self.head_parser.target)

    @property
    def path(self):
        return self._span(self.head_parser.path)

    @property
    def query(self):
        return self._span(self.head_parser.query)

    @property
    def version(self):
        if self.head_parser.version_major != 1:
            return (self.head_parser.version_major, self.head_parser.version_minor_sent)
        return (1, self.head_parser.version_minor)

    @property
    def headers(self):
        return [(self._span(self.head_parser.fields[i].name),
                 self._span(self.head_parser.fields[i].value))
                for i in range(self.head_parser.nfields)]

    @property
    def chunked(self):
        return self.head_parser.body_kind == BODY_CHUNKED

    @property
    def content_length(self):
        """The declared length; None when chunked."""
        if self.head_parser.body_kind == BODY_CHUNKED:
            return None
        return self.head_parser.content_length

    @property
    def keep_alive(self):
        return self.head_parser.keep_alive

    @property
    def expect_continue(self):
        return self.head_parser.expect_continue

    @property
    def upgrade(self):
        return self.head_parser.upgrade

    cdef bytes _span(self, Span span):
        return self.head[span.off:span.off + span.len]

    def __repr__(self):
        return f"<ParsedRequest {self.method!r} {self.target!r} HTTP/1.{self.head_parser.version_minor}>"


cdef class RequestParser:
    """Feeds bytes, yields events: ("request", ParsedRequest), ("body", bytes), ("end", None).

    Raises :class:`ParseError` for a request that must be refused; after that
    the connection is to be closed and the parser is not usable.
    """

    cdef HeadParser head_parser
    cdef BodyDecoder body_decoder
    cdef bytearray pending
    cdef bint in_body

    def __init__(self, **limits):
        self.head_parser = HeadParser(**limits)
        self.body_decoder = BodyDecoder.__new__(BodyDecoder)
        self.body_decoder.configure(&self.head_parser.limits)
        self.pending = bytearray()
        self.in_body = False

    def feed(self, data):
        """Returns the events the bytes complete; a ParseError carries those before it in ``events``."""
        cdef list events = []
        cdef Py_ssize_t consumed, decoded = 0
        cdef char* buf
        self.pending += data
        while True:
            buf = self.pending
            if self.in_body:
                consumed = self.body_decoder.decode(buf, len(self.pending), &decoded)
                if consumed < 0:
                    error = ParseError(self.body_decoder.error_status, self.body_decoder.error_reason)
                    error.events = events
                    raise error
                if decoded:
                    events.append(("body", bytes(self.pending[:decoded])))
                del self.pending[:consumed]
                if not self.body_decoder.done():
                    return events
                self.in_body = False
                events.append(("end", None))
                continue
            consumed = self.head_parser.parse(buf, len(self.pending))
            if consumed < 0:
                error = ParseError(self.head_parser.error_status, self.head_parser.error_reason)
                error.events = events
                raise error
            if consumed == 0:
                return events
            events.append(("request", self._complete_head(consumed)))
            del self.pending[:consumed]
            self.head_parser.reset()
            self.in_body = True

    @property
    def buffered(self):
        """Bytes received and not yet consumed (the start of the next request)."""
        return bytes(self.pending)

    @property
    def awaiting_body(self):
        """True between a request's head and the end of its body."""
        return self.in_body

    cdef ParsedRequest _complete_head(self, Py_ssize_t consumed):
        cdef ParsedRequest request = ParsedRequest.__new__(ParsedRequest)
        cdef HeadParser own = HeadParser.__new__(HeadParser)
        # The head as parsed (obs-folds already rewritten in place) parses again to the
        # same spans, in a parser of its own that outlives this parser's next head.
        own.configure(&self.head_parser.limits)
        own.forwarder_names = self.head_parser.forwarder_names
        request.head = bytes(self.pending[:consumed])
        if own.parse(request.head, consumed) != consumed:
            raise AssertionError("a complete head failed to parse twice")
        request.head_parser = own
        self.body_decoder.start(own.body_kind, own.content_length)
        return request



# The tables as bytes, for character_class().
cdef dict CHARACTER_CLASSES = {
    "tchar": (<const char*>TCHAR)[:256],
    "field-content": (<const char*>FIELD_CONTENT)[:256],
    "request-target": (<const char*>TARGET_CHAR)[:256],
    "authority": (<const char*>AUTHORITY_CHAR)[:256],
    "qdtext": (<const char*>QDTEXT)[:256],
    "HEXDIG": (<const char*>HEXDIG)[:256],
}


def character_class(str rule):
    """The table of an RFC rule as includes/http_chars.h compiles it into every
    extension: 256 bytes, one per byte value, 0 for a byte outside the rule.
    ``rule`` is tchar, field-content, request-target, authority, qdtext or HEXDIG."""
    try:
        return CHARACTER_CLASSES[rule]
    except KeyError:
        raise ValueError(f"no character class {rule!r}") from None
