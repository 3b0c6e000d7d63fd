//! Real C programs (tests/c/*.c), compiled at test time with clang and
//! wasi-libc (Debian: clang lld wasi-libc libclang-rt-14-dev-wasm32), run
//! under the built `weft` binary: file copy through a `--dir` preopen, a
//! directory listing, stdin processing, `--env`, exit codes and traps.
//! Without the toolchain the tests skip with a message; under `CI=true` they fail.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn in_ci() -> bool {
    std::env::var("CI").map(|v| v == "true" || v == "1").unwrap_or(false)
}

/// Compiles `tests/c/<name>.c` into `out_dir`, or `None` (skip) when clang
/// cannot build for wasm32-wasi here.
fn compile(name: &str, out_dir: &Path) -> Option<PathBuf> {
    let clang = std::env::var("WASI_CC").unwrap_or_else(|_| "clang".to_string());
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c").join(format!("{name}.c"));
    let out = out_dir.join(format!("{name}.wasm"));
    let mut cmd = Command::new(&clang);
    cmd.args(["--target=wasm32-wasi", "-O2", "-o"]).arg(&out).arg(&src);
    if let Ok(sysroot) = std::env::var("WASI_SYSROOT") {
        cmd.arg(format!("--sysroot={sysroot}"));
    }
    let problem = match cmd.output() {
        Ok(o) if o.status.success() => return Some(out),
        Ok(o) => format!("`{clang} --target=wasm32-wasi` failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => format!("cannot run `{clang}`: {e}"),
    };
    if in_ci() {
        panic!("{problem}\n(install clang lld wasi-libc libclang-rt-14-dev-wasm32; required under CI=true)");
    }
    eprintln!("SKIPPED: {problem} (install clang lld wasi-libc libclang-rt-14-dev-wasm32 to run this test)");
    None
}

fn weft(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .env("WEFT_TEST_INHERITED", "from-host")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn file_copy_through_a_preopened_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(wasm) = compile("copy", tmp.path()) else { return };
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let content: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(data.join("in.bin"), &content).unwrap();
    let dir = format!("{}::/work", data.display());
    let o = weft(&["run", "--dir", &dir, wasm.to_str().unwrap(), "/work/in.bin", "/work/out.bin"], b"");
    assert_eq!(s(&o.stderr), "");
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(s(&o.stdout), "copied 10000 bytes\n");
    assert_eq!(std::fs::read(data.join("out.bin")).unwrap(), content);
    // Without a preopen the file is unreachable.
    let o = weft(&["run", wasm.to_str().unwrap(), "/work/in.bin", "/work/out2.bin"], b"");
    assert_eq!(o.status.code(), Some(1));
    assert!(s(&o.stderr).contains("/work/in.bin"), "{}", s(&o.stderr));
    // Nor can the guest climb out of its preopen.
    let o = weft(&["run", "--dir", &dir, wasm.to_str().unwrap(), "/work/../in.bin", "/work/x"], b"");
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn list_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(wasm) = compile("ls", tmp.path()) else { return };
    let root = tmp.path().join("tree");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("b.txt"), "hello").unwrap();
    std::fs::write(root.join("a.txt"), "").unwrap();
    std::os::unix::fs::symlink("b.txt", root.join("c_link")).unwrap();
    let dir = root.to_str().unwrap();
    // Plain `--dir DIR` maps to the same name.
    let o = weft(&["run", "--dir", dir, wasm.to_str().unwrap(), dir], b"");
    assert_eq!(s(&o.stderr), "");
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(s(&o.stdout), "f a.txt 0\nf b.txt 5\nl c_link 0\nd sub 0\n");
    let mapped = format!("{dir}::.");
    let o = weft(&[wasm.to_str().unwrap(), "--dir", &mapped], b"");
    assert_eq!(o.status.code(), Some(1), "options after the module belong to the guest");
    assert!(s(&o.stderr).contains("--dir"), "{}", s(&o.stderr));
    let o = weft(&["run", "--dir", &mapped, wasm.to_str().unwrap()], b"");
    assert_eq!(s(&o.stdout), "f a.txt 0\nf b.txt 5\nl c_link 0\nd sub 0\n");
}

#[test]
fn stdin_env_and_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(wasm) = compile("wc", tmp.path()) else { return };
    let o = weft(&[wasm.to_str().unwrap()], b"hello wasm world\nsecond line\n");
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(s(&o.stdout), "2 5 29\nHELLO WASM WORLD\nSECOND LINE\n");
    assert_eq!(s(&o.stderr), "");
    let o = weft(&["run", "--env", "WHO=me", wasm.to_str().unwrap(), "42"], b"x");
    assert_eq!(o.status.code(), Some(42), "the guest's exit status is the process's");
    assert_eq!(s(&o.stdout), "0 1 1\nX");
    assert_eq!(s(&o.stderr), "who=me\n");
    let o = weft(&["run", "--env", "WEFT_TEST_INHERITED", wasm.to_str().unwrap()], b"");
    let o2 = weft(&["run", "--env", "WHO", wasm.to_str().unwrap()], b"");
    assert_eq!(s(&o.stderr), "");
    assert_eq!(s(&o2.stderr), "", "an unset host variable is not passed");
}

#[test]
fn inherited_env_var() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(wasm) = compile("wc", tmp.path()) else { return };
    let o = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["run", "--env", "WHO", wasm.to_str().unwrap()])
        .env("WHO", "host-value")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(s(&o.stderr), "who=host-value\n");
}

#[test]
fn trap_prints_message_and_backtrace() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(wasm) = compile("crash", tmp.path()) else { return };
    let o = weft(&["run", wasm.to_str().unwrap()], b"");
    assert_eq!(s(&o.stdout), "before\n");
    let err = s(&o.stderr);
    assert!(err.contains("wasm trap: unreachable"), "{err}");
    assert!(err.contains("wasm backtrace:"), "{err}");
    assert!(err.contains("fail") || err.contains("abort"), "{err}");
    assert_ne!(o.status.code(), Some(0));
}

#[test]
fn missing_import_names_module_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let wat = tmp.path().join("m.wat");
    std::fs::write(&wat, r#"(module (import "env" "mystery" (func)) (memory (export "memory") 1) (func (export "_start")))"#).unwrap();
    let o = weft(&["run", wat.to_str().unwrap()], b"");
    assert_ne!(o.status.code(), Some(0));
    assert!(s(&o.stderr).contains("`env::mystery`"), "{}", s(&o.stderr));
}

#[test]
fn invoke_still_works() {
    let tmp = tempfile::tempdir().unwrap();
    let wat = tmp.path().join("add.wat");
    std::fs::write(&wat, r#"(module (func (export "add") (param i32 i64) (result i64) local.get 1 local.get 0 i64.extend_i32_s i64.add))"#).unwrap();
    let o = weft(&["run", "--invoke", "add", wat.to_str().unwrap(), "-2", "40"], b"");
    assert_eq!(s(&o.stderr), "");
    assert_eq!(s(&o.stdout), "38\n");
}
