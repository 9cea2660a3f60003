"""The uwsgi request packet (fastwsgi/parser/uwsgi.pxi) and the environ made from it
(EnvironBuilder.build_uwsgi), over the corpus in tests/requests/uwsgi: every valid
packet is incomplete at every shorter length and makes the environ its case says;
every invalid one is refused with its status, fed whole or grown a byte at a time."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastwsgi._environ import EnvironBuilder
from fastwsgi._parser import ParseError, UwsgiPacket
from support import uwsgi

VALID = uwsgi.corpus("valid")
INVALID = uwsgi.corpus("invalid")


def packet_length(data: bytes) -> int:
    return 4 + int.from_bytes(data[1:3], "little")


@pytest.mark.parametrize("name, data, case", VALID, ids=[case[0] for case in VALID])
def test_valid_packet(name, data, case):
    reader = UwsgiPacket()
    size = packet_length(data)
    for end in range(size):
        assert reader.parse_bytes(data[:end]) == (0, None), f"complete at {end} of {size}"
    assert reader.parse_bytes(data)[0] == size
    environ = EnvironBuilder().environ_from_uwsgi(data)
    for key, value in case["environ"].items():
        assert environ.get(key) == value, key
    for key in case.get("absent", ()):
        assert key not in environ
    # What the server owns stays the server's, whatever a var says.
    assert environ["wsgi.version"] == (1, 0)
    assert environ["wsgi.multithread"] is False
    assert "wsgi.input" not in environ


@pytest.mark.parametrize("name, data, case", INVALID, ids=[case[0] for case in INVALID])
def test_invalid_packet(name, data, case):
    def outcome(chunk):
        try:
            UwsgiPacket().parse_bytes(chunk)
            EnvironBuilder().environ_from_uwsgi(chunk)
        except ParseError as error:
            return error
        except ValueError:   # incomplete
            return None
        raise AssertionError(f"{name}: accepted")

    refused = outcome(data)
    assert refused.status == case["status"]
    assert case["reason"] in refused.reason
    # Grown a byte at a time, it is never taken for a request before it is refused.
    for end in range(1, len(data)):
        early = outcome(data[:end])
        if early is not None:
            assert early.status == case["status"], end
            break


def test_limits_follow_gunicorns_settings():
    many = uwsgi.packet([("REQUEST_METHOD", "GET"), ("PATH_INFO", "/")]
                        + [(f"HTTP_X_{i}", "v") for i in range(150)])
    with pytest.raises(ParseError) as refused:
        UwsgiPacket().parse_bytes(many)
    assert refused.value.status == 431
    assert UwsgiPacket(limit_request_fields=200).parse_bytes(many)[0] == len(many)
    post = uwsgi.packet([("REQUEST_METHOD", "POST"), ("PATH_INFO", "/"), ("CONTENT_LENGTH", "1001")])
    with pytest.raises(ParseError) as refused:
        UwsgiPacket(limit_request_body=1000).parse_bytes(post)
    assert refused.value.status == 413
    long_uri = uwsgi.packet([("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/" + "a" * 200)])
    with pytest.raises(ParseError) as refused:
        UwsgiPacket(limit_request_line=100).parse_bytes(long_uri)
    assert refused.value.status == 414


def test_root_path_mounts_the_app():
    builder = EnvironBuilder(root_path="/app")
    environ = builder.environ_from_uwsgi(uwsgi.packet([("REQUEST_METHOD", "GET"),
                                                       ("PATH_INFO", "/app/page")]))
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("/app", "/page")
    outside = builder.environ_from_uwsgi(uwsgi.packet([("REQUEST_METHOD", "GET"),
                                                       ("PATH_INFO", "/other")]))
    assert (outside["SCRIPT_NAME"], outside["PATH_INFO"]) == ("", "/other")


def test_a_var_replaces_a_template_key_once():
    builder = EnvironBuilder(base_environ={"DEPLOYMENT": "blue"})
    base = [("REQUEST_METHOD", "GET"), ("PATH_INFO", "/")]
    environ = builder.environ_from_uwsgi(uwsgi.packet(base + [("DEPLOYMENT", "green")]))
    assert environ["DEPLOYMENT"] == "green"
    with pytest.raises(ParseError) as refused:
        builder.environ_from_uwsgi(uwsgi.packet(base + [("DEPLOYMENT", "a"), ("DEPLOYMENT", "b")]))
    assert refused.value.status == 400


# -- an independent reading, against any packet ----------------------------------

def parser_reading(data: bytes):
    try:
        size, found = UwsgiPacket().parse_bytes(data)
    except ParseError as refused:
        assert 400 <= refused.status <= 501 and refused.reason
        return None
    return 0 if size == 0 else (size, found)


KEYS = st.sampled_from([b"REQUEST_METHOD", b"PATH_INFO", b"REQUEST_URI", b"QUERY_STRING",
                        b"CONTENT_LENGTH", b"HTTP_HOST", b"HTTP_X_A", b"wsgi.url_scheme",
                        b"DOCUMENT_ROOT", b"BAD KEY", b""]) | st.binary(max_size=8)
VALUES = st.sampled_from([b"GET", b"/", b"12", b"1a", b"", b"a\r\nb", b"caf\xe9"]) | st.binary(max_size=12)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(KEYS, VALUES), max_size=12), st.integers(0, 3), st.binary(max_size=6))
def test_the_parser_reads_packets_as_an_independent_reading_does(variables, size_skew, tail):
    data = uwsgi.packet(variables)
    if size_skew:
        # a size that does not match the vars: too short, or past them into the tail
        claimed = max(0, int.from_bytes(data[1:3], "little") + (size_skew - 2))
        data = data[:1] + claimed.to_bytes(2, "little") + data[3:]
    data += tail
    assert parser_reading(data) == uwsgi.reference_reading(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_are_read_refused_or_awaited(data):
    assert parser_reading(data) == uwsgi.reference_reading(data)
