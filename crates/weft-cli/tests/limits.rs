//! `weft run -W max-memory-size=BYTES` and `-W max-table-elements=N` limit
//! every memory and table of the guest: growth past them returns -1; `weft
//! run --fuel N` bounds what it runs.

use std::process::Command;

#[test]
fn memory_and_table_limits_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let wat = dir.path().join("grow.wat");
    std::fs::write(
        &wat,
        r#"(module (memory 1) (table 1 funcref)
          (func (export "memory") (param i32) (result i32) (memory.grow (local.get 0)))
          (func (export "table") (param i32) (result i32) (table.grow (ref.null func) (local.get 0))))"#,
    )
    .unwrap();
    let run = |opts: &[&str], func: &str, arg: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_weft")).arg("run").args(opts).args(["--invoke", func]).arg(&wat).arg(arg).output().unwrap();
        assert!(out.status.success(), "{opts:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(run(&[], "memory", "100"), "1");
    assert_eq!(run(&["-W", "max-memory-size=128K"], "memory", "1"), "1");
    assert_eq!(run(&["-W", "max-memory-size=128K"], "memory", "2"), "-1");
    assert_eq!(run(&["-W", "max-memory-size=1M"], "memory", "15"), "1");
    assert_eq!(run(&["-W", "max-memory-size=1M"], "memory", "16"), "-1");
    assert_eq!(run(&["-W", "max-table-elements=5"], "table", "4"), "1");
    assert_eq!(run(&["-W", "max-table-elements=5"], "table", "5"), "-1");
    let out = Command::new(env!("CARGO_BIN_EXE_weft")).args(["run", "-W", "max-memory-size=lots", "--invoke", "memory"]).arg(&wat).arg("1").output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not a size"));
}

/// `weft run --fuel N`: a guest that needs more traps with the out-of-fuel
/// message and status 134; enough fuel lets it finish.
#[test]
fn fuel_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let wat = dir.path().join("count.wat");
    std::fs::write(&wat, r#"(module (func (export "count") (param $n i32) (loop $l (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))))"#)
        .unwrap();
    let run = |fuel: &str| Command::new(env!("CARGO_BIN_EXE_weft")).args(["run", "--fuel", fuel, "--invoke", "count"]).arg(&wat).arg("100").output().unwrap();
    assert!(run("500").status.success(), "100 iterations of 5 operators fit in 500 units");
    let out = run("100");
    assert_eq!(out.status.code(), Some(134));
    assert!(String::from_utf8_lossy(&out.stderr).contains("all fuel consumed"), "{}", String::from_utf8_lossy(&out.stderr));
}
