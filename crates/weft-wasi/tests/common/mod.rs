//! Helpers shared by the weft-wasi integration tests: locating the shared
//! wasm data, copying fixtures to writable temp dirs, and running a WASI
//! command module with captured output.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use weft::{Engine, Linker, Module, Store};
use weft_wasi::{OutputPipe, OutputSink, WasiCtx, WasiCtxBuilder};

/// `$WEFT_WASM_DATA`, or `<workspace>/../shared/wasm-data`. `None` (with a
/// message) when absent outside CI; a panic when absent under `CI=true`.
pub fn wasm_data(sub: &str) -> Option<PathBuf> {
    let base = std::env::var_os("WEFT_WASM_DATA").map(PathBuf::from).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/wasm-data"));
    let dir = base.join(sub);
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").map(|v| v == "true" || v == "1").unwrap_or(false) {
        panic!("test data {} is missing (set WEFT_WASM_DATA); required under CI=true", dir.display());
    }
    eprintln!("SKIPPED: test data {} not found (set WEFT_WASM_DATA to run this test)", dir.display());
    None
}

/// Copies `src` recursively into `dst`, leaving every copy writable.
pub fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        let ft = entry.file_type().unwrap();
        if ft.is_dir() {
            copy_tree(&entry.path(), &to);
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), &to).unwrap();
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
            let mut perm = std::fs::metadata(&to).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perm.set_readonly(false);
            std::fs::set_permissions(&to, perm).unwrap();
        }
    }
    let mut perm = std::fs::metadata(dst).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(false);
    std::fs::set_permissions(dst, perm).unwrap();
}

/// What a command module did.
#[derive(Debug)]
pub struct Outcome {
    /// Exit code (0 if `_start` returned), or `Err(message)` for a trap or link error.
    pub exit: Result<i32, String>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Runs `_start` of the module at `wasm` with the context `builder` (its
/// stdout and stderr are replaced by pipes); `extra` defines more imports.
pub fn run_command(engine: &Engine, wasm: &Path, mut builder: WasiCtxBuilder, extra: impl FnOnce(&mut Linker<WasiCtx>)) -> Outcome {
    let out = OutputPipe::new();
    let err = OutputPipe::new();
    let ctx = builder.stdout(OutputSink::Pipe(out.clone())).stderr(OutputSink::Pipe(err.clone())).build();
    let exit = (|| -> anyhow::Result<Result<i32, String>> {
        let module = Module::new(engine, std::fs::read(wasm)?)?;
        let mut linker = Linker::new(engine);
        weft_wasi::add_to_linker(&mut linker, |c: &mut WasiCtx| c)?;
        extra(&mut linker);
        let mut store = Store::new(engine, ctx);
        let instance = linker.instantiate(&mut store, &module)?;
        let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
        Ok(match start.call(&mut store, ()) {
            Ok(()) => Ok(0),
            Err(e) => match weft_wasi::exit_code(&e) {
                Some(code) => Ok(code),
                None => Err(format!("{e:#}")),
            },
        })
    })()
    .unwrap_or_else(|e| Err(format!("{e:#}")));
    Outcome { exit, stdout: out.contents(), stderr: err.contents() }
}
