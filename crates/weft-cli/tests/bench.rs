//! `weft bench` on a sightglass-style module, measured in several processes
//! whose results it combines.

use std::process::Command;

/// A benchmark in sightglass's shape: a command that marks its measured work
/// with `bench.start` and `bench.end` (here a loop of a million iterations).
const BENCHMARK: &str = r#"(module
    (import "bench" "start" (func $start))
    (import "bench" "end" (func $end))
    (memory (export "memory") 1)
    (func (export "_start") (local $i i32)
      (call $start)
      (loop $l (br_if $l (i32.ne (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 1000000))))
      (call $end)))"#;

#[test]
fn bench_combines_several_processes() {
    let dir = std::env::temp_dir().join(format!("weft-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let module = dir.join("spin.wat");
    std::fs::write(&module, BENCHMARK).unwrap();
    let out =
        Command::new(env!("CARGO_BIN_EXE_weft")).args(["bench", "--interrupt", "none,mmu", "--iters", "2", "--processes", "3"]).arg(&module).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("1 benchmarks run, 3 processes of 2 iterations each"), "{stdout}");
    // Every (mode, phase) row counts the iterations of all three processes,
    // and the guest's output was right in each.
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("spin ") && !l.contains("/none")).collect();
    assert_eq!(rows.len(), 6, "{stdout}");
    for row in rows {
        let fields: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(&fields[fields.len() - 2..], ["6", "ok"], "{row}");
    }
    assert!(stdout.contains("spin                     weft mmu/none execute = "), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}
