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
    for (opts, expected) in
        [(&["-W", "simd=y"][..], "does not implement the simd proposal"), (&["-W", "tail-call=maybe"], "takes y or n"), (&["-W", "simdd=y"], "multi-memory")]
    {
        let out = run(opts);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(expected), "{opts:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
