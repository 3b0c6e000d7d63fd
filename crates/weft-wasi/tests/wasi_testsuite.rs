//! Runs the WASI preview1 conformance tests (WebAssembly/wasi-testsuite,
//! prebuilt) from the shared wasm data, each per its JSON spec: arguments,
//! environment, the root dir preopened as `/` (on a writable temp copy),
//! exit code, stdout and stderr. Tests listed in
//! `wasi-testsuite-exclusions.txt` are skipped with their reason.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use weft::Engine;
use weft_wasi::WasiCtx;

fn exclusions() -> BTreeMap<String, String> {
    let text = include_str!("wasi-testsuite-exclusions.txt");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, reason) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
            (name.to_string(), reason.trim().to_string())
        })
        .collect()
}

fn remove_cleanup(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "cleanup") {
            if p.is_dir() {
                std::fs::remove_dir_all(&p).unwrap();
            } else {
                std::fs::remove_file(&p).unwrap();
            }
        } else if p.is_dir() && !p.is_symlink() {
            remove_cleanup(&p);
        }
    }
}

#[test]
fn wasi_testsuite() {
    let Some(data) = common::wasm_data("wasi-testsuite/tests") else { return };
    let excluded = exclusions();
    let engine = Engine::default();
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    let mut failures = Vec::new();
    let only = std::env::var("WASI_TEST_FILTER").ok();
    let mut suites: Vec<_> = std::fs::read_dir(&data).unwrap().map(|e| e.unwrap().path()).collect();
    suites.sort();
    for suite in suites {
        let src = suite.join("testsuite/wasm32-wasip1");
        if !src.is_dir() {
            continue;
        }
        let suite_name = suite.file_name().unwrap().to_string_lossy().to_string();
        let tmp = tempfile::tempdir().unwrap();
        common::copy_tree(&src, tmp.path());
        let mut tests: Vec<_> =
            std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "wasm")).collect();
        tests.sort();
        for wasm in tests {
            let stem = wasm.file_stem().unwrap().to_string_lossy().to_string();
            let name = format!("{suite_name}/{stem}");
            if only.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
                continue;
            }
            if let Some(reason) = excluded.get(&name) {
                println!("SKIP {name}: {reason}");
                skipped += 1;
                continue;
            }
            remove_cleanup(tmp.path());
            let spec: serde_json::Value =
                std::fs::read_to_string(wasm.with_extension("json")).ok().map(|s| serde_json::from_str(&s).unwrap()).unwrap_or(serde_json::json!({}));
            let mut b = WasiCtx::builder();
            b.arg(wasm.file_name().unwrap().to_string_lossy());
            for a in spec["args"].as_array().into_iter().flatten() {
                b.arg(a.as_str().unwrap());
            }
            for (k, v) in spec["env"].as_object().into_iter().flatten() {
                b.env(k, v.as_str().unwrap());
            }
            if let Some(root) = spec["root"].as_str() {
                b.preopened_dir(tmp.path().join(root), "/", weft_wasi::FsPerms::ReadWrite).unwrap();
            }
            let want_exit = spec["exit_code"].as_i64().unwrap_or(0) as i32;
            // As in the reference runner, a stream is checked only when the spec gives it.
            let want_out = spec["stdout"].as_str();
            let want_err = spec["stderr"].as_str();
            let o = common::run_command(&engine, &wasm, b, |_| {});
            let mut problems = Vec::new();
            match &o.exit {
                Ok(c) if *c == want_exit => {}
                Ok(c) => problems.push(format!("exit code {c}, expected {want_exit}")),
                Err(e) => problems.push(format!("error: {e}")),
            }
            if let Some(want_out) = want_out.filter(|w| o.stdout != w.as_bytes()) {
                problems.push(format!("stdout {:?}, expected {want_out:?}", String::from_utf8_lossy(&o.stdout)));
            }
            if let Some(want_err) = want_err.filter(|w| o.stderr != w.as_bytes()) {
                problems.push(format!("stderr {:?}, expected {want_err:?}", String::from_utf8_lossy(&o.stderr)));
            }
            if problems.is_empty() {
                passed += 1;
            } else {
                failed += 1;
                println!("FAIL {name}: {}", problems.join("; "));
                failures.push(name);
            }
        }
    }
    println!("wasi-testsuite: {passed} passed, {failed} failed, {skipped} skipped");
    assert!(failures.is_empty(), "failing wasi-testsuite tests: {failures:?}");
    assert!(passed > 0, "no wasi-testsuite test ran");
}
