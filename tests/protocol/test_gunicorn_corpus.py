"""gunicorn's request conformance corpus, run through our parser and environ builder.

gunicorn's sdist carries ``tests/requests/{valid,invalid}/*.http``, each with a
``.py`` that says what gunicorn makes of it (a request description, or the
exception it raises) and, sometimes, the config it needs.  The corpus is
taken from the directory in ``GUNICORN_CORPUS`` (the one holding ``valid/`` and
``invalid/``), or else from the sdist of the installed gunicorn, downloaded
once with pip into pytest's cache.  Without gunicorn (the ``.py`` files import
it) or the corpus, these tests are skipped.

Valid cases must parse to the same requests; invalid ones must be refused,
with the status gunicorn's exception stands for where that is clear.  Where
gunicorn's expectation is wrong by RFC 9112/9110 and ours is kept, the case is
listed in DEVIATIONS with the reason, and expected to fail in exactly that way.
"""
from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import types
from pathlib import Path

import pytest
from support.corpus import feed_every_way

from fastwsgi._environ import EnvironBuilder
from fastwsgi._parser import ParseError

ADDED_HOST = b"Host: gunicorn.example\r\n"

# RFC reasons for keeping our behaviour where gunicorn's corpus expects otherwise.
HOST_REQUIRED = ("RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without Host; "
                 "gunicorn serves it (the case's +host variant checks everything else)")
AUTHORITY_FORM_PATH = ("RFC 9112 §3.2.3: authority-form (CONNECT host:port) has no path; "
                       "gunicorn's path is urlsplit misreading host:port")


# (case, variant) -> (reason, how our outcome differs); variant "" is the case as is.
DEVIATIONS = {
    ("valid/004", ""): (HOST_REQUIRED, "missing Host"),
    ("valid/005", ""): (HOST_REQUIRED, "missing Host"),
    ("valid/006", ""): (HOST_REQUIRED, "missing Host"),
    ("valid/007", ""): (HOST_REQUIRED, "missing Host"),
    ("valid/010", ""): (HOST_REQUIRED, "missing Host"),
    ("valid/011", ""): (HOST_REQUIRED, "missing Host"),
    ("valid/012", ""): (HOST_REQUIRED, "missing Host"),
    ("valid/013", ""): (HOST_REQUIRED, "missing Host"),
    ("valid/014", ""): (HOST_REQUIRED, "missing Host"),
    ("valid/018", ""): (HOST_REQUIRED, "missing Host"),
    ("valid/021", ""): (HOST_REQUIRED, "missing Host"),
    ("valid/022", ""): (HOST_REQUIRED, "missing Host"),
    ("valid/023", ""): (HOST_REQUIRED, "missing Host"),
    ("valid/025", ""): (HOST_REQUIRED, "missing Host"),
    ("valid/025_line", ""): (HOST_REQUIRED, "missing Host"),
    ("valid/028", ""): (HOST_REQUIRED, "missing Host"),
    ("valid/029", ""): (HOST_REQUIRED, "missing Host"),
    ("valid/030", ""): (HOST_REQUIRED, "missing Host"),
    ("valid/031", ""): (HOST_REQUIRED, "missing Host"),
    ("valid/031compat", ""): (HOST_REQUIRED, "missing Host"),
    ("valid/031compat2", ""): (HOST_REQUIRED, "missing Host"),
    ("valid/100", ""): (HOST_REQUIRED, "missing Host"),
    ("valid/compat_obs_fold_huge", ""): (HOST_REQUIRED, "missing Host"),
    ("valid/rfc9112_target_authority_connect_01", ""): (AUTHORITY_FORM_PATH, "path"),
    ("valid/rfc9112_target_authority_ipv6_01", ""): (AUTHORITY_FORM_PATH, "path"),

}

# Not the request parser's business: PROXY protocol lines are read by the loop.
PROXY_PROTOCOL_PREFIXES = (b"PROXY ", b"\r\n\r\n\x00\r\nQUIT\n")

# gunicorn's exception -> the statuses that mean the same refusal here.
STATUSES = {
    "LimitRequestLine": {414},
    "LimitRequestHeaders": {431, 400},
    "UnsupportedTransferCoding": {501},
    "ExpectationFailed": {417},
    "InvalidHTTPVersion": {400, 505},
    "InvalidRequestLine": {400},
    "InvalidRequestMethod": {400},
    "InvalidHeader": {400},
    "InvalidHeaderName": {400},
    "ObsoleteFolding": {400},
    "InvalidChunkSize": {400},
    "InvalidChunkExtension": {400},
    "ChunkMissingTerminator": {400},
    "InvalidSchemeHeaders": {400},
}
# Refusals that are about the connection ending early: here the parser just waits.
WAITING = {"NoMoreData", "ChunkMissingTerminator"}

SECURE_SCHEME_HEADERS = {"X-FORWARDED-PROTOCOL": "ssl", "X-FORWARDED-PROTO": "https",
                         "X-FORWARDED-SSL": "on"}


class Deviation(AssertionError):
    """Our outcome differs from gunicorn's in the way DEVIATIONS says."""


# -- finding the corpus ----------------------------------------------------------

def _download(cache_dir: Path, version: str) -> Path | None:
    target = cache_dir / f"gunicorn-{version}"
    if (target / "valid").is_dir() and (target / "invalid").is_dir():
        return target
    with tempfile.TemporaryDirectory() as scratch:
        try:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                 "--no-binary", ":all:", f"gunicorn=={version}", "--dest", scratch],
                check=True, timeout=300, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except (subprocess.SubprocessError, OSError):
            return None
        archives = list(Path(scratch).glob("gunicorn-*.tar.gz"))
        if not archives:
            return None
        with tarfile.open(archives[0]) as archive:
            for member in archive.getmembers():
                parts = Path(member.name).parts
                if (member.isfile() and len(parts) == 5 and parts[1:3] == ("tests", "requests")
                        and parts[3] in ("valid", "invalid")):
                    destination = target / parts[3] / parts[4]
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    destination.write_bytes(archive.extractfile(member).read())
    return target if (target / "valid").is_dir() else None


def locate_corpus(config) -> tuple[Path | None, str]:
    if hasattr(config, "_gunicorn_corpus"):
        return config._gunicorn_corpus
    try:
        import gunicorn
    except ImportError:
        found = (None, "gunicorn is not installed (pip install gunicorn)")
    else:
        configured = os.environ.get("GUNICORN_CORPUS")
        if configured:
            path = Path(configured)
            found = ((path, "") if (path / "valid").is_dir()
                     else (None, f"GUNICORN_CORPUS={configured} has no valid/ directory"))
        else:
            cache = getattr(config, "cache", None)
            if cache is not None:
                cache_dir = cache.mkdir("gunicorn-corpus")
            else:
                cache_dir = tempfile.mkdtemp(prefix="gunicorn-corpus-")
                atexit.register(shutil.rmtree, cache_dir, ignore_errors=True)
            path = _download(Path(cache_dir), gunicorn.__version__)
            found = (path, "") if path else (None, "gunicorn's sdist could not be downloaded")
    config._gunicorn_corpus = found
    return found


def pytest_generate_tests(metafunc):
    if "case" not in metafunc.fixturenames:
        return
    root, why = locate_corpus(metafunc.config)
    if root is None:
        metafunc.parametrize("case", [pytest.param(None, marks=pytest.mark.skip(reason=why))],
                             ids=["gunicorn-corpus"])
        return
    kind = metafunc.function.__name__.split("_")[1]  # test_valid_... / test_invalid_...
    cases = []
    for http in sorted((root / kind).glob("*.http")):
        name = f"{kind}/{http.stem}"
        data = decode_http(http.read_bytes())
        variants = [""] + (["+host"] if needs_host(data) else [])
        for variant in variants:
            marks = []
            if (name, variant) in DEVIATIONS:
                reason, _ = DEVIATIONS[(name, variant)]
                marks.append(pytest.mark.xfail(reason=reason, raises=Deviation, strict=True))
            cases.append(pytest.param((name, http, variant), marks=marks, id=name + variant))
    metafunc.parametrize("case", cases)


# -- reading a case ---------------------------------------------------------------

def decode_http(raw: bytes) -> bytes:
    """gunicorn's corpus conventions: line breaks are layout, escapes spell the bytes."""
    data = raw.replace(b"\n", b"").replace(b"\\r\\n", b"\r\n")
    data = data.replace(b"\\0", b"\0").replace(b"\\n", b"\n").replace(b"\\t", b"\t")
    out = bytearray()
    i = 0
    while i < len(data):
        if data[i:i + 2] == b"\\x" and i + 3 < len(data):
            try:
                out.append(int(data[i + 2:i + 4], 16))
                i += 4
                continue
            except ValueError:
                pass
        out.append(data[i])
        i += 1
    if b"\\" in out:
        raise ValueError("an escape this reader does not know")
    return bytes(out)


def load_expectation(path: Path) -> dict:
    """Runs a case's .py as gunicorn's test helper does: ``cfg`` and ``uri`` predefined."""
    from gunicorn.config import Config
    from gunicorn.util import split_request_uri

    def uri(raw):
        parts = split_request_uri(raw)
        return {"raw": raw, "path": parts.path or "", "query": parts.query or "",
                "fragment": parts.fragment or ""}

    module = types.ModuleType("gunicorn_case")
    module.cfg = Config()
    module.uri = uri
    # the corpus's own expectation files, run as its test helper runs them
    exec(compile(path.read_text(), str(path), "exec"), module.__dict__)  # noqa: S102
    return module.__dict__


def options_for(cfg) -> dict:
    """Our parser options for the gunicorn settings a case sets."""
    options = {}
    for name in ("limit_request_line", "limit_request_fields", "limit_request_field_size",
                 "permit_obsolete_folding", "strip_header_spaces", "header_map",
                 "permit_unconventional_http_method", "casefold_http_method",
                 "permit_unconventional_http_version"):
        if name in cfg.settings:
            options[name] = cfg.settings[name].get()
    return options


def needs_host(data: bytes) -> bool:
    """An HTTP/1.1 request line and no Host field: the +host variant adds one."""
    head = data.split(b"\r\n\r\n", 1)[0].lower()
    return b" http/1.1\r\n" in head + b"\r\n" and b"\r\nhost:" not in head


def add_host(data: bytes, targets: list[bytes]) -> bytes:
    """Adds a Host field after the request line of each HTTP/1.1 request that has none.

    ``targets`` are the request lines' ends (" target HTTP/1.x" CRLF), in order.
    """
    position = 0
    out = b""
    for line in targets:
        start = data.find(line, position)
        if start < 0:
            break
        head_end = data.find(b"\r\n\r\n", start)
        head = data[start:head_end + 2 if head_end >= 0 else len(data)]
        end = start + len(line)
        out += data[position:end]
        if line.endswith(b" HTTP/1.1\r\n") and b"\r\nhost:" not in head.lower():
            out += ADDED_HOST
        position = end
    return out + data[position:]


# -- the tests -----------------------------------------------------------------------

def _feed(data: bytes, options: dict):
    # whole, bytewise, and split at ten places; reading stops after a closing request
    step = max(1, len(data) // 10)
    return feed_every_way(data, every_position=len(data) <= 300,
                          extra=range(step, len(data), step), stop_after_close=True, **options)


def _read_case(case) -> tuple[bytes, str, dict]:
    """A case's bytes, its variant and gunicorn's expectation (PROXY cases are skipped)."""
    _, http, variant = case
    data = decode_http(http.read_bytes())
    if data.startswith(PROXY_PROTOCOL_PREFIXES):
        pytest.skip("PROXY protocol is read by the loop, not the request parser")
    return data, variant, load_expectation(http.with_suffix(".py"))


def test_valid_case(case):
    data, variant, expectation = _read_case(case)
    expected = expectation["request"]
    expected = expected if isinstance(expected, list) else [expected]
    if variant == "+host":
        lines = [f" {e['uri']['raw']} HTTP/{e['version'][0]}.{e['version'][1]}\r\n"
                 .encode("latin-1") for e in expected]
        data = add_host(data, lines)
        expected = [dict(e, headers=[("HOST", "gunicorn.example")] + e["headers"])
                    if e["version"] == (1, 1) and not any(n == "HOST" for n, _ in e["headers"])
                    else e for e in expected]
    outcome = _feed(data, options_for(expectation["cfg"]))
    if outcome.error == (400, "missing Host header"):
        raise Deviation(f"refused: {outcome.error}")
    assert outcome.error is None, f"refused: {outcome.error}"
    assert len(outcome.requests) == len(expected)
    for index, (ours, body, complete, want) in enumerate(zip(
            outcome.parsed, outcome.bodies, outcome.complete, expected)):
        target = ours.target.decode("latin-1")
        got = {
            "method": ours.method.decode("latin-1"),
            "uri": {"raw": target, "path": ours.path.decode("latin-1"),
                    "query": ours.query.decode("latin-1"),
                    "fragment": target.partition("#")[2]},
            "version": ours.version,
            "headers": [(name.decode("latin-1").upper(), value.decode("latin-1"))
                        for name, value in ours.headers],
        }
        for key in ("method", "version", "headers"):
            if got[key] != want[key]:
                raise Deviation(f"{key}: {got[key]!r} != {want[key]!r}")
        for key in ("raw", "path", "query", "fragment"):
            if got["uri"][key] != want["uri"][key]:
                raise Deviation(f"{key}: {got['uri'][key]!r} != {want['uri'][key]!r}")
        # trailers are read and dropped here (PEP 3333 has no place for them)
        want_body = want["body"] if isinstance(want["body"], bytes) else want["body"].encode()
        assert body == want_body
        # a body cut short by the end of the file (099) is read to EOF by gunicorn;
        # here the request just waits for the rest
        assert complete or (index == len(expected) - 1 and outcome.rest in (b"", None))
        environ = EnvironBuilder().environ_for(ours)
        assert environ["REQUEST_METHOD"] == want["method"]
        assert environ["RAW_URI"] == want["uri"]["raw"]
        assert environ["QUERY_STRING"] == want["uri"]["query"]


def test_invalid_case(case):
    data, variant, expectation = _read_case(case)
    refusal = expectation["request"].__name__
    cfg = expectation["cfg"]
    if variant == "+host":
        end = data.lower().find(b" http/1.1\r\n") + len(b" http/1.1\r\n")
        data = data[:end] + ADDED_HOST + data[end:]
    outcome = _feed(data, options_for(cfg))
    if outcome.error is None:
        if refusal in WAITING and (outcome.rest or not all(outcome.complete)):
            return  # the message never ends: nothing is served
        if refusal == "InvalidSchemeHeaders":
            # Refused where the environ is made, as gunicorn refuses it: only from a
            # trusted peer (forwarded_allow_ips) do the scheme headers count at all.
            trusted = "*" in cfg.forwarded_allow_ips
            builder = EnvironBuilder(secure_scheme_headers=SECURE_SCHEME_HEADERS)
            try:
                environ = builder.environ_for(outcome.parsed[0], trusted_proxy=trusted)
            except ParseError as refused:
                assert (refused.status, refused.reason, trusted) == (
                    400, "Contradictory scheme headers", True)
                return
            assert not trusted and environ["wsgi.url_scheme"] == "http"
        raise Deviation(f"accepted: {outcome.requests}")
    status, reason = outcome.error
    assert status in STATUSES.get(refusal, {400}), f"{refusal} -> {status} {reason}"
