"""The character classes of includes/http_chars.h are the RFCs' sets, byte for byte."""
import pytest

from fastwsgi._parser import character_class

HTAB, SP = 0x09, 0x20
DIGIT = set(b"0123456789")
ALPHA = set(range(ord("A"), ord("Z") + 1)) | set(range(ord("a"), ord("z") + 1))
VCHAR = set(range(0x21, 0x7F))            # RFC 5234 B.1
OBS_TEXT = set(range(0x80, 0x100))        # RFC 9110 §5.5

RULES = {
    # RFC 9110 §5.6.2
    "tchar": set(b"!#$%&'*+-.^_`|~") | DIGIT | ALPHA,
    # RFC 9110 §5.5: field-vchar = VCHAR / obs-text, with SP and HTAB between them
    "field-content": VCHAR | OBS_TEXT | {SP, HTAB},
    # RFC 9112 §3.2 / RFC 3986 §2: anything else is percent-encoded
    "request-target": VCHAR,
    # RFC 3986 §2.3 unreserved / §2.2 sub-delims
    "authority": ALPHA | DIGIT | set(b"-._~") | set(b"!$&'()*+,;="),
    # RFC 9110 §5.6.4: qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
    "qdtext": {HTAB, SP, 0x21} | set(range(0x23, 0x5C)) | set(range(0x5D, 0x7F)) | OBS_TEXT,
    # RFC 5234 B.1, case-insensitive (§2.3)
    "HEXDIG": DIGIT | set(b"ABCDEFabcdef"),
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_a_table_holds_its_rule_and_nothing_else(rule):
    table = character_class(rule)
    assert len(table) == 256
    assert {byte for byte in range(256) if table[byte]} == RULES[rule]


def test_hexdig_entries_carry_the_digit_value():
    table = character_class("HEXDIG")
    assert {chr(byte): table[byte] & 0x0F for byte in RULES["HEXDIG"]} == {
        chr(byte): int(chr(byte), 16) for byte in RULES["HEXDIG"]}


def test_only_the_underscore_is_marked_apart_among_tchars():
    # header_map acts on '_' in a field name: its entry differs from every other tchar's
    table = character_class("tchar")
    marks = {table[byte] for byte in RULES["tchar"] if byte != ord("_")}
    assert len(marks) == 1 and table[ord("_")] not in marks


def test_an_unknown_rule_is_refused():
    with pytest.raises(ValueError):
        character_class("token")
