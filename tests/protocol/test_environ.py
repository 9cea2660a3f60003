"""The environ builder against PEP 3333, and against what gunicorn gives for the same request."""
import io
import sys

import pytest
from support.corpus import corpus

from fastwsgi._environ import EnvironBuilder
from fastwsgi._parser import HeadParser, ParseError, RequestParser

VALID = corpus("valid")
WITH_ENVIRON = [(name, message, expectation) for name, message, expectation in VALID
                if any("environ" in request for request in expectation["requests"])]
HOST = b"Host: example.com\r\n"

# PEP 3333 / CGI keys every environ has
REQUIRED = ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_NAME",
            "SERVER_PORT", "SERVER_PROTOCOL", "wsgi.version", "wsgi.url_scheme", "wsgi.errors",
            "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once")


def environs(message, builder=None, remote=("127.0.0.1", "54321"), trusted_proxy=False,
             **options):
    """The environ of each request in ``message``."""
    builder = builder or EnvironBuilder()
    return [builder.environ_for(request, remote[0], remote[1], trusted_proxy)
            for kind, request in RequestParser(**options).feed(message) if kind == "request"]


def environ(message, **kwargs):
    (only,) = environs(message, **kwargs)
    return only


def get(target=b"/", headers=b"", version=b"1.1"):
    return b"GET " + target + b" HTTP/" + version + b"\r\n" + HOST + headers + b"\r\n"


# -- the corpus's expectations ---------------------------------------------------

@pytest.mark.parametrize("name, message, expectation", WITH_ENVIRON,
                         ids=[case[0] for case in WITH_ENVIRON])
def test_corpus_environ(name, message, expectation):
    built = environs(message, **expectation.get("options", {}))
    for got, want in zip(built, expectation["requests"]):
        for key, value in want.get("environ", {}).items():
            assert got.get(key) == value, key


@pytest.mark.parametrize("name, message, expectation", VALID, ids=[case[0] for case in VALID])
def test_pep3333(name, message, expectation):
    for env in environs(message, **expectation.get("options", {})):
        for key in REQUIRED:
            assert key in env, key
        for key, value in env.items():
            if key.startswith("wsgi."):
                continue
            # PEP 3333: native strings, holding only code points a latin-1 byte can carry
            assert type(key) is str and type(value) is str, key
            value.encode("latin-1")
        assert env["wsgi.version"] == (1, 0)
        assert env["wsgi.url_scheme"] in ("http", "https")
        assert env["SERVER_PROTOCOL"] in ("HTTP/1.0", "HTTP/1.1")
        assert env["SERVER_NAME"] and env["SERVER_PORT"].isdigit()
        # CGI: the body's meta-variables carry no HTTP_ prefix, and never a hyphen in a key
        if expectation.get("options", {}).get("header_map") != "dangerous":
            assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
        assert not any("-" in key for key in env if key.startswith("HTTP_"))
        # SCRIPT_NAME, when not empty, starts with "/" and does not end with one
        assert env["SCRIPT_NAME"] == "" or (env["SCRIPT_NAME"].startswith("/")
                                            and not env["SCRIPT_NAME"].endswith("/"))


# -- PATH_INFO, SCRIPT_NAME, QUERY_STRING, RAW_URI ----------------------------------

@pytest.mark.parametrize("target, path_info", [
    (b"/plain", "/plain"),
    (b"/a%20b", "/a b"),
    (b"/caf%C3%A9", "/caf\u00c3\u00a9"),          # PEP 3333: the bytes, as latin-1
    (b"/%ff%FE", "/\u00ff\u00fe"),
    (b"/a%2Fb", "/a/b"),
    (b"/a%2fb%3F", "/a/b?"),
    (b"/100%", "/100%"),
    (b"/%4", "/%4"),
    (b"/%zz%4g", "/%zz%4g"),
    (b"/%%41", "/%A"),
    (b"/%00", "/\x00"),
    (b"/" + b"%41" * 600, "/" + "A" * 600),      # longer than the stack buffer
])
def test_path_info_is_percent_decoded_as_latin1(target, path_info):
    env = environ(get(target + b"?q=%20"))
    assert env["PATH_INFO"] == path_info
    assert env["QUERY_STRING"] == "q=%20"
    assert env["RAW_URI"] == (target + b"?q=%20").decode("latin-1")


@pytest.mark.parametrize("root_path, target, script_name, path_info", [
    ("", b"/app/x", "", "/app/x"),
    ("/app", b"/app/x/y", "/app", "/x/y"),
    ("/app/", b"/app/x", "/app", "/x"),
    ("/app", b"/app", "/app", ""),
    ("/app", b"/app/", "/app", "/"),
    ("/app", b"/app?x=1", "/app", ""),
    ("/app", b"/application", "", "/application"),   # not under the mount point
    ("/app", b"/other", "", "/other"),
    ("/app", b"/ap%70/x", "/app", "/x"),             # matched once decoded
    ("/a b", b"/a%20b/c", "/a b", "/c"),
])
def test_script_name_from_root_path(root_path, target, script_name, path_info):
    env = environ(get(target), builder=EnvironBuilder(root_path=root_path))
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == (script_name, path_info)


def test_special_targets():
    assert environ(b"OPTIONS * HTTP/1.1\r\n" + HOST + b"\r\n")["PATH_INFO"] == "*"
    env = environ(b"GET http://example.com/p?q HTTP/1.1\r\n" + HOST + b"\r\n")
    assert (env["PATH_INFO"], env["QUERY_STRING"]) == ("/p", "q")
    assert env["RAW_URI"] == "http://example.com/p?q"


# -- CONTENT_TYPE, CONTENT_LENGTH -------------------------------------------------

def test_content_type_and_length():
    env = environ(b"POST / HTTP/1.1\r\n" + HOST
                  + b"Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi")
    assert (env["CONTENT_TYPE"], env["CONTENT_LENGTH"]) == ("text/plain", "2")


def test_no_content_keys_without_the_fields():
    env = environ(get())
    assert "CONTENT_TYPE" not in env and "CONTENT_LENGTH" not in env


def test_identical_content_lengths_fold_to_one():
    env = environ(b"POST / HTTP/1.1\r\n" + HOST
                  + b"Content-Length: 2\r\nContent-Length: 2\r\n\r\nhi")
    assert env["CONTENT_LENGTH"] == "2"


def test_chunked_request_has_no_content_length():
    env = environ(b"POST / HTTP/1.1\r\n" + HOST
                  + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert "CONTENT_LENGTH" not in env
    assert env["HTTP_TRANSFER_ENCODING"] == "chunked"


# -- SERVER_NAME, SERVER_PORT --------------------------------------------------------

@pytest.mark.parametrize("host, url_scheme, name, port", [
    (b"example.com", "http", "example.com", "80"),
    (b"example.com", "https", "example.com", "443"),
    (b"example.com:8080", "http", "example.com", "8080"),
    (b"example.com:", "http", "example.com", "80"),
    (b"192.0.2.1:1", "http", "192.0.2.1", "1"),
    (b"[::1]", "https", "[::1]", "443"),
    (b"[::1]:8443", "http", "[::1]", "8443"),
    (b"[2001:db8::a:b]:65535", "http", "[2001:db8::a:b]", "65535"),
    (b"", "http", "listener.example", "9000"),
    (None, "http", "listener.example", "9000"),
])
def test_server_address_from_host(host, url_scheme, name, port):
    builder = EnvironBuilder(server_name="listener.example", server_port=9000,
                             url_scheme=url_scheme)
    head = b"GET / HTTP/1.0\r\n" + (b"Host: " + host + b"\r\n" if host is not None else b"")
    env = environ(head + b"\r\n", builder=builder)
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == (name, port)


def test_server_address_follows_a_changing_host():
    builder = EnvironBuilder()
    hosts = [b"a.example", b"a.example", b"b.example:81", b"[::2]:82", b"a.example"]
    message = b"".join(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n" for host in hosts)
    got = [(env["SERVER_NAME"], env["SERVER_PORT"]) for env in environs(message, builder=builder)]
    assert got == [("a.example", "80"), ("a.example", "80"), ("b.example", "81"),
                   ("[::2]", "82"), ("a.example", "80")]


# -- HTTP_* -------------------------------------------------------------------------

def test_repeated_fields_joined_with_comma_as_gunicorn_and_wsgiref_do():
    env = environ(get(headers=b"Accept: a\r\nX-Custom: 1\r\naccept: b\r\nX-CUSTOM: 2\r\n"
                              b"X-Custom: 3\r\n"))
    assert env["HTTP_ACCEPT"] == "a,b"
    assert env["HTTP_X_CUSTOM"] == "1,2,3"


def test_repeated_cookie_lines_joined_with_semicolon_space():
    # RFC 6265 §5.4: one Cookie line holds cookie-pairs separated by "; "
    env = environ(get(headers=b"Cookie: a=1\r\nCookie: b=2; c=3\r\ncookie: d=4\r\n"))
    assert env["HTTP_COOKIE"] == "a=1; b=2; c=3; d=4"


def test_repeated_one_character_and_empty_values_still_join():
    env = environ(get(headers=b"X-A: 1\r\nX-A: 1\r\nX-B:\r\nX-B:\r\nAccept: x\r\nAccept: x\r\n"))
    assert (env["HTTP_X_A"], env["HTTP_X_B"], env["HTTP_ACCEPT"]) == ("1,1", ",", "x,x")


def test_field_names_map_to_cgi_keys():
    env = environ(get(headers=b"x-lower-case: 1\r\nUPPER: 2\r\nMiXeD-CaSe-9: 3\r\n"
                              b"Sec-Fetch-Mode: navigate\r\nUser-Agent: ua\r\n"))
    assert (env["HTTP_X_LOWER_CASE"], env["HTTP_UPPER"], env["HTTP_MIXED_CASE_9"]) == ("1", "2", "3")
    assert (env["HTTP_SEC_FETCH_MODE"], env["HTTP_USER_AGENT"]) == ("navigate", "ua")


def test_long_field_name_gets_a_key_too():
    name = b"X-" + b"n" * 600
    env = environ(get(headers=name + b": v\r\n"))
    assert env["HTTP_X_" + "N" * 600] == "v"


def test_underscore_field_never_poses_as_its_hyphen_twin():
    message = get(headers=b"X-Forwarded-For: 192.0.2.1\r\nX_Forwarded_For: 127.0.0.1\r\n")
    assert environ(message)["HTTP_X_FORWARDED_FOR"] == "192.0.2.1"
    env = environ(get(headers=b"X_Forwarded_For: 127.0.0.1\r\n"))
    assert "HTTP_X_FORWARDED_FOR" not in env


def test_dangerous_header_map_lets_them_merge():
    message = get(headers=b"X-Forwarded-For: 192.0.2.1\r\nX_Forwarded_For: 127.0.0.1\r\n")
    env = environ(message, header_map="dangerous")
    assert env["HTTP_X_FORWARDED_FOR"] == "192.0.2.1,127.0.0.1"


def test_values_are_latin1():
    env = environ(get(headers=b"X-Bytes: \xe9\xff\x80\r\n"))
    assert env["HTTP_X_BYTES"] == "\u00e9\u00ff\u0080"


def test_cached_values_follow_the_bytes():
    builder = EnvironBuilder()
    agents = [b"a/1", b"a/1", b"b/2", b"\xe9", b"\xe9", b"", b"a/1"]
    message = b"".join(get(headers=b"User-Agent: " + agent + b"\r\n") for agent in agents)
    got = [env["HTTP_USER_AGENT"] for env in environs(message, builder=builder)]
    assert got == [agent.decode("latin-1") for agent in agents]


# -- the constant part ---------------------------------------------------------------

def test_wsgi_keys():
    errors = io.StringIO()

    def wrapper(filelike, blksize=8192):
        return iter(())

    env = environ(get(), builder=EnvironBuilder(multiprocess=True, errors=errors,
                                                file_wrapper=wrapper, server_software="x/1"))
    assert env["wsgi.version"] == (1, 0)
    assert env["wsgi.multithread"] is False and env["wsgi.multiprocess"] is True
    assert env["wsgi.run_once"] is False and env["wsgi.input_terminated"] is True
    assert env["wsgi.errors"] is errors and env["wsgi.file_wrapper"] is wrapper
    assert env["SERVER_SOFTWARE"] == "x/1"
    assert environ(get())["wsgi.errors"] is sys.stderr


def test_remote_address_as_given():
    env = environ(get(), remote=("2001:db8::5", "61000"))
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("2001:db8::5", "61000")


def test_methods_and_protocol():
    for method in (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH",
                   b"PROPFIND", b"get"):
        message = method + b" / HTTP/1.0\r\n\r\n"
        env = environ(message, permit_unconventional_http_method=method == b"get")
        assert env["REQUEST_METHOD"] == method.decode()
        assert env["SERVER_PROTOCOL"] == "HTTP/1.0"


def test_environs_are_independent_of_each_other_and_of_the_template():
    builder = EnvironBuilder(base_environ={"CUSTOM": "base"})
    first, second = environs(get(headers=b"X-A: 1\r\n") * 2, builder=builder)
    first["CUSTOM"] = "changed"
    first["wsgi.extra"] = True
    assert second["CUSTOM"] == "base" and "wsgi.extra" not in second
    third = environ(get(), builder=builder)
    assert third["CUSTOM"] == "base" and "HTTP_X_A" not in third


def test_base_environ_keys_are_overridden_by_the_request():
    builder = EnvironBuilder(base_environ={"HTTP_X_A": "base", "OTHER": "kept"})
    env = environ(get(headers=b"X-A: sent\r\n"), builder=builder)
    assert (env["HTTP_X_A"], env["OTHER"]) == ("sent", "kept")


def test_environ_from_head_matches_environ_for():
    message = get(b"/x?y", b"Cookie: c=1\r\n")
    head = HeadParser()
    assert head.parse_bytes(message) == len(message)
    env = EnvironBuilder().environ_from_head(head, message, "127.0.0.1", "54321")
    assert env == environ(message)


# -- wsgi.url_scheme from a trusted proxy's headers --------------------------------------

SECURE = {"X-FORWARDED-PROTOCOL": "ssl", "X-FORWARDED-PROTO": "https", "X-FORWARDED-SSL": "on"}


@pytest.mark.parametrize("headers, trusted, scheme, port", [
    (b"X-Forwarded-Proto: https\r\n", True, "https", "443"),
    # gunicorn compares the value as configured, case and all
    (b"X-Forwarded-Proto: HTTPS\r\n", True, "http", "80"),
    (b"X-Forwarded-Proto: http\r\n", True, "http", "80"),
    (b"X-Forwarded-Ssl: on\r\n", True, "https", "443"),
    (b"X-Forwarded-Proto: https\r\n", False, "http", "80"),        # untrusted peer
    (b"X-Forwarded-Proto: https\r\nX-Forwarded-Ssl: on\r\n", True, "https", "443"),
    (b"X-Forwarded-Proto: https\r\nX-Forwarded-Proto: https\r\n", True, "https", "443"),
    (b"X-Forwarded-Proto: https\r\nX-Forwarded-Ssl: off\r\n", False, "http", "80"),  # untrusted
    (b"", True, "http", "80"),
])
def test_secure_scheme_headers(headers, trusted, scheme, port):
    builder = EnvironBuilder(secure_scheme_headers=SECURE)
    env = environ(get(headers=headers), builder=builder, trusted_proxy=trusted)
    assert (env["wsgi.url_scheme"], env["SERVER_PORT"]) == (scheme, port)


@pytest.mark.parametrize("headers", [
    b"X-Forwarded-Proto: https\r\nX-Forwarded-Ssl: off\r\n",
    b"X-Forwarded-Proto: https\r\nX-Forwarded-Proto: http\r\n",
    b"X-Forwarded-Ssl: off\r\nX-Forwarded-Protocol: ssl\r\n",
])
def test_contradictory_scheme_headers_from_a_trusted_peer_are_refused(headers):
    builder = EnvironBuilder(secure_scheme_headers=SECURE)
    with pytest.raises(ParseError) as refused:
        environ(get(headers=headers), builder=builder, trusted_proxy=True)
    assert (refused.value.status, refused.value.reason) == (400, "Contradictory scheme headers")


# -- against gunicorn ---------------------------------------------------------------------

REMOTE = ("127.0.0.1", 54321)


class _FakeSocket:
    def send(self, data):
        return len(data)

    sendall = send


def gunicorn_environ(message, monkeypatch, root_path="", **settings):
    """gunicorn's environ for ``message``: its parser and wsgi.create, on a fake socket.

    The listener is given as a unix socket name, so SERVER_NAME / SERVER_PORT come
    from Host as ours do (on TCP gunicorn reports the listening address instead).
    """
    pytest.importorskip("gunicorn")
    from gunicorn.config import Config
    from gunicorn.http import wsgi
    from gunicorn.http.parser import RequestParser as GunicornParser
    config = Config()
    if "http_parser" in config.settings:
        config.set("http_parser", "python")
    for name, value in settings.items():
        config.set(name, value)
    monkeypatch.setenv("SCRIPT_NAME", root_path)
    request = next(iter(GunicornParser(config, iter([message]), REMOTE)))
    _, env = wsgi.create(request, _FakeSocket(), REMOTE, "fastwsgi.sock", config)
    return request, env


CGI_KEYS = ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "RAW_URI",
            "SERVER_PROTOCOL", "CONTENT_TYPE", "CONTENT_LENGTH", "REMOTE_ADDR", "REMOTE_PORT",
            "wsgi.url_scheme")

BROWSER = (b"GET /static/app.js?v=3&lang=en HTTP/1.1\r\nHost: www.example.com\r\n"
           b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
           b"Accept: */*\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\n"
           b"Referer: https://www.example.com/\r\nConnection: keep-alive\r\n"
           b"Cookie: a=1; b=2\r\nSec-Fetch-Dest: script\r\nSec-Fetch-Mode: no-cors\r\n"
           b"Sec-Fetch-Site: same-origin\r\nPriority: u=1\r\n\r\n")

COMPARED = {
    "browser": (BROWSER, {}),
    "post_form": ((b"POST /submit?next=%2Fhome HTTP/1.1\r\nHost: example.com:8000\r\n"
                   b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\n"
                   b"a=1&b=2"), {}),
    "percent_path": (get(b"/caf%C3%A9/%2F/a%20b%zz?x=%C3%A9"), {}),
    "repeated_fields": (get(headers=b"Accept: a\r\nAccept: b, c\r\nX-Y: 1\r\nX-Y: 2\r\n"), {}),
    "repeated_cookies": (get(headers=b"Cookie: a=1\r\nAccept: x\r\nCookie: b=2; c=3\r\n"), {}),
    "underscore_dropped": (get(headers=b"X-Forwarded-For: 1.2.3.4\r\nX_Forwarded_For: 5.6.7.8\r\n"),
                           {}),
    "underscore_dangerous": (get(headers=b"X-Forwarded-For: 1.2.3.4\r\nX_Forwarded_For: 5.6.7.8\r\n"),
                             {"header_map": "dangerous"}),
    "http10": (b"GET /old?q HTTP/1.0\r\nHost: old.example\r\n\r\n", {}),
    "host_with_port": (b"GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n", {}),
    "absolute_form": (b"GET http://example.com/p?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n", {}),
    "asterisk": (b"OPTIONS * HTTP/1.1\r\nHost: example.com\r\n\r\n", {}),
    "expect": (b"PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
               {}),
    "forwarded_proto": (get(headers=b"X-Forwarded-Proto: https\r\n"), {}),
    "obs_text_value": (get(headers=b"X-Latin: caf\xe9\r\n"), {}),
    "obs_fold": (b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: one\r\n two\r\n\r\n",
                 {"permit_obsolete_folding": True}),
}
ROOTED = {
    "under_root": (get(b"/app/x/y?z"), "/app"),
    "root_itself": (get(b"/app"), "/app"),
    "root_with_slash": (get(b"/app/"), "/app"),
}


def _our_options(settings):
    return {name: value for name, value in settings.items()
            if name in ("header_map", "permit_obsolete_folding", "strip_header_spaces",
                        "permit_unconventional_http_method", "limit_request_line", "limit_request_fields", "limit_request_field_size")}


def assert_same_as_gunicorn(message, monkeypatch, root_path="", **settings):
    request, theirs = gunicorn_environ(message, monkeypatch, root_path, **settings)
    ours = environ(message, builder=EnvironBuilder(
        root_path=root_path, secure_scheme_headers=SECURE), remote=(REMOTE[0], str(REMOTE[1])),
        trusted_proxy=True, **_our_options(settings))
    for key in CGI_KEYS:
        assert ours.get(key) == theirs.get(key), key
    http_keys = {key for key in theirs if key.startswith("HTTP_")}
    assert http_keys == {key for key in ours if key.startswith("HTTP_")}
    for key in http_keys:
        sent = [value for name, value in request.headers
                if "HTTP_" + name.replace("-", "_") == key]
        # repeated fields join with "," as in gunicorn (RFC 9110 §5.3), except Cookie, whose
        # lines join with "; " (RFC 6265 §5.4, RFC 9113 §8.2.3): gunicorn's "," hides cookies
        assert theirs[key] == ",".join(sent)
        assert ours[key] == ("; " if key == "HTTP_COOKIE" else ",").join(sent), key
    host = ours.get("HTTP_HOST", "")
    if host and not host.startswith("[") and not host.endswith(":"):
        # gunicorn splits Host on every ":", so an IPv6 literal is not compared, nor an
        # empty port (RFC 3986 §3.2.3: the scheme's default; gunicorn gives "")
        assert (ours["SERVER_NAME"], ours["SERVER_PORT"]) == (
            theirs["SERVER_NAME"], theirs["SERVER_PORT"])


@pytest.mark.parametrize("name", sorted(COMPARED))
def test_same_as_gunicorn(name, monkeypatch):
    message, settings = COMPARED[name]
    assert_same_as_gunicorn(message, monkeypatch, **settings)


@pytest.mark.parametrize("name", sorted(ROOTED))
def test_script_name_same_as_gunicorn(name, monkeypatch):
    message, root_path = ROOTED[name]
    assert_same_as_gunicorn(message, monkeypatch, root_path=root_path)


def _gunicorn_comparable(name, message, expectation):
    # one request, accepted by gunicorn's default rules too: no CONNECT tunnel
    # (gunicorn's path for authority-form comes from urlsplit), no empty Host
    requests = expectation["requests"]
    return (len(requests) == 1 and requests[0]["method"] != "CONNECT"
            and ["Host", ""] not in requests[0]["headers"])


CORPUS_COMPARED = [case for case in VALID if _gunicorn_comparable(*case)]
# Where gunicorn's environ is wrong by the RFC and ours is kept.
GUNICORN_DIFFERS = {
    "version_1_2_processed_as_1_1": "RFC 9110 §2.5: a higher minor version is processed as "
                                    "HTTP/1.1, and the environ says so; gunicorn passes 'HTTP/1.2'",
    "obs_fold_onto_empty_value": "RFC 9112 §5.2 and RFC 9110 §5.5: the SP replacing a fold is "
                                 "part of the value's OWS, trimmed; gunicorn keeps ' folded '",
}


@pytest.mark.parametrize("name, message, expectation", CORPUS_COMPARED,
                         ids=[case[0] for case in CORPUS_COMPARED])
def test_corpus_same_as_gunicorn(name, message, expectation, monkeypatch):
    if name in GUNICORN_DIFFERS:
        pytest.xfail(GUNICORN_DIFFERS[name])
    settings = dict(expectation.get("options", {}))
    settings.pop("limit_request_body", None)   # not a gunicorn setting
    pytest.importorskip("gunicorn")
    from gunicorn.http.errors import ParseException
    try:
        gunicorn_environ(message, monkeypatch, **settings)
    except ParseException as refused:
        pytest.skip(f"gunicorn refuses it: {refused!r}")
    assert_same_as_gunicorn(message, monkeypatch, **settings)


# -- the value cache: common values reused, secrets never kept -------------------------------

@pytest.mark.parametrize("name, key, kept", [
    (b"User-Agent", "HTTP_USER_AGENT", True),
    (b"Keep-Alive", "HTTP_KEEP_ALIVE", True),
    (b"Cookie", "HTTP_COOKIE", False),
    (b"Authorization", "HTTP_AUTHORIZATION", False),
])
def test_a_repeated_common_value_is_reused_unless_it_is_a_secret(name, key, kept):
    builder = EnvironBuilder()
    first, second = environs(get(headers=name + b": value-123\r\n") * 2, builder=builder)
    assert first[key] == second[key] == "value-123"
    assert (first[key] is second[key]) is kept


# -- forwarded_allow_ips, secure_scheme_headers and forwarder_headers, as gunicorn applies them

FORWARDED = {
    # name: (target, headers, peer trusted, settings)
    "contradictory_schemes": (b"/", b"X-Forwarded-Proto: https\r\nX-Forwarded-Ssl: off\r\n", True, {}),
    "repeated_scheme_disagrees": (b"/", b"X-Forwarded-Proto: https\r\nX-Forwarded-Proto: http\r\n",
                                  True, {}),
    "scheme_value_case": (b"/", b"X-Forwarded-Proto: HTTPS\r\n", True, {}),
    "scheme_from_untrusted_peer": (b"/", b"X-Forwarded-Proto: https\r\n", False, {}),
    "contradiction_from_untrusted_peer": (b"/", b"X-Forwarded-Proto: https\r\nX-Forwarded-Ssl: off\r\n",
                                          False, {}),
    "script_name_header": (b"/app/x", b"SCRIPT_NAME: /app\r\n", True, {}),
    "script_name_outside_path": (b"/other/x", b"SCRIPT_NAME: /app\r\n", True, {}),
    "script_name_from_untrusted_peer": (b"/app/x", b"SCRIPT_NAME: /app\r\n", False, {}),
    "script_name_untrusted_refused": (b"/app/x", b"SCRIPT_NAME: /app\r\n", False,
                                      {"header_map": "refuse"}),
    "script_name_untrusted_dangerous": (b"/app/x", b"SCRIPT_NAME: /app\r\n", False,
                                        {"header_map": "dangerous"}),
    "path_info_header": (b"/x", b"PATH_INFO: /elsewhere\r\n", True, {}),
    "remote_user_listed": (b"/", b"Remote_User: alice\r\n", True,
                           {"forwarder_headers": "SCRIPT_NAME,PATH_INFO,REMOTE_USER"}),
    "remote_user_not_listed": (b"/", b"Remote_User: alice\r\n", True, {}),
    "every_name_forwarded": (b"/", b"X_Custom: 1\r\nX-Forwarded-For: 1.2.3.4\r\n", True,
                             {"forwarder_headers": "*"}),
}


def _gunicorn_answer(message, trusted, settings, monkeypatch):
    """gunicorn's environ for the message, or the status it refuses it with."""
    from gunicorn.http.errors import ConfigurationProblem, ParseException
    if not trusted:
        settings = dict(settings, forwarded_allow_ips="10.9.9.9")
    try:
        return gunicorn_environ(message, monkeypatch, **settings)[1]
    except ConfigurationProblem:
        return 500
    except ParseException:
        return 400


def _our_answer(message, trusted, settings):
    options = {"header_map": settings.get("header_map", "drop")}
    forwarders = settings.get("forwarder_headers", "SCRIPT_NAME,PATH_INFO").split(",")
    builder = EnvironBuilder(secure_scheme_headers=SECURE)
    try:
        return environ(message, builder=builder, remote=(REMOTE[0], str(REMOTE[1])),
                       trusted_proxy=trusted, forwarder_headers=forwarders, **options)
    except ParseError as refused:
        return refused.status


@pytest.mark.parametrize("name", sorted(FORWARDED))
def test_forwarded_headers_as_gunicorn_applies_them(name, monkeypatch):
    pytest.importorskip("gunicorn")
    target, headers, trusted, settings = FORWARDED[name]
    message = get(target, headers)
    theirs = _gunicorn_answer(message, trusted, settings, monkeypatch)
    ours = _our_answer(message, trusted, settings)
    if isinstance(theirs, int) or isinstance(ours, int):
        assert ours == theirs
        return
    for key in ("wsgi.url_scheme", "SCRIPT_NAME", "PATH_INFO"):
        assert ours[key] == theirs[key], key
    assert ({key: value for key, value in ours.items() if key.startswith("HTTP_")}
            == {key: value for key, value in theirs.items() if key.startswith("HTTP_")})
