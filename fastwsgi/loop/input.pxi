# wsgi.input: the request body the loop received before calling the app,
# held in memory or, above the spool threshold, in a temporary file.
# Included into _loop.pyx; the classes are declared in _loop.pxd.

import tempfile

cdef bytes EMPTY_BYTES = b""


cdef class BodyBuffer:
    """Collects a request body while it arrives; spills to a file past a threshold."""

    def __cinit__(self, Py_ssize_t threshold, object spool_dir):
        self.memory = bytearray()
        self.spool = None
        self.threshold = threshold
        self.spool_dir = spool_dir
        self.size = 0

    cdef int append(self, const char* data, Py_ssize_t length) except -1:
        cdef object chunk
        self.size += length
        if self.spool is None and self.size > self.threshold:
            self.spool = tempfile.TemporaryFile(dir=self.spool_dir)
            self.spool.write(self.memory)
            self.memory = None
        if self.spool is not None:
            chunk = PyBytes_FromStringAndSize(data, length)
            self.spool.write(chunk)
        else:
            self.memory.extend(data[:length])
        return 0

    cdef InputStream stream(self):
        cdef InputStream stream
        if self.spool is not None:
            self.spool.seek(0)
            stream = InputStream.__new__(InputStream)
            stream.spool = self.spool
            return stream
        return memory_input(bytes(self.memory))

    def discard(self):
        if self.spool is not None:
            self.spool.close()
            self.spool = None


cdef InputStream memory_input(bytes data):
    cdef InputStream stream = InputStream.__new__(InputStream)
    stream.data = data
    stream.position = 0
    return stream


cdef class InputStream:
    """A PEP 3333 input stream: read(n), read(), readline(n), readlines(hint), iteration."""

    def read(self, size=-1):
        cdef Py_ssize_t n, available, start
        if self.spool is not None:
            return self.spool.read(-1 if size is None else size)
        available = len(self.data) - self.position
        n = available if size is None or size < 0 or size > available else size
        start = self.position
        self.position += n
        if start == 0 and n == len(self.data):
            return self.data
        return self.data[start:start + n]

    def readline(self, size=-1):
        cdef Py_ssize_t end, limit
        if self.spool is not None:
            return self.spool.readline(-1 if size is None else size)
        limit = len(self.data)
        if size is not None and size >= 0 and self.position + size < limit:
            limit = self.position + size
        end = self.data.find(b"\n", self.position, limit)
        end = limit if end < 0 else end + 1
        line = self.data[self.position:end]
        self.position = end
        return line

    def readlines(self, hint=-1):
        lines = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                return lines

    def __iter__(self):
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def close(self):
        if self.spool is not None:
            self.spool.close()


# The wsgi.input of every request without a body: reading an empty stream changes
# nothing in it, so one serves them all (and no object is made per request).
cdef InputStream NO_BODY = memory_input(EMPTY_BYTES)
