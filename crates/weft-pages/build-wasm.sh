#!/usr/bin/env bash
# Builds weft-pages as a wasm32-wasi staticlib with Debian's rustc and links
# the C test program against it.
#
#   crates/weft-pages/build-wasm.sh OUT_DIR
#
# Produces OUT_DIR/libweft_pages.a, OUT_DIR/pages_test.wasm and the benchmark
# (tests/c/pages_bench.c) in three variants: pages_bench_weft.wasm (this
# crate's mmap), pages_bench_emulated.wasm (wasi-libc's -lwasi-emulated-mman)
# and pages_bench_firstfit.wasm (a linear-scan first-fit reference).
# Needs (Debian bookworm):
#   apt-get install -y rustc libstd-rust-dev-wasm32 clang lld wasi-libc libclang-rt-14-dev-wasm32
# Debian's rustc is used by full path (/usr/bin/rustc) so that it never
# shadows the rustup toolchain. Exits 77 ("skipped") if a tool is missing.
# Set WEFT_PAGES_FEATURES="threads" to add features (space-separated);
# WEFT_PAGES_RUSTC overrides the rustc path, WASI_SYSROOT the wasi-libc sysroot.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
out="${1:?usage: $0 OUT_DIR}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

rustc="${WEFT_PAGES_RUSTC:-/usr/bin/rustc}"
clang="$(command -v clang-14 || command -v clang || true)"
# Debian puts wasi-libc under /usr/{include,lib}/wasm32-wasi and clang finds
# it without --sysroot; other layouts ship a sysroot directory.
sysroot_flags=()
for candidate in "${WASI_SYSROOT:-}" /usr/share/wasi-sysroot /opt/wasi-sdk/share/wasi-sysroot; do
    if [ -n "$candidate" ] && [ -d "$candidate/lib/wasm32-wasi" ]; then
        sysroot_flags=(--sysroot="$candidate")
        break
    fi
done

missing=()
[ -x "$rustc" ] || missing+=("$rustc (apt-get install rustc)")
if [ -x "$rustc" ] && [ ! -d "$("$rustc" --print sysroot)/lib/rustlib/wasm32-wasi" ]; then
    missing+=("wasm32-wasi std for $rustc (apt-get install libstd-rust-dev-wasm32)")
fi
[ -n "$clang" ] || missing+=("clang (apt-get install clang)")
command -v wasm-ld >/dev/null || command -v wasm-ld-14 >/dev/null || missing+=("wasm-ld (apt-get install lld)")
if [ ${#sysroot_flags[@]} -eq 0 ] && [ ! -f /usr/lib/wasm32-wasi/libc.a ]; then
    missing+=("wasi-libc (apt-get install wasi-libc)")
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "build-wasm.sh: skipped, missing tools:" >&2
    printf '  %s\n' "${missing[@]}" >&2
    exit 77
fi

cfgs=(--cfg 'feature="c-abi"' --cfg 'feature="panic-handler"')
for feature in ${WEFT_PAGES_FEATURES:-}; do
    cfgs+=(--cfg "feature=\"$feature\"")
done

echo "+ $rustc (wasm32-wasi staticlib) -> $out/libweft_pages.a"
"$rustc" --edition 2021 --crate-type staticlib --crate-name weft_pages \
    --target wasm32-wasi -C opt-level=3 -C panic=abort "${cfgs[@]}" \
    "$here/src/lib.rs" -o "$out/libweft_pages.a"

echo "+ $clang --target=wasm32-wasi -> $out/pages_test.wasm"
# The library must come before libc so its mmap/munmap are the ones linked;
# -lwasi-emulated-mman is deliberately not linked.
"$clang" --target=wasm32-wasi "${sysroot_flags[@]}" -O2 -Wall -Wextra -Werror \
    -I "$here/include" "$here/tests/c/pages_test.c" "$out/libweft_pages.a" \
    -o "$out/pages_test.wasm"

cflags=(--target=wasm32-wasi "${sysroot_flags[@]}" -O2 -Wall -Wextra -Werror)
bench="$here/tests/c/pages_bench.c"
echo "+ $clang -> $out/pages_bench_{weft,emulated,firstfit}.wasm"
"$clang" "${cflags[@]}" -DBENCH_WEFT_PAGES -I "$here/include" "$bench" "$out/libweft_pages.a" \
    -o "$out/pages_bench_weft.wasm"
"$clang" "${cflags[@]}" -D_WASI_EMULATED_MMAN "$bench" -lwasi-emulated-mman \
    -o "$out/pages_bench_emulated.wasm"
"$clang" "${cflags[@]}" -DBENCH_LINEAR_FIRST_FIT "$bench" -o "$out/pages_bench_firstfit.wasm"

echo "built $out/pages_test.wasm $out/pages_bench_{weft,emulated,firstfit}.wasm"
