#!/bin/sh
# Builds every libFuzzer target tests/fuzz/fuzz_*.cpp with clang
# (-fsanitize=fuzzer,address,undefined) against the runtime sources.
# Usage: tests/fuzz/build.sh [out_dir]   (default: build/fuzz)
# Then e.g.: build/fuzz/fuzz_safetensors -max_total_time=60 build/fuzz/corpus_safetensors
# The runtime sources are compiled once into an archive; a target only links
# the objects it uses. A runtime file that does not compile is skipped with a
# warning (its targets will then fail to link, which is reported).
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-$ROOT/build/fuzz}
CXX=${CXX:-clang++}
mkdir -p "$OUT/obj"

if ! echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long){return 0;}' |
     $CXX -x c++ -fsanitize=fuzzer - -o "$OUT/.probe" 2>/dev/null; then
    echo "build.sh: $CXX cannot build libFuzzer targets (install Debian clang)" >&2
    exit 1
fi
rm -f "$OUT/.probe"

DEPS="jansson libpcre2-8 libpng libwebp libexif libjpeg"
PKG_CFLAGS=$(pkg-config --cflags $DEPS 2>/dev/null || true)
PKG_LIBS=$(pkg-config --libs $DEPS 2>/dev/null || echo -ljansson)
CXXFLAGS="-std=c++20 -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
  -fno-sanitize-recover=undefined -I$ROOT/model_runtime $PKG_CFLAGS"

objs=""
for src in "$ROOT"/model_runtime/*.cpp; do
    case "$src" in *_main.cpp) continue ;; esac
    base=$(basename "$src" .cpp)
    isa=""
    case "$base" in
        *_avx512) isa="-mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512bf16 -mfma -mf16c" ;;
        *_avx2) isa="-mavx2 -mfma -mf16c" ;;
    esac
    obj="$OUT/obj/$base.o"
    if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ]; then
        # shellcheck disable=SC2086
        if ! $CXX $CXXFLAGS $isa -fsanitize=fuzzer-no-link -c "$src" -o "$obj" 2>"$OUT/obj/$base.log"; then
            echo "build.sh: warning: skipping $src (see $OUT/obj/$base.log)" >&2
            rm -f "$obj"
            continue
        fi
    fi
    objs="$objs $obj"
done
rm -f "$OUT/libvlm_runtime_fuzz.a"
# shellcheck disable=SC2086
ar rcs "$OUT/libvlm_runtime_fuzz.a" $objs

status=0
for target in "$ROOT"/tests/fuzz/fuzz_*.cpp; do
    name=$(basename "$target" .cpp)
    # shellcheck disable=SC2086
    if $CXX $CXXFLAGS -fsanitize=fuzzer "$target" "$OUT/libvlm_runtime_fuzz.a" $PKG_LIBS \
            -lgif -lpthread -o "$OUT/$name"; then
        echo "built $OUT/$name"
    else
        echo "build.sh: FAILED to build $name" >&2
        status=1
    fi
done
exit $status
