"""Writes the seed corpus: every message of tests/requests, with the control bytes of its options.

    python fuzz/seeds.py OUTPUT_DIR

A case whose options are not one of the fuzzed option sets is seeded under
gunicorn's defaults, and under each option set that has one of its options.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from invariants import OPTION_SETS
from parser_fuzz import control_for
from support.corpus import corpus


def seeds() -> dict[str, bytes]:
    """File name → input, for each case of the valid and invalid corpora."""
    made = {}
    for kind in ("valid", "invalid"):
        for name, message, expectation in corpus(kind):
            options = expectation.get("options", {})
            chosen = [options] if options in OPTION_SETS else [{}] + [
                candidate for candidate in OPTION_SETS
                if candidate and set(candidate) & set(options)]
            for index, option_set in enumerate(chosen):
                made[f"{kind}-{name}-{index}"] = bytes([control_for(option_set), 0]) + message
    return made


def main() -> None:
    output = Path(sys.argv[1])
    output.mkdir(parents=True, exist_ok=True)
    for name, data in seeds().items():
        (output / name).write_bytes(data)
    print(f"{len(seeds())} seeds in {output}")


if __name__ == "__main__":
    main()
