//! Runs the stack-switching proposal's scripts from
//! `../shared/wasm-data/stack-switching` (or `$WEFT_WASM_DATA/stack-switching`):
//! its core tests (`test/core/stack-switching/*.wast` and its `tag.wast`) and
//! every example (`proposals/stack-switching/examples/*.wast`, which assert
//! their results), in every configuration that changes compiled code.
//!
//! Every directive must pass but those listed in `stack-switching-scope.txt`
//! (each with its reason), which must fail: a listed directive that passes
//! is reported, so the list stays current.
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
    let dir = dir.join("stack-switching");
    dir.is_dir().then_some(dir)
}

/// The directives allowed to fail, as (script, line).
fn listed() -> Vec<(String, usize)> {
    include_str!("stack-switching-scope.txt")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut parts = l.splitn(3, ':');
            let script = parts.next().unwrap().trim().to_string();
            let line = parts.next().and_then(|n| n.trim().parse().ok()).expect("scope lines are `script:line: reason`");
            (script, line)
        })
        .collect()
}

fn scripts(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for sub in ["test/core/stack-switching", "proposals/stack-switching/examples"] {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir.join(sub)).unwrap().map(|e| e.unwrap().path()).collect();
        entries.retain(|p| p.extension().is_some_and(|e| e == "wast"));
        entries.sort();
        files.extend(entries);
    }
    files.push(dir.join("test/core/tag.wast"));
    files
}

fn main() {
    let Some(data) = data_dir() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            eprintln!("stack-switching test data not found: set WEFT_WASM_DATA or place it at ../shared/wasm-data");
            std::process::exit(1);
        }
        eprintln!("SKIPPED: stack-switching test data not found (set WEFT_WASM_DATA); 0 passed, 0 failed");
        return;
    };
    let listed = listed();
    let files = scripts(&data);
    type Configure = fn(&mut Config);
    let configs: [(&str, Configure); 7] = [
        ("default", |_| {}),
        ("bounds-checked memories", |c| {
            c.memory_guard(false);
        }),
        ("MMU page interruption", |c| {
            c.interruption(Interruption::MmuPage);
        }),
        ("MMU page interruption, segment probes", |c| {
            c.interruption(Interruption::MmuPage).mmu_segment_probes(true);
        }),
        ("MMU pointer interruption", |c| {
            c.interruption(Interruption::MmuPointer);
        }),
        ("epoch interruption", |c| {
            c.interruption(Interruption::Epoch);
        }),
        ("fuel", |c| {
            c.consume_fuel(true);
        }),
    ];
    let (mut passed, mut failed) = (0usize, 0usize);
    let mut failing = Vec::new();
    for (label, configure) in configs {
        let mut config = Config::new();
        config.parallel_compilation(false);
        configure(&mut config);
        let runner = WastRunner::new(&Engine::new(&config).unwrap());
        for path in &files {
            let rel = path.strip_prefix(&data).unwrap().to_string_lossy().to_string();
            let script = rel.trim_end_matches(".wast");
            let allowed: Vec<usize> = listed.iter().filter(|(s, _)| s == script).map(|(_, l)| *l).collect();
            let report = match runner.run_file(path) {
                Ok(r) => r,
                Err(e) => {
                    println!("FAIL {rel} ({label}): {e:#}");
                    failing.push(format!("{rel} ({label})"));
                    failed += 1;
                    continue;
                }
            };
            // A failure reads `path:line:col: message`.
            let line_of = |f: &str| f.strip_prefix(&path.display().to_string()).and_then(|r| r.split(':').nth(1)).and_then(|l| l.parse::<usize>().ok());
            let unexpected: Vec<&String> = report.failures.iter().filter(|f| !line_of(f).is_some_and(|l| allowed.contains(&l))).collect();
            let failed_lines: Vec<usize> = report.failures.iter().filter_map(|f| line_of(f)).collect();
            let now_passing: Vec<usize> = allowed.iter().copied().filter(|l| !failed_lines.contains(l)).collect();
            if unexpected.is_empty() && now_passing.is_empty() {
                println!("ok   {rel} ({label}): {} directives passed, {} listed", report.passed, allowed.len());
                passed += 1;
            } else {
                println!("FAIL {rel} ({label}): {} passed, {} failed", report.passed, report.failed);
                for f in unexpected.iter().take(10) {
                    println!("     {f}");
                }
                for l in now_passing {
                    println!("     line {l} is listed in stack-switching-scope.txt but passed: remove it");
                }
                failing.push(format!("{rel} ({label})"));
                failed += 1;
            }
        }
    }
    println!("\nstack-switching script runs: {passed} passed, {failed} failed");
    if !failing.is_empty() {
        println!("failing: {}", failing.join(", "));
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
