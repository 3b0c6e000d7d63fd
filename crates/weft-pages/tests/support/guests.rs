//! Builds the C guest programs that link weft-pages (`build-wasm.sh`), once
//! per test process, for the tests of other packages that run them (included
//! with `#[path]`: `weft-cli`'s guest tests and the `pages` example's test).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Whether the tests run under CI, where a missing toolchain is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").map(|v| v == "true" || v == "1").unwrap_or(false)
}

/// Builds the guests with `script` (the path of `crates/weft-pages/build-wasm.sh`)
/// into `out_dir`; `None` (skip, with a message) when the toolchain is
/// missing outside CI.
///
/// # Panics
/// If the build fails, or the toolchain is missing under CI.
pub fn build_guests(script: &Path, out_dir: &Path) -> Option<&'static Path> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let o = Command::new("bash").arg(script).arg(out_dir).output().expect("run build-wasm.sh");
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            match o.status.code() {
                Some(0) => Some(out_dir.to_path_buf()),
                Some(77) => {
                    let problem = format!("build-wasm.sh: toolchain missing:\n{}", text(&o.stderr));
                    if in_ci() {
                        panic!("{problem}(required under CI=true; ./scripts/test installs it as root)");
                    }
                    eprintln!("SKIPPED: {problem}(install rustc libstd-rust-dev-wasm32 clang lld wasi-libc libclang-rt-14-dev-wasm32 to run this test)");
                    None
                }
                _ => panic!("build-wasm.sh failed ({}):\n{}{}", o.status, text(&o.stdout), text(&o.stderr)),
            }
        })
        .as_deref()
}
