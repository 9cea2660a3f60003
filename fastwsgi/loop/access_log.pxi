# The access log line, rendered here rather than by the logging module: gunicorn's
# format, compiled once by glogging.AccessFormat.plan() into a list of segments,
# becomes bytes appended to one buffer, and the buffer reaches the file with one
# write(2) at the end of the loop iteration that completed its requests. A
# LogRecord, a dict of atoms and "fmt % atoms" cost several times what the server
# spends on the request itself; the line is the same, byte for byte.
#
# glogging hands a writer out only when nothing could tell the difference: the
# access logger has our batching handler alone, no filter, and the target stream
# encodes UTF-8. That is checked again once a second, before a write; once it
# stops holding (an app added a handler of its own, say), what is buffered and
# every later line go through the logger's own access_line. Included into _loop.pyx; the class is
# declared in _loop.pxd.

from cpython.exc cimport PyErr_Occurred
from cpython.list cimport PyList_Check
from cpython.object cimport PyObject
from cpython.object cimport PyObject_AsFileDescriptor, PyObject_Str
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_CheckExact
from libc.math cimport fabs, modf, round as c_round

# What a segment renders. The names are AccessFormat.plan()'s.
cdef enum AtomKind:
    ATOM_TEXT               # the format's own text, between atoms
    ATOM_ENVIRON            # environ.get(key, default): h m U q H f a, {name}i
    ATOM_USER               # u: the Basic-auth user, or "-"
    ATOM_CLOCK              # t: "[06/Dec/2026:10:00:00 +0000]", made once a second
    ATOM_REQUEST_LINE       # r: "GET /path?q HTTP/1.1", from the environ
    ATOM_STATUS             # s: the status line's code
    ATOM_SENT               # b, B: the body bytes sent
    ATOM_SECONDS            # T
    ATOM_MICROSECONDS       # D
    ATOM_MILLISECONDS       # M
    ATOM_DECIMAL_SECONDS    # L: "0.000123"
    ATOM_PID                # p: "<1234>"
    ATOM_RESPONSE_HEADER    # {name}o, the last field of that name
    ATOM_PYTHON             # any other: a function of the line's five arguments

_ATOM_KINDS = {
    "text": ATOM_TEXT, "environ": ATOM_ENVIRON, "user": ATOM_USER, "clock": ATOM_CLOCK,
    "request_line": ATOM_REQUEST_LINE, "status": ATOM_STATUS, "sent": ATOM_SENT,
    "T": ATOM_SECONDS, "D": ATOM_MICROSECONDS, "M": ATOM_MILLISECONDS,
    "L": ATOM_DECIMAL_SECONDS, "pid": ATOM_PID, "response_header": ATOM_RESPONSE_HEADER,
    "python": ATOM_PYTHON,
}

# A line the writer cannot render itself (a value that will not encode) goes
# through the logger instead; render_line says so with this.
DEF LINE_DELEGATED = 1
# request_line: a part is not a str, the atom's own function makes the value.
DEF VALUE_FROM_FUNCTION = 2
# As the batching handler: a buffer this full is written out at once.
DEF FLUSH_AT_BYTES = 65536


cdef class AccessLineWriter:

    def __cinit__(self, list plan, object logger, object handler, object fallback):
        cdef Py_ssize_t i
        cdef LineSegment* segment
        # Every line ends with the handler's terminator, as the last text segment.
        plan = _joined_text(plan + [("text", handler.target.terminator, None)])
        self.buffer = HeaderBlock.__new__(HeaderBlock)
        self.count = len(plan)
        self.segments = <LineSegment*>malloc(self.count * sizeof(LineSegment))
        if self.segments == NULL:
            raise MemoryError()
        # The segments point into these objects, which live as long as the writer.
        self.keep = []
        for i, (kind, arg, default) in enumerate(plan):
            segment = &self.segments[i]
            segment.kind = _ATOM_KINDS[kind]
            if kind == "text":
                arg = arg.encode("utf-8")
                segment.text = PyBytes_AS_STRING(arg)
                segment.length = PyBytes_GET_SIZE(arg)
            self.keep.append((arg, default))
            segment.arg = <PyObject*>arg
            segment.default = <PyObject*>default
        self.logger = logger
        self.handler = handler
        self.fallback = fallback
        self.clock_second = -1
        self.clock_text = None
        self.last_status = None
        self.last_code = None
        self.pid_text = None
        self.delegating = False
        self.handler_pending = False
        self.stream = None
        self.fd = -1
        self.checked_second = -1

    def __dealloc__(self):
        free(self.segments)
        if self.fd >= 0:
            close(self.fd)

    # -- the hook's interface (ServerHooks.access_log / flush_access_log) --------

    def __call__(self, environ, status, headers, sent, seconds):
        if sent is None:
            # b is "-" and B is None then: gunicorn's rules, the logger's to apply.
            self.delegate_line(environ, status, headers, sent, seconds)
            return
        self.add(environ, status, headers, sent, seconds)

    def flush(self):
        self.write_out()

    def stream_changed(self):
        """The handler's stream was reopened (USR1): the next write takes the new one."""
        self.stream = None

    # -- the loop's side -----------------------------------------------------

    cdef int add(self, dict environ, object status, object headers, int64_t sent,
                 double seconds) except -1:
        """Renders one line into the buffer (or hands it to the logger)."""
        cdef Py_ssize_t mark = self.buffer.length
        if self.delegating:
            self.fallback(environ, status, headers, sent, seconds)
            return 0
        if self.render_line(environ, status, headers, sent, seconds) == LINE_DELEGATED:
            self.buffer.length = mark
            return self.delegate_line(environ, status, headers, sent, seconds)
        if self.buffer.length >= FLUSH_AT_BYTES:
            self.write_out()
        return 0

    cdef int delegate_line(self, dict environ, object status, object headers, object sent,
                           double seconds) except -1:
        """One line the logger renders: the lines buffered before it go out first,
        so the file keeps their order; the handler holds it until write_out."""
        self.write_out()
        self.fallback(environ, status, headers, sent, seconds)
        self.handler_pending = True
        return 0

    cdef int render_line(self, dict environ, object status, object headers, int64_t sent,
                         double seconds) except -1:
        cdef LineSegment* segment = self.segments
        cdef LineSegment* end = self.segments + self.count
        cdef PyObject* found
        cdef int outcome
        cdef object value
        while segment < end:
            if segment.kind == ATOM_TEXT:
                self.buffer.add(segment.text, segment.length)
            elif segment.kind == ATOM_ENVIRON:
                found = _environ_value(environ, <object>segment.arg, segment.default)
                if self.add_value(<object>found) == LINE_DELEGATED:
                    return LINE_DELEGATED
            elif segment.kind == ATOM_CLOCK:
                self.buffer.add_bytes(self.clock(<object>segment.arg))
            elif segment.kind == ATOM_REQUEST_LINE:
                outcome = self.add_request_line(environ)
                if outcome == LINE_DELEGATED:
                    return LINE_DELEGATED
                if outcome == VALUE_FROM_FUNCTION and self.add_value((<object>segment.arg)(
                        environ, status, headers, sent, seconds)) == LINE_DELEGATED:
                    return LINE_DELEGATED
            elif segment.kind == ATOM_STATUS:
                if status is self.last_status:
                    # An app's status is most often one constant: its code, kept.
                    self.buffer.add_bytes(self.last_code)
                elif not self.add_status_code(status) and self.add_value((<object>segment.arg)(
                        environ, status, headers, sent, seconds)) == LINE_DELEGATED:
                    return LINE_DELEGATED
            elif segment.kind == ATOM_SENT:
                self.buffer.add_decimal(sent)
            elif segment.kind == ATOM_USER:
                found = _environ_value(environ, "HTTP_AUTHORIZATION", <PyObject*>None)
                if not <object>found:
                    self.buffer.add("-", 1)
                elif self.add_value((<object>segment.arg)(
                        environ, status, headers, sent, seconds)) == LINE_DELEGATED:
                    return LINE_DELEGATED
            elif segment.kind == ATOM_PID:
                if self.pid_text is None:
                    self.pid_text = f"<{os.getpid()}>".encode("ascii")
                self.buffer.add_bytes(self.pid_text)
            elif segment.kind == ATOM_RESPONSE_HEADER:
                value = _last_field(headers, <object>segment.arg, <object>segment.default)
                if self.add_value(value) == LINE_DELEGATED:
                    return LINE_DELEGATED
            elif segment.kind == ATOM_PYTHON:
                value = (<object>segment.arg)(environ, status, headers, sent, seconds)
                if self.add_value(value) == LINE_DELEGATED:
                    return LINE_DELEGATED
            else:
                self.add_duration(segment.kind, _timedelta_microseconds(seconds))
            segment += 1
        return 0

    cdef inline int add_value(self, object value) except -1:
        """A value as "%s" renders it, with a str's quotes escaped (gunicorn's SafeAtoms)."""
        cdef Py_ssize_t n
        cdef const char* chars
        if not (PyUnicode_CheckExact(value) and PyUnicode_IS_COMPACT_ASCII(value)):
            return self.add_other_value(value)
        # The common case, an environ value of ASCII: its bytes are its UTF-8.
        chars = <const char*>PyUnicode_DATA(value)
        n = PyUnicode_GET_LENGTH(value)
        if memchr(chars, 34, n) != NULL:
            return self.add_escaped(chars, n)
        return self.buffer.add(chars, n)

    cdef int add_escaped(self, const char* chars, Py_ssize_t n) except -1:
        """ASCII with a quote in it: each quote as \\" (gunicorn's SafeAtoms)."""
        cdef const char* quote = <const char*>memchr(chars, 34, n)
        while quote != NULL:
            self.buffer.add(chars, quote - chars)
            self.buffer.add('\\"', 2)
            n -= quote - chars + 1
            chars = quote + 1
            quote = <const char*>memchr(chars, 34, n)
        return self.buffer.add(chars, n)

    cdef int add_other_value(self, object value) except -1:
        """add_value's rare cases: a str beyond ASCII (UTF-8, as the stream would
        encode it) or of a subclass (its characters), and what is not a str (its
        str(), quotes as they are)."""
        cdef Py_ssize_t n = 0
        cdef const char* chars
        cdef bint escaped = PyUnicode_Check(value)
        text = value.replace('"', '\\"') if escaped else PyObject_Str(value)
        try:
            chars = PyUnicode_AsUTF8AndSize(text, &n)
        except UnicodeEncodeError:
            return LINE_DELEGATED
        return self.buffer.add(chars, n)

    cdef int add_request_line(self, dict environ) except -1:
        """r, from the three environ values the loop sets: 0 when added. One of them
        missing or not a str (a middleware's doing): VALUE_FROM_FUNCTION, and the
        atom's own function makes the value."""
        cdef object method = <object>_environ_value(environ, "REQUEST_METHOD", <PyObject*>None)
        cdef object uri = <object>_environ_value(environ, "RAW_URI", <PyObject*>None)
        cdef object protocol = <object>_environ_value(environ, "SERVER_PROTOCOL", <PyObject*>None)
        if not (PyUnicode_Check(method) and PyUnicode_Check(uri) and PyUnicode_Check(protocol)):
            return VALUE_FROM_FUNCTION
        # The separators hold no quote, so escaping each part escapes the whole.
        if self.add_value(method) == LINE_DELEGATED:
            return LINE_DELEGATED
        self.buffer.add(" ", 1)
        if self.add_value(uri) == LINE_DELEGATED:
            return LINE_DELEGATED
        self.buffer.add(" ", 1)
        return self.add_value(protocol)

    cdef bint add_status_code(self, object status) except -1:
        """s: status.split(None, 1)[0], for the ASCII status line an app gives; False
        when the status is anything else, left to the logger's function."""
        cdef Py_ssize_t n, j
        cdef const unsigned char* chars
        if not PyUnicode_CheckExact(status) or PyUnicode_KIND(status) != PyUnicode_1BYTE_KIND:
            return False
        n = PyUnicode_GET_LENGTH(status)
        chars = <const unsigned char*>PyUnicode_DATA(status)
        for j in range(n):
            if chars[j] >= 0x80:
                return False
            if _ascii_space(chars[j]):
                break
        else:
            j = n
        if j == 0 or memchr(chars, 34, j) != NULL:
            return False
        self.last_status = status
        self.last_code = PyBytes_FromStringAndSize(<const char*>chars, j)
        self.buffer.add_bytes(self.last_code)
        return True

    cdef bytes clock(self, object make_clock_text):
        # The logger's own function, once a second: the same text, the same zone;
        # kept as add_value would render it.
        cdef time_t now = time(NULL)
        if now != self.clock_second:
            self.clock_second = now
            self.clock_text = make_clock_text().replace('"', '\\"').encode("utf-8")
        return self.clock_text

    cdef int add_duration(self, int kind, int64_t micros) except -1:
        # As gunicorn, from timedelta(seconds=...): its .seconds and .microseconds.
        cdef long long seconds = (micros // 1000000) % 86400
        cdef long long rest = micros % 1000000
        cdef char number[48]
        if kind == ATOM_SECONDS:
            return self.buffer.add_decimal(seconds)
        if kind == ATOM_MICROSECONDS:
            return self.buffer.add_decimal(seconds * 1000000 + rest)
        if kind == ATOM_MILLISECONDS:
            return self.buffer.add_decimal(seconds * 1000 + rest // 1000)
        return self.buffer.add(number, snprintf(number, sizeof(number), "%lld.%06lld", seconds, rest))

    cdef int write_out(self) except -1:
        """The buffered lines to the handler's stream: one write(2), after whatever
        the stream's own buffer holds (another writer's text) went first."""
        cdef bytes lines
        cdef Py_ssize_t done = 0, n
        cdef const char* data
        cdef int fd
        cdef time_t now
        if self.handler_pending or self.delegating:
            # Lines the logger took in (delegated): the handler holds them.
            self.handler_pending = False
            self.handler.flush()
        if self.buffer.length == 0:
            return 0
        now = time(NULL)
        if now != self.checked_second:
            # Once a second, the logging side is looked at again: a handler or a
            # filter added at run time takes effect within a second, a stream
            # replaced behind the logger's back (reopen_files says so at once)
            # is taken, and none of it costs anything per line.
            self.checked_second = now
            if not self.still_direct():
                return self.start_delegating()
            if self.handler.target.stream is not self.stream:
                self.stream = None
        if self.stream is None and self.open_stream(self.handler.target.stream) < 0:
            # Closed, or no descriptor: the handler's own path, which drops what
            # it cannot write as logging's handlers do.
            self.handler.write_encoded(self.buffer.take())
            return 0
        if self.shared_stream:
            # stdout: what print() left in its buffer goes first, as with logging.
            self.stream.flush()
        fd = self.fd
        data = self.buffer.data
        while done < self.buffer.length:
            n = write(fd, data + done, self.buffer.length - done)
            if n < 0:
                if errno == EINTR:
                    continue
                if errno == EAGAIN and _wait_writable(fd):
                    continue
                break  # a full disk or a closed pipe: the lines are lost, as with logging
            done += n
        self.buffer.length = 0
        return 0

    cdef int start_delegating(self) except -1:
        # From now on every line is the logger's; these as they were made.
        self.delegating = True
        lines = self.buffer.take()
        for line in lines.decode("utf-8").splitlines():
            self.logger.info(line)
        self.handler.flush()
        return 0

    cdef int open_stream(self, object stream) except -1:
        """Takes the descriptor of the handler's (new) stream: a copy of its own, so
        a stream closed behind the writer's back leaves it a valid file, never a
        number the process has given to something else. USR1 (reopen_files) makes a
        new stream; the next write_out sees it and takes the new file's."""
        cdef int fd
        if self.fd >= 0:
            close(self.fd)
            self.fd = -1
        self.stream = None
        try:
            if stream is None or stream.closed:
                return -1
            stream.flush()
            fd = PyObject_AsFileDescriptor(stream)
        except Exception:
            return -1
        self.fd = dup(fd)
        if self.fd < 0:
            return -1
        self.stream = stream
        # A file the handler opened is written by it alone; stdout is not.
        self.shared_stream = not isinstance(self.handler.target, logging.FileHandler)
        return 0

    cdef bint still_direct(self) except -1:
        """The logger still sends its lines to our handler alone, unfiltered."""
        cdef object log = self.logger
        handlers = log.handlers
        return (PyList_Check(handlers) and PyList_GET_SIZE(handlers) == 1
                and <object>PyList_GET_ITEM(handlers, 0) is self.handler
                and not log.filters and not self.handler.filters and not log.disabled)


cdef inline PyObject* _environ_value(dict environ, object key, PyObject* default) except NULL:
    """environ.get(key, default), borrowed."""
    cdef PyObject* found = dict_lookup(environ, key)
    if found != NULL:
        return found
    if PyErr_Occurred():
        return NULL
    return default


cdef list _joined_text(list plan):
    """The plan with neighbouring text segments made one."""
    # (The module is compiled without wraparound: no negative index here.)
    cdef list joined = []
    cdef Py_ssize_t last
    for kind, arg, default in plan:
        last = len(joined) - 1
        if kind == "text" and last >= 0 and joined[last][0] == "text":
            joined[last] = ("text", joined[last][1] + arg, None)
        else:
            joined.append((kind, arg, default))
    return joined


cdef inline bint _ascii_space(unsigned char c) noexcept:
    # str.split()'s whitespace, in ASCII: \t \n \v \f \r, \x1c-\x1f and space.
    return c == 32 or 9 <= c <= 13 or 28 <= c <= 31


cdef object _last_field(object headers, object name, object default):
    """{name}o: the value of the last response field called ``name`` (lower case),
    as a dict built from the list in order keeps the last."""
    cdef Py_ssize_t i
    if not PyList_Check(headers):
        found = default
        for field_name, value in headers:
            if field_name.lower() == name:
                found = value
        return found
    for i in range(PyList_GET_SIZE(headers) - 1, -1, -1):
        field = <object>PyList_GET_ITEM(headers, i)
        if field[0].lower() == name:
            return field[1]
    return default


cdef int64_t _timedelta_microseconds(double seconds) noexcept:
    """timedelta(seconds=seconds) in microseconds, rounded as CPython rounds it: the
    whole seconds and the whole microseconds of the fraction exactly, what is left
    to the nearest microsecond, half to even."""
    cdef double whole, fraction, whole_us, left
    cdef int64_t micros
    fraction = modf(seconds, &whole)
    micros = <int64_t>whole * 1000000
    left = modf(fraction * 1000000.0, &whole_us)
    micros += <int64_t>whole_us
    if left != 0.0:
        whole_us = c_round(left)
        if fabs(whole_us - left) == 0.5:
            whole_us = 2.0 * c_round((left + (micros & 1)) * 0.5) - (micros & 1)
        micros += <int64_t>whole_us
    return micros


cdef bint _wait_writable(int fd) noexcept:
    """A non-blocking stdout (a pipe a parent made so) that is full: waits for room,
    at most a second, rather than drop the lines."""
    cdef pollfd waiting
    waiting.fd = fd
    waiting.events = POLLOUT
    waiting.revents = 0
    return poll(&waiting, 1, 1000) == 1
