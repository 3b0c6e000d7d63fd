//! WASI for Weft: the `wasi_snapshot_preview1` and legacy `wasi_unstable`
//! (preview0) host functions, with filesystem access sandboxed to preopened
//! directories through cap-std.
//!
//! # Example
//!
//! ```
//! use weft::{Engine, Linker, Module, Store};
//! use weft_wasi::{WasiCtx, OutputPipe, OutputSink};
//!
//! let engine = Engine::default();
//! let module = Module::new(&engine, r#"(module
//!     (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
//!     (memory (export "memory") 1)
//!     (data (i32.const 16) "hi\n")
//!     (func (export "_start")
//!         (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 3))
//!         (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#)?;
//! let out = OutputPipe::new();
//! let mut linker = Linker::new(&engine);
//! weft_wasi::add_to_linker(&mut linker, |ctx: &mut WasiCtx| ctx)?;
//! let mut store = Store::new(&engine, WasiCtx::builder().stdout(OutputSink::Pipe(out.clone())).build());
//! let instance = linker.instantiate(&mut store, &module)?;
//! instance.get_typed_func::<(), ()>(&mut store, "_start")?.call(&mut store, ())?;
//! assert_eq!(out.contents(), b"hi\n");
//! # Ok::<(), anyhow::Error>(())
//! ```

mod ctx;
mod imp;
mod linker;
pub mod types;

/// Preview 1 under the names wasmtime's `wasmtime_wasi::p1` uses, so that
/// code written for it changes only the crate name.
pub mod p1 {
    /// The preview 1 context: Weft's [`WasiCtx`](crate::WasiCtx).
    pub type WasiP1Ctx = crate::WasiCtx;

    /// Defines the `wasi_snapshot_preview1` functions in `linker`; `get`
    /// finds the context in the store's data (the legacy `wasi_unstable`
    /// names are [`add_to_linker_preview0`](crate::add_to_linker_preview0)).
    ///
    /// # Errors
    /// Fails if one of the names is already defined.
    pub fn add_to_linker_sync<T: 'static>(
        linker: &mut weft::Linker<T>,
        get: impl Fn(&mut T) -> &mut WasiP1Ctx + Copy + Send + Sync + 'static,
    ) -> anyhow::Result<()> {
        crate::add_to_linker_preview1(linker, get)
    }
}

pub use ctx::{FsPerms, OutputPipe, OutputSink, StdinSource, WasiCtx, WasiCtxBuilder};
pub use linker::{add_to_linker, add_to_linker_preview0, add_to_linker_preview1};
pub use types::Errno;

/// The error `proc_exit(code)` raises to stop the guest. A call that the
/// guest ended this way returns it as its error: find it with
/// `err.downcast_ref::<I32Exit>()` (or [`exit_code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("exit with status {0}")]
pub struct I32Exit(pub i32);

/// If `err` is the error `proc_exit` raised, the guest's exit code.
pub fn exit_code(err: &anyhow::Error) -> Option<i32> {
    err.downcast_ref::<I32Exit>().map(|e| e.0)
}
