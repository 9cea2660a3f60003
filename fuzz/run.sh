#!/usr/bin/env bash
# A coverage-guided run of the parser fuzzer under AddressSanitizer, then of the uwsgi
# packet reader's (fuzz/uwsgi_fuzz.py) for UWSGI_SECONDS (default 20).
#
# Usage: fuzz/run.sh [SECONDS] [libFuzzer flags...]      (default 60 seconds)
#   CI: fuzz/run.sh 90              the bounded run .ci/run does
#   a long run: fuzz/run.sh 3600 -jobs=2 -workers=2
# Builds the instrumented parser (fuzz/build.sh), writes the seeds from
# tests/requests, and fuzzes with the corpus kept in $OUT/corpus between runs.
# A finding is written to $OUT/findings/ and ends the run with a non-zero status;
# replay it with: python fuzz/parser_fuzz.py --replay FILE
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-build/sanitized}
SECONDS_TO_RUN=${1:-60}
shift || true
PYTHON=${PYTHON:-python3}

if ! command -v "${CC:-clang}" >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && apt-get install -y -qq clang libclang-rt-14-dev >/dev/null
    else
        echo "fuzz/run.sh: clang is needed (Debian: apt-get install clang libclang-rt-14-dev)" >&2
        exit 1
    fi
fi
"$PYTHON" -c 'import atheris' 2>/dev/null || "$PYTHON" -m pip install -q atheris

UWSGI_SECONDS=${UWSGI_SECONDS:-20}
OUT="$OUT" bash fuzz/build.sh _parser _environ
"$PYTHON" fuzz/seeds.py "$OUT/seeds"
"$PYTHON" fuzz/uwsgi_fuzz.py --seeds "$OUT/uwsgi-seeds"
mkdir -p "$OUT/corpus" "$OUT/uwsgi-corpus" "$OUT/findings"
# detect_leaks=0: CPython keeps memory alive until exit on purpose.
# PYTHONMALLOC=malloc: every Python object its own allocation, so ASan sees a read
# past the end of the buffer the parser is handed.
ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 PYTHONMALLOC=malloc \
    LD_PRELOAD="$OUT/asan_with_fuzzer.so" PYTHONPATH="$OUT/lib" \
    "$PYTHON" fuzz/parser_fuzz.py -max_total_time="$SECONDS_TO_RUN" -max_len=4096 -timeout=20 \
    -dict=fuzz/http.dict -print_final_stats=1 -artifact_prefix="$OUT/findings/" "$@" \
    "$OUT/corpus" "$OUT/seeds"
ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 PYTHONMALLOC=malloc \
    LD_PRELOAD="$OUT/asan_with_fuzzer.so" PYTHONPATH="$OUT/lib" \
    "$PYTHON" fuzz/uwsgi_fuzz.py -max_total_time="$UWSGI_SECONDS" -max_len=4096 -timeout=20 \
    -print_final_stats=1 -artifact_prefix="$OUT/findings/uwsgi-" "$@" \
    "$OUT/uwsgi-corpus" "$OUT/uwsgi-seeds"
