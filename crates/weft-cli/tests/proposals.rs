//! `weft run -W NAME=y|n` turns proposals on and off like `Config::wasm_*`.

use std::process::Command;

#[test]
fn proposal_switches_on_the_command_line() {
    let dir = std::env::temp_dir().join(format!("weft-proposals-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wat = dir.join("tail.wat");
    std::fs::write(&wat, r#"(module (func $f (result i32) (i32.const 7)) (func (export "g") (result i32) (return_call $f)))"#).unwrap();
    let run = |opts: &[&str]| Command::new(env!("CARGO_BIN_EXE_weft")).arg("run").args(opts).args(["--invoke", "g"]).arg(&wat).output().unwrap();

    for opts in [&[][..], &["-W", "tail-call=y"]] {
        let out = run(opts);
        assert!(out.status.success(), "{opts:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "7");
    }
    let out = run(&["-W", "tail-call=n"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("tail-call") && stderr.contains("turned off"), "{stderr}");
    // A proposal Weft does not implement cannot be turned on; a bad value or
    // name is an error that lists what is accepted.
    for (opts, expected) in [
        (&["-W", "threads=y"][..], "does not implement the threads proposal"),
        (&["-W", "tail-call=maybe"], "takes y or n"),
        (&["-W", "simdd=y"], "multi-memory"),
    ] {
        let out = run(opts);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(expected), "{opts:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `v128` arguments and results of `--invoke` are 128-bit integers (lane 0 in
/// the low bits, hexadecimal with `0x`); `-W simd=n` refuses SIMD modules
/// (and turns relaxed SIMD off with it).
#[test]
fn v128_on_the_command_line_and_simd_switched_off() {
    let dir = std::env::temp_dir().join(format!("weft-simd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wat = dir.join("simd.wat");
    std::fs::write(&wat, r#"(module (func (export "add") (param v128 v128) (result v128) (i64x2.add (local.get 0) (local.get 1))))"#).unwrap();
    let run = |opts: &[&str], args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_weft")).arg("run").args(opts).args(["--invoke", "add"]).arg(&wat).args(args).output().unwrap()
    };
    let out = run(&[], &["0x00000000000000010000000000000002", "5"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0x00000000000000010000000000000007");
    let out = run(&["-W", "simd=n"], &["1", "2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("simd") && stderr.contains("turned off"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
