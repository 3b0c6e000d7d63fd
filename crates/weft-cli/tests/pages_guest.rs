//! weft-pages inside a guest: `crates/weft-pages/build-wasm.sh` builds the
//! crate as a wasm32-wasi staticlib with Debian's rustc 1.63 and links its C
//! test program (`tests/c/pages_test.c`) and benchmark (`tests/c/pages_bench.c`)
//! with clang 14 and wasi-libc; they run here under the built `weft` binary.
//! Needs (Debian): rustc libstd-rust-dev-wasm32 clang lld wasi-libc
//! libclang-rt-14-dev-wasm32 (`./scripts/test` installs them). Without them
//! (build-wasm.sh exits 77) the tests skip with a message; under `CI=true`
//! they fail.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

#[path = "../../weft-pages/tests/support/guests.rs"]
mod support;

fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The built guests, or `None` (skip) when the toolchain is missing outside CI.
fn guests() -> Option<&'static Path> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../weft-pages/build-wasm.sh");
    support::build_guests(&script, &Path::new(env!("CARGO_TARGET_TMPDIR")).join("weft-pages-wasm"))
}

fn weft_run(wasm: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weft")).arg("run").arg(wasm).args(args).output().expect("run weft")
}

/// `key=value` fields of the first stdout line starting with `prefix`.
fn fields(stdout: &str, prefix: &str) -> HashMap<String, String> {
    let line = stdout.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{stdout}"));
    line[prefix.len()..].split_whitespace().filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn number(fields: &HashMap<String, String>, key: &str) -> u64 {
    fields.get(key).unwrap_or_else(|| panic!("no {key} in {fields:?}")).parse().unwrap_or_else(|e| panic!("{key} in {fields:?}: {e}"))
}

#[test]
fn pages_test_passes_under_weft() {
    let Some(dir) = guests() else { return };
    let o = weft_run(&dir.join("pages_test.wasm"), &[]);
    let (out, err) = (s(&o.stdout), s(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(err, "");
    // The program's own summary: "pages_test: N passed, 0 failed".
    let summary = out.lines().find_map(|l| l.strip_prefix("pages_test: ")).unwrap_or_else(|| panic!("no summary in:\n{out}"));
    let (passed, failed) = summary.strip_suffix(" failed").and_then(|rest| rest.split_once(" passed, ")).unwrap_or_else(|| panic!("bad summary {summary:?}"));
    assert!(passed.parse::<u32>().unwrap() > 0, "{summary}");
    assert_eq!(failed, "0", "{out}");
    // Fresh allocations are handed out without any memset.
    let fresh = fields(&out, "after 8 fresh 1 MiB maps:");
    assert_eq!(number(&fresh, "bytes_memset"), 0, "{out}");
    assert_eq!(number(&fresh, "bytes_avoided"), 8 << 20, "{out}");
    // The later memset is only the reuse of freed, dirty pages.
    let stats = fields(&out, "stats:");
    assert_eq!(number(&stats, "page_size"), 65536);
    assert_eq!(number(&stats, "pages_in_use"), 0);
}

/// One replay of `trace` by a pages_bench variant; its result fields.
fn bench(dir: &Path, variant: &str, trace: &str) -> HashMap<String, String> {
    let o = weft_run(&dir.join(format!("pages_bench_{variant}.wasm")), &[trace]);
    let out = s(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{variant} {trace}:\n{out}{}", s(&o.stderr));
    let f = fields(&out, "pages_bench:");
    assert_eq!(number(&f, "errors"), 0, "{out}");
    f
}

/// Smoke test of the benchmark's three builds (timings are not asserted; see
/// the weft-pages README for measured numbers): fresh maps cost no memset
/// with weft-pages and a full memset with wasi-libc's emulation, and on the
/// GC-like trace weft-pages reaches no higher address than a first-fit
/// reference (fragmentation).
#[test]
fn pages_bench_runs_under_weft() {
    let Some(dir) = guests() else { return };
    let weft = bench(dir, "weft", "fresh");
    let emulated = bench(dir, "emulated", "fresh");
    assert_eq!(number(&weft, "bytes_memset"), 0);
    assert_eq!(number(&emulated, "bytes_memset"), 64 << 20);
    assert_eq!(number(&weft, "bytes_mapped"), 64 << 20);

    let weft = bench(dir, "weft", "gc");
    let first_fit = bench(dir, "firstfit", "gc");
    let emulated = bench(dir, "emulated", "gc");
    assert_eq!(number(&weft, "bytes_memset"), number(&first_fit, "bytes_memset"));
    assert!(number(&weft, "bytes_memset") < number(&emulated, "bytes_memset"));
    assert!(number(&weft, "peak_extent_bytes") <= number(&first_fit, "peak_extent_bytes"), "weft {weft:?}\nfirst-fit {first_fit:?}");
    // wasi-libc's emulation cannot free part of a mapping, so it needs more.
    assert!(number(&weft, "peak_extent_bytes") < number(&emulated, "peak_extent_bytes"));
}
