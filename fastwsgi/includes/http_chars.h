/* The character classes of HTTP/1.1 and the one case-insensitive compare, each
 * written once, under the name its RFC gives it (as picohttpparser keeps its
 * token_char_map). Declared for Cython in http_chars.pxd.
 *
 * Every extension that cimports them compiles its own copy of these static
 * tables and inline functions: a lookup is a load from a constant table and a
 * compare is inlined, never a call into another module. The tables use
 * designated ranges ([a ... b]), a GCC and clang extension; the loop is built
 * on epoll, so the build is Linux's compilers only.
 */
#ifndef FASTWSGI_HTTP_CHARS_H
#define FASTWSGI_HTTP_CHARS_H

#include <stdint.h>
#include <string.h>

#include "Python.h"

/* A table an extension may not read has nothing to warn about. */
#define FASTWSGI_TABLE static const unsigned char __attribute__((unused))

/* RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" /
 * "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA. A tchar's entry has
 * FASTWSGI_TCHAR set; '_' also has FASTWSGI_TCHAR_UNDERSCORE, which header_map
 * acts on: OR-ing the entries of a field name's bytes tells whether it holds one. */
enum { FASTWSGI_TCHAR = 1, FASTWSGI_TCHAR_UNDERSCORE = 2 };
FASTWSGI_TABLE fastwsgi_tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['_'] = FASTWSGI_TCHAR | FASTWSGI_TCHAR_UNDERSCORE,
    ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
};

/* RFC 9110 §5.5: field-content = field-vchar [ 1*( SP / HTAB / field-vchar ) field-vchar ],
 * field-vchar = VCHAR / obs-text: every byte a field value may hold. RFC 9112 §4:
 * reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ) is the same set. */
FASTWSGI_TABLE fastwsgi_field_content[256] = {
    ['\t'] = 1, [' ' ... '~'] = 1, [0x80 ... 0xFF] = 1,
};

/* RFC 9112 §3.2, RFC 3986 §2: a request-target is visible ASCII (VCHAR); any other
 * byte must be percent-encoded. */
FASTWSGI_TABLE fastwsgi_target_char[256] = {
    ['!' ... '~'] = 1,
};

/* RFC 3986 §2.3 unreserved / §2.2 sub-delims: the bytes of a reg-name (and of
 * userinfo, with ":") besides pct-encoded. */
FASTWSGI_TABLE fastwsgi_authority_char[256] = {
    ['-'] = 1, ['.'] = 1, ['_'] = 1, ['~'] = 1,
    ['!'] = 1, ['$'] = 1, ['&'] = 1, ['\''] = 1, ['('] = 1, [')'] = 1, ['*'] = 1, ['+'] = 1,
    [','] = 1, [';'] = 1, ['='] = 1,
    ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
};

/* RFC 9110 §5.6.4: qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text. */
FASTWSGI_TABLE fastwsgi_qdtext[256] = {
    ['\t'] = 1, [' '] = 1, ['!'] = 1, [0x23 ... 0x5B] = 1, [0x5D ... 0x7E] = 1, [0x80 ... 0xFF] = 1,
};

/* RFC 5234 B.1: HEXDIG = DIGIT / "A" / "B" / "C" / "D" / "E" / "F", case-insensitive
 * (RFC 5234 §2.3). A hex digit's entry is its value with FASTWSGI_HEXDIG set, so
 * that every other byte's entry is 0. */
enum { FASTWSGI_HEXDIG = 0x10, FASTWSGI_HEXDIG_VALUE = 0x0F };
#define FASTWSGI_HEX(value) (FASTWSGI_HEXDIG | (value))
FASTWSGI_TABLE fastwsgi_hexdig[256] = {
    ['0'] = FASTWSGI_HEX(0), ['1'] = FASTWSGI_HEX(1), ['2'] = FASTWSGI_HEX(2),
    ['3'] = FASTWSGI_HEX(3), ['4'] = FASTWSGI_HEX(4), ['5'] = FASTWSGI_HEX(5),
    ['6'] = FASTWSGI_HEX(6), ['7'] = FASTWSGI_HEX(7), ['8'] = FASTWSGI_HEX(8),
    ['9'] = FASTWSGI_HEX(9),
    ['A'] = FASTWSGI_HEX(10), ['B'] = FASTWSGI_HEX(11), ['C'] = FASTWSGI_HEX(12),
    ['D'] = FASTWSGI_HEX(13), ['E'] = FASTWSGI_HEX(14), ['F'] = FASTWSGI_HEX(15),
    ['a'] = FASTWSGI_HEX(10), ['b'] = FASTWSGI_HEX(11), ['c'] = FASTWSGI_HEX(12),
    ['d'] = FASTWSGI_HEX(13), ['e'] = FASTWSGI_HEX(14), ['f'] = FASTWSGI_HEX(15),
};
#undef FASTWSGI_HEX

/* Whether the `length` bytes of `text` are `lowered` in any ASCII case (RFC 9110
 * §5.1: field names are case-insensitive, as are the tokens the server acts on).
 * `lowered` holds lowercase letters, digits and '-' only, and `text` no control
 * byte (the callers check, or were handed, tokens and field content): then OR-ing
 * 0x20 folds a letter's case and maps no other byte onto one of those. Eight
 * bytes at a time. */
static inline int fastwsgi_equals_lowered_n(const char* text, const char* lowered, Py_ssize_t length)
{
    Py_ssize_t i = 0;
    uint64_t word, expected;
    for (; i + 8 <= length; i += 8) {
        memcpy(&word, text + i, 8);
        memcpy(&expected, lowered + i, 8);
        if ((word | 0x2020202020202020ULL) != expected)
            return 0;
    }
    for (; i < length; i++) {
        if (((unsigned char)text[i] | 0x20) != (unsigned char)lowered[i])
            return 0;
    }
    return 1;
}

/* The same against a string constant, whose length the compiler counts. */
static inline int fastwsgi_equals_lowered(const char* text, Py_ssize_t length, const char* lowered)
{
    Py_ssize_t expected_length = (Py_ssize_t)strlen(lowered);
    return length == expected_length && fastwsgi_equals_lowered_n(text, lowered, length);
}

/* Whether the `length` bytes of `text` are `exact`, byte for byte (RFC 9110 §9.1:
 * a method is case-sensitive); the constant's length is counted by the compiler. */
static inline int fastwsgi_equals(const char* text, Py_ssize_t length, const char* exact)
{
    Py_ssize_t expected_length = (Py_ssize_t)strlen(exact);
    return length == expected_length && memcmp(text, exact, (size_t)length) == 0;
}

/* RFC 9110 §9: the methods the server knows by name. The environ hands out one
 * interned str for each, the metrics count requests by them (in this order, as
 * fastwsgi/metrics.py lists them); any other token is FASTWSGI_METHOD_OTHER.
 * Each name is written once, here: the enum, the names and the compares below
 * are made from this list. */
#define FASTWSGI_METHODS(X) X(GET) X(HEAD) X(POST) X(PUT) X(DELETE) X(PATCH) X(OPTIONS)

#define FASTWSGI_METHOD_ENUM(name) FASTWSGI_##name,
enum { FASTWSGI_METHODS(FASTWSGI_METHOD_ENUM) FASTWSGI_METHOD_OTHER };
enum { FASTWSGI_METHOD_COUNT = FASTWSGI_METHOD_OTHER + 1 };
#undef FASTWSGI_METHOD_ENUM

#define FASTWSGI_METHOD_NAME(name) [FASTWSGI_##name] = #name,
static const char* const fastwsgi_method_names[FASTWSGI_METHOD_OTHER] __attribute__((unused)) = {
    FASTWSGI_METHODS(FASTWSGI_METHOD_NAME)
};
#undef FASTWSGI_METHOD_NAME

/* The index of a request's method (RFC 9110 §9.1: case-sensitive): GET at once,
 * the others by their first letter, then in full against a constant, which the
 * compiler compares inline. */
#define FASTWSGI_IF_METHOD(name) \
    if (fastwsgi_equals(text, length, #name)) return FASTWSGI_##name;
static inline int fastwsgi_method_index(const char* text, Py_ssize_t length)
{
    FASTWSGI_IF_METHOD(GET)
    if (length == 0)
        return FASTWSGI_METHOD_OTHER;
    switch (text[0]) {
    case 'H': FASTWSGI_IF_METHOD(HEAD) break;
    case 'P': FASTWSGI_IF_METHOD(POST) FASTWSGI_IF_METHOD(PUT) FASTWSGI_IF_METHOD(PATCH) break;
    case 'D': FASTWSGI_IF_METHOD(DELETE) break;
    case 'O': FASTWSGI_IF_METHOD(OPTIONS) break;
    }
    return FASTWSGI_METHOD_OTHER;
}
#undef FASTWSGI_IF_METHOD

#endif
