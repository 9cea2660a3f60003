# gunicorn's limit settings as the parsers enforce them: normalized once into a
# Limits struct (declared in _parser.pxd), which each parser copies. Included
# into _parser.pyx.


# gunicorn's ceilings (gunicorn/http/message.py), so its limit settings mean the same here.
DEF MAX_REQUEST_LINE = 8190
DEF MAX_HEADERS = 32768
# What an unlimited request line is held to: more than any buffer could hold.
cdef Py_ssize_t UNLIMITED = (<Py_ssize_t>1) << 40

# The settings a parser takes, by their gunicorn names.
cdef tuple LIMIT_SETTINGS = ("limit_request_line", "limit_request_fields", "limit_request_field_size",
                              "limit_request_body", "header_map", "strip_header_spaces",
                              "permit_obsolete_folding", "permit_unconventional_http_method",
                              "casefold_http_method", "permit_unconventional_http_version")
cdef dict UNDERSCORE_MODES = {"drop": UNDERSCORE_DROP, "refuse": UNDERSCORE_REFUSE,
                              "dangerous": UNDERSCORE_PASS}


cdef int normalize_limits(Limits* limits, object options) except -1:
    """gunicorn's settings (attributes of ``options``) as the parsers enforce them.

    ``limit_request_line`` 0 means unlimited, and it is capped at gunicorn's
    ceiling; ``limit_request_fields`` 0 means the ceiling; ``limit_request_field_size``
    counts a field line with its CRLF (folded lines included) and 0 means the
    setting's default; ``limit_request_body`` 0 means unlimited.
    """
    cdef Py_ssize_t line = options.limit_request_line
    cdef Py_ssize_t fields = options.limit_request_fields
    cdef Py_ssize_t field_size = options.limit_request_field_size
    cdef int64_t body = options.limit_request_body
    if options.header_map not in UNDERSCORE_MODES:
        raise ValueError(f"header_map must be drop, refuse or dangerous, not {options.header_map!r}")
    if line == 0:
        limits.request_line = UNLIMITED
    elif line < 0 or line > MAX_REQUEST_LINE:
        limits.request_line = MAX_REQUEST_LINE
    else:
        limits.request_line = line
    limits.fields = fields if 0 < fields <= MAX_HEADERS else MAX_HEADERS
    limits.field_size = field_size if field_size > 0 else _setting_default("limit_request_field_size")
    limits.body = body if body > 0 else 0
    limits.underscore_mode = UNDERSCORE_MODES[options.header_map]
    limits.strip_header_spaces = options.strip_header_spaces
    limits.permit_obsolete_folding = options.permit_obsolete_folding
    limits.permit_unconventional_method = options.permit_unconventional_http_method
    limits.casefold_method = options.casefold_http_method
    limits.permit_unconventional_version = options.permit_unconventional_http_version
    return 0


cdef object _setting_default(str name):
    from fastwsgi.settings import BY_NAME
    return BY_NAME[name].default


cdef int _limits_from_keywords(Limits* limits, dict keywords) except -1:
    """The Python-level constructors' limits: gunicorn's settings by name, each left
    out taking the setting's default, but for the body: a parser alone has no limit."""
    from types import SimpleNamespace
    unknown = sorted(set(keywords) - set(LIMIT_SETTINGS))
    if unknown:
        raise TypeError(f"unknown limit setting(s): {', '.join(unknown)}")
    values = {name: _setting_default(name) for name in LIMIT_SETTINGS}
    values["limit_request_body"] = 0
    values.update(keywords)
    return normalize_limits(limits, SimpleNamespace(**values))
