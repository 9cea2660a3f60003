"""Coverage-guided fuzzing of the uwsgi packet reader (parser/uwsgi.pxi) and the environ
made from a packet (EnvironBuilder.build_uwsgi).

An input is one control byte, which seeds where the packet is cut, and the bytes a
front end sent. ``check_packet`` holds the reader to an independent reading of the
format (tests/support/uwsgi.py), whole and cut, and the environ builder to the vars
it was given. Any exception is a finding.

    python fuzz/uwsgi_fuzz.py [libFuzzer flags] [corpus dirs or input files]
    python fuzz/uwsgi_fuzz.py --replay FILE...

fuzz/run.sh builds the instrumented extensions and runs it after the HTTP parser's
fuzzer; fuzz/README.md says more.
"""
from __future__ import annotations

import random
import sys
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
TESTS = FUZZ.parent / "tests"
for directory in (FUZZ, TESTS):
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))

from parser_fuzz import replay  # noqa: E402
from support.uwsgi import corpus, reference_reading  # noqa: E402

from fastwsgi._environ import EnvironBuilder  # noqa: E402
from fastwsgi._parser import ParseError, UwsgiPacket  # noqa: E402

CUTS = 8


def reading(data: bytes):
    """The reader's answer in reference_reading's terms."""
    try:
        size, found = UwsgiPacket().parse_bytes(data)
    except ParseError as refused:
        assert 400 <= refused.status <= 501 and refused.reason, refused
        return None
    return 0 if size == 0 else (size, found)


def check_environ(data: bytes, found: list) -> None:
    """The environ holds every var the front end may set, as it was sent."""
    try:
        environ = EnvironBuilder().environ_from_uwsgi(data)
    except ParseError as refused:
        # a template key (SCRIPT_NAME, SERVER_SOFTWARE) given twice
        assert refused.status == 400 and "given twice" in refused.reason, refused
        return
    joined: dict[str, list[str]] = {}
    for key, value in found:
        name, text = key.decode("latin-1"), value.decode("latin-1")
        if name.startswith(("wsgi.", "gunicorn.", "fastwsgi.")):
            continue
        joined.setdefault(name, []).append(text)
    for name, values in joined.items():
        separator = "; " if name == "HTTP_COOKIE" else ","
        assert environ[name] == separator.join(values), name
    assert environ["wsgi.url_scheme"] in ("http", "https")
    assert isinstance(environ["PATH_INFO"], str)


def check_packet(data: bytes, cut_seed: int = 0) -> None:
    expected = reference_reading(data)
    assert reading(data) == expected, f"the reader disagrees with the reference: {expected!r}"
    picks = random.Random(cut_seed)
    for _ in range(CUTS if len(data) > 1 else 0):
        cut = picks.randrange(1, len(data))
        assert reading(data[:cut]) == reference_reading(data[:cut]), f"cut at {cut}"
    if expected:
        check_environ(data[:expected[0]], expected[1])


def test_one_input(data: bytes) -> None:
    check_packet(data[1:], data[0] if data else 0)


def seeds() -> dict[str, bytes]:
    """File name → input, for each packet of tests/requests/uwsgi."""
    return {f"uwsgi-{kind}-{name}": b"\x00" + packet
            for kind in ("valid", "invalid") for name, packet, _ in corpus(kind)}


def main() -> None:
    if sys.argv[1:2] == ["--replay"]:
        sys.exit(1 if replay(sys.argv[2:], test_one_input) else 0)
    if sys.argv[1:2] == ["--seeds"]:
        output = Path(sys.argv[2])
        output.mkdir(parents=True, exist_ok=True)
        for name, data in seeds().items():
            (output / name).write_bytes(data)
        print(f"{len(seeds())} uwsgi seeds in {output}")
        return
    import atheris

    from fastwsgi import _parser
    print(f"fuzzing the uwsgi reader of {_parser.__file__}", file=sys.stderr)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
