//! `weft bench` on a sightglass module, in one process and in several whose
//! results it combines.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The shared sightglass data, or `None` outside CI when it is absent.
fn sightglass_module(bench: &str) -> Option<PathBuf> {
    let base = std::env::var_os("WEFT_WASM_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/wasm-data"));
    let module = base.join("sightglass").join(bench).join("benchmark.wasm");
    if module.is_file() {
        return Some(module);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("test data {} is missing (set WEFT_WASM_DATA); required under CI=true", module.display());
    }
    eprintln!("SKIPPED: test data {} not found (set WEFT_WASM_DATA to run this test)", module.display());
    None
}

#[test]
fn bench_combines_several_processes() {
    let Some(module) = sightglass_module("noop") else { return };
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["bench", "--interrupt", "none,mmu", "--iters", "2", "--processes", "3"])
        .arg(&module)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("1 benchmarks run, 3 processes of 2 iterations each"), "{stdout}");
    // Every (mode, phase) row counts the iterations of all three processes,
    // and the guest's output was right in each.
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("noop ") && !l.contains("/none")).collect();
    assert_eq!(rows.len(), 6, "{stdout}");
    for row in rows {
        let fields: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(&fields[fields.len() - 2..], ["6", "ok"], "{row}");
    }
    assert!(stdout.contains("noop                     weft mmu/none execute = "), "{stdout}");
}
