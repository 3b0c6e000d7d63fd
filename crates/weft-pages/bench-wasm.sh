#!/usr/bin/env bash
# Runs the in-guest benchmark (tests/c/pages_bench.c, built by build-wasm.sh)
# under a Wasm runtime and prints medians and ratios.
#
#   crates/weft-pages/bench-wasm.sh WASM_DIR [RUNS] [RUNTIME...]
#
# WASM_DIR holds pages_bench_{weft,emulated,firstfit}.wasm; RUNS (default 11)
# is the number of processes per allocator, trace and touch mode (each
# process replays its trace once, from fresh memory; the allocators are
# interleaved so background load hits them alike). RUNTIME defaults to
# `target/release/weft run`. TRACES (default "fresh gc fragmented") and
# TOUCH (default "first all") select what runs.
set -euo pipefail

dir="${1:?usage: $0 WASM_DIR [RUNS] [RUNTIME...]}"
runs="${2:-11}"
shift $(( $# >= 2 ? 2 : 1 ))
if [ $# -gt 0 ]; then runtime=("$@"); else runtime=(target/release/weft run); fi
traces="${TRACES:-fresh gc fragmented}"
touches="${TOUCH:-first all}"
allocators=(weft emulated firstfit)

results="$(mktemp)"
trap 'rm -f "$results"' EXIT
for trace in $traces; do
    for touch in $touches; do
        for ((i = 0; i < runs; i++)); do
            for a in "${allocators[@]}"; do
                "${runtime[@]}" "$dir/pages_bench_$a.wasm" "$trace" "$touch" >>"$results"
            done
        done
    done
done

# One row per trace and touch mode: median time per allocator, ratios, and
# the (deterministic) bytes memset and memory grown.
awk '
function median(key,    n, i, j, t, v) {
    n = split(times[key], v, " ")
    for (i = 2; i <= n; i++) { t = v[i] + 0; for (j = i - 1; j >= 1 && v[j] + 0 > t; j--) v[j + 1] = v[j]; v[j + 1] = t }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
{
    for (f = 2; f <= NF; f++) { split($f, kv, "="); r[kv[1]] = kv[2] }
    if (r["errors"] != 0) { print "errors in: " $0 > "/dev/stderr"; bad = 1 }
    key = r["trace"] " " r["touch"] " " r["allocator"]
    times[key] = times[key] " " r["time_us"]
    memset[key] = r["bytes_memset"]; grown[key] = r["memory_grown_bytes"]; peak[key] = r["peak_extent_bytes"]
    if (!((r["trace"] " " r["touch"]) in seen)) { seen[r["trace"] " " r["touch"]] = 1; order[++rows] = r["trace"] " " r["touch"] }
}
END {
    mib = 1048576
    print "median time (us) per allocator, ratios to weft-pages; MiB memset, MiB peak extent and MiB grown as weft/emulated/firstfit"
    printf "%-16s | %10s %10s %10s | %8s %8s | %-20s | %-17s | %-17s\n", "trace touch", "weft", "emulated", "firstfit", "emu/weft", "ff/weft", "memset", "peak extent", "grown"
    for (i = 1; i <= rows; i++) {
        k = order[i]; w = median(k " weft-pages"); e = median(k " emulated-mman"); l = median(k " linear-first-fit")
        printf "%-16s | %10.1f %10.1f %10.1f | %7.2fx %7.2fx | %-20s | %-17s | %-17s\n", k, w, e, l, e / w, l / w, \
            sprintf("%.1f/%.1f/%.1f", memset[k " weft-pages"] / mib, memset[k " emulated-mman"] / mib, memset[k " linear-first-fit"] / mib), \
            sprintf("%.1f/%.1f/%.1f", peak[k " weft-pages"] / mib, peak[k " emulated-mman"] / mib, peak[k " linear-first-fit"] / mib), \
            sprintf("%.1f/%.1f/%.1f", grown[k " weft-pages"] / mib, grown[k " emulated-mman"] / mib, grown[k " linear-first-fit"] / mib)
    }
    exit bad
}' "$results"
