//! The WASI layer under random sequences of path calls (open, create, stat,
//! mkdir, unlink, rename, symlink, link) over a scratch directory, with
//! paths built from `..`, absolute paths and symlinks that point out: no call
//! may read, write, create or remove anything outside the preopened
//! directory (see `crates/weft-wasi/tests/support/sandbox.rs`).
//!
//! `cargo fuzz run wasi_sandbox` (from the `fuzz/` folder).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/weft-wasi/tests/support/sandbox.rs"]
mod sandbox;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = sandbox::run_sequence(data, 64) {
        panic!("{e}");
    }
});
