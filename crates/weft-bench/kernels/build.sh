#!/usr/bin/env bash
# Builds the SIMD benchmark kernels as sightglass-style benchmarks:
#
#   crates/weft-bench/kernels/build.sh OUT_DIR
#
# makes OUT_DIR/<kernel>/benchmark.wasm (clang --target=wasm32-wasi -O3
# -msimd128, Debian's clang and wasi-libc) and, from a native build of the
# same source, OUT_DIR/<kernel>/default.stdout.expected, so that `weft bench`
# checks each engine's output against the native one. Exits 77 if clang or
# wasi-libc is missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:?usage: $0 OUT_DIR}"
clang="$(command -v clang-14 || command -v clang || true)"
if [ -z "$clang" ] || [ ! -f /usr/lib/wasm32-wasi/libc.a ]; then
    echo "clang and wasi-libc are needed (apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32)" >&2
    exit 77
fi
for src in "$here"/simd_*.c; do
    name="$(basename "$src" .c)"
    mkdir -p "$out/$name"
    "$clang" --target=wasm32-wasi -O3 -msimd128 -I"$here" -o "$out/$name/benchmark.wasm" "$src"
    "$clang" -O2 -I"$here" -o "$out/$name/native" "$src"
    "$out/$name/native" > "$out/$name/default.stdout.expected"
done
