#!/usr/bin/env bash
# The test suite with fastwsgi's extensions built under AddressSanitizer, to catch
# their own memory errors (out-of-bounds reads and writes, use after free).
#
# Usage: fuzz/asan_suite.sh [pytest arguments]
# By default, the whole suite but the tests that measure the process's memory
# (RSS, allocated blocks): ASan's shadow memory and quarantine, and
# PYTHONMALLOC=malloc, change what they measure, so they fail under it by design.
# The extensions are built by fuzz/build.sh into $OUT (default build/asan-suite),
# copied into a copy of the checkout there ($OUT/tree: the tests put the checkout
# they live in first on the path, for themselves and the servers they start),
# and pytest runs in that copy with clang's ASan runtime preloaded into it and
# into every process it starts.  An ASan report ends the process that made it
# with status 99 (so the test using it fails) and is also written to
# $OUT/reports/asan.PID.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-build/asan-suite}
PYTHON=${PYTHON:-python3}
CC=${CC:-clang}

OUT="$OUT" bash fuzz/build.sh
rm -rf "$OUT/tree"
mkdir -p "$OUT/tree" "$OUT/reports"
git ls-files -z | while IFS= read -r -d '' path; do
    if [ -e "$path" ]; then
        mkdir -p "$OUT/tree/$(dirname "$path")"
        cp -p "$path" "$OUT/tree/$path"
    fi
done
cp "$OUT/lib/fastwsgi/"*.so "$OUT/tree/fastwsgi/"
runtime=$("$CC" -print-file-name="libclang_rt.asan-$(uname -m).so")
reports=$(cd "$OUT/reports" && pwd)
rm -f "$reports"/asan.*
cd "$OUT/tree"
if [ $# -eq 0 ]; then
    set -- -q -rf --ignore=tests/loop/test_soak.py \
        --deselect "tests/loop/test_memory.py::test_gib_upload_keeps_rss_bounded" \
        --deselect "tests/cli/test_limits.py::test_unfinished_bodies_of_many_clients_stay_within_the_body_memory_limit"
fi
status=0
# detect_leaks=0: CPython keeps memory alive until exit on purpose;
# PYTHONMALLOC=malloc: every Python object its own allocation, visible to ASan.
ASAN_OPTIONS="detect_leaks=0:exitcode=99:log_path=$reports/asan:log_exe_name=0" \
    PYTHONMALLOC=malloc LD_PRELOAD="$runtime" \
    "$PYTHON" -m pytest -p no:cacheprovider "$@" || status=$?
if ls "$reports"/asan.* >/dev/null 2>&1; then
    echo "ASan reports in $reports:" >&2
    head -n 40 "$reports"/asan.* >&2
    exit 1
fi
echo "no ASan report"
exit "$status"
