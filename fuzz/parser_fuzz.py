"""Coverage-guided fuzzing of the request parser: HeadParser and BodyDecoder, through RequestParser.

An input is two control bytes and a byte stream: the first picks the parser
options (``invariants.OPTION_SETS``; below 128, gunicorn's defaults), the second
seeds where the stream is cut; ``invariants.check_stream`` then holds the
parser to its invariants.  Any exception is a finding: atheris writes the input
to ``crash-*`` and stops.

    python fuzz/parser_fuzz.py [libFuzzer flags] [corpus dirs or input files]

Coverage comes from the C of the extension, so the parser must be built with
``-fsanitize=fuzzer-no-link`` (fuzz/build.sh); fuzz/run.sh does all of it.
Files given instead of directories are run once each, and any run of them
works without atheris (``--replay``), as the regression test does.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from invariants import OPTION_SETS, check_stream

CONTROL_BYTES = 2


def split_input(data: bytes) -> tuple[dict, int, bytes]:
    """(options, cut seed, stream) an input stands for."""
    if len(data) < CONTROL_BYTES:
        return OPTION_SETS[0], 0, data
    choice = data[0]
    options = OPTION_SETS[0] if choice < 128 else OPTION_SETS[1 + choice % (len(OPTION_SETS) - 1)]
    return options, data[1], data[CONTROL_BYTES:]


def control_for(options: dict) -> int:
    """The first control byte that selects ``options`` (for making seeds)."""
    if not options:
        return 0
    index = OPTION_SETS.index(options)
    return next(choice for choice in range(128, 256)
                if 1 + choice % (len(OPTION_SETS) - 1) == index)


def test_one_input(data: bytes) -> None:
    options, seed, stream = split_input(data)
    check_stream(stream, options, seed)


def replay(paths: list[str], one_input=None) -> int:
    """Runs each input file once through ``one_input`` (this target's test_one_input
    unless another target's); the number of them that broke an invariant."""
    one_input = one_input or test_one_input
    broken = 0
    for path in paths:
        try:
            one_input(Path(path).read_bytes())
        except AssertionError as error:
            broken += 1
            print(f"{path}: {error}", file=sys.stderr)
    return broken


def main() -> None:
    if sys.argv[1:2] == ["--replay"]:
        sys.exit(1 if replay(sys.argv[2:]) else 0)
    import atheris

    from fastwsgi import _parser
    print(f"fuzzing {_parser.__file__}", file=sys.stderr)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
