#!/usr/bin/env bash
# Builds fastwsgi's extensions with AddressSanitizer and libFuzzer's coverage
# instrumentation (clang -fsanitize=address,fuzzer-no-link), beside the in-place
# build, and the runtime to preload with them:
#   $OUT/lib/fastwsgi/          the package, with the named extensions instrumented
#   $OUT/asan_with_fuzzer.so    ASan's runtime and libFuzzer in one library (LD_PRELOAD)
# Without libFuzzer in the process (the test suite), preload clang's own ASan
# runtime instead: its coverage hooks do nothing.
#
# Usage: fuzz/build.sh [EXTENSION...]      (default: _parser _environ _loop)
# OUT defaults to build/sanitized; CC to clang (14 or later, with libclang-rt-dev).
# The C is what Cython generated in fastwsgi/: `pip install -e .` makes it.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-build/sanitized}
CC=${CC:-clang}
PYTHON=${PYTHON:-python3}
if [ $# -eq 0 ]; then set -- _parser _environ _loop; fi

for name in "$@"; do
    if [ ! -f "fastwsgi/$name.c" ]; then
        echo "fuzz/build.sh: fastwsgi/$name.c missing: run pip install -e . first" >&2
        exit 1
    fi
    for source in "fastwsgi/$name.pyx" "fastwsgi/$name.pxd"; do
        if [ -f "$source" ] && [ "$source" -nt "fastwsgi/$name.c" ]; then
            echo "fuzz/build.sh: fastwsgi/$name.c is older than $source: run pip install -e . first" >&2
            exit 1
        fi
    done
done

include=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
suffix=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
rm -rf "$OUT/lib"
mkdir -p "$OUT/lib"
cp -r fastwsgi "$OUT/lib/"
rm -f "$OUT/lib/fastwsgi/"*.c "$OUT/lib/fastwsgi/"*.html
# -O1 and frame pointers: ASan's reports then point at the right lines.
pids=()
for name in "$@"; do
    "$CC" -shared -fPIC -g -O1 -fno-omit-frame-pointer -fno-strict-aliasing \
        -fsanitize=address,fuzzer-no-link -I "$include" \
        "fastwsgi/$name.c" -o "$OUT/lib/fastwsgi/$name$suffix" &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done

# clang ships libFuzzer only as a static archive, and ASan's static runtime has a
# .preinit_array, which a shared library may not hold: link them together without
# it (the preload makes ASan start first anyway).
arch=$(uname -m)
runtime=$("$CC" -print-file-name="libclang_rt.asan-$arch.a")
runtime_dir=$(dirname "$runtime")
if [ ! -f "$runtime_dir/libclang_rt.fuzzer_no_main-$arch.a" ]; then
    echo "fuzz/build.sh: no libFuzzer beside $runtime: install libclang-rt-dev for $CC" >&2
    exit 1
fi
objects=$(mktemp -d)
trap 'rm -rf "$objects"' EXIT
(cd "$objects" && ar x "$runtime" && rm -f asan_preinit.cpp.o && ar rcs asan.a ./*.o)
"$CC" -shared -o "$OUT/asan_with_fuzzer.so" \
    -Wl,--whole-archive "$objects/asan.a" "$runtime_dir/libclang_rt.asan_cxx-$arch.a" \
    "$runtime_dir/libclang_rt.fuzzer_no_main-$arch.a" -Wl,--no-whole-archive \
    -lstdc++ -lpthread -ldl -lm -lrt
echo "$OUT/lib: $* instrumented; $OUT/asan_with_fuzzer.so"
