#!/usr/bin/env bash
# Builds the C++ exception-handling guest (exceptions.cpp + eh_runtime.cpp)
# for wasm32-wasi with -fwasm-exceptions in both encodings, at -O0 and -O2,
# and natively for the expected output.
#
# Needs Debian's clang >= 20 with its wasm32 libc++ (CI's .ci/run installs):
#   apt-get install -y --no-install-recommends clang-22 lld-22 libc++-22-dev-wasm32 libc++abi-22-dev-wasm32 libclang-rt-22-dev-wasm32 wasi-libc g++ python3
#
# Usage: build.sh OUTDIR
# Writes to OUTDIR:
#   exceptions.O0.legacy.wasm  exceptions.O2.legacy.wasm   try/catch/catch_all/delegate/rethrow
#   exceptions.O0.exnref.wasm  exceptions.O2.exnref.wasm   try_table/throw_ref
#   exceptions.native          the same program built with g++ -O2
#   exceptions.expected        its stdout (the program exits 0)
# Every module is checked by check_wasm.py (tag, imports, opcodes).
# Exit status: 0 built; 2 a tool or package is missing (message on stderr),
# so that a test can skip; anything else is a real failure.
# Environment: CXX_EH_CLANG_VERSION=N picks clang-N (default: newest >= 20).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ $# -ne 1 ]; then
  echo "usage: $0 OUTDIR" >&2
  exit 64
fi
out=$1
mkdir -p "$out"

install_hint="apt-get install -y --no-install-recommends clang-22 lld-22 libc++-22-dev-wasm32 libc++abi-22-dev-wasm32 libclang-rt-22-dev-wasm32 wasi-libc g++ python3"
missing() {
  echo "cxx-eh: SKIP: $1 (install with: $install_hint)" >&2
  exit 2
}

# Finds a clang whose wasm32-wasi C++ toolchain is complete.
complete() {
  local v=$1
  [ -x "/usr/bin/clang++-$v" ] && [ -x "/usr/bin/wasm-ld-$v" ] &&
    [ -f "/usr/lib/llvm-$v/include/wasm32-wasi/c++/v1/exception" ] &&
    [ -f "/usr/lib/llvm-$v/lib/wasm32-wasi/libc++.a" ] &&
    [ -f "/usr/lib/llvm-$v/lib/wasm32-wasi/libc++abi.a" ] &&
    compgen -G "/usr/lib/llvm-$v/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a" >/dev/null
}
version=
if [ -n "${CXX_EH_CLANG_VERSION:-}" ]; then
  complete "$CXX_EH_CLANG_VERSION" || missing "clang-$CXX_EH_CLANG_VERSION with wasm32 libc++/libc++abi/compiler-rt"
  version=$CXX_EH_CLANG_VERSION
else
  for v in $(seq 40 -1 20); do
    if complete "$v"; then
      version=$v
      break
    fi
  done
  [ -n "$version" ] || missing "no clang >= 20 with wasm32 libc++, libc++abi and compiler-rt builtins"
fi
[ -f /usr/include/wasm32-wasi/stdio.h ] && [ -f /usr/lib/wasm32-wasi/libc.a ] &&
  [ -f /usr/lib/wasm32-wasi/crt1-command.o ] || missing "wasi-libc"
command -v g++ >/dev/null || missing "g++"
command -v python3 >/dev/null || missing "python3"

clangxx=/usr/bin/clang++-$version
libdir=/usr/lib/llvm-$version/lib/wasm32-wasi
# The libc++ headers and archives of this clang's version, not whichever
# version /usr/include/wasm32-wasi/c++ and /usr/lib/wasm32-wasi point at.
wasm_flags=(
  --target=wasm32-wasi -Wno-deprecated
  -std=c++17 -fwasm-exceptions
  -nostdinc++ -isystem "/usr/lib/llvm-$version/include/wasm32-wasi/c++/v1"
  -nostdlib++ "$libdir/libc++.a" "$libdir/libc++abi.a"
  -Wl,--strip-debug
)

for opt in O0 O2; do
  for enc in legacy exnref; do
    if [ $enc = legacy ]; then legacy=true; else legacy=false; fi
    wasm=$out/exceptions.$opt.$enc.wasm
    "$clangxx" "-$opt" -mllvm "-wasm-use-legacy-eh=$legacy" \
      "$here/exceptions.cpp" "$here/eh_runtime.cpp" "${wasm_flags[@]}" -o "$wasm"
    python3 "$here/check_wasm.py" $enc "$wasm"
  done
done

g++ -std=c++17 -O2 -o "$out/exceptions.native" "$here/exceptions.cpp"
"$out/exceptions.native" >"$out/exceptions.expected"
echo "cxx-eh: built with clang-$version into $out"
