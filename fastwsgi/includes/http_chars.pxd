# The character classes of HTTP/1.1 and the one case-insensitive compare, from
# http_chars.h (RFC names in the comments there). Each extension that cimports
# this compiles its own copy: lookups and compares stay inline.
#
# The header is named relative to the generated C (fastwsgi/<extension>.c).

cdef extern from "includes/http_chars.h" nogil:
    # RFC 9110 §5.6.2 tchar; '_' also carries TCHAR_UNDERSCORE (see header_map)
    const unsigned char TCHAR "fastwsgi_tchar"[256]
    enum:
        TCHAR_UNDERSCORE "FASTWSGI_TCHAR_UNDERSCORE"
    # RFC 9110 §5.5 field-vchar / SP / HTAB (RFC 9112 §4: a reason-phrase's bytes too)
    const unsigned char FIELD_CONTENT "fastwsgi_field_content"[256]
    # RFC 9112 §3.2 / RFC 3986 §2: the bytes of a request-target
    const unsigned char TARGET_CHAR "fastwsgi_target_char"[256]
    # RFC 3986 §2.3 unreserved / §2.2 sub-delims
    const unsigned char AUTHORITY_CHAR "fastwsgi_authority_char"[256]
    # RFC 9110 §5.6.4 qdtext
    const unsigned char QDTEXT "fastwsgi_qdtext"[256]
    # RFC 5234 HEXDIG: HEXDIG_FLAG set, and the digit's value in HEXDIG_VALUE; 0 otherwise
    const unsigned char HEXDIG "fastwsgi_hexdig"[256]
    enum:
        HEXDIG_FLAG "FASTWSGI_HEXDIG"
        HEXDIG_VALUE "FASTWSGI_HEXDIG_VALUE"

    # ``text`` is ``lowered`` in any ASCII case; ``lowered`` holds lowercase letters,
    # digits and '-', ``text`` no control byte. The first form takes a string
    # constant and counts its length; the second, the length both share.
    bint equals_lowered "fastwsgi_equals_lowered"(const char* text, Py_ssize_t length,
                                                  const char* lowered) noexcept
    bint equals_lowered_n "fastwsgi_equals_lowered_n"(const char* text, const char* lowered,
                                                      Py_ssize_t length) noexcept
    # ``text`` is the string constant ``exact``, byte for byte.
    bint equals_exactly "fastwsgi_equals"(const char* text, Py_ssize_t length,
                                          const char* exact) noexcept

    # RFC 9110 §9: the methods known by name, in the metrics' order; METHOD_OTHER
    # for any other; method_names[i] is the name of method i < METHOD_OTHER.
    enum:
        METHOD_HEAD "FASTWSGI_HEAD"
        METHOD_OTHER "FASTWSGI_METHOD_OTHER"
        METHOD_COUNT "FASTWSGI_METHOD_COUNT"
    const char* const method_names "fastwsgi_method_names"[]
    int method_index "fastwsgi_method_index"(const char* text, Py_ssize_t length) noexcept
