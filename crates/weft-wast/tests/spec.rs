//! Runs the official spec test suite from `../shared/wasm-data/testsuite` (or
//! `$WEFT_WASM_DATA/testsuite`).
//!
//! - Every top-level script not listed in `spec-scope.txt`, and every script
//!   under `legacy/` (the legacy exception-handling encoding), must pass
//!   completely, in every configuration below.
//! - Scripts listed there (out of scope, or known to fail, each with its reason)
//!   and every script under `proposals/` and `custom/` must still end
//!   normally: the runner reports failures but the process never crashes.
//!
//! Stack switching is off here: the core suite checks Wasm 3.0, whose
//! `tag.wast` refuses tags with results, which stack switching allows (its
//! own scripts run in `tests/stack_switching.rs`).
//!
//! Without the data the test fails under CI (`CI=true`) and is skipped, with a
//! message, elsewhere.

use std::path::{Path, PathBuf};

use weft::{Config, Engine, Interruption};
use weft_wast::WastRunner;

fn data_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("WEFT_WASM_DATA") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/wasm-data"),
    };
    dir.join("testsuite").is_dir().then_some(dir)
}

fn listed_files() -> Vec<(String, String)> {
    include_str!("spec-scope.txt")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, why) = l.split_once(':').unwrap_or((l, ""));
            (name.trim().to_string(), why.trim().to_string())
        })
        .collect()
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|e| e == "wast") {
            out.push(p);
        }
    }
}

/// Whether a script at `rel` (relative to the suite) is in scope unless
/// listed: the top level and the legacy exception-handling folder.
fn in_scope_folder(rel: &str) -> bool {
    !rel.contains('/') || rel.starts_with("legacy/")
}

fn main() {
    let Some(data) = data_dir() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            eprintln!("spec test data not found: set WEFT_WASM_DATA or place it at ../shared/wasm-data");
            std::process::exit(1);
        }
        eprintln!("SKIPPED: spec test data not found (set WEFT_WASM_DATA); 0 passed, 0 failed");
        return;
    };
    let suite = data.join("testsuite");
    let listed = listed_files();
    let is_listed = |name: &str| listed.iter().any(|(n, _)| n == name);
    // The core suite is Wasm 3.0, which stack switching extends (tags with
    // results become valid, against tag.wast): its scripts run in
    // `tests/stack_switching.rs`, with it on.
    let mut config = Config::new();
    config.parallel_compilation(false).wasm_stack_switching(false);
    let engine = Engine::new(&config).unwrap();
    let runner = WastRunner::new(&engine);

    let mut files = Vec::new();
    collect(&suite, &mut files);
    let (mut passed, mut failed, mut tolerated) = (0usize, 0usize, 0usize);
    let mut failing_files = Vec::new();
    for path in &files {
        let rel = path.strip_prefix(&suite).unwrap().to_string_lossy().to_string();
        let top_level = in_scope_folder(&rel);
        let must_pass = top_level && !is_listed(rel.trim_end_matches(".wast"));
        let report = match runner.run_file(path) {
            Ok(r) => r,
            Err(e) if must_pass => {
                println!("FAIL {rel}: {e:#}");
                failing_files.push(rel);
                failed += 1;
                continue;
            }
            Err(e) => {
                println!("note {rel}: {e:#}");
                tolerated += 1;
                continue;
            }
        };
        if must_pass {
            if report.failed == 0 {
                println!("ok   {rel}: {} directives", report.passed);
                passed += 1;
            } else {
                println!("FAIL {rel}: {} passed, {} failed", report.passed, report.failed);
                for f in report.failures.iter().take(10) {
                    println!("     {f}");
                }
                failing_files.push(rel);
                failed += 1;
            }
        } else {
            println!("out-of-scope {rel}: {} passed, {} failed (ended normally)", report.passed, report.failed);
            tolerated += 1;
        }
    }
    // The in-scope scripts again in other configurations: memory accesses
    // with explicit bounds checks instead of guard pages, and every script
    // with interruption checks compiled in (MMU page mode also makes each
    // prologue's stack check an interruption point, which must be found in
    // every function that calls, and segment probes must each be found and
    // rewritten after compilation; in every mode the translator verifies that
    // its checks cut every cycle and, but in page mode, precede every call),
    // and every script again with fuel counted (and more than enough given).
    const MEMORY_SCRIPTS: &[&str] = &[
        "address",
        "align",
        "bulk",
        "endianness",
        "float_memory",
        "load",
        "memory",
        "store",
        "simd_address",
        "simd_align",
        "simd_load",
        "simd_store",
        "simd_memory",
    ];
    // Scripts whose results are floats (or vectors of them): rerun with NaN
    // canonicalization, whose results must match the spec's NaN patterns too.
    const FLOAT_SCRIPTS: &[&str] = &["f32", "f64", "float", "conversions", "simd_f", "simd_i32x4_trunc", "relaxed", "i32x4_relaxed"];
    // A configuration's name, how it changes the default, and which scripts it reruns.
    type Rerun = (&'static str, fn(&mut Config), fn(&str) -> bool);
    let reruns: [Rerun; 7] = [
        (
            "bounds-checked memories",
            |c| {
                c.memory_guard(false);
            },
            |name| MEMORY_SCRIPTS.iter().any(|p| name.starts_with(p)),
        ),
        (
            "MMU page interruption",
            |c| {
                c.interruption(Interruption::MmuPage);
            },
            |_| true,
        ),
        (
            "MMU page interruption, segment probes",
            |c| {
                c.interruption(Interruption::MmuPage).mmu_segment_probes(true);
            },
            |_| true,
        ),
        (
            "epoch interruption",
            |c| {
                c.interruption(Interruption::Epoch);
            },
            |_| true,
        ),
        (
            "NaN canonicalization",
            |c| {
                c.cranelift_nan_canonicalization(true);
            },
            |name| FLOAT_SCRIPTS.iter().any(|p| name.starts_with(p)),
        ),
        (
            "MMU pointer interruption",
            |c| {
                c.interruption(Interruption::MmuPointer);
            },
            |_| true,
        ),
        (
            "fuel",
            |c| {
                c.consume_fuel(true);
            },
            |_| true,
        ),
    ];
    for (label, configure, selected) in reruns {
        let mut config = Config::new();
        config.parallel_compilation(false).wasm_stack_switching(false);
        configure(&mut config);
        let runner = WastRunner::new(&Engine::new(&config).unwrap());
        for path in &files {
            let rel = path.strip_prefix(&suite).unwrap().to_string_lossy().to_string();
            let name = rel.trim_end_matches(".wast");
            if !in_scope_folder(&rel) || is_listed(name) || !selected(name) {
                continue;
            }
            match runner.run_file(path) {
                Ok(r) if r.failed == 0 => {
                    println!("ok   {rel} ({label}): {} directives", r.passed);
                    passed += 1;
                }
                Ok(r) => {
                    println!("FAIL {rel} ({label}): {} passed, {} failed", r.passed, r.failed);
                    for f in r.failures.iter().take(10) {
                        println!("     {f}");
                    }
                    failing_files.push(format!("{rel} ({label})"));
                    failed += 1;
                }
                Err(e) => {
                    println!("FAIL {rel} ({label}): {e:#}");
                    failing_files.push(format!("{rel} ({label})"));
                    failed += 1;
                }
            }
        }
    }

    println!("\nspec files: {passed} in scope passed, {failed} in scope failed, {tolerated} out of scope ended normally");
    if !failing_files.is_empty() {
        println!("failing: {}", failing_files.join(", "));
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
