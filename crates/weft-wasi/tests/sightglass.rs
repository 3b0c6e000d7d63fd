//! Runs every sightglass benchmark module from the shared wasm data to
//! completion: from its own folder preopened as `.`, no arguments, no stdin,
//! `bench.start`/`bench.end` as no-op imports, stdout/stderr compared line by
//! line with the expected files. Every module must run, the SIMD ones
//! (blake3-simd, intgemm-simd, meshoptimizer) included.

mod common;

use std::path::Path;
use std::time::Instant;

use weft::Engine;
use weft_wasi::WasiCtx;

/// Benchmarks that need SIMD: they must run like the others.
const SIMD: &[&str] = &["blake3-simd", "intgemm-simd", "meshoptimizer"];

fn expected(dir: &Path, stem: &str, stream: &str) -> Option<String> {
    [format!("{stem}.{stream}.expected"), format!("default.{stream}.expected")]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .map(|p| std::fs::read_to_string(p).unwrap())
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().map(str::trim_end).collect()
}

#[test]
fn sightglass_benchmarks() {
    let Some(data) = common::wasm_data("sightglass") else { return };
    let engine = Engine::default();
    let only = std::env::var("SIGHTGLASS_FILTER").ok();
    let (mut passed, mut failed, mut simd_ran) = (0, 0, Vec::new());
    let mut failures = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(&data).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    for dir in dirs {
        let bench = dir.file_name().unwrap().to_string_lossy().to_string();
        let mut wasms: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "wasm")).collect();
        wasms.sort();
        for wasm in wasms {
            let stem = wasm.file_stem().unwrap().to_string_lossy().to_string();
            let name = format!("{bench}/{stem}");
            if only.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
                continue;
            }
            if SIMD.contains(&bench.as_str()) {
                simd_ran.push(name.clone());
            }
            let start = Instant::now();
            let mut b = WasiCtx::builder();
            b.preopened_dir(&dir, ".", weft_wasi::FsPerms::ReadWrite).unwrap();
            let o = common::run_command(&engine, &wasm, b, |linker| {
                linker.func_wrap("bench", "start", || {}).unwrap();
                linker.func_wrap("bench", "end", || {}).unwrap();
            });
            let secs = start.elapsed().as_secs_f64();
            let mut problems = Vec::new();
            match &o.exit {
                Ok(0) => {}
                Ok(c) => problems.push(format!("exit code {c}")),
                Err(e) => problems.push(format!("error: {e}")),
            }
            let out = String::from_utf8_lossy(&o.stdout);
            let err = String::from_utf8_lossy(&o.stderr);
            if let Some(want) = expected(&dir, &stem, "stdout") {
                if lines(&out) != lines(&want) {
                    problems.push(format!("stdout {out:?}, expected {want:?}"));
                }
            }
            if let Some(want) = expected(&dir, &stem, "stderr") {
                if lines(&err) != lines(&want) {
                    problems.push(format!("stderr {err:?}, expected {want:?}"));
                }
            }
            if problems.is_empty() {
                println!("ok {name} ({secs:.1}s)");
                passed += 1;
            } else {
                println!("FAIL {name} ({secs:.1}s): {}", problems.join("; "));
                failed += 1;
                failures.push(name);
            }
        }
    }
    println!("sightglass: SIMD benchmarks run: {simd_ran:?}");
    println!("sightglass: {passed} passed, {failed} failed");
    assert!(failures.is_empty(), "failing sightglass benchmarks: {failures:?}");
    assert!(passed > 0, "no sightglass benchmark ran");
    assert!(only.is_some() || simd_ran.len() >= SIMD.len(), "SIMD benchmarks missing from the data: {simd_ran:?}");
}
