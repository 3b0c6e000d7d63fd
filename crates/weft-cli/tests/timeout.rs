//! `weft run --timeout` stops a guest that runs forever, in both interruption
//! modes, with a clear message and exit code 124.

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn timeout_stops_an_infinite_loop() {
    let dir = std::env::temp_dir().join(format!("weft-timeout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wat = dir.join("loop.wat");
    std::fs::write(&wat, r#"(module (func $f (loop $l (br $l))) (func (export "_start") (call $f)))"#).unwrap();
    for mode in ["epoch", "mmu"] {
        let start = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_weft")).args(["run", "--timeout", "200ms", "-W", &format!("interrupt={mode}")]).arg(&wat).output().unwrap();
        let elapsed = start.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(124), "{mode}: {stderr}");
        assert!(stderr.contains("exceeded its time limit"), "{mode}: {stderr}");
        assert!(stderr.contains("wasm backtrace"), "{mode}: {stderr}");
        assert!(elapsed >= Duration::from_millis(200) && elapsed < Duration::from_secs(5), "{mode}: {elapsed:?}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_weft")).args(["run", "--timeout", "1s", "-W", "interrupt=none"]).arg(&wat).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs an interruption mode"));
    let _ = std::fs::remove_dir_all(&dir);
}
